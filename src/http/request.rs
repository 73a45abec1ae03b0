//! Reading one HTTP/1.x request head out of a connection's buffer, with the limits that
//! keep a slow or hostile client from costing more than a bounded buffer.

use std::mem::MaybeUninit;

use super::response::Reply;

/// Headers beyond this many are a 431.
pub const MAX_HEADERS: usize = 64;
/// Request bodies (which a pixel never needs) are skipped up to this size; larger is a 413.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_request_line: usize,
    pub max_header_bytes: usize,
}

/// Room for a request's headers. Left uninitialised: zeroing 64 headers per request
/// would cost more than parsing a pixel request does.
pub type Headers<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

pub fn headers<'b>() -> Headers<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// A parsed request head, borrowing from the buffer.
pub struct Request<'b, 'h> {
    pub method: &'b str,
    /// The request target in origin form (`/path?query`), absolute form reduced to it.
    pub target: &'b [u8],
    pub headers: &'h [httparse::Header<'b>],
    pub keep_alive: bool,
}

pub enum Parsed<'b, 'h> {
    /// A whole request (head and any body) of `len` bytes.
    Request(Request<'b, 'h>, usize),
    /// More bytes are needed.
    Partial,
    /// The request cannot be served; answer this and close the connection.
    Invalid(Reply),
}

pub fn parse<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut Headers<'b>,
    limits: Limits,
) -> Parsed<'b, 'h> {
    // Check the request line's length before httparse sees it: a long line must be a 414
    // as soon as it is over the limit, not once it is complete.
    match memchr::memchr(b'\n', buf) {
        Some(eol) if eol > limits.max_request_line => return Parsed::Invalid(Reply::UriTooLong),
        None if buf.len() > limits.max_request_line => return Parsed::Invalid(Reply::UriTooLong),
        None => return Parsed::Partial,
        Some(_) => {}
    }
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_header_bytes => {
            return Parsed::Invalid(Reply::HeaderTooLarge)
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(Reply::HeaderTooLarge),
        Err(_) => return Parsed::Invalid(Reply::BadRequest),
    };
    if head_len > limits.max_header_bytes {
        return Parsed::Invalid(Reply::HeaderTooLarge);
    }
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Invalid(Reply::BadRequest);
    };
    let headers: &'h [httparse::Header<'b>] = req.headers;
    let mut keep_alive = version == 1;
    let mut body_len = 0usize;
    let mut host_seen = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            body_len = match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) => n,
                None => return Parsed::Invalid(Reply::BadRequest),
            };
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // A chunked body would need a decoder only to throw the body away.
            return Parsed::Invalid(Reply::NotImplemented);
        } else if h.name.eq_ignore_ascii_case("host") {
            host_seen = true;
        }
    }
    if version == 1 && !host_seen {
        // RFC 9112 §3.2: a 1.1 request without Host is a 400.
        return Parsed::Invalid(Reply::BadRequest);
    }
    if body_len > MAX_BODY {
        return Parsed::Invalid(Reply::PayloadTooLarge);
    }
    if buf.len() < head_len + body_len {
        return Parsed::Partial;
    }
    let target = origin_form(path.as_bytes());
    Parsed::Request(
        Request {
            method,
            target,
            headers,
            keep_alive,
        },
        head_len + body_len,
    )
}

/// `http://host/p?q` → `/p?q`; an origin-form target is returned as it is.
fn origin_form(target: &[u8]) -> &[u8] {
    let Some(rest) = target
        .strip_prefix(b"http://")
        .or_else(|| target.strip_prefix(b"https://"))
    else {
        return target;
    };
    match rest.iter().position(|&b| b == b'/' || b == b'?') {
        Some(i) => &rest[i..],
        None => b"/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_request_line: 100,
        max_header_bytes: 300,
    };

    fn outcome(buf: &[u8]) -> Result<(String, bool, usize), Option<Reply>> {
        let mut headers = headers();
        match parse(buf, &mut headers, LIMITS) {
            Parsed::Request(r, n) => Ok((
                String::from_utf8(r.target.to_vec()).unwrap(),
                r.keep_alive,
                n,
            )),
            Parsed::Partial => Err(None),
            Parsed::Invalid(reply) => Err(Some(reply)),
        }
    }

    #[test]
    fn a_simple_get() {
        let req = b"GET /pixel.gif?a=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(outcome(req), Ok(("/pixel.gif?a=1".into(), true, req.len())));
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!outcome(b"GET / HTTP/1.0\r\n\r\n").unwrap().1);
        assert!(
            outcome(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .1
        );
        assert!(
            !outcome(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap()
                .1
        );
    }

    #[test]
    fn partial_until_complete() {
        assert_eq!(outcome(b"GET /pixel.gif HTTP/1.1\r\nHo"), Err(None));
        assert_eq!(outcome(b"GET /pix"), Err(None));
        assert_eq!(
            outcome(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab"),
            Err(None)
        );
        let with_body = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nabGET";
        assert_eq!(outcome(with_body).unwrap().2, with_body.len() - 3);
    }

    #[test]
    fn limits_and_garbage() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(200));
        assert_eq!(outcome(long.as_bytes()), Err(Some(Reply::UriTooLong)));
        assert_eq!(outcome(&[b'a'; 150]), Err(Some(Reply::UriTooLong)));
        let big_headers = format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{}",
            format!("X: {}\r\n", "b".repeat(90)).repeat(4)
        );
        assert_eq!(
            outcome(big_headers.as_bytes()),
            Err(Some(Reply::HeaderTooLarge))
        );
        assert_eq!(
            outcome(b"\x00\x01\x02 / HTTP/1.1\r\n\r\n"),
            Err(Some(Reply::BadRequest))
        );
        assert_eq!(
            outcome(b"GET / HTTP/1.1\r\n\r\n"),
            Err(Some(Reply::BadRequest))
        );
        assert_eq!(
            outcome(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n"),
            Err(Some(Reply::BadRequest))
        );
        assert_eq!(
            outcome(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Some(Reply::NotImplemented))
        );
    }

    #[test]
    fn absolute_form() {
        assert_eq!(
            outcome(b"GET http://h:8080/pixel.gif?x HTTP/1.1\r\nHost: h\r\n\r\n")
                .unwrap()
                .0,
            "/pixel.gif?x"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = outcome(&bytes);
        }
    }
}
