//! One typed configuration, layered: built-in defaults < TOML file (`--config`) <
//! environment (`PIXELPIPE_…`, nested fields joined by `__`) < command-line flags.
//!
//! Every field has a default, so an empty file (or none) is a working configuration.
//! Unknown fields are errors: a typo in a config file must not be silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub mod analytics;
pub mod cidr;
pub mod enrich;
pub mod filter;
pub mod http;
pub mod limits;
pub mod log;
pub mod privacy;
pub mod redis_target;
pub mod relay;
pub mod ship;

pub use analytics::AnalyticsConfig;
pub use http::HttpConfig;
pub use log::{FsyncPolicy, FullPolicy, LogConfig};
pub use redis_target::RedisTarget;
pub use relay::RelayConfig;
pub use ship::{ShipConfig, SinkKind, StreamRetention};

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
    pub privacy: privacy::PrivacyConfig,
    pub filter: filter::FilterConfig,
    pub limits: limits::LimitsConfig,
    pub enrich: enrich::EnrichConfig,
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
            privacy: privacy::PrivacyConfig::default(),
            filter: filter::FilterConfig::default(),
            limits: limits::LimitsConfig::default(),
            enrich: enrich::EnrichConfig::default(),
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
        if self.http.max_header_line < 64 {
            return Err(ConfigError::invalid(
                "http.max_header_line",
                "must be at least 64 bytes",
            ));
        }
        if self.http.max_header_bytes < self.http.max_request_line
            || self.http.max_header_bytes < self.http.max_header_line
        {
            return Err(ConfigError::invalid(
                "http.max_header_bytes",
                "must be at least http.max_request_line and http.max_header_line",
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
        // A segment size near the integer's limit must be an error, not wrap.
        let Some(two_segments) = self.log.segment_bytes.checked_mul(2) else {
            return Err(ConfigError::invalid("log.segment_bytes", "too large"));
        };
        if self.log.max_bytes < two_segments {
            return Err(ConfigError::invalid(
                "log.max_bytes",
                "must be at least twice log.segment_bytes",
            ));
        }
        if self.ship.batch_records == 0 {
            return Err(ConfigError::invalid("ship.batch_records", "must be > 0"));
        }
        if self.ship.batch_bytes == 0 {
            return Err(ConfigError::invalid("ship.batch_bytes", "must be > 0"));
        }
        self.ship.validate()?;
        self.analytics.validate()?;
        self.relay.validate()?;
        self.privacy.validate()?;
        self.limits.validate()?;
        if self.http.real_ip_header.is_empty() {
            return Err(ConfigError::invalid(
                "http.real_ip_header",
                "must not be empty",
            ));
        }
        Ok(())
    }
}
