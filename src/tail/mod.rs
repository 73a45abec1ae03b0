//! `pixelpipe tail`: the seed's consumer (`BRPOP pixel`, print `timestamp args`), batched
//! for speed, with a reliable mode, `--exec` and a dead-letter list.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ship::cluster::Layout;
use endpoint::Endpoint;
use shards::Shard;
use sink::{Exec, Sink};
use source::Mode;
use stream::GroupOptions;

pub mod budget;
pub mod command;
pub mod endpoint;
pub mod shards;
pub mod sink;
pub mod source;
pub mod stream;

/// Errors of `pixelpipe tail`.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("writing the output: {0}")]
    Output(std::io::Error),
    #[error("running `{command}`: {source}")]
    Exec {
        command: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct TailArgs {
    /// The Redis list to read (default: the `http.key` of the configuration, "pixel"), in
    /// all its `ship.shards` (`{key}:{0}` … on a cluster or with more than one shard).
    #[arg(long)]
    pub key: Option<String>,
    /// One JSON object a line: {"timestamp":…,"fields":{…}} (repeated keys → arrays).
    #[arg(long)]
    pub json: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Only look: print the events in the list, oldest first, without removing them, then exit.
    #[arg(long, conflicts_with_all = ["reliable", "exec"])]
    pub no_remove: bool,
    /// Move events to this consumer's processing list and remove them only once handled:
    /// a consumer killed and restarted re-delivers what it had not finished.
    #[arg(long)]
    pub reliable: bool,
    /// This consumer's name (its processing list is `{key}:processing:{name}`, one per
    /// shard). Each of several consumers of one key needs its own; a restart must reuse it.
    #[arg(long, default_value_t = default_consumer())]
    pub consumer: String,
    /// Feed events to this shell command's stdin as JSON lines; an event is done only
    /// once the command exits 0.
    #[arg(long)]
    pub exec: Option<String>,
    /// Events per run of the `--exec` command.
    #[arg(long, default_value_t = 1, requires = "exec")]
    pub batch: usize,
    /// Retries of a failed `--exec` run before its events go to the dead-letter list.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// A run of the `--exec` command taking longer than this is killed (with what it
    /// started) and counts as a failed try, e.g. 60s, 500ms.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub exec_timeout: Duration,
    /// Wait before the first retry (doubles each time), e.g. 200ms, 1s.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub retry_backoff: Duration,
    /// Where events go that `--exec` failed on every try (default `{key}:dead`; sharded like
    /// the key). They keep their format: `pixelpipe tail --key {key}:dead` reads them again.
    #[arg(long)]
    pub dead_letter: Option<String>,
    /// Most events fetched in one round trip.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=5000))]
    pub fetch: u64,
    /// Read the Redis Stream (`ship.sink = "stream"`; all its `ship.shards`) with a
    /// consumer group: entries acknowledged once handled, shared between the consumers.
    #[arg(long, conflicts_with_all = ["no_remove", "reliable"])]
    pub stream: bool,
    /// The consumer group (created if missing, from the stream's first entry).
    #[arg(long, default_value = "pixelpipe", requires = "stream")]
    pub group: String,
    /// Take over entries another consumer of the group left unacknowledged this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, requires = "stream")]
    pub claim_idle: Duration,
    /// An entry delivered more often than this goes to the dead-letter stream `{stream}:dead`.
    #[arg(long, default_value_t = 5, requires = "stream")]
    pub max_deliveries: u64,
}

fn default_consumer() -> String {
    crate::hostname::name().unwrap_or_else(|| "default".into())
}

/// What a finished `tail` did.
#[derive(Debug, Default)]
pub struct Summary {
    pub events: u64,
    pub malformed: u64,
    pub dead: u64,
}

/// Cancels `stop` on SIGINT or SIGTERM, from a thread of its own: `tail` runs no async
/// runtime, and a signal handler itself may not take the token's lock.
fn cancel_on_signal(stop: CancellationToken) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("tail-signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                stop.cancel();
            }
        })?;
    Ok(())
}

pub fn run(config: &Config, args: &TailArgs) -> Result<Summary, TailError> {
    let key = args.key.clone().unwrap_or_else(|| config.http.key.clone());
    let stop = CancellationToken::new();
    cancel_on_signal(stop.clone()).map_err(TailError::Output)?;
    let mut sink = match &args.exec {
        Some(command) => Sink::Exec(Exec {
            command: command.clone(),
            batch: args.batch,
            retries: args.retries,
            backoff: args.retry_backoff,
            timeout: args.exec_timeout,
        }),
        None => Sink::print(args.json),
    };
    let layout = Layout::new(config.ship.shards, config.redis.is_cluster());
    if args.stream {
        let opts = GroupOptions {
            group: args.group.clone(),
            consumer: args.consumer.clone(),
            claim_idle: args.claim_idle,
            max_deliveries: args.max_deliveries,
            fetch: args.fetch as usize,
        };
        let result = stream::run(
            &config.redis,
            layout.all_keys(&key),
            &opts,
            &mut sink,
            args.count,
            &|| stop.is_cancelled(),
        );
        return finish(result, &format!("{key}:dead"));
    }
    let shards: Vec<Shard> = (0..layout.shards)
        .map(|s| shard(args, &layout, &key, s))
        .collect();
    let dead_letters = shards
        .iter()
        .map(|s| s.dead_letter.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let endpoint = Endpoint::new(&config.redis)?;
    let result = shards::run(
        endpoint,
        shards,
        &mut sink,
        args.count,
        args.fetch as usize,
        &stop,
    );
    finish(result, &dead_letters)
}

/// The keys of shard `s` of `key` (`pixel:{s}`, or `pixel` itself unsharded on one server).
/// Its processing and dead-letter lists share its hash tag, hence its slot on a cluster;
/// unsharded they keep the names they always had (`pixel:processing:<consumer>`,
/// `pixel:dead`). Sharded, the dead-letter list is itself sharded (`pixel:dead:{s}`), so
/// `tail --key pixel:dead` reads all of it back.
fn shard(args: &TailArgs, layout: &Layout, key: &str, s: u32) -> Shard {
    let data_key =
        |k: &str| String::from_utf8_lossy(&layout.data_key(k.as_bytes(), s)).into_owned();
    let shard_key = data_key(key);
    let mode = if args.no_remove {
        Mode::Peek
    } else if args.reliable {
        Mode::Reliable {
            processing: format!("{shard_key}:processing:{}", args.consumer),
        }
    } else {
        Mode::Pop
    };
    let dead_letter = match &args.dead_letter {
        Some(d) => data_key(d),
        None => data_key(&format!("{key}:dead")),
    };
    Shard {
        key: shard_key,
        mode,
        dead_letter,
    }
}

/// Says what a finished `tail` left behind (malformed records, dead letters).
fn finish(result: Result<Summary, TailError>, dead_letter: &str) -> Result<Summary, TailError> {
    let summary = match result {
        Ok(s) => s,
        // `tail | head`: the reader is gone, which is how such a pipeline ends.
        Err(TailError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(Summary::default())
        }
        Err(e) => return Err(e),
    };
    if summary.malformed > 0 {
        tracing::warn!(
            malformed = summary.malformed,
            "malformed records passed on as they were"
        );
    }
    if summary.dead > 0 {
        tracing::warn!(dead = summary.dead, dead_letter = %dead_letter, "events moved to the dead-letter list");
    }
    Ok(summary)
}
