//! syslog-ng-style templates for `relay`: `${PROGRAM}`, `$MESSAGE`, `$(length ${MESSAGE})`,
//! `$$` for a literal `$`.
//!
//! Unlike the nginx-style templates, values are **not** escaped: syslog-ng's default
//! (`template-escape(no)`) puts `${MESSAGE}` into Redis as received, and the records must
//! be byte for byte the ones the original configuration produced.

use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, FixedOffset, Local};

use crate::syslog::{facility_name, severity_name, Message};

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

/// What a template is rendered from: the parsed message and where it came from.
pub struct Record<'a> {
    pub message: &'a Message<'a>,
    /// When the relay read it: the date of messages that carry none.
    pub received: DateTime<Local>,
    /// `${HOST}` of a message without a hostname: the sender's address for network
    /// sources, this machine's name for local ones.
    pub peer: Option<IpAddr>,
    pub local_host: &'a [u8],
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
    /// Renders the template for `r`, appending to `out`.
    pub fn render(&self, r: &Record<'_>, out: &mut Vec<u8>) {
        let m = r.message;
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.extend_from_slice(l),
                Part::Length(inner) => {
                    // Rendered in place, measured, then replaced by its length: no buffer.
                    let start = out.len();
                    inner.render(r, out);
                    let len = out.len() - start;
                    out.truncate(start);
                    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                }
                Part::Macro(mac) => match mac {
                    Macro::Program => out.extend_from_slice(m.program),
                    Macro::Message => out.extend_from_slice(m.message),
                    Macro::Host => match (m.host, r.peer) {
                        (Some(h), _) => out.extend_from_slice(h),
                        (None, Some(ip)) => {
                            let mut s = String::with_capacity(40);
                            let _ = write!(s, "{ip}");
                            out.extend_from_slice(s.as_bytes());
                        }
                        (None, None) => out.extend_from_slice(r.local_host),
                    },
                    Macro::Pid => out.extend_from_slice(m.pid),
                    Macro::MsgId => out.extend_from_slice(m.msgid),
                    // As sent for RFC 3164; made up from the fields for RFC 5424.
                    Macro::MsgHdr if !m.rfc5424 => out.extend_from_slice(m.header),
                    Macro::MsgHdr => {
                        if !m.program.is_empty() {
                            out.extend_from_slice(m.program);
                            if !m.pid.is_empty() {
                                out.push(b'[');
                                out.extend_from_slice(m.pid);
                                out.push(b']');
                            }
                            out.extend_from_slice(b": ");
                        }
                    }
                    Macro::Facility => out.extend_from_slice(facility_name(m.facility).as_bytes()),
                    Macro::FacilityNum => number(out, m.facility as i64),
                    Macro::Severity => out.extend_from_slice(severity_name(m.severity).as_bytes()),
                    Macro::SeverityNum => number(out, m.severity as i64),
                    Macro::Pri => number(out, (m.facility as i64) * 8 + m.severity as i64),
                    Macro::IsoDate => date(out, r, "%Y-%m-%dT%H:%M:%S%:z"),
                    Macro::Date => date(out, r, "%b %e %H:%M:%S"),
                    Macro::UnixTime => number(out, time(r).timestamp()),
                },
            }
        }
    }
}

fn number(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The message's own date, or the time it was received.
fn time(r: &Record<'_>) -> DateTime<FixedOffset> {
    r.message
        .timestamp
        .unwrap_or_else(|| r.received.fixed_offset())
}

fn date(out: &mut Vec<u8>, r: &Record<'_>, format: &str) {
    let mut s = String::with_capacity(32);
    let _ = write!(s, "{}", time(r).format(format));
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn render(tpl: &str, raw: &str) -> String {
        let now = Local.with_ymd_and_hms(2026, 11, 27, 20, 0, 0).unwrap();
        let m = crate::syslog::parse(raw.as_bytes(), now, true);
        let r = Record {
            message: &m,
            received: now,
            peer: None,
            local_host: b"here",
        };
        let mut out = Vec::new();
        compile(tpl).unwrap().render(&r, &mut out);
        String::from_utf8(out).unwrap()
    }

    const NGINX: &str = "<158>Nov 27 20:23:37 pixel: 1379183721.115,foo=bar&baz=1";

    #[test]
    fn the_original_resp_template() {
        let t = "*3\r\n$$5\r\nLPUSH\r\n$$$(length ${PROGRAM})\r\n${PROGRAM}\r\n$$$(length ${MESSAGE})\r\n${MESSAGE}\r\n";
        assert_eq!(
            render(t, NGINX),
            "*3\r\n$5\r\nLPUSH\r\n$5\r\npixel\r\n$28\r\n1379183721.115,foo=bar&baz=1\r\n"
        );
    }

    #[test]
    fn macros() {
        assert_eq!(
            render(
                "$FACILITY.${SEVERITY} ${PRIORITY} ${PRI} ${HOST} ${MSGHDR}|${PID}",
                NGINX
            ),
            "local3.info info 158 here pixel: |"
        );
        assert_eq!(
            render("${MSGHDR}${MSG}", "<13>Nov 27 20:23:37 h app[12]: x"),
            "app[12]: x"
        );
        let iso = render("${ISODATE} ${DATE} ${UNIXTIME}", NGINX);
        assert!(iso.starts_with("2026-11-27T20:23:37"), "{iso}");
        assert!(iso.contains(" Nov 27 20:23:37 "), "{iso}");
    }

    #[test]
    fn values_are_not_escaped() {
        assert_eq!(
            render("${MESSAGE}", "<158>Nov 27 20:23:37 pixel: a \"b\"\\c"),
            "a \"b\"\\c"
        );
    }

    #[test]
    fn length_counts_bytes_and_nests() {
        assert_eq!(
            render("$(length ${MESSAGE})", "<13>Nov 27 20:23:37 h p: é"),
            "2"
        );
        assert_eq!(
            render(
                "$(length $(length ${MESSAGE}))",
                "<13>Nov 27 20:23:37 h p: 0123456789"
            ),
            "2"
        );
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
