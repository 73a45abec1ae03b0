//! The log-and-ship core that `serve` and `relay` share: the durable local log in the
//! data folder, the shipper that drains it into Redis, and the fsync timer.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config::SinkKind;
use crate::conn::{Link, RedisTarget, Timeouts};
use crate::log::{Log, LogError};
use crate::ship::cluster::Layout;
use crate::ship::position::{self, PositionFile};
use crate::ship::redis_list::RedisList;
use crate::ship::script::call::Write;
use crate::ship::script::ScriptSink;
use crate::ship::sink::{RefusedPolicy, Sink};
use crate::ship::{Shipper, ShipperStatus, Tap};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data folder {0} is in use by another pixelpipe process")]
    Locked(PathBuf),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("bad Redis URL: {0}")]
    Redis(#[from] redis::RedisError),
}

pub struct Pipeline {
    pub log: Arc<Log>,
    pub status: ShipperStatus,
    drain: CancellationToken,
    shipper: JoinHandle<()>,
    deadline: Duration,
    /// Held for the process's life: one process per data folder.
    _lock: File,
}

impl Pipeline {
    /// Opens the log (recovering it after a crash) and starts shipping. Call inside a
    /// tokio runtime. `tap` receives every batch Redis acknowledged; `refused` says what
    /// happens to records of a list Redis cannot push to.
    pub fn start(
        config: &Config,
        tap: Option<Tap>,
        refused: RefusedPolicy,
    ) -> Result<Pipeline, PipelineError> {
        let dir = &config.data_dir;
        let io_err = |source| PipelineError::DataDir {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        // One process per data folder: `flock` on the folder itself. A lock file could be
        // deleted (or the folder cleaned) under a running process, and a second process
        // would then lock a new file and open the same log; the folder cannot be replaced
        // while it holds the log.
        let lock = File::open(dir).map_err(io_err)?;
        if lock.try_lock().is_err() {
            return Err(PipelineError::Locked(dir.clone()));
        }
        let id = match config.ship.instance_id.as_str() {
            "" => position::instance_id(dir).map_err(io_err)?,
            id => id.to_owned(),
        };
        let position_file = PositionFile::new(dir);
        let log = Arc::new(
            Log::open(&dir.join("log"), config.log.clone(), position_file.load())?
                .with_framed_values(!config.ship.fields.is_empty()),
        );
        let drain = CancellationToken::new();
        let start = StartShipper {
            log: log.clone(),
            position_file,
            config,
            tap,
            drain: drain.clone(),
        };
        let (shipper, status) = match sink_for(config, &id, refused)? {
            Chosen::List(sink) => start.spawn(sink),
            Chosen::Script(sink) => start.spawn(sink),
        };
        tracing::info!(
            log = %log.dir().display(),
            instance = %id,
            backlog_bytes = log.backlog(),
            redis = %config.redis,
            "local log open; shipping to Redis"
        );
        Ok(Pipeline {
            log,
            status,
            drain,
            shipper,
            deadline: config.ship.shutdown_deadline,
            _lock: lock,
        })
    }

    /// Ships what is left, for at most the configured deadline. Call once no more records
    /// are being appended. Returns the unshipped bytes left in the local log (shipped on
    /// the next start).
    pub async fn drain(self) -> u64 {
        self.drain.cancel();
        let mut shipper = self.shipper;
        if tokio::time::timeout(self.deadline, &mut shipper)
            .await
            .is_err()
        {
            shipper.abort();
        }
        let left = self.log.backlog();
        if left > 0 {
            tracing::warn!(
                backlog_bytes = left,
                log = %self.log.dir().display(),
                "stopped with records not yet in Redis; they stay in the local log and are shipped on the next start"
            );
        }
        if let Err(e) = self.log.sync() {
            tracing::warn!(error = %e, "final fsync of the local log failed");
        }
        left
    }
}

/// The sink chosen from the configuration (one per process: size does not matter).
#[allow(clippy::large_enum_variant)]
enum Chosen {
    List(RedisList),
    Script(ScriptSink),
}

/// What a shipper needs besides its sink.
struct StartShipper<'a> {
    log: Arc<Log>,
    position_file: PositionFile,
    config: &'a Config,
    tap: Option<Tap>,
    drain: CancellationToken,
}

impl StartShipper<'_> {
    fn spawn<S: Sink + 'static>(self, sink: S) -> (JoinHandle<()>, ShipperStatus) {
        let (shipper, status) = Shipper::new(
            self.log,
            sink,
            self.position_file,
            self.config.ship.clone(),
            self.config.redis.to_string(),
            self.tap,
        );
        (tokio::spawn(shipper.run(self.drain)), status)
    }
}

/// The seed's setup (a list on one server, one shard, no `WAIT`) keeps the list sink;
/// anything past it ships through the script sink. Both apply `refused` to a key of
/// another type.
fn sink_for(config: &Config, id: &str, refused: RefusedPolicy) -> Result<Chosen, PipelineError> {
    let ship = &config.ship;
    let timeout = ship.redis_timeout;
    match &config.redis {
        RedisTarget::Single { url }
            if ship.sink == SinkKind::List && ship.shards == 1 && ship.wait_replicas == 0 =>
        {
            let client = redis::Client::open(url.as_str())?;
            Ok(Chosen::List(RedisList::new(
                client,
                format!("pixelpipe:shipped:{id}"),
                timeout,
                refused,
            )))
        }
        target => {
            let write = match ship.sink {
                SinkKind::List => Write::List,
                SinkKind::Stream => Write::Stream(ship.stream_retention),
            };
            let link = Link::new(target.clone(), Timeouts::new(timeout), "shipper");
            Ok(Chosen::Script(ScriptSink::new(
                link,
                Layout::new(ship.shards, target.is_cluster()),
                id.to_owned(),
                write,
                refused,
                ship.wait_replicas,
            )))
        }
    }
}
