//! One typed configuration, layered: built-in defaults < TOML file (`--config`) <
//! environment (`PIXELPIPE_…`, nested fields joined by `__`) < command-line flags.
//!
//! Every field has a default, so an empty file (or none) is a working configuration.
//! Unknown fields are errors: a typo in a config file must not be silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::conn::RedisTarget;
use crate::consume::AnalyticsConfig;
use crate::relay::RelayConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("bad configuration: {0}")]
    Figment(Box<figment::Error>),
    #[error("bad configuration: `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl ConfigError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where records are shipped: `redis://[user:pass@]host:port[/db]`, `rediss://…`, or a
    /// cluster: `redis+cluster://host:port[,host:port…]`, `rediss+cluster://…`.
    pub redis: RedisTarget,
    /// The durable local log, the shipped position cache and the instance id live here.
    pub data_dir: PathBuf,
    /// `/healthz`, `/readyz`, `/metrics` and the dashboard.
    pub admin_listen: SocketAddr,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub ship: ShipConfig,
    pub relay: RelayConfig,
    pub analytics: AnalyticsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            redis: RedisTarget::Single {
                url: "redis://127.0.0.1:6379".into(),
            },
            data_dir: PathBuf::from("pixelpipe-data"),
            admin_listen: ([127, 0, 0, 1], 9102).into(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            ship: ShipConfig::default(),
            relay: RelayConfig::default(),
            analytics: AnalyticsConfig::default(),
        }
    }
}

/// The pixel endpoint (`pixelpipe serve`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// The path that answers with the GIF; every other path is a 404.
    pub path: String,
    /// The Redis list the records are pushed to.
    pub key: String,
    /// The record template, nginx `log_format` style.
    pub format: String,
    /// Longest accepted request line (method, target, version); longer → 414.
    pub max_request_line: usize,
    /// Longest accepted request head (request line and headers); longer → 431.
    pub max_header_bytes: usize,
    /// A request head must arrive within this time once its first byte came.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Connections beyond this many are accepted and closed at once.
    pub max_connections: usize,
    /// Threads that accept and serve; 0 means one per core.
    pub workers: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: ([127, 0, 0, 1], 8080).into(),
            path: "/pixel.gif".into(),
            key: "pixel".into(),
            format: "$msec,$args".into(),
            max_request_line: 8 * 1024,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            workers: 0,
        }
    }
}

/// What to do with a new record when the unshipped part of the local log is at its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FullPolicy {
    /// Refuse the hit (HTTP 503): nothing already accepted is lost.
    Reject,
    /// Delete the oldest unshipped segment to make room: the newest events win.
    DropOldest,
}

/// When the local log calls `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsyncPolicy {
    /// Never: a process crash loses nothing, a power loss can lose what the OS had not written.
    Never,
    /// Every `fsync_interval`: a power loss loses at most that much.
    Interval,
    /// Before every response: a power loss loses nothing that was answered 200. Slow.
    Always,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Bound on the unshipped part of the log.
    pub max_bytes: u64,
    pub when_full: FullPolicy,
    pub fsync: FsyncPolicy,
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// Shipped segments kept on disk as an access log, newest first, up to this many bytes.
    pub retain_shipped_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 << 20,
            max_bytes: 1 << 30,
            when_full: FullPolicy::Reject,
            fsync: FsyncPolicy::Interval,
            fsync_interval: Duration::from_millis(100),
            retain_shipped_bytes: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShipConfig {
    /// Most records in one Redis transaction.
    pub batch_records: usize,
    /// Most record bytes in one Redis transaction.
    pub batch_bytes: usize,
    /// After a batch that was not full, wait this long before the next one, so that a
    /// steady flow ships in fewer, larger transactions. Adds at most this to latency.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// `/readyz` fails while more unshipped bytes than this wait in the log.
    pub ready_backlog_bytes: u64,
    /// On SIGTERM, how long to keep shipping before exiting.
    #[serde(with = "humantime_serde")]
    pub shutdown_deadline: Duration,
    /// A Redis command that takes longer than this is treated as failed (and retried).
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// What a key is in Redis: a list (`LPUSH`, the seed's) or a stream (`XADD`).
    pub sink: SinkKind,
    /// Stream sink: how much of each stream Redis keeps.
    pub stream_retention: StreamRetention,
    /// Each key is spread round-robin by batch over this many hash-tagged keys
    /// `key:{0}`…`key:{N-1}`; 1 = the key itself (on a cluster: `key:{0}`).
    pub shards: u32,
    /// A batch counts as shipped only once this many replicas have it (`WAIT`); 0 = as
    /// soon as the master answers.
    pub wait_replicas: u32,
    /// Names this collector's positions in Redis; "" = the random id made once in the
    /// data folder. Each collector needs its own.
    pub instance_id: String,
}

