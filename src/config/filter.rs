//! `[filter]`: bots and browser prefetches.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// User agents on the bot list (the `isbot` crate's patterns), but for HTTP tools.
    pub bots: FilterAction,
    /// HTTP tools and client libraries (curl, Wget, ApacheBench, python-requests,
    /// Go-http-client, …): on the bot list too, but kept by default, because they are how
    /// a server-side sender, a load test or the original recipe's own check (`ab`) hit the
    /// pixel, and the original recorded them.
    pub tools: FilterAction,
    /// `Sec-Purpose: prefetch`, `Purpose: prefetch`, `X-Moz: prefetch`.
    pub prefetch: FilterAction,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            bots: FilterAction::Drop,
            tools: FilterAction::Keep,
            prefetch: FilterAction::Drop,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilterAction {
    /// Answered, not recorded.
    Drop,
    /// Recorded; `$is_bot` / `$is_prefetch` say `1`.
    Mark,
    /// Recorded like any hit.
    Keep,
}
