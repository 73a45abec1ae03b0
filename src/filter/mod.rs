//! Hits that are answered but not recorded: bots, prefetches, addresses over their rate.

pub mod bots;
pub mod rate;

pub use bots::{is_prefetch, BotList};
pub use rate::RateLimiter;
