//! pixelpipe: real-time pixel tracking in one binary.
//!
//! The data flows: sources ([`http`], [`relay`] with [`syslog`]) → records rendered by
//! [`template`] → the durable local [`log`] → the [`ship`]per → Redis → the consumers
//! ([`tail`], [`analytics`]). [`pipeline`] wires the log and the shipper; [`app`] holds one
//! composition root per program; [`admin`] serves health and metrics; [`config`] holds the
//! configuration's section types.
//!
//! Imports only go down that flow: sources never import the shipper or the analytics,
//! config sections and templates import no transport, the log never names Redis.

pub mod admin;
pub mod analytics;
pub mod app;
pub mod config;
pub mod hostname;
pub mod http;
pub mod log;
pub mod metrics;
pub mod pipeline;
pub mod record;
pub mod relay;
pub mod ship;
pub mod state_log;
pub mod syslog;
pub mod tail;
pub mod template;
