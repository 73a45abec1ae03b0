//! Request-body framing (RFC 9112 §6): which headers say how long the body is, and a
//! decoder that returns the body's bytes — `Content-Length` bytes as they are, a chunked
//! body (§7.1) with its chunk sizes, extensions and trailer removed.
//!
//! The rules are nginx's (1.22), the server pixelpipe answers for, and they are the ones
//! that stop request smuggling: two `Content-Length` lines, a `Content-Length` that is not
//! digits only (`+0`, `1, 1`), `Content-Length` together with `Transfer-Encoding`, and
//! `Transfer-Encoding` in an HTTP/1.0 request are errors, never "the last one wins".
//! A transfer coding other than exactly `chunked` is not implemented (501).
//!
//! The decoder is stateless: it is given everything buffered so far and says how many
//! bytes the body took once it is complete. Bodies are small (bounded by `max`), so
//! decoding again after each read costs nothing worth a state machine.

use std::borrow::Cow;

/// How the request says its body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("Content-Length is not a decimal number")]
    BadLength,
    #[error("more than one Content-Length")]
    DuplicateLength,
    #[error("more than one Transfer-Encoding")]
    DuplicateCoding,
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndCoding,
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    CodingInHttp10,
    /// A transfer coding other than `chunked`: 501 Not Implemented.
    #[error("a transfer coding other than chunked")]
    UnsupportedCoding,
    /// Over the configured maximum: 413.
    #[error("body larger than allowed")]
    TooLarge,
    #[error("malformed chunked body")]
    BadChunk,
}

impl BodyError {
    /// The status nginx answers with.
    pub fn status(self) -> u16 {
        match self {
            BodyError::UnsupportedCoding => 501,
            BodyError::TooLarge => 413,
            _ => 400,
        }
    }
}

/// Reads the framing from a request's headers (`(name, value)` pairs; `http10` for an
/// HTTP/1.0 request). `max` bounds a `Content-Length`; a chunked body is bounded as it is
/// decoded.
pub fn framing<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    http10: bool,
    max: u64,
) -> Result<Framing, BodyError> {
    let mut length: Option<u64> = None;
    let mut coding: Option<&[u8]> = None;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err(BodyError::DuplicateLength);
            }
            length = Some(parse_length(value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if coding.is_some() {
                return Err(BodyError::DuplicateCoding);
            }
            coding = Some(value.trim_ascii());
        }
    }
    match (length, coding) {
        (Some(_), Some(_)) => Err(BodyError::LengthAndCoding),
        (_, Some(_)) if http10 => Err(BodyError::CodingInHttp10),
        (_, Some(c)) if c.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
        (_, Some(_)) => Err(BodyError::UnsupportedCoding),
        (Some(n), None) if n > max => Err(BodyError::TooLarge),
        (Some(0), None) | (None, None) => Ok(Framing::None),
        (Some(n), None) => Ok(Framing::Length(n)),
    }
}

/// `1*DIGIT` (RFC 9110 §8.6), surrounding blanks allowed; anything else (`+0`, `-1`,
/// `1, 1`, `0x10`, an overflow) is an error.
fn parse_length(value: &[u8]) -> Result<u64, BodyError> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(BodyError::BadLength);
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(BodyError::BadLength)
    })
}

/// A decoded body and how many bytes of the input it took (framing included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body<'a> {
    pub bytes: Cow<'a, [u8]>,
    pub consumed: usize,
}

/// Decodes the body at the start of `input` (what follows the request head). `Ok(None)`:
/// more bytes are needed. `max` bounds the decoded size of a chunked body.
pub fn decode(framing: Framing, input: &[u8], max: u64) -> Result<Option<Body<'_>>, BodyError> {
    match framing {
        Framing::None => Ok(Some(Body {
            bytes: Cow::Borrowed(&[]),
            consumed: 0,
        })),
        Framing::Length(n) => {
            let n = usize::try_from(n).map_err(|_| BodyError::TooLarge)?;
            Ok(input.get(..n).map(|bytes| Body {
                bytes: Cow::Borrowed(bytes),
                consumed: n,
            }))
        }
        Framing::Chunked => decode_chunked(input, max),
    }
}

