//! Syslog on the wire: [`framing`] cuts a byte stream into messages (RFC 6587), [`parse`]
//! turns one message into its fields (RFC 3164 and RFC 5424, through `syslog_loose`).

pub mod framing;
pub mod parse;

pub use parse::{parse, Message};
