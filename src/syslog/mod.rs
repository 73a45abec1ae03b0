//! Syslog on the wire: [`framing`] cuts a byte stream into messages (RFC 6587), [`parse`]
//! turns one message into its fields (RFC 3164 and RFC 5424, through `syslog_loose`).

pub mod framing;
pub mod parse;

use serde::{Deserialize, Serialize};

pub use parse::{parse, Message};

/// The syslog facilities, named as syslog-ng and `logger -p` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern = 0,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Ntp,
    Security,
    Console,
    Solaris,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

/// The severities, most severe first (their numeric value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Emerg = 0,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}
