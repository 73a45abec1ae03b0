//! The tracker script (`GET /p.js`): `assets/p.js`, with the collector's beacon and pixel
//! paths filled in at start-up, served gzipped to clients that accept it, with an `ETag`
//! (a `304` for a client that has it) and a configurable `Cache-Control: max-age`.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;

use super::response::{Extra, Reply};

/// The script as written, with placeholders for the paths it sends to.
pub const SOURCE: &str = include_str!("assets/p.js");

/// The script's two encodings and the headers they share, made once.
#[derive(Debug, Clone)]
pub struct Script {
    plain: Bytes,
    gzip: Bytes,
    /// Strong validators: one per encoding, as the bytes differ.
    etag_plain: String,
    etag_gzip: String,
    cache_control: String,
}

impl Script {
    /// `beacon_path` and `pixel_path` are checked config values (no quote, no space).
    pub fn new(beacon_path: &str, pixel_path: &str, max_age: Duration) -> Script {
        let source = SOURCE
            .replace("__BEACON__", beacon_path)
            .replace("__PIXEL__", pixel_path);
        let plain = Bytes::from(source.into_bytes());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        let gzip = gz
            .write_all(&plain)
            .and_then(|()| gz.finish())
            .map(Bytes::from)
            .unwrap_or_default();
        let crc = crc32fast::hash(&plain);
        Script {
            etag_plain: format!("\"{crc:08x}\""),
            etag_gzip: format!("\"{crc:08x}-gz\""),
            cache_control: format!("public, max-age={}", max_age.as_secs()),
            plain,
            gzip,
        }
    }

    pub fn plain(&self) -> &Bytes {
        &self.plain
    }

    /// The answer to a `GET` or `HEAD` with these request headers.
    pub fn answer(
        &self,
        accept_encoding: Option<&[u8]>,
        if_none_match: Option<&[u8]>,
    ) -> (Reply, Extra) {
        let gzip = !self.gzip.is_empty() && accepts_gzip(accept_encoding.unwrap_or(b""));
        let (etag, body) = if gzip {
            (&self.etag_gzip, &self.gzip)
        } else {
            (&self.etag_plain, &self.plain)
        };
        let mut headers = Vec::with_capacity(200);
        headers.extend_from_slice(b"ETag: ");
        headers.extend_from_slice(etag.as_bytes());
        headers.extend_from_slice(b"\r\nCache-Control: ");
        headers.extend_from_slice(self.cache_control.as_bytes());
        headers.extend_from_slice(b"\r\nVary: Accept-Encoding\r\n");
        if if_none_match.is_some_and(|v| matches_etag(v, etag)) {
            return (
                Reply::NotModified,
                Extra {
                    headers,
                    body: Bytes::new(),
                },
            );
        }
        headers.extend_from_slice(b"Content-Type: text/javascript; charset=utf-8\r\n");
        if gzip {
            headers.extend_from_slice(b"Content-Encoding: gzip\r\n");
        }
        (
            Reply::Asset,
            Extra {
                headers,
                body: body.clone(),
            },
        )
    }
}

/// Whether an `Accept-Encoding` value takes gzip: `gzip`, `x-gzip` or `*`, with a
/// quality that is not zero (RFC 9110 §12.5.3).
fn accepts_gzip(value: &[u8]) -> bool {
    let mut star = false;
    for item in value.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let coding = parts.next().unwrap_or(b"").trim_ascii();
        let zero = parts.any(|p| {
            let p = p.trim_ascii();
            p.len() >= 2
                && p[..2].eq_ignore_ascii_case(b"q=")
                && std::str::from_utf8(&p[2..])
                    .ok()
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
        });
        if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
            return !zero;
        }
        if coding == b"*" {
            star = !zero;
        }
    }
    star
}

/// `If-None-Match`: `*`, or a list of tags compared weakly (RFC 9110 §13.1.2).
fn matches_etag(value: &[u8], etag: &str) -> bool {
    value.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        let t = t.strip_prefix(b"W/").unwrap_or(t);
        t == b"*" || t == etag.as_bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script() -> Script {
        Script::new("/e", "/pixel.gif", Duration::from_secs(3600))
    }

    fn text(extra: &Extra) -> String {
        String::from_utf8(extra.headers.clone()).unwrap()
    }

    #[test]
    fn small_and_filled_in() {
        let s = script();
        assert!(s.plain.len() < 2048, "{} bytes", s.plain.len());
        let js = std::str::from_utf8(&s.plain).unwrap();
        assert!(!js.contains("__"), "a placeholder left");
        assert!(js.contains("origin + \"/e\""));
        assert!(js.contains("origin + \"/pixel.gif?\""));
        // Nothing that would store or read state beyond the opt-out flag.
        assert!(!js.contains("document.cookie") && !js.contains("sessionStorage"));
        assert!(s.gzip.len() < s.plain.len());
    }

    #[test]
    fn gzip_when_accepted() {
        let s = script();
        let (reply, extra) = s.answer(Some(b"gzip, deflate, br"), None);
        assert_eq!(reply, Reply::Asset);
        assert!(text(&extra).contains("Content-Encoding: gzip\r\n"));
        assert_eq!(extra.body, s.gzip);
        let mut d = flate2::read::GzDecoder::new(&extra.body[..]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut back).unwrap();
        assert_eq!(back, s.plain);

        for refuses in [
            None,
            Some(&b"identity"[..]),
            Some(b"gzip;q=0, br"),
            Some(b"br"),
        ] {
            let (_, extra) = s.answer(refuses, None);
            assert!(!text(&extra).contains("Content-Encoding"), "{refuses:?}");
            assert_eq!(extra.body, s.plain);
        }
        assert!(accepts_gzip(b"*"));
        assert!(accepts_gzip(b"x-gzip;q=0.5"));
        assert!(!accepts_gzip(b"*;q=0"));
    }

    #[test]
    fn etag_and_cache_control() {
        let s = script();
        let (_, extra) = s.answer(None, None);
        let h = text(&extra);
        assert!(h.contains("Cache-Control: public, max-age=3600\r\n"));
        assert!(h.contains("Vary: Accept-Encoding\r\n"));
        let etag = h
            .lines()
            .find_map(|l| l.strip_prefix("ETag: "))
            .unwrap()
            .to_owned();
        let (reply, extra) = s.answer(None, Some(etag.as_bytes()));
        assert_eq!(reply, Reply::NotModified);
        assert!(extra.body.is_empty());
        let (reply, _) = s.answer(None, Some(format!("\"x\", W/{etag}").as_bytes()));
        assert_eq!(reply, Reply::NotModified);
        // The gzip body has its own tag.
        let (reply, _) = s.answer(Some(b"gzip"), Some(etag.as_bytes()));
        assert_eq!(reply, Reply::Asset);
        let (reply, _) = s.answer(None, Some(b"\"other\""));
        assert_eq!(reply, Reply::Asset);
    }
}
