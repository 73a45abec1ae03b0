//! `[ship]`: the shipper that drains the local log into Redis.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShipConfig {
    /// Most records in one Redis transaction.
    pub batch_records: usize,
    /// Most record bytes in one Redis transaction.
    pub batch_bytes: usize,
    /// After a batch that was not full, wait this long before the next one, so that a
    /// steady flow ships in fewer, larger transactions. Adds at most this to latency.
    /// 0 (the default): ship as soon as the shipper is idle; what arrives while a batch
    /// is in flight goes in the next one, so batches still grow with the load; and once
    /// batches hold 8 records or more (hits arrive many times per round trip), wait 1 ms
    /// before the next, so that a busy collector ships fewer, larger batches.
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
    /// Stream sink: named fields added to each entry next to `r`, name → template (the
    /// source's own language: `$uri` for `serve`, `$HOST` for `relay`), rendered when the
    /// record is.
    pub fields: BTreeMap<String, String>,
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

impl ShipConfig {
    /// What serde cannot check.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.shards == 0 || self.shards > 1024 {
            return Err(ConfigError::invalid("ship.shards", "must be 1 to 1024"));
        }
        if matches!(self.stream_retention, StreamRetention::MaxLen(0)) {
            return Err(ConfigError::invalid(
                "ship.stream_retention",
                "max_len must be > 0",
            ));
        }
        let id_ok = self
            .instance_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(ConfigError::invalid(
                "ship.instance_id",
                "letters, digits, `-` and `_` only",
            ));
        }
        self.validate_fields()
    }

    /// Names are unique by construction (a table's keys); each must be a field name the
    /// consumers can tell from the record's.
    fn validate_fields(&self) -> Result<(), ConfigError> {
        if !self.fields.is_empty() && self.sink != SinkKind::Stream {
            return Err(ConfigError::invalid(
                "ship.fields",
                "named fields need `ship.sink = \"stream\"` (a list entry is the record alone)",
            ));
        }
        for name in self.fields.keys() {
            let why = if name.is_empty() {
                "a field name cannot be empty"
            } else if name == "r" {
                "`r` is the record's own field"
            } else if name.len() > 255 {
                "a field name is at most 255 bytes"
            } else {
                continue;
            };
            return Err(ConfigError::invalid(
                "ship.fields",
                format!("`{name}`: {why}"),
            ));
        }
        Ok(())
    }
}

impl Default for ShipConfig {
    fn default() -> Self {
        ShipConfig {
            batch_records: 5_000,
            batch_bytes: 4 << 20,
            linger: Duration::ZERO,
            ready_backlog_bytes: 64 << 20,
            shutdown_deadline: Duration::from_secs(10),
            redis_timeout: Duration::from_secs(5),
            sink: SinkKind::List,
            stream_retention: StreamRetention::Unbounded,
            shards: 1,
            wait_replicas: 0,
            instance_id: String::new(),
            fields: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path), &[])
    }

    #[test]
    fn scaling_fields_parse_and_are_checked() {
        let c = load(
            "redis = \"redis+cluster://a:7000,b:7001\"\n[ship]\nsink = \"stream\"\nstream_retention = { max_age = \"24h\" }\nshards = 3\nwait_replicas = 1\ninstance_id = \"web-1\"\n",
        )
        .unwrap();
        assert!(c.redis.is_cluster());
        assert_eq!(c.ship.sink, SinkKind::Stream);
        assert_eq!(
            c.ship.stream_retention,
            StreamRetention::MaxAge(Duration::from_secs(86400))
        );
        assert_eq!((c.ship.shards, c.ship.wait_replicas), (3, 1));
        let c = load("[ship]\nsink = \"stream\"\n[ship.fields]\npath = \"$uri\"\nua = \"$http_user_agent\"\n").unwrap();
        let fields: Vec<_> = c.ship.fields.iter().collect();
        assert_eq!(
            fields,
            [
                (&"path".into(), &"$uri".into()),
                (&"ua".into(), &"$http_user_agent".into())
            ]
        );
        let c = load("[ship]\nstream_retention = { max_len = 1000 }\n").unwrap();
        assert_eq!(c.ship.stream_retention, StreamRetention::MaxLen(1000));
        let d = Config::default();
        assert_eq!(
            (d.ship.sink, d.ship.shards, d.ship.wait_replicas),
            (SinkKind::List, 1, 0)
        );
        for (bad, field) in [
            ("[ship]\nshards = 0\n", "ship.shards"),
            (
                "[ship]\nstream_retention = { max_len = 0 }\n",
                "ship.stream_retention",
            ),
            ("[ship]\ninstance_id = \"a b\"\n", "ship.instance_id"),
            ("redis = \"redis+cluster://a\"\n", "redis"),
            ("[ship]\nsink = \"set\"\n", "sink"),
            (
                "[ship]\nsink = \"stream\"\n[ship.fields]\nr = \"$uri\"\n",
                "`r` is the record's own field",
            ),
            (
                "[ship]\nsink = \"stream\"\n[ship.fields]\n\"\" = \"$uri\"\n",
                "cannot be empty",
            ),
            (
                "[ship]\n[ship.fields]\npath = \"$uri\"\n",
                "need `ship.sink = \"stream\"`",
            ),
            (
                "[ship]\nsink = \"stream\"\n[ship.fields]\npath = \"$uri\"\npath = \"$args\"\n",
                "path",
            ),
        ] {
            let e = load(bad).expect_err(bad).to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }
}
