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

const FACILITY_NAMES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

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

const SEVERITY_NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// The name syslog-ng's `${FACILITY}` prints for facility number `code` (0–23).
pub fn facility_name(code: u8) -> &'static str {
    FACILITY_NAMES.get(code as usize).copied().unwrap_or("user")
}

/// The name syslog-ng's `${SEVERITY}` (and `${PRIORITY}`, `${LEVEL}`) prints.
pub fn severity_name(code: u8) -> &'static str {
    SEVERITY_NAMES
        .get(code as usize)
        .copied()
        .unwrap_or("notice")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_codes() {
        assert_eq!(facility_name(Facility::Local3 as u8), "local3");
        assert_eq!(facility_name(Facility::Kern as u8), "kern");
        assert_eq!(severity_name(Severity::Info as u8), "info");
        assert_eq!(severity_name(Severity::Debug as u8), "debug");
    }
}
