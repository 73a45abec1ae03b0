//! Reading one HTTP/1.x request out of a connection's buffer, as nginx 1.22 reads it, with
//! the limits that keep a slow or hostile client from costing more than a bounded buffer.
//!
//! nginx is the server pixelpipe answers for, so its reading is the reference
//! (`tests/http_differential.rs` holds the two side by side): leading empty lines are
//! skipped; a method is `[A-Z_-]+`; spaces between the parts may repeat; the version is
//! `HTTP/1.x` (any minor version reads as 1.1; a major version above 1 is a 505); bare LF
//! ends lines; a header whose name is not `[A-Za-z0-9-]+` is ignored (so an
//! obs-folded line or `Content-Length : 5` never frames anything); a NUL anywhere is a
//! 400; `Host` and the other headers nginx keeps once must not repeat; an HTTP/1.1
//! request needs one valid `Host`. A line is checked as soon as it is complete, so a bad
//! request is refused without waiting for the rest of its head. The body's framing is
//! `body.rs`'s.
//!
//! The target is split into the path, which is percent-decoded and normalised (`//`,
//! `.` and `..` segments) before it is matched, and the query (`$args`, kept as sent);
//! a fragment is part of neither.

use std::borrow::Cow;

use memchr::memchr;

use super::body::{self, BodyError, Framing};
use super::response::Reply;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request line (nginx: one `large_client_header_buffers` buffer, 8 KiB); over
    /// it, 414.
    pub max_request_line: usize,
    /// Longest header line (8 KiB, likewise); over it, 400.
    pub max_header_line: usize,
    /// The whole head (nginx: four such buffers, 32 KiB); over it, 400.
    pub max_header_bytes: usize,
    /// Largest request body; over it, 413.
    pub max_body: u64,
}

/// Request bodies are read (and returned) up to this size; larger is a 413.
pub const MAX_BODY: u64 = 64 * 1024;

/// Headers nginx accepts once only: a second one is a 400.
const UNIQUE: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "expect",
    "authorization",
    "content-range",
    "if-modified-since",
    "if-unmodified-since",
    "if-match",
    "if-none-match",
    "if-range",
];

/// Room for a request's headers (any number: the head's size is what is bounded).
pub type Headers<'b> = Vec<httparse::Header<'b>>;

pub fn headers<'b>() -> Headers<'b> {
    Vec::new()
}

/// A parsed request, borrowing from the buffer.
pub struct Request<'b, 'h> {
    pub method: &'b str,
    /// The request target in origin form (`/path?query`), absolute form reduced to it,
    /// without a fragment: `$args` after its `?`.
    pub target: &'b [u8],
    /// The same with the fragment, if one was sent: `$request_uri`, as nginx logs it.
    pub request_uri: &'b [u8],
    /// The path, percent-decoded and normalised: what is matched against the endpoint.
    pub path: Cow<'b, [u8]>,
    pub headers: &'h [httparse::Header<'b>],
    pub keep_alive: bool,
    /// The body, decoded (empty without one).
    pub body: Cow<'b, [u8]>,
    /// `Expect: 100-continue` in an HTTP/1.1 request without a body: nginx answers
    /// `100 Continue` first. (With a body, `Parsed::Partial` asked for it already, or the
    /// body came with the head and nginx sends none.)
    pub expect_continue: bool,
}

pub enum Parsed<'b, 'h> {
    /// A whole request (head and any body) of `len` bytes.
    Request(Request<'b, 'h>, usize),
    /// More bytes are needed. `expect_continue`: the head is complete, its body is not,
    /// and the client waits for a `100 Continue` before sending it.
    Partial { expect_continue: bool },
    /// The request cannot be served; answer this and close the connection.
    Invalid(Reply),
}

pub fn parse<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut Headers<'b>,
    limits: Limits,
) -> Parsed<'b, 'h> {
    match parse_inner(buf, headers, limits) {
        Ok(Some((head, body, len))) => {
            let headers: &'h [httparse::Header<'b>] = headers;
            Parsed::Request(
                Request {
                    method: head.method,
                    target: head.target,
                    request_uri: head.request_uri,
                    path: head.path,
                    headers,
                    keep_alive: head.keep_alive,
                    body,
                    expect_continue: head.expect_continue,
                },
                len,
            )
        }
        Ok(None) => Parsed::Partial {
            expect_continue: false,
        },
        Err(Stop::AwaitingBody { expect_continue }) => Parsed::Partial { expect_continue },
        Err(Stop::Invalid(reply)) => Parsed::Invalid(reply),
    }
}

