//! Consuming the events: `pixelpipe tail` (the seed's BRPOP consumer, made reliable),
//! the live analytics that the shipper feeds ([`aggregate`]), and the two views of them:
//! `pixelpipe top` and the dashboard on the admin listener.
//!
//! - [`record`]: a record `$msec,$args` split and its query decoded (shared by all).
//! - [`source`], [`sink`], [`tail`]: where `tail` gets events, where it puts them, the loop.
//! - [`aggregate`]: batches from the shipper → counters, HyperLogLogs in Redis.
//! - [`stats`]: reads those aggregates back into a [`stats::Snapshot`].
//! - [`top`], [`dashboard`]: the terminal and the browser views of a snapshot.

pub mod aggregate;
pub mod dashboard;
pub mod keys;
pub mod record;
pub mod sink;
pub mod source;
pub mod stats;
pub mod stream;
pub mod tail;
pub mod top;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[analytics]`: what the aggregator counts and how long Redis keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// Aggregate the shipped events inside `serve` (and serve the dashboard).
    pub enabled: bool,
    /// Aggregate keys are `{prefix}{list key}:…`, so several collectors add up.
    pub prefix: String,
    /// Query parameters whose values are counted (top values in `top` and the dashboard).
    pub params: Vec<String>,
    /// Query parameter that identifies a visitor, for the unique counts ("" = none).
    pub visitor: String,
    /// Query parameter naming the A/B variant ("" = no A/B table).
    pub ab_param: String,
    /// The goal event, `name=value`: an event carrying it is a conversion for its variant.
    pub goal: String,
    /// How long per-second counts are kept.
    #[serde(with = "humantime_serde")]
    pub second_retention: Duration,
    /// How long per-minute counts, value counts and uniques are kept.
    #[serde(with = "humantime_serde")]
    pub minute_retention: Duration,
    /// How long per-day value counts, uniques and A/B counts are kept.
    #[serde(with = "humantime_serde")]
    pub day_retention: Duration,
    /// Shipped batches waiting for the aggregator; past this they are skipped (counted).
    pub queue_batches: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            enabled: true,
            prefix: "pixelpipe:stats:".into(),
            params: vec!["utm_source".into()],
            visitor: "uid".into(),
            ab_param: String::new(),
            goal: String::new(),
            second_retention: Duration::from_secs(2 * 3600),
            minute_retention: Duration::from_secs(2 * 86400),
            day_retention: Duration::from_secs(35 * 86400),
            queue_batches: 64,
        }
    }
}

impl AnalyticsConfig {
    /// What serde cannot check.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::ConfigError;
        if self.prefix.is_empty() {
            return Err(ConfigError::invalid(
                "analytics.prefix",
                "must not be empty (the aggregates would mix with other keys)",
            ));
        }
        if !self.goal.is_empty() && !self.goal.contains('=') {
            return Err(ConfigError::invalid(
                "analytics.goal",
                "must be `param=value`, e.g. \"event=signup\"",
            ));
        }
        if !self.goal.is_empty() && self.ab_param.is_empty() {
            return Err(ConfigError::invalid(
                "analytics.goal",
                "needs analytics.ab_param (the variant the goal is counted for)",
            ));
        }
        if self.queue_batches == 0 {
            return Err(ConfigError::invalid(
                "analytics.queue_batches",
                "must be > 0",
            ));
        }
        if self.second_retention.as_secs() < 60 || self.minute_retention.as_secs() < 3600 {
            return Err(ConfigError::invalid(
                "analytics.second_retention",
                "second_retention must be at least 1m and minute_retention at least 1h (what top and the dashboard show)",
            ));
        }
        Ok(())
    }

    /// The goal split into its parameter and value (`event=signup` → ("event", "signup")).
    pub fn goal_pair(&self) -> Option<(&str, &str)> {
        if self.goal.is_empty() {
            return None;
        }
        Some(
            self.goal
                .split_once('=')
                .unwrap_or((self.goal.as_str(), "")),
        )
    }
}

/// Errors of the consumers (`tail`, `top`).
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("writing the output: {0}")]
    Output(std::io::Error),
    #[error("running `{command}`: {source}")]
    Exec {
        command: String,
        source: std::io::Error,
    },
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
}

/// What `serve` (or `relay`) needs to run the analytics: the shipper's tap and the
/// dashboard's routes. Both empty when `analytics.enabled` is false.
pub struct Analytics {
    pub tap: Option<crate::ship::Tap>,
    pub router: axum::Router,
}

/// Spawns the aggregator (call inside a tokio runtime) and builds the dashboard routes.
pub fn start_analytics(config: &crate::config::Config) -> Result<Analytics, redis::RedisError> {
    use crate::conn::{Link, Timeouts};
    if !config.analytics.enabled {
        return Ok(Analytics {
            tap: None,
            router: axum::Router::new(),
        });
    }
    let (tap, batches) = tokio::sync::mpsc::channel(config.analytics.queue_batches.max(1));
    let timeouts = Timeouts::new(std::time::Duration::from_secs(5));
    tokio::spawn(aggregate::run(
        Link::new(config.redis.clone(), timeouts, "aggregator"),
        config.analytics.clone(),
        batches,
    ));
    let dashboard_timeouts = Timeouts {
        connect: std::time::Duration::from_secs(1),
        response: Some(std::time::Duration::from_secs(2)),
    };
    let state = dashboard::DashboardState::new(
        Link::new(config.redis.clone(), dashboard_timeouts, "dashboard"),
        config.analytics.clone(),
        config.http.key.clone(),
    );
    Ok(Analytics {
        tap: Some(tap),
        router: dashboard::router(state),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(toml: &str) -> Result<Config, crate::config::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path), &[])
    }

    #[test]
    fn analytics_section_parses_and_is_checked() {
        let c = load(
            "[analytics]\nparams = [\"utm_source\", \"variant\"]\nvisitor = \"uid\"\nab_param = \"variant\"\ngoal = \"event=signup\"\nsecond_retention = \"3h\"\n",
        )
        .unwrap();
        assert_eq!(c.analytics.params, ["utm_source", "variant"]);
        assert_eq!(c.analytics.goal_pair(), Some(("event", "signup")));
        assert_eq!(c.analytics.second_retention.as_secs(), 3 * 3600);
        assert!(load("[analytics]\ngoal = \"signup\"\nab_param = \"v\"\n").is_err());
        assert!(load("[analytics]\ngoal = \"e=s\"\n").is_err());
        assert!(load("[analytics]\nparam = [\"typo\"]\n").is_err());
    }
}