/// `ship.sink`: what a key is in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkKind {
    List,
    Stream,
}

/// `ship.stream_retention`: `"unbounded"`, `{ max_len = N }` (`MAXLEN ~ N`) or
/// `{ max_age = "24h" }` (`MINID ~` now minus the age).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamRetention {
    Unbounded,
    MaxLen(u64),
    MaxAge(#[serde(with = "humantime_serde")] Duration),
}

impl Default for ShipConfig {
    fn default() -> Self {
        ShipConfig {
            batch_records: 5_000,
            batch_bytes: 4 << 20,
            linger: Duration::from_millis(5),
            ready_backlog_bytes: 64 << 20,
            shutdown_deadline: Duration::from_secs(10),
            redis_timeout: Duration::from_secs(5),
            sink: SinkKind::List,
            stream_retention: StreamRetention::Unbounded,
            shards: 1,
            wait_replicas: 0,
            instance_id: String::new(),
        }
    }
}

impl Config {
    /// Layers defaults, the TOML file, the environment and `overrides` (the flags, as
    /// dotted field paths), then checks what serde cannot.
    pub fn load(
        file: Option<&Path>,
        overrides: &[(&'static str, figment::value::Value)],
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("PIXELPIPE_").split("__").ignore(&["config"]));
        for (path, value) in overrides {
            figment = figment.merge(Serialized::global(path, value.clone()));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Figment(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.http.path.starts_with('/') {
            return Err(ConfigError::invalid("http.path", "must start with '/'"));
        }
        if self.http.key.is_empty() {
            return Err(ConfigError::invalid("http.key", "must not be empty"));
        }
        if self.http.max_request_line < 64 {
            return Err(ConfigError::invalid(
                "http.max_request_line",
                "must be at least 64 bytes",
            ));
        }
        if self.http.max_header_bytes < self.http.max_request_line {
            return Err(ConfigError::invalid(
                "http.max_header_bytes",
                "must be at least http.max_request_line",
            ));
        }
        if self.http.max_connections == 0 {
            return Err(ConfigError::invalid("http.max_connections", "must be > 0"));
        }
        if self.log.segment_bytes < 4096 {
            return Err(ConfigError::invalid(
                "log.segment_bytes",
                "must be at least 4096",
            ));
        }
        if self.log.max_bytes < self.log.segment_bytes * 2 {
            return Err(ConfigError::invalid(
                "log.max_bytes",
                "must be at least twice log.segment_bytes",
            ));
        }
        if self.ship.batch_records == 0 || self.ship.batch_bytes == 0 {
            return Err(ConfigError::invalid("ship.batch_records", "must be > 0"));
        }
        if self.ship.shards == 0 || self.ship.shards > 1024 {
            return Err(ConfigError::invalid("ship.shards", "must be 1 to 1024"));
        }
        if matches!(self.ship.stream_retention, StreamRetention::MaxLen(0)) {
            return Err(ConfigError::invalid(
                "ship.stream_retention",
                "max_len must be > 0",
            ));
        }
        if !self
            .ship
            .instance_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::invalid(
                "ship.instance_id",
                "letters, digits, `-` and `_` only",
            ));
        }
        self.analytics.validate()?;
        crate::template::http::compile(&self.http.format)
            .map_err(|e| ConfigError::invalid("http.format", e.to_string()))?;
        self.relay.validate()?;
        Ok(())
    }
}