/// RFC 9112 §7.1: `chunk-size [; ext] CRLF data CRLF … 0 [; ext] CRLF trailer CRLF`.
/// A bare LF ends a line too, as nginx accepts.
fn decode_chunked(input: &[u8], max: u64) -> Result<Option<Body<'_>>, BodyError> {
    let decoded = decode_chunked_unbounded(input, max)?;
    // What a body of `max` bytes can take on the wire, in the smallest chunks, with room
    // for extensions and trailers: past that, an unfinished body (an endless extension
    // or trailer line) is refused rather than buffered.
    let wire_max = max.saturating_mul(6).saturating_add(64 * 1024);
    if decoded.is_none() && input.len() as u64 > wire_max {
        return Err(BodyError::TooLarge);
    }
    Ok(decoded)
}

fn decode_chunked_unbounded(input: &[u8], max: u64) -> Result<Option<Body<'_>>, BodyError> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let Some((line, next)) = line_at(input, at) else {
            return Ok(None);
        };
        let size = chunk_size(line)?;
        at = next;
        if size == 0 {
            break;
        }
        if out.len() as u64 + size > max {
            return Err(BodyError::TooLarge);
        }
        // Bounded by `max` just above, so it fits in memory and in usize.
        let size = size as usize;
        let Some(data) = input.get(at..at + size) else {
            return Ok(None);
        };
        out.extend_from_slice(data);
        at += size;
        match input.get(at..) {
            Some([b'\r', b'\n', ..]) => at += 2,
            Some([b'\n', ..]) => at += 1,
            Some([]) | Some([b'\r']) | None => return Ok(None),
            Some(_) => return Err(BodyError::BadChunk),
        }
    }
    // The trailer section: header lines, then an empty line. Its fields are dropped.
    loop {
        let Some((line, next)) = line_at(input, at) else {
            return Ok(None);
        };
        at = next;
        if line.is_empty() {
            return Ok(Some(Body {
                bytes: Cow::Owned(out),
                consumed: at,
            }));
        }
        if !line.contains(&b':') || line[0] == b' ' || line[0] == b'\t' {
            return Err(BodyError::BadChunk);
        }
    }
}

/// The line starting at `at` without its CRLF (or LF), and where the next one starts.
fn line_at(input: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = input.get(at..)?;
    let lf = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..lf];
    Some((line.strip_suffix(b"\r").unwrap_or(line), at + lf + 1))
}