enum Stop {
    AwaitingBody { expect_continue: bool },
    Invalid(Reply),
}

impl From<Reply> for Stop {
    fn from(reply: Reply) -> Self {
        Stop::Invalid(reply)
    }
}

struct Head<'b> {
    method: &'b str,
    target: &'b [u8],
    request_uri: &'b [u8],
    path: Cow<'b, [u8]>,
    keep_alive: bool,
    expect_continue: bool,
}

type Complete<'b> = Option<(Head<'b>, Cow<'b, [u8]>, usize)>;

fn parse_inner<'b>(
    buf: &'b [u8],
    headers: &mut Headers<'b>,
    limits: Limits,
) -> Result<Complete<'b>, Stop> {
    headers.clear();
    // nginx skips empty lines before a request.
    let Some(start) = buf.iter().position(|&b| b != b'\r' && b != b'\n') else {
        return Ok(None);
    };
    let Some(line) = RequestLine::read(&buf[start..], limits.max_request_line)? else {
        return Ok(None);
    };
    let mut at = start + line.len;
    let mut host: Option<&[u8]> = None;
    let mut keep_alive = line.minor >= 1;
    let mut expect_continue = false;
    loop {
        let rest = &buf[at..];
        let Some(lf) = memchr(b'\n', rest) else {
            if rest.len() > limits.max_header_line || at - start > limits.max_header_bytes {
                return Err(Reply::HeaderTooLarge.into());
            }
            check_header_line(rest)?;
            return Ok(None);
        };
        if lf > limits.max_header_line {
            return Err(Reply::HeaderTooLarge.into());
        }
        let mut line = &rest[..lf];
        at += lf + 1;
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if line.is_empty() {
            break;
        }
        check_header_line(line)?;
        if line.contains(&b'\r') {
            return Err(Reply::BadRequest.into());
        }
        let Some(h) = header(line) else {
            // An invalid name: ignored, as nginx does (`ignore_invalid_headers`).
            continue;
        };
        if UNIQUE.iter().any(|u| h.name.eq_ignore_ascii_case(u))
            && headers.iter().any(|o| o.name.eq_ignore_ascii_case(h.name))
        {
            return Err(Reply::BadRequest.into());
        }
        if h.name.eq_ignore_ascii_case("host") {
            host = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
        }
        headers.push(h);
    }
    if at - start > limits.max_header_bytes {
        return Err(Reply::HeaderTooLarge.into());
    }
    // What nginx checks once the head is in, in its order.
    match host {
        Some(h) if !valid_host(h) => return Err(Reply::BadRequest.into()),
        None if line.minor >= 1 => return Err(Reply::BadRequest.into()),
        _ => {}
    }
    let framing = body::framing(
        headers.iter().map(|h| (h.name, h.value)),
        line.minor == 0,
        limits.max_body,
    )
    .map_err(body_error)?;
    if line.method == "CONNECT" || line.method == "TRACE" {
        return Err(Reply::MethodNotAllowed.into());
    }
    let path = normalise(line.path)?;
    let expect_continue = expect_continue && line.minor >= 1;
    // nginx sends it while it waits for a body, and for a request with none; not when the
    // body came with the head.
    let continue_now = expect_continue && framing == Framing::None;
    let body = match body::decode(framing, &buf[at..], limits.max_body).map_err(body_error)? {
        Some(body) => body,
        None => {
            let expect_continue = expect_continue && framing != Framing::None;
            return Err(Stop::AwaitingBody { expect_continue });
        }
    };
    let head = Head {
        method: line.method,
        target: line.target,
        request_uri: line.request_uri,
        path,
        keep_alive,
        expect_continue: continue_now,
    };
    Ok(Some((head, body.bytes, at + body.consumed)))
}

fn body_error(e: BodyError) -> Stop {
    Stop::Invalid(match e {
        BodyError::UnsupportedCoding => Reply::NotImplemented,
        BodyError::TooLarge => Reply::PayloadTooLarge,
        _ => Reply::BadRequest,
    })
}

