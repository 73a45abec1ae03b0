//! pixelpipe: real-time pixel tracking in one binary.
//!
//! The data flows: sources ([`http`], [`relay`]) → records rendered by [`template`] →
//! the durable local [`log`] → the [`ship`]per → Redis → the consumers ([`consume`]).
//! [`pipeline`] wires the log and the shipper; [`admin`] serves health and metrics.

pub mod admin;
pub mod config;
pub mod conn;
pub mod consume;
pub mod http;
pub mod log;
pub mod metrics;
pub mod pipeline;
pub mod relay;
pub mod ship;
pub mod syslog;
pub mod template;
