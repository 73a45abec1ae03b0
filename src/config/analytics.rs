//! `[analytics]`: what the aggregator counts and how long Redis keeps it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

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
    #[serde(with = "goal_text")]
    pub goal: Option<Goal>,
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
            goal: None,
            second_retention: Duration::from_secs(2 * 3600),
            minute_retention: Duration::from_secs(2 * 86400),
            day_retention: Duration::from_secs(35 * 86400),
            queue_batches: 64,
        }
    }
}

impl AnalyticsConfig {
    /// What serde cannot check.
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        if self.prefix.is_empty() {
            return Err(ConfigError::invalid(
                "analytics.prefix",
                "must not be empty (the aggregates would mix with other keys)",
            ));
        }
        if self.goal.is_some() && self.ab_param.is_empty() {
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
        // What top and the dashboard show needs this much.
        if self.second_retention.as_secs() < 60 {
            return Err(ConfigError::invalid(
                "analytics.second_retention",
                "must be at least 1m",
            ));
        }
        if self.minute_retention.as_secs() < 3600 {
            return Err(ConfigError::invalid(
                "analytics.minute_retention",
                "must be at least 1h",
            ));
        }
        Ok(())
    }

    /// The goal split into its parameter and value (`event=signup` → ("event", "signup")).
    pub fn goal_pair(&self) -> Option<(&str, &str)> {
        self.goal
            .as_ref()
            .map(|g| (g.param.as_str(), g.value.as_str()))
    }
}

/// The goal event of the A/B table: an event whose `param` is `value` is a conversion.
/// Written `param=value` (e.g. `event=signup`); an empty string is no goal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    pub param: String,
    pub value: String,
}

impl std::str::FromStr for Goal {
    type Err = String;

    fn from_str(s: &str) -> Result<Goal, String> {
        match s.split_once('=') {
            Some((param, value)) => Ok(Goal {
                param: param.to_owned(),
                value: value.to_owned(),
            }),
            None => Err(format!(
                "`{s}` must be `param=value`, e.g. \"event=signup\""
            )),
        }
    }
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.param, self.value)
    }
}

/// `goal` in the file: `"param=value"`, or `""` for none.
mod goal_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Goal;

    pub fn serialize<S: Serializer>(goal: &Option<Goal>, s: S) -> Result<S::Ok, S::Error> {
        match goal {
            Some(g) => s.collect_str(g),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Goal>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(serde::de::Error::custom)
    }
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