/// `1*HEXDIG [BWS] [";" chunk-ext]`: the size; an overflow or a missing size is an error.
fn chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let hex = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if hex == 0 {
        return Err(BodyError::BadChunk);
    }
    let rest = line[hex..].trim_ascii_start();
    if !(rest.is_empty() || rest[0] == b';') || rest.contains(&b'\r') {
        return Err(BodyError::BadChunk);
    }
    line[..hex].iter().try_fold(0u64, |n, &d| {
        let digit = (d as char).to_digit(16).unwrap_or(0);
        n.checked_mul(16)
            .and_then(|n| n.checked_add(u64::from(digit)))
            .ok_or(BodyError::BadChunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1000;

    fn framing_of(headers: &[(&str, &str)], http10: bool) -> Result<Framing, BodyError> {
        framing(headers.iter().map(|(n, v)| (*n, v.as_bytes())), http10, MAX)
    }

    fn chunked(input: &[u8]) -> Result<Option<(Vec<u8>, usize)>, BodyError> {
        decode(Framing::Chunked, input, MAX).map(|b| b.map(|b| (b.bytes.into_owned(), b.consumed)))
    }

    #[test]
    fn framing_rules() {
        assert_eq!(framing_of(&[], false), Ok(Framing::None));
        assert_eq!(
            framing_of(&[("Content-Length", " 003 ")], false),
            Ok(Framing::Length(3))
        );
        assert_eq!(
            framing_of(&[("content-length", "0")], false),
            Ok(Framing::None)
        );
        assert_eq!(
            framing_of(&[("Transfer-Encoding", "Chunked")], false),
            Ok(Framing::Chunked)
        );
        for bad in [
            "+0",
            "-1",
            "1, 1",
            "0x10",
            "",
            " ",
            "1 2",
            "99999999999999999999999",
        ] {
            assert_eq!(
                framing_of(&[("Content-Length", bad)], false),
                Err(BodyError::BadLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            framing_of(&[("Content-Length", "1"), ("Content-Length", "1")], false),
            Err(BodyError::DuplicateLength)
        );
        assert_eq!(
            framing_of(
                &[("Content-Length", "4"), ("Transfer-Encoding", "chunked")],
                false
            ),
            Err(BodyError::LengthAndCoding)
        );
        assert_eq!(
            framing_of(&[("Transfer-Encoding", "chunked")], true),
            Err(BodyError::CodingInHttp10)
        );
        for coding in [
            "gzip, chunked",
            "chunked, gzip",
            "identity",
            "chunkedchunked",
        ] {
            assert_eq!(
                framing_of(&[("Transfer-Encoding", coding)], false),
                Err(BodyError::UnsupportedCoding),
                "{coding:?}"
            );
        }
        assert_eq!(
            framing_of(&[("Content-Length", "1001")], false),
            Err(BodyError::TooLarge)
        );
        assert_eq!(BodyError::TooLarge.status(), 413);
        assert_eq!(BodyError::UnsupportedCoding.status(), 501);
        assert_eq!(BodyError::DuplicateLength.status(), 400);
    }

    #[test]
    fn content_length_bodies() {
        let body = decode(Framing::Length(3), b"abcGET", MAX).unwrap().unwrap();
        assert_eq!((&body.bytes[..], body.consumed), (&b"abc"[..], 3));
        assert_eq!(decode(Framing::Length(3), b"ab", MAX), Ok(None));
        let none = decode(Framing::None, b"GET", MAX).unwrap().unwrap();
        assert_eq!(none.consumed, 0);
    }

    #[test]
    fn chunked_bodies() {
        // RFC 9112 §7.1, llhttp's samples: extensions, upper and lower case, trailers.
        assert_eq!(
            chunked(b"5\r\nhello\r\n6;ext=\"x;y\"\r\n world\r\n0\r\n\r\nNEXT"),
            Ok(Some((b"hello world".to_vec(), 36)))
        );
        assert_eq!(
            chunked(b"a\r\n0123456789\r\nA\r\n0123456789\r\n000\r\nTrailer: v\r\n\r\n"),
            Ok(Some((b"01234567890123456789".to_vec(), 49)))
        );
        assert_eq!(chunked(b"3\nabc\n0\n\n"), Ok(Some((b"abc".to_vec(), 9))));
        // Incomplete at every cut.
        let whole = b"5\r\nhello\r\n0\r\nT: 1\r\n\r\n";
        for cut in 0..whole.len() {
            assert_eq!(chunked(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(chunked(whole).unwrap().is_some());
    }

    #[test]
    fn bad_chunks() {
        for bad in [
            &b"zz\r\nx\r\n0\r\n\r\n"[..],
            b"\r\n",
            b"-1\r\n",
            b"FFFFFFFFFFFFFFFFFF\r\nx",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n folded: x\r\n\r\n",
        ] {
            assert_eq!(
                chunked(bad),
                Err(BodyError::BadChunk),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            chunked(b"3E9\r\n"),
            Err(BodyError::TooLarge),
            "1001 bytes, over the maximum"
        );
        // An extension line that never ends is not buffered for ever.
        let endless = [&b"1;"[..], &[b'e'; 80_000]].concat();
        assert_eq!(chunked(&endless), Err(BodyError::TooLarge));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = chunked(&bytes);
        }

        /// Any body, cut into any chunks, decodes to itself.
        #[test]
        fn round_trip(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
                      cut in 1usize..50) {
            let mut wire = Vec::new();
            for chunk in body.chunks(cut) {
                wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let decoded = chunked(&wire).unwrap().unwrap();
            proptest::prop_assert_eq!(decoded, (body, wire.len()));
        }
    }
}
