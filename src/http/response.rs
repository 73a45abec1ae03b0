//! The bytes the pixel endpoint answers with. Every response is a handful of fixed
//! slices plus a `Date` that changes once a second, so nothing is formatted per hit.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// The 43-byte transparent GIF89a, byte for byte the one nginx's `empty_gif` serves.
pub const GIF: [u8; 43] = [
    b'G', b'I', b'F', b'8', b'9', b'a', // header
    0x01, 0x00, 0x01, 0x00, // 1 x 1
    0x80, 0x01, 0x00, // global 1-bit colour table, background #1, no aspect ratio
    0x00, 0x00, 0x00, 0xff, 0xff, 0xff, // colour table: black, white
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x01, 0x00, // graphic control: #1 transparent
    0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, // image descriptor
    0x02, 0x02, 0x4c, 0x01, 0x00, // LZW image data
    0x3b, // trailer
];

/// Headers (and a body) beyond a reply's canned ones: CORS, `Location`, the script's.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Whole header lines, each ending in CRLF.
    pub headers: Vec<u8>,
    /// The body of an [`Reply::Asset`].
    pub body: bytes::Bytes,
}

/// What a request gets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 200 with the GIF.
    Pixel,
    /// 200 with the body of its [`Extra`] (the tracker script).
    Asset,
    /// 204: a beacon recorded, a preflight answered.
    NoContent,
    /// 302 to the `Location` in its [`Extra`].
    Found,
    NotModified,
    /// 403: an origin not on the CORS list.
    Forbidden,
    UnsupportedMediaType,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    UriTooLong,
    /// A header line or the whole head over its limit: 400, as nginx answers it.
    HeaderTooLarge,
    NotImplemented,
    ServiceUnavailable,
    VersionNotSupported,
    /// `100 Continue` (written as [`CONTINUE`], not by [`Reply::write`]).
    Continue,
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Reply {
    fn status_line(self) -> &'static [u8] {
        match self {
            Reply::Pixel | Reply::Asset => b"HTTP/1.1 200 OK\r\n",
            Reply::NoContent => b"HTTP/1.1 204 No Content\r\n",
            Reply::Found => b"HTTP/1.1 302 Found\r\n",
            Reply::NotModified => b"HTTP/1.1 304 Not Modified\r\n",
            Reply::Forbidden => b"HTTP/1.1 403 Forbidden\r\n",
            Reply::UnsupportedMediaType => b"HTTP/1.1 415 Unsupported Media Type\r\n",
            Reply::BadRequest => b"HTTP/1.1 400 Bad Request\r\n",
            Reply::NotFound => b"HTTP/1.1 404 Not Found\r\n",
            Reply::MethodNotAllowed => b"HTTP/1.1 405 Method Not Allowed\r\n",
            Reply::RequestTimeout => b"HTTP/1.1 408 Request Timeout\r\n",
            Reply::PayloadTooLarge => b"HTTP/1.1 413 Content Too Large\r\n",
            Reply::UriTooLong => b"HTTP/1.1 414 URI Too Long\r\n",
            Reply::HeaderTooLarge => b"HTTP/1.1 400 Bad Request\r\n",
            Reply::NotImplemented => b"HTTP/1.1 501 Not Implemented\r\n",
            Reply::ServiceUnavailable => b"HTTP/1.1 503 Service Unavailable\r\n",
            Reply::VersionNotSupported => b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
            Reply::Continue => b"HTTP/1.1 100 Continue\r\n",
        }
    }

    fn text(self) -> &'static [u8] {
        match self {
            Reply::Pixel | Reply::Asset | Reply::NoContent | Reply::Found | Reply::NotModified => {
                b""
            }
            Reply::Forbidden => b"origin not allowed\n",
            Reply::UnsupportedMediaType => b"unsupported content type\n",
            Reply::BadRequest => b"bad request\n",
            Reply::NotFound => b"not found\n",
            Reply::MethodNotAllowed => b"method not allowed\n",
            Reply::RequestTimeout => b"request timeout\n",
            Reply::PayloadTooLarge => b"request body too large\n",
            Reply::UriTooLong => b"request line too long\n",
            Reply::HeaderTooLarge => b"request header or cookie too large\n",
            Reply::NotImplemented => b"not implemented\n",
            Reply::ServiceUnavailable => b"unavailable: the local log is full or failing\n",
            Reply::VersionNotSupported => b"HTTP version not supported\n",
            Reply::Continue => b"",
        }
    }

    /// Appends the whole response to `out`; `with_body` is false for `HEAD`; `now` is the
    /// time for the `Date` header.
    pub fn write(self, out: &mut Vec<u8>, keep_alive: bool, with_body: bool, now: SystemTime) {
        self.write_with(out, keep_alive, with_body, now, None);
    }

    /// [`Reply::write`] with `extra`'s headers (and, for an `Asset`, its body).
    pub fn write_with(
        self,
        out: &mut Vec<u8>,
        keep_alive: bool,
        with_body: bool,
        now: SystemTime,
        extra: Option<&Extra>,
    ) {
        out.extend_from_slice(self.status_line());
        out.extend_from_slice(b"Server: pixelpipe\r\nDate: ");
        with_date(now, |d| out.extend_from_slice(d));
        match self {
            Reply::Pixel => out.extend_from_slice(
                b"\r\nContent-Type: image/gif\r\nContent-Length: 43\r\n\
                  Cache-Control: no-cache, no-store, must-revalidate\r\n\
                  Pragma: no-cache\r\nExpires: Thu, 01 Jan 1970 00:00:01 GMT\r\n",
            ),
            // No body, and (RFC 9110 §8.6) no Content-Length for 204 and 304.
            Reply::NoContent | Reply::NotModified => out.extend_from_slice(b"\r\n"),
            Reply::Found => out.extend_from_slice(b"\r\nContent-Length: 0\r\n"),
            Reply::Asset => {
                let len = extra.map_or(0, |e| e.body.len());
                out.extend_from_slice(b"\r\nContent-Length: ");
                out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            _ => {
                out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
                out.extend_from_slice(itoa::Buffer::new().format(self.text().len()).as_bytes());
                out.extend_from_slice(b"\r\n");
                // A path that allows more says so in its extra headers.
                if self == Reply::MethodNotAllowed && extra.is_none() {
                    out.extend_from_slice(b"Allow: GET, HEAD\r\n");
                }
                if self == Reply::ServiceUnavailable {
                    out.extend_from_slice(b"Retry-After: 1\r\n");
                }
            }
        }
        if let Some(e) = extra {
            out.extend_from_slice(&e.headers);
        }
        out.extend_from_slice(if keep_alive {
            b"Connection: keep-alive\r\n\r\n".as_slice()
        } else {
            b"Connection: close\r\n\r\n".as_slice()
        });
        if with_body {
            match self {
                Reply::Pixel => out.extend_from_slice(&GIF),
                Reply::Asset => out.extend_from_slice(extra.map_or(&b""[..], |e| &e.body)),
                _ => out.extend_from_slice(self.text()),
            }
        }
    }
}

thread_local! {
    /// The `Date` header value and the second it was made for.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

fn with_date(now: SystemTime, f: impl FnOnce(&[u8])) {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut date = cell.borrow_mut();
        if date.0 != secs || date.1.is_empty() {
            *date = (secs, httpdate::fmt_http_date(now));
        }
        f(date.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_is_43_bytes_of_gif89a() {
        assert_eq!(GIF.len(), 43);
        assert_eq!(&GIF[..6], b"GIF89a");
        assert_eq!(GIF[42], 0x3b);
    }

    #[test]
    fn not_allowed_names_the_methods() {
        let mut out = Vec::new();
        Reply::MethodNotAllowed.write(&mut out, false, true, SystemTime::now());
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 "));
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n\r\nmethod not allowed\n"));
    }
}