/// The request line: `METHOD SP+ target SP+ HTTP/1.x SP* (CR)LF`.
struct RequestLine<'b> {
    method: &'b str,
    /// Origin form, without the fragment.
    target: &'b [u8],
    /// Origin form, fragment included.
    request_uri: &'b [u8],
    /// The target's path, as sent.
    path: &'b [u8],
    minor: u32,
    /// Bytes taken, line end included.
    len: usize,
}

impl<'b> RequestLine<'b> {
    /// Reads the line at the start of `buf`. `Ok(None)`: what is there is a valid start,
    /// more is needed. Checked byte by byte, as nginx does, so garbage is refused at once.
    fn read(buf: &'b [u8], max: usize) -> Result<Option<RequestLine<'b>>, Reply> {
        let end = memchr(b'\n', buf);
        let line = match end {
            Some(e) if e > max => return Err(Reply::UriTooLong),
            Some(e) => &buf[..e],
            None if buf.len() > max => return Err(Reply::UriTooLong),
            None => buf,
        };
        let mut c = Cursor { s: line, at: 0 };
        let method = c.take_while(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-');
        let Some(more) = c.more_or(end) else {
            return Ok(None);
        };
        if method.is_empty() || !more {
            return Err(Reply::BadRequest);
        }
        if c.peek() != Some(b' ') {
            return Err(Reply::BadRequest);
        }
        c.take_while(|b| b == b' ');
        match c.more_or(end) {
            None => return Ok(None),
            // HTTP/0.9 (`GET` then the line's end) is not served.
            Some(false) => return Err(Reply::BadRequest),
            Some(true) => {}
        }
        let target_start = c.at;
        match c.peek() {
            Some(b'/') => {}
            Some(b) if b.is_ascii_alphabetic() => absolute_prefix(&mut c, end)?,
            _ => return Err(Reply::BadRequest),
        }
        c.take_while(|b| b != b' ');
        let target_all = &line[target_start..c.at];
        // Control bytes (but a CR before the line's end: HTTP/0.9) and DEL.
        let control = |&b: &u8| (b < 0x20 && b != b'\r') || b == 0x7f;
        if target_all.iter().any(control) {
            return Err(Reply::BadRequest);
        }
        match c.more_or(end) {
            None => return Ok(None),
            // HTTP/0.9 again: a target and no version.
            Some(false) => return Err(Reply::BadRequest),
            Some(true) => {}
        }
        c.take_while(|b| b == b' ');
        // `HTTP/` then the major version: 1, or a 505 as soon as it is read.
        for &expected in b"HTTP/" {
            match c.next() {
                Some(b) if b == expected => {}
                Some(_) => return Err(Reply::BadRequest),
                None if end.is_none() => return Ok(None),
                None => return Err(Reply::BadRequest),
            }
        }
        let major = c.number();
        match major {
            Some(0) => return Err(Reply::BadRequest),
            Some(m) if m > 1 => return Err(Reply::VersionNotSupported),
            Some(_) => {}
            None if end.is_none() && c.peek().is_none() => return Ok(None),
            None => return Err(Reply::BadRequest),
        }
        match c.next() {
            Some(b'.') => {}
            None if end.is_none() => return Ok(None),
            _ => return Err(Reply::BadRequest),
        }
        let minor = match c.number() {
            Some(m) if m <= 99 => m,
            None if end.is_none() && c.peek().is_none() => return Ok(None),
            _ => return Err(Reply::BadRequest),
        };
        c.take_while(|b| b == b' ');
        let rest = &line[c.at..];
        let Some(end) = end else {
            return if rest.is_empty() || rest == b"\r" {
                Ok(None)
            } else {
                Err(Reply::BadRequest)
            };
        };
        if !(rest.is_empty() || rest == b"\r") {
            return Err(Reply::BadRequest);
        }
        let request_uri = origin_form(target_all);
        // The fragment is neither path nor query.
        let target = &request_uri[..memchr(b'#', request_uri).unwrap_or(request_uri.len())];
        let path = &target[..memchr(b'?', target).unwrap_or(target.len())];
        let method = std::str::from_utf8(method).map_err(|_| Reply::BadRequest)?;
        Ok(Some(RequestLine {
            method,
            target,
            request_uri,
            path,
            minor,
            len: end + 1,
        }))
    }
}

/// `scheme://host[:port]` before an absolute-form target's path, as nginx checks it.
fn absolute_prefix(c: &mut Cursor<'_>, end: Option<usize>) -> Result<(), Reply> {
    c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    for &expected in b"://" {
        match c.next() {
            Some(b) if b == expected => {}
            None if end.is_none() => return Ok(()),
            _ => return Err(Reply::BadRequest),
        }
    }
    if c.peek() == Some(b'[') {
        c.take_while(|b| b != b']' && b != b' ');
        if c.next() != Some(b']') && end.is_some() {
            return Err(Reply::BadRequest);
        }
    } else {
        c.take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    }
    if c.peek() == Some(b':') {
        c.next();
        c.take_while(|b| b.is_ascii_digit());
    }
    match c.peek() {
        Some(b'/' | b'?' | b' ') => Ok(()),
        None if end.is_none() => Ok(()),
        _ => Err(Reply::BadRequest),
    }
}

struct Cursor<'b> {
    s: &'b [u8],
    at: usize,
}

impl<'b> Cursor<'b> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'b [u8] {
        let start = self.at;
        while self.peek().is_some_and(&f) {
            self.at += 1;
        }
        &self.s[start..self.at]
    }

    /// Digits as a number (saturating), `None` without any.
    fn number(&mut self) -> Option<u32> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return None;
        }
        Some(digits.iter().fold(0u32, |n, &d| {
            n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
        }))
    }

    /// Whether bytes remain on the line; `None` at the end of a line not complete yet
    /// (a valid start: wait for more).
    fn more_or(&self, end: Option<usize>) -> Option<bool> {
        match (self.peek(), end) {
            (Some(_), _) => Some(true),
            (None, None) => None,
            (None, Some(_)) => Some(false),
        }
    }
}

