//! `[log]`: the durable local log.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
