//! The log-and-ship core that `serve` and `relay` share: the durable local log in the
//! data folder, the shipper that drains it into Redis, and the fsync timer.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::log::{Log, LogError};
use crate::ship::position::{self, PositionFile};
use crate::ship::redis_list::RedisList;
use crate::ship::sink::RefusedPolicy;
use crate::ship::{redact, Shipper, ShipperStatus, Tap};

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
        let id = position::instance_id(dir).map_err(io_err)?;
        let position_file = PositionFile::new(dir);
        let log = Arc::new(Log::open(
            &dir.join("log"),
            config.log.clone(),
            position_file.load(),
        )?);
        let client = redis::Client::open(config.redis.as_str())?;
        let sink = RedisList::new(
            client,
            format!("pixelpipe:shipped:{id}"),
            config.ship.redis_timeout,
            refused,
        );
        let (shipper, status) = Shipper::new(
            log.clone(),
            sink,
            position_file,
            config.ship.clone(),
            redact(&config.redis),
            tap,
        );
        let drain = CancellationToken::new();
        let shipper = tokio::spawn(shipper.run(drain.clone()));
        tracing::info!(
            log = %log.dir().display(),
            instance = %id,
            backlog_bytes = log.backlog(),
            redis = %redact(&config.redis),
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