/// What refuses a header line, complete or not (nginx looks at each byte as it comes): a
/// NUL, a CR not followed by LF, a line starting with a blank (obs-fold, RFC 9112 §5.2).
fn check_header_line(line: &[u8]) -> Result<(), Stop> {
    let bare_cr = line
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\r' && line.get(i + 1).is_some_and(|&n| n != b'\n'));
    if line.contains(&b'\0') || bare_cr || line.starts_with(b" ") || line.starts_with(b"\t") {
        return Err(Reply::BadRequest.into());
    }
    Ok(())
}

/// `name: value` with a valid name (`[A-Za-z0-9-]+`); `None` for a line nginx ignores.
/// A line without a colon is a header with an empty value, as in nginx.
fn header(line: &[u8]) -> Option<httparse::Header<'_>> {
    let colon = memchr(b':', line).unwrap_or(line.len());
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    let value = line.get(colon + 1..).unwrap_or_default();
    Some(httparse::Header {
        // All ASCII, checked just above.
        name: std::str::from_utf8(name).ok()?,
        value: value.trim_ascii(),
    })
}

/// nginx's `ngx_http_validate_host`: not empty, no `/`, `\`, blank, control byte or
/// `..`.
fn valid_host(host: &[u8]) -> bool {
    let name_end = if host.starts_with(b"[") {
        memchr(b']', host).map_or(host.len(), |i| i + 1)
    } else {
        memchr(b':', host).unwrap_or(host.len())
    };
    let name = host[..name_end]
        .strip_suffix(b".")
        .unwrap_or(&host[..name_end]);
    !name.is_empty()
        && !host.windows(2).any(|w| w == b"..")
        && !host
            .iter()
            .any(|&b| b <= 0x20 || b == 0x7f || b == b'/' || b == b'\\')
}

