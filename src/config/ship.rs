//! `[ship]`: the shipper that drains the local log into Redis.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// is in flight goes in the next one, so batches still grow with the load.
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
            linger: Duration::ZERO,
            ready_backlog_bytes: 64 << 20,
            shutdown_deadline: Duration::from_secs(10),
            redis_timeout: Duration::from_secs(5),
        }
    }
}
