//! syslog-ng-style templates for `relay`: `${PROGRAM}`, `$MESSAGE`, `$(length ${MESSAGE})`,
//! `$$` for a literal `$`.
//!
//! A template reads a message through [`MessageFields`], which the relay implements for
//! a parsed message and where it came from: this module knows syslog-ng's macros, not the
//! wire format. Unlike the nginx-style templates, values are **not** escaped: syslog-ng's
//! default (`template-escape(no)`) puts `${MESSAGE}` into Redis as received, and the
//! records must be byte for byte the ones the original configuration produced.

use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, FixedOffset};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unknown macro `${{{0}}}` (known: PROGRAM, MESSAGE, MSG, HOST, PID, MSGID, MSGHDR, FACILITY, FACILITY_NUM, SEVERITY, LEVEL, PRIORITY, SEVERITY_NUM, PRI, ISODATE, DATE, UNIXTIME)")]
    UnknownMacro(String),
    #[error("unknown template function `$({0} …)` (known: length)")]
    UnknownFunction(String),
    #[error("`$` at byte {0} is not followed by a macro name (write `$$` for a literal `$`)")]
    EmptyName(usize),
    #[error("unclosed `${{` or `$(` at byte {0}")]
    Unclosed(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Macro {
    Program,
    Message,
    Host,
    Pid,
    MsgId,
    MsgHdr,
    Facility,
    FacilityNum,
    Severity,
    SeverityNum,
    Pri,
    IsoDate,
    Date,
    UnixTime,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(Vec<u8>),
    Macro(Macro),
    /// `$(length …)`: the byte length of the rendered argument.
    Length(Template),
}

/// A compiled template.
#[derive(Debug, Clone, Default)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template reads from one received message.
pub trait MessageFields {
    fn program(&self) -> &[u8];
    fn message(&self) -> &[u8];
    fn pid(&self) -> &[u8];
    fn msgid(&self) -> &[u8];
    /// 0–23.
    fn facility(&self) -> u8;
    /// 0–7.
    fn severity(&self) -> u8;
    /// The header as sent (`PROGRAM[PID]: `, RFC 3164); `None` where syslog-ng makes it
    /// up from the program and the pid (RFC 5424).
    fn header(&self) -> Option<&[u8]>;
    /// The message's own date, or the time it was received.
    fn time(&self) -> DateTime<FixedOffset>;
    /// `${HOST}`: the host the message names, or else where it came from.
    fn host(&self) -> Host<'_>;
}

/// The value of `${HOST}`.
pub enum Host<'a> {
    Name(&'a [u8]),
    Address(IpAddr),
}

impl Template {
    /// Whether it renders the same bytes for every message (no macro in it).
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }
}

pub fn compile(source: &str) -> Result<Template, TemplateError> {
    compile_at(source, 0)
}

fn compile_at(source: &str, base: usize) -> Result<Template, TemplateError> {
    let bytes = source.as_bytes();
    let mut parts = Vec::new();
    let mut literal = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            literal.push(bytes[i]);
            i += 1;
            continue;
        }
        let at = base + i;
        let part = match bytes.get(i + 1) {
            Some(b'$') => {
                literal.push(b'$');
                i += 2;
                continue;
            }
            Some(b'{') => {
                let end = source[i + 2..]
                    .find('}')
                    .ok_or(TemplateError::Unclosed(at))?;
                let name = &source[i + 2..i + 2 + end];
                i += 3 + end;
                Part::Macro(parse_macro(name, at)?)
            }
            Some(b'(') => {
                let end = matching_paren(&bytes[i + 1..]).ok_or(TemplateError::Unclosed(at))?;
                let inner = &source[i + 2..i + 1 + end];
                let (name, arg) = inner
                    .trim_start()
                    .split_once(char::is_whitespace)
                    .unwrap_or((inner.trim(), ""));
                if name != "length" {
                    return Err(TemplateError::UnknownFunction(name.to_owned()));
                }
                let arg_at = base + i + 2 + inner.len() - arg.len();
                i += 2 + end;
                Part::Length(compile_at(arg.trim(), arg_at)?)
            }
            _ => {
                let len = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                let name = &source[i + 1..i + 1 + len];
                i += 1 + len;
                Part::Macro(parse_macro(name, at)?)
            }
        };
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(part);
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(Template { parts })
}

