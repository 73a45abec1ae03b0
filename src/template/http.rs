//! nginx `log_format`-style templates for HTTP hits: `$msec,$args` and friends.
//!
//! As in nginx, a variable with no value (no query string, a missing header) renders as
//! `-`, and values are escaped (see [`super::escape_into`]).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unknown variable `${0}` (known: $msec, $args, $remote_addr, $request_id, $time_iso8601, $time_local, $request_uri, $uri, $request_method, $http_<header>)")]
    UnknownVariable(String),
    #[error("`$` at byte {0} is not followed by a variable name")]
    EmptyName(usize),
    #[error("unclosed `${{` at byte {0}")]
    Unclosed(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Msec,
    Args,
    RemoteAddr,
    RequestId,
    TimeIso8601,
    TimeLocal,
    RequestUri,
    Uri,
    RequestMethod,
    /// `$http_user_agent` → the `user-agent` header.
    Header(String),
}

#[derive(Debug, Clone)]
enum Part {
    Literal(Vec<u8>),
    Var { var: Var, delim: Option<u8> },
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    needs_local_time: bool,
}

/// What a hit offers to a template. Borrowed from the request buffer: nothing is copied
/// unless the template asks for it.
pub struct Hit<'a> {
    pub time: SystemTime,
    pub method: &'a str,
    /// The request target as received, e.g. `/pixel.gif?foo=bar`.
    pub target: &'a [u8],
    pub remote_addr: IpAddr,
    pub headers: &'a [httparse::Header<'a>],
}