/// The path as nginx matches it: `%XX` decoded (a bad escape or `%00` is a 400), `//`
/// merged, `.` dropped, `..` removing the segment before it (above the root: 400).
fn normalise(path: &[u8]) -> Result<Cow<'_, [u8]>, Reply> {
    let simple = !path.contains(&b'%')
        && !path.windows(2).any(|w| w == b"//" || w == b"/.")
        && !path.ends_with(b"/.");
    if simple {
        return Ok(Cow::Borrowed(path));
    }
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            let hex = path.get(i + 1..i + 3).ok_or(Reply::BadRequest)?;
            let byte = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(Reply::BadRequest)?;
            if byte == 0 {
                return Err(Reply::BadRequest);
            }
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(path[i]);
            i += 1;
        }
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    let parts: Vec<&[u8]> = decoded.split(|&b| b == b'/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (n, seg) in parts.iter().enumerate() {
        match *seg {
            b"" => trailing_slash = n == last,
            b"." => trailing_slash = n == last,
            b".." => {
                segments.pop().ok_or(Reply::BadRequest)?;
                trailing_slash = n == last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    Ok(Cow::Owned(out))
}

/// `http://host/p?q` → `/p?q`; an origin-form target is returned as it is.
fn origin_form(target: &[u8]) -> &[u8] {
    if target.starts_with(b"/") {
        return target;
    }
    let Some(scheme_end) = target.windows(3).position(|w| w == b"://") else {
        return target;
    };
    let rest = &target[scheme_end + 3..];
    match rest.iter().position(|&b| b == b'/' || b == b'?') {
        Some(i) if rest[i] == b'/' => &rest[i..],
        // `http://host?q`: the path is `/`, nginx's `empty_path_in_uri`.
        Some(_) | None => b"/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_request_line: 100,
        max_header_line: 100,
        max_header_bytes: 300,
        max_body: 64,
    };

    type Outcome = Result<(String, String, bool, usize), Option<Reply>>;

    fn outcome(buf: &[u8]) -> Outcome {
        let mut headers = headers();
        match parse(buf, &mut headers, LIMITS) {
            Parsed::Request(r, n) => Ok((
                String::from_utf8_lossy(r.target).into_owned(),
                String::from_utf8_lossy(&r.path).into_owned(),
                r.keep_alive,
                n,
            )),
            Parsed::Partial { .. } => Err(None),
            Parsed::Invalid(reply) => Err(Some(reply)),
        }
    }

    fn status(buf: &[u8]) -> Option<Reply> {
        outcome(buf).err().flatten()
    }

    #[test]
    fn a_simple_get() {
        let req = b"GET /pixel.gif?a=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            outcome(req),
            Ok((
                "/pixel.gif?a=1".into(),
                "/pixel.gif".into(),
                true,
                req.len()
            ))
        );
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!outcome(b"GET / HTTP/1.0\r\n\r\n").unwrap().2);
        assert!(
            outcome(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .2
        );
        assert!(
            !outcome(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap()
                .2
        );
        // HTTP/1.2 is read as 1.1.
        assert!(outcome(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n").unwrap().2);
    }

    #[test]
    fn partial_until_complete() {
        assert_eq!(outcome(b"GET /pixel.gif HTTP/1.1\r\nHo"), Err(None));
        assert_eq!(outcome(b"GET /pix"), Err(None));
        assert_eq!(outcome(b"GET /pixel.gif HTTP/1"), Err(None));
        assert_eq!(outcome(b"\r\n\r\nGE"), Err(None));
        assert_eq!(
            outcome(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab"),
            Err(None)
        );
        let with_body = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nabGET";
        assert_eq!(outcome(with_body).unwrap().3, with_body.len() - 3);
    }

    #[test]
    fn garbage_is_refused_before_its_line_ends() {
        assert_eq!(status(b"^n:ds[4U"), Some(Reply::BadRequest));
        assert_eq!(status(b"get / HTTP/1.1"), Some(Reply::BadRequest));
        assert_eq!(status(b"GET / HTTP/5"), Some(Reply::VersionNotSupported));
        assert_eq!(
            status(b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n"),
            Some(Reply::BadRequest)
        );
        for bad in [
            &b"GET / HTTP/1.1\r\nX: a\0b"[..],
            b"GET / HTTP/1.1\r\n Host: x",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n",
            b"PUT / HTTP/1.1\r\nContent-Length: 3\r\n\rabc",
            b"GET /a\tb HTTP/1.1\r\n",
            b"GET /a\x7fb",
        ] {
            assert_eq!(
                status(bad),
                Some(Reply::BadRequest),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A bad length is found once the head is complete, as nginx finds it.
        assert_eq!(
            outcome(b"GET / HTTP/1.0\r\nContent-Length: x\r\n"),
            Err(None)
        );
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(200));
        assert_eq!(status(long.as_bytes()), Some(Reply::UriTooLong));
        assert_eq!(status(&[b'A'; 150]), Some(Reply::UriTooLong));
        let long_line = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "b".repeat(120)
        );
        assert_eq!(status(long_line.as_bytes()), Some(Reply::HeaderTooLarge));
        let many = format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
            format!("X: {}\r\n", "b".repeat(90)).repeat(4)
        );
        assert_eq!(status(many.as_bytes()), Some(Reply::HeaderTooLarge));
        // Any number of headers, within the size.
        let small = format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", "A: 1\r\n".repeat(40));
        assert!(outcome(small.as_bytes()).is_ok());
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n"),
            Some(Reply::PayloadTooLarge)
        );
    }

    #[test]
    fn host_rules() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a..b\r\n\r\n",
        ] {
            assert_eq!(
                status(bad),
                Some(Reply::BadRequest),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for good in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a.\r\n\r\n",
        ] {
            assert!(outcome(good).is_ok(), "{}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn framing_smuggling_and_codings() {
        for (req, reply) in [
            (
                &b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 45\r\n\r\n"[..],
                Reply::BadRequest,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n",
                Reply::BadRequest,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
                Reply::BadRequest,
            ),
            (
                b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Reply::BadRequest,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Reply::NotImplemented,
            ),
        ] {
            assert_eq!(status(req), Some(reply), "{}", String::from_utf8_lossy(req));
        }
        // An invalid header name is ignored: it frames nothing.
        let ignored = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n";
        assert_eq!(outcome(ignored).unwrap().3, ignored.len());
        // A chunked body is decoded and returned.
        let chunked =
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nNEXT";
        let mut h = headers();
        let Parsed::Request(r, n) = parse(chunked, &mut h, LIMITS) else {
            panic!("not parsed");
        };
        assert_eq!((&r.body[..], n), (&b"abc"[..], chunked.len() - 4));
    }

    #[test]
    fn expect_continue_while_the_body_is_awaited() {
        let mut h = headers();
        let req =
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(
            parse(req, &mut h, LIMITS),
            Parsed::Partial {
                expect_continue: true
            }
        ));
    }

    #[test]
    fn targets() {
        let path = |t: &str| {
            outcome(format!("GET {t} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes()).map(|o| (o.0, o.1))
        };
        assert_eq!(
            path("http://h:8080/pixel.gif?x"),
            Ok(("/pixel.gif?x".into(), "/pixel.gif".into()))
        );
        assert_eq!(path("http://h?x"), Ok(("/".into(), "/".into())));
        for (target, normal) in [
            ("/pixel%2Egif?a", "/pixel.gif"),
            ("//pixel.gif", "/pixel.gif"),
            ("/./pixel.gif", "/pixel.gif"),
            ("/a/../pixel.gif", "/pixel.gif"),
            ("/a%2F..%2Fpixel.gif", "/pixel.gif"),
            ("/pixel.gif#frag", "/pixel.gif"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
        ] {
            assert_eq!(path(target).unwrap().1, normal, "{target}");
        }
        assert_eq!(path("/pixel.gif?a=1#f").unwrap().0, "/pixel.gif?a=1");
        for bad in ["/../x", "/x%zz", "/x%00", "/x%4", "*", "host:443"] {
            assert_eq!(path(bad), Err(Some(Reply::BadRequest)), "{bad}");
        }
        // Bytes that are not UTF-8 are kept as sent.
        let latin1 = outcome(b"GET /pixel.gif?q=caf\xe9 HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(latin1.0.as_bytes(), "/pixel.gif?q=caf\u{fffd}".as_bytes());
        assert_eq!(
            status(b"CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n"),
            Some(Reply::MethodNotAllowed)
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = outcome(&bytes);
        }

        /// Every prefix of a valid request is partial, never refused.
        #[test]
        fn prefixes_wait(cut in 0usize..80) {
            let req = b"GET /pixel.gif?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
            let cut = cut.min(req.len() - 1);
            proptest::prop_assert_eq!(outcome(&req[..cut]), Err(None));
        }
    }
}