/// Index (in `s`, which starts with `(`) of the `)` that closes it.
fn matching_paren(s: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in s.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_macro(name: &str, at: usize) -> Result<Macro, TemplateError> {
    Ok(match name {
        "" => return Err(TemplateError::EmptyName(at)),
        "PROGRAM" => Macro::Program,
        "MESSAGE" | "MSG" | "MSGONLY" => Macro::Message,
        "HOST" | "FULLHOST" => Macro::Host,
        "PID" => Macro::Pid,
        "MSGID" => Macro::MsgId,
        "MSGHDR" => Macro::MsgHdr,
        "FACILITY" => Macro::Facility,
        "FACILITY_NUM" => Macro::FacilityNum,
        // In syslog-ng, PRIORITY and LEVEL are the severity's name; PRI is the number.
        "SEVERITY" | "LEVEL" | "PRIORITY" => Macro::Severity,
        "SEVERITY_NUM" | "LEVEL_NUM" => Macro::SeverityNum,
        "PRI" => Macro::Pri,
        "ISODATE" => Macro::IsoDate,
        "DATE" => Macro::Date,
        "UNIXTIME" => Macro::UnixTime,
        other => return Err(TemplateError::UnknownMacro(other.to_owned())),
    })
}

impl Template {
    /// Renders the template for `m`, appending to `out`.
    pub fn render(&self, m: &impl MessageFields, out: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.extend_from_slice(l),
                Part::Length(inner) => {
                    // Rendered in place, measured, then replaced by its length: no buffer.
                    let start = out.len();
                    inner.render(m, out);
                    let len = out.len() - start;
                    out.truncate(start);
                    number(out, len as i64);
                }
                Part::Macro(mac) => mac.render(m, out),
            }
        }
    }
}

impl Macro {
    fn render(self, m: &impl MessageFields, out: &mut Vec<u8>) {
        match self {
            Macro::Program => out.extend_from_slice(m.program()),
            Macro::Message => out.extend_from_slice(m.message()),
            Macro::Host => match m.host() {
                Host::Name(name) => out.extend_from_slice(name),
                Host::Address(ip) => display(out, ip),
            },
            Macro::Pid => out.extend_from_slice(m.pid()),
            Macro::MsgId => out.extend_from_slice(m.msgid()),
            Macro::MsgHdr => match m.header() {
                Some(as_sent) => out.extend_from_slice(as_sent),
                None => made_up_header(m, out),
            },
            Macro::Facility => out.extend_from_slice(facility_name(m.facility()).as_bytes()),
            Macro::FacilityNum => number(out, m.facility() as i64),
            Macro::Severity => out.extend_from_slice(severity_name(m.severity()).as_bytes()),
            Macro::SeverityNum => number(out, m.severity() as i64),
            Macro::Pri => number(out, (m.facility() as i64) * 8 + m.severity() as i64),
            Macro::IsoDate => display(out, m.time().format("%Y-%m-%dT%H:%M:%S%:z")),
            Macro::Date => display(out, m.time().format("%b %e %H:%M:%S")),
            Macro::UnixTime => number(out, m.time().timestamp()),
        }
    }
}

/// `${MSGHDR}` of an RFC 5424 message: `PROGRAM[PID]: `, as syslog-ng makes it up.
fn made_up_header(m: &impl MessageFields, out: &mut Vec<u8>) {
    if m.program().is_empty() {
        return;
    }
    out.extend_from_slice(m.program());
    if !m.pid().is_empty() {
        out.push(b'[');
        out.extend_from_slice(m.pid());
        out.push(b']');
    }
    out.extend_from_slice(b": ");
}

fn number(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn display(out: &mut Vec<u8>, value: impl std::fmt::Display) {
    let mut s = String::with_capacity(40);
    let _ = write!(s, "{value}");
    out.extend_from_slice(s.as_bytes());
}

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

const SEVERITY_NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::relay::{Facility, Severity};

    // Rendering from parsed messages is tested where the relay implements
    // `MessageFields` (`relay::received`).

    #[test]
    fn names_match_codes() {
        assert_eq!(facility_name(Facility::Local3 as u8), "local3");
        assert_eq!(facility_name(Facility::Kern as u8), "kern");
        assert_eq!(severity_name(Severity::Info as u8), "info");
        assert_eq!(severity_name(Severity::Debug as u8), "debug");
    }

    #[test]
    fn errors() {
        assert_eq!(
            compile("${NOPE}").unwrap_err(),
            TemplateError::UnknownMacro("NOPE".into())
        );
        assert_eq!(
            compile("$(upper x)").unwrap_err(),
            TemplateError::UnknownFunction("upper".into())
        );
        assert_eq!(
            compile("${PROGRAM").unwrap_err(),
            TemplateError::Unclosed(0)
        );
        assert_eq!(
            compile("a $(length x").unwrap_err(),
            TemplateError::Unclosed(2)
        );
        assert_eq!(compile("a $ b").unwrap_err(), TemplateError::EmptyName(2));
    }
}
