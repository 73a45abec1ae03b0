//! `pixelpipe tail`: the seed's consumer (`BRPOP pixel`, print `timestamp args`), batched
//! for speed, with a reliable mode, `--exec` and a dead-letter list.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use sink::{Exec, Sink};
use source::{Mode, Source};

pub mod command;
pub mod sink;
pub mod source;

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
    /// The Redis list to read (default: the `http.key` of the configuration, "pixel").
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
    /// This consumer's name (its processing list is `{key}:processing:{name}`). Each of
    /// several consumers of one key needs its own; a restart must reuse it.
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
    /// Where events go that `--exec` failed on every try (default `{key}:dead`). They keep
    /// their format: `pixelpipe tail --key {key}:dead` reads them again.
    #[arg(long)]
    pub dead_letter: Option<String>,
    /// Most events fetched in one round trip.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=5000))]
    pub fetch: u64,
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
    let client = redis::Client::open(config.redis.as_str())?;
    let stop = CancellationToken::new();
    cancel_on_signal(stop.clone()).map_err(TailError::Output)?;
    let stopped = {
        let stop = stop.clone();
        move || stop.is_cancelled()
    };
    let mode = if args.no_remove {
        Mode::Peek
    } else if args.reliable {
        Mode::Reliable {
            processing: format!("{key}:processing:{}", args.consumer),
        }
    } else {
        Mode::Pop
    };
    let mut source = Source::new(client, key.clone(), mode, Box::new(stopped.clone()));
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
    let dead_letter = args
        .dead_letter
        .clone()
        .unwrap_or_else(|| format!("{key}:dead"));
    let mut summary = Summary::default();
    let result = (|| loop {
        let want = match args.count {
            Some(n) if summary.events >= n => return Ok(()),
            Some(n) => (n - summary.events).min(args.fetch),
            None => args.fetch,
        };
        if stopped() {
            return Ok(());
        }
        let Some(events) = source.fetch(want as usize)? else {
            return Ok(());
        };
        if events.is_empty() {
            continue;
        }
        let outcome = sink.handle(&events, &mut summary.malformed, &stopped)?;
        source.ack(outcome.handled, &outcome.dead, &dead_letter)?;
        summary.events += outcome.handled as u64;
        summary.dead += outcome.dead.len() as u64;
        if outcome.handled < events.len() {
            return Ok(());
        }
    })();
    if summary.malformed > 0 {
        tracing::warn!(
            malformed = summary.malformed,
            "malformed records passed on as they were"
        );
    }
    if summary.dead > 0 {
        tracing::warn!(dead = summary.dead, dead_letter = %dead_letter, "events moved to the dead-letter list");
    }
    match result {
        // `tail | head`: the reader is gone, which is how such a pipeline ends.
        Err(TailError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(summary),
        Err(e) => Err(e),
        Ok(()) => Ok(summary),
    }
}