impl Hit<'_> {
    fn path(&self) -> &[u8] {
        match self.target.iter().position(|&b| b == b'?') {
            Some(i) => &self.target[..i],
            None => self.target,
        }
    }

    /// `None` when there is no `?` at all, as nginx's `$args` is then not found, and when
    /// the query is empty (`/pixel.gif?`), which nginx logs as `-` too.
    fn args(&self) -> Option<&[u8]> {
        let i = self.target.iter().position(|&b| b == b'?')?;
        Some(&self.target[i + 1..]).filter(|a| !a.is_empty())
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

pub fn compile(source: &str) -> Result<Template, TemplateError> {
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
        let start = i;
        let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
            let end = source[i + 2..]
                .find('}')
                .ok_or(TemplateError::Unclosed(start))?;
            (&source[i + 2..i + 2 + end], i + 3 + end)
        } else {
            let len = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            (&source[i + 1..i + 1 + len], i + 1 + len)
        };
        if name.is_empty() {
            return Err(TemplateError::EmptyName(start));
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(Part::Var {
            var: parse_var(name)?,
            delim: None,
        });
        i = next;
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    // A variable's delimiter is the literal after it; known only once all parts exist.
    for j in 0..parts.len() {
        let next = match parts.get(j + 1) {
            Some(Part::Literal(l)) => Some(l.clone()),
            _ => None,
        };
        if let Part::Var { delim, .. } = &mut parts[j] {
            *delim = super::delimiter_after(next.as_deref());
        }
    }
    let needs_local_time = parts.iter().any(|p| {
        matches!(
            p,
            Part::Var {
                var: Var::TimeIso8601 | Var::TimeLocal,
                ..
            }
        )
    });
    Ok(Template {
        parts,
        needs_local_time,
    })
}

fn parse_var(name: &str) -> Result<Var, TemplateError> {
    Ok(match name {
        "msec" => Var::Msec,
        "args" | "query_string" => Var::Args,
        "remote_addr" => Var::RemoteAddr,
        "request_id" => Var::RequestId,
        "time_iso8601" => Var::TimeIso8601,
        "time_local" => Var::TimeLocal,
        "request_uri" => Var::RequestUri,
        "uri" => Var::Uri,
        "request_method" => Var::RequestMethod,
        _ => match name.strip_prefix("http_") {
            Some(h) if !h.is_empty() => Var::Header(h.replace('_', "-")),
            _ => return Err(TemplateError::UnknownVariable(name.to_owned())),
        },
    })
}

impl Template {
    /// Renders the record for `hit`, appending to `out`.
    pub fn render(&self, hit: &Hit<'_>, out: &mut Vec<u8>) {
        let local: Option<DateTime<Local>> = self.needs_local_time.then(|| hit.time.into());
        for part in &self.parts {
            let (var, delim) = match part {
                Part::Literal(l) => {
                    out.extend_from_slice(l);
                    continue;
                }
                Part::Var { var, delim } => (var, *delim),
            };
            let raw: Option<&[u8]> = match var {
                Var::Msec => {
                    let d = hit.time.duration_since(UNIX_EPOCH).unwrap_or_default();
                    write_msec(out, d.as_secs(), d.subsec_millis());
                    continue;
                }
                Var::RemoteAddr => {
                    let mut s = String::with_capacity(40);
                    let _ = write!(s, "{}", hit.remote_addr);
                    out.extend_from_slice(s.as_bytes());
                    continue;
                }
                Var::RequestId => {
                    let id = fastrand::u128(..);
                    write_hex(out, id);
                    continue;
                }
                Var::TimeIso8601 | Var::TimeLocal => {
                    // `needs_local_time` guarantees `local` is set for these.
                    let t = local.unwrap_or_else(|| hit.time.into());
                    let fmt = if *var == Var::TimeIso8601 {
                        "%Y-%m-%dT%H:%M:%S%:z"
                    } else {
                        "%d/%b/%Y:%H:%M:%S %z"
                    };
                    out.extend_from_slice(t.format(fmt).to_string().as_bytes());
                    continue;
                }
                Var::Args => hit.args(),
                Var::RequestUri => Some(hit.target),
                Var::Uri => Some(hit.path()),
                Var::RequestMethod => Some(hit.method.as_bytes()),
                Var::Header(name) => hit.header(name),
            };
            match raw {
                Some(v) => super::escape_into(out, v, delim),
                None => out.push(b'-'),
            }
        }
    }
}

/// `1379183721.115`: epoch seconds, a dot, exactly three digits of milliseconds.
fn write_msec(out: &mut Vec<u8>, secs: u64, millis: u32) {
    out.extend_from_slice(itoa::Buffer::new().format(secs).as_bytes());
    out.push(b'.');
    out.push(b'0' + (millis / 100) as u8);
    out.push(b'0' + (millis / 10 % 10) as u8);
    out.push(b'0' + (millis % 10) as u8);
}

fn write_hex(out: &mut Vec<u8>, id: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..32).rev() {
        out.push(HEX[((id >> (i * 4)) & 15) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hit<'a>(target: &'a [u8], headers: &'a [httparse::Header<'a>]) -> Hit<'a> {
        Hit {
            time: UNIX_EPOCH + Duration::from_millis(1_379_183_721_115),
            method: "GET",
            target,
            remote_addr: "127.0.0.1".parse().unwrap(),
            headers,
        }
    }

    fn render(tpl: &str, h: &Hit<'_>) -> String {
        let mut out = Vec::new();
        compile(tpl).unwrap().render(h, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_original_record() {
        let h = hit(b"/pixel.gif?foo=bar&baz=1", &[]);
        assert_eq!(render("$msec,$args", &h), "1379183721.115,foo=bar&baz=1");
    }

    #[test]
    fn msec_keeps_three_digits() {
        let mut h = hit(b"/p?a", &[]);
        h.time = UNIX_EPOCH + Duration::from_millis(1_000_007);
        assert_eq!(render("$msec", &h), "1000.007");
        h.time = UNIX_EPOCH;
        assert_eq!(render("$msec", &h), "0.000");
    }

    #[test]
    fn missing_values_are_dashes() {
        let h = hit(b"/pixel.gif", &[]);
        assert_eq!(render("$args|$http_user_agent", &h), "-|-");
        // An empty query is an empty value: nginx logs `-` for it too.
        let h = hit(b"/pixel.gif?", &[]);
        assert_eq!(render("$args", &h), "-");
    }

    #[test]
    fn headers_and_braces() {
        let headers = [
            httparse::Header {
                name: "User-Agent",
                value: b"curl/8 \"x\"",
            },
            httparse::Header {
                name: "Referer",
                value: b"http://a/b",
            },
        ];
        let h = hit(b"/p?x=1", &headers);
        assert_eq!(
            render(
                "${http_user_agent} $http_referer $remote_addr $request_method $uri",
                &h
            ),
            // The space after the user agent is its delimiter: escaped inside it.
            "curl/8\\x20\\x22x\\x22 http://a/b 127.0.0.1 GET /p"
        );
    }

    #[test]
    fn request_id_is_32_hex() {
        let h = hit(b"/p", &[]);
        let id = render("$request_id", &h);
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, render("$request_id", &h));
    }

    #[test]
    fn times() {
        let h = hit(b"/p", &[]);
        let iso = render("$time_iso8601", &h);
        assert!(iso.starts_with("2013-09-1"), "{iso}");
        assert_eq!(iso.len(), 25, "{iso}");
        let local = render("$time_local", &h);
        assert_eq!(local.len(), 26, "{local}");
        assert!(local.contains("/Sep/2013:"), "{local}");
    }

    #[test]
    fn delimiter_inside_a_value_is_escaped() {
        let h = hit(b"/p?a,b", &[]);
        assert_eq!(render("$args,$msec", &h), "a\\x2Cb,1379183721.115");
        assert_eq!(render("$msec,$args", &h), "1379183721.115,a,b");
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            compile("$msec,$nope").unwrap_err(),
            TemplateError::UnknownVariable("nope".into())
        );
        assert!(compile("${msec").is_err());
        assert!(compile("a $ b").is_err());
        assert!(compile("literal only").is_ok());
    }

    proptest::proptest! {
        /// Whatever the query and headers, a record renders without panicking, holds no
        /// control byte or newline (so it is always one line), and the seed's consumer
        /// split (`split(",", 1)`) gives back the timestamp.
        #[test]
        fn any_input_renders_one_safe_line(
            target in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            ua in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
        ) {
            let headers = [httparse::Header { name: "user-agent", value: &ua }];
            let h = hit(&target, &headers);
            let mut out = Vec::new();
            compile("$msec,$args $http_user_agent,$request_uri").unwrap().render(&h, &mut out);
            proptest::prop_assert!(out.iter().all(|&b| (0x20..0x7f).contains(&b)));
            let s = String::from_utf8(out).unwrap();
            let (ts, _) = s.split_once(',').unwrap();
            proptest::prop_assert_eq!(ts, "1379183721.115");
        }
    }
}
