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

use crate::consume::AnalyticsConfig;
pub use crate::relay::config::TlsFiles;
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
    /// Where records are shipped: `redis://[user:pass@]host:port[/db]` or `rediss://…`.
    pub redis: String,
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
            redis: "redis://127.0.0.1:6379".into(),
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
    // The web collector: HTTPS, beacons, CORS, the tracker script, click redirects.
    /// Serve HTTPS too, on `tls_listen`, with this certificate chain and key (PEM).
    pub tls: Option<TlsFiles>,
    pub tls_listen: Option<SocketAddr>,
    /// `POST` beacons are taken here (and on `path`).
    pub beacon_path: String,
    /// A longer beacon body → 413.
    pub max_body_bytes: usize,
    /// More events in one JSON batch → 413.
    pub max_batch: usize,
    /// The answer to a recorded beacon.
    pub beacon_reply: BeaconReply,
    /// Page origins allowed by CORS (`https://shop.example`, or `*`); empty: no CORS.
    pub cors_origins: Vec<String>,
    /// `Access-Control-Allow-Credentials: true` for origins listed by name.
    pub cors_credentials: bool,
    /// Record requests from origins not on `cors_origins` (they get no CORS headers).
    pub cors_record_foreign: bool,
    /// The tracker script's path.
    pub script_path: String,
    #[serde(with = "humantime_serde")]
    pub script_max_age: Duration,
    /// The click-redirect path (`/r?u=<url>`); `""` turns it off.
    pub redirect_path: String,
    /// Hosts a click may be redirected to: `shop.example` or `*.shop.example`.
    pub redirect_hosts: Vec<String>,
}

/// What a recorded beacon gets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BeaconReply {
    /// `204 No Content`.
    NoContent,
    /// `200` with the GIF, as a `GET` of the pixel.
    Gif,
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
            tls: None,
            tls_listen: None,
            beacon_path: "/e".into(),
            max_body_bytes: 64 * 1024,
            max_batch: 100,
            beacon_reply: BeaconReply::NoContent,
            cors_origins: Vec::new(),
            cors_credentials: false,
            cors_record_foreign: false,
            script_path: "/p.js".into(),
            script_max_age: Duration::from_secs(3600),
            redirect_path: "/r".into(),
            redirect_hosts: Vec::new(),
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
        self.http.validate_web()?;
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
        redis::Client::open(self.redis.as_str())
            .map_err(|e| ConfigError::invalid("redis", e.to_string()))?;
        self.analytics.validate()?;
        crate::template::http::compile(&self.http.format)
            .map_err(|e| ConfigError::invalid("http.format", e.to_string()))?;
        self.relay.validate()?;
        Ok(())
    }
}

impl HttpConfig {
    /// The web collector's fields: paths that can be put in the script and compared as
    /// bytes, lists that parse, TLS files and listener together.
    fn validate_web(&self) -> Result<(), ConfigError> {
        for (field, path) in [
            ("http.beacon_path", &self.beacon_path),
            ("http.script_path", &self.script_path),
            ("http.path", &self.path),
        ] {
            check_path(field, path)?;
        }
        if !self.redirect_path.is_empty() {
            check_path("http.redirect_path", &self.redirect_path)?;
        }
        let hit_paths = [&self.path, &self.beacon_path];
        if hit_paths.contains(&&self.script_path)
            || hit_paths.contains(&&self.redirect_path)
            || self.script_path == self.redirect_path
        {
            return Err(ConfigError::invalid(
                "http.script_path",
                "http.script_path and http.redirect_path must differ from each other and from http.path and http.beacon_path",
            ));
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > crate::http::request::MAX_BODY {
            return Err(ConfigError::invalid(
                "http.max_body_bytes",
                format!("must be between 1 and {}", crate::http::request::MAX_BODY),
            ));
        }
        if self.max_batch == 0 {
            return Err(ConfigError::invalid("http.max_batch", "must be > 0"));
        }
        crate::http::cors::Cors::new(&self.cors_origins, false, false)
            .map_err(|e| ConfigError::invalid("http.cors_origins", e))?;
        crate::http::redirect::RedirectHosts::new(&self.redirect_hosts)
            .map_err(|e| ConfigError::invalid("http.redirect_hosts", e))?;
        match (&self.tls, self.tls_listen) {
            (Some(_), None) => Err(ConfigError::invalid(
                "http.tls_listen",
                "needed with http.tls (the HTTPS address)",
            )),
            (None, Some(_)) => Err(ConfigError::invalid(
                "http.tls",
                "needed with http.tls_listen: { cert = \"….pem\", key = \"….pem\" }",
            )),
            _ => Ok(()),
        }
    }
}

/// A path served as it is written: it starts with `/` and holds no byte that would need
/// escaping in a request target or in the tracker script's string.
fn check_path(field: &'static str, path: &str) -> Result<(), ConfigError> {
    let ok = path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"?#\"'\\<>`%".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            "must start with '/' and hold only printable ASCII without ? # % quotes or backslash",
        ))
    }
}
