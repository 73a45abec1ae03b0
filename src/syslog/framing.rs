//! RFC 6587 framing of syslog over a stream: octet counting (`LEN SP MSG`) or
//! newline-terminated ("non-transparent framing"). Which one a connection uses is decided
//! by its first byte: a digit starts an octet count, anything else (normally the `<` of a
//! PRI) means newline-terminated.
//!
//! The decoder works on a borrowed buffer and says how many bytes it consumed, so the
//! caller can take every message out of one read and advance its buffer once.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("octet count is not a number followed by a space")]
    BadLength,
    #[error("connection closed in the middle of an octet-counted message")]
    Incomplete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing received yet.
    Undecided,
    OctetCounting,
    /// Lines ending in LF.
    NewlineTerminated,
}

/// What the decoder found at the start of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A message at `range` (trailing `\n`, `\r`, `\0` already cut off); consume
    /// `consumed` bytes.
    Message {
        range: Range<usize>,
        consumed: usize,
    },
    /// A newline-terminated message longer than the maximum: its first `max` bytes, to be
    /// delivered as a truncated message. The rest of the line is skipped.
    Truncated {
        range: Range<usize>,
        consumed: usize,
    },
    /// Bytes to throw away (the rest of an over-long line).
    Skip { consumed: usize },
    /// More bytes are needed.
    NeedMore,
}

/// One connection's framing state.
#[derive(Debug, Clone)]
pub struct Decoder {
    mode: Mode,
    max: usize,
    /// Inside an over-long line whose head was already delivered.
    skipping: bool,
    /// Bytes left of an over-long octet-counted frame whose head was delivered: skipped
    /// by its count, so the next frame is found and the connection kept.
    skip_octets: u64,
}

/// Longest octet count accepted, in digits: more than this can only be garbage.
const MAX_LEN_DIGITS: usize = 10;

impl Decoder {
    /// `max` is the longest message accepted (at least 1).
    pub fn new(max: usize) -> Decoder {
        Decoder {
            mode: Mode::Undecided,
            max: max.max(1),
            skipping: false,
            skip_octets: 0,
        }
    }

    /// Decodes the next frame from `data`. With `eof`, a final line without its LF is a
    /// message, and a cut octet-counted frame is an error.
    pub fn next(&mut self, data: &[u8], eof: bool) -> Result<Step, FramingError> {
        if data.is_empty() {
            return Ok(Step::NeedMore);
        }
        if self.mode == Mode::Undecided {
            self.mode = if data[0].is_ascii_digit() {
                Mode::OctetCounting
            } else {
                Mode::NewlineTerminated
            };
        }
        match self.mode {
            Mode::OctetCounting => self.octet_counted(data, eof),
            _ => Ok(self.line(data, eof)),
        }
    }

    fn octet_counted(&mut self, data: &[u8], eof: bool) -> Result<Step, FramingError> {
        if self.skip_octets > 0 {
            let n = self.skip_octets.min(data.len() as u64);
            self.skip_octets -= n;
            return Ok(Step::Skip {
                consumed: n as usize,
            });
        }
        // Some senders put a newline after each frame; it is not part of any message.
        let lead = data
            .iter()
            .take_while(|&&b| b == b'\n' || b == b'\r')
            .count();
        if lead > 0 {
            return Ok(Step::Skip { consumed: lead });
        }
        let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > MAX_LEN_DIGITS || digits == 0 && !data.is_empty() {
            return Err(FramingError::BadLength);
        }
        if digits == data.len() {
            return if eof {
                Err(FramingError::Incomplete)
            } else {
                Ok(Step::NeedMore)
            };
        }
        if data[digits] != b' ' {
            return Err(FramingError::BadLength);
        }
        // At most 10 ASCII digits: fits in u64.
        let len: u64 = std::str::from_utf8(&data[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(FramingError::BadLength)?;
        let start = digits + 1;
        if len > self.max as u64 {
            // Deliver its head, truncated, then skip the rest by its count: a sender with
            // a persistent queue would resend a refused frame forever.
            if data.len() < start + self.max {
                return if eof {
                    Err(FramingError::Incomplete)
                } else {
                    Ok(Step::NeedMore)
                };
            }
            self.skip_octets = len - self.max as u64;
            return Ok(Step::Truncated {
                range: start..trim_end(data, start, start + self.max),
                consumed: start + self.max,
            });
        }
        let end = start + len as usize;
        if data.len() < end {
            return if eof {
                Err(FramingError::Incomplete)
            } else {
                Ok(Step::NeedMore)
            };
        }
        Ok(Step::Message {
            range: start..trim_end(data, start, end),
            consumed: end,
        })
    }

    fn line(&mut self, data: &[u8], eof: bool) -> Step {
        let newline = data.iter().position(|&b| b == b'\n');
        if self.skipping {
            return match newline {
                Some(i) => {
                    self.skipping = false;
                    Step::Skip { consumed: i + 1 }
                }
                None => Step::Skip {
                    consumed: data.len(),
                },
            };
        }
        match newline {
            Some(i) if i <= self.max => Step::Message {
                range: 0..trim_end(data, 0, i),
                consumed: i + 1,
            },
            None if data.len() <= self.max && !eof => Step::NeedMore,
            None if data.len() <= self.max => Step::Message {
                range: 0..trim_end(data, 0, data.len()),
                consumed: data.len(),
            },
            // Longer than the maximum: deliver its head, skip the rest of the line.
            _ => {
                self.skipping = true;
                Step::Truncated {
                    range: 0..trim_end(data, 0, self.max),
                    consumed: self.max,
                }
            }
        }
    }
}

/// The end of `data[start..end]` without trailing `\n`, `\r` and `\0`.
pub fn trim_end(data: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(data[end - 1], b'\n' | b'\r' | b'\0') {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after the other, like reads from a socket, and collects the
    /// messages (truncated ones marked with a `~` prefix) or the error that ended it.
    fn decode(max: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<FramingError>) {
        let mut d = Decoder::new(max);
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            buf.extend_from_slice(chunk);
            let eof = i + 1 == chunks.len();
            loop {
                match d.next(&buf, eof) {
                    Ok(Step::Message { range, consumed }) => {
                        out.push(buf[range].to_vec());
                        buf.drain(..consumed);
                    }
                    Ok(Step::Truncated { range, consumed }) => {
                        let mut m = b"~".to_vec();
                        m.extend_from_slice(&buf[range]);
                        out.push(m);
                        buf.drain(..consumed);
                    }
                    Ok(Step::Skip { consumed }) => {
                        buf.drain(..consumed);
                    }
                    Ok(Step::NeedMore) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    #[test]
    fn newline_terminated() {
        let (m, e) = decode(100, &[b"<13>a\n<13>b\r\n<1", b"3>c\n<13>d"]);
        assert_eq!(
            m,
            vec![
                b"<13>a".to_vec(),
                b"<13>b".to_vec(),
                b"<13>c".to_vec(),
                b"<13>d".to_vec()
            ]
        );
        assert_eq!(e, None);
    }

    #[test]
    fn octet_counting_across_reads() {
        let (m, e) = decode(100, &[b"5 <13>a6 <13>", b"b\n", b"\n4 <1>x"]);
        assert_eq!(
            m,
            vec![b"<13>a".to_vec(), b"<13>b".to_vec(), b"<1>x".to_vec()]
        );
        assert_eq!(e, None);
    }

    #[test]
    fn nul_and_cr_are_stripped() {
        let (m, _) = decode(100, &[b"<13>a\0\r\n"]);
        assert_eq!(m, vec![b"<13>a".to_vec()]);
    }

    #[test]
    fn overlong_line_is_truncated_and_the_rest_skipped() {
        let (m, e) = decode(4, &[b"<13>abcdef", b"gh\n<1>x\n"]);
        assert_eq!(m, vec![b"~<13>".to_vec(), b"<1>x".to_vec()]);
        assert_eq!(e, None);
    }

    #[test]
    fn overlong_octet_counted_frame_is_truncated_and_skipped_by_its_count() {
        for chunks in [
            &[&b"15 <13>abcdefghijk5 <13>b"[..]][..],
            &[b"15 <13>abc", b"defghi", b"jk5 <13>b"],
        ] {
            let (m, e) = decode(10, chunks);
            assert_eq!(m, vec![b"~<13>abcdef".to_vec(), b"<13>b".to_vec()]);
            assert_eq!(e, None);
        }
    }

    #[test]
    fn octet_count_errors() {
        assert_eq!(decode(10, &[b"3x<13>"]).1, Some(FramingError::BadLength));
        assert_eq!(decode(10, &[b"5 <13"]).1, Some(FramingError::Incomplete));
        assert_eq!(
            decode(10, &[b"5 <13>a", b"<13>b\n"]).1,
            Some(FramingError::BadLength)
        );
    }

    proptest::proptest! {
        /// Any bytes, cut into any reads: the decoder never panics, always makes progress,
        /// never yields a message longer than the maximum, and ends in messages or an error.
        #[test]
        fn arbitrary_streams_never_panic(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
            max in 1usize..300,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                chunks.push(&data[prev..c]);
                prev = c;
            }
            let (messages, _) = decode(max, &chunks);
            for m in messages {
                // `~` marks a truncated message in `decode`.
                proptest::prop_assert!(m.len() <= max + 1);
            }
        }

        /// Messages framed either way come back as sent.
        #[test]
        fn framed_messages_round_trip(
            messages in proptest::collection::vec("<[0-9]{1,3}>[ -~]{0,40}", 1..20),
            octet in proptest::bool::ANY,
            cut in 0usize..2000,
        ) {
            let mut wire = Vec::new();
            for m in &messages {
                if octet {
                    wire.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
                } else {
                    wire.extend_from_slice(format!("{m}\n").as_bytes());
                }
            }
            let cut = cut.min(wire.len());
            let (got, err) = decode(1000, &[&wire[..cut], &wire[cut..]]);
            proptest::prop_assert_eq!(err, None);
            let expected: Vec<Vec<u8>> = messages
                .iter()
                .map(|m| m.trim_end_matches(['\r', '\n', '\0']).as_bytes().to_vec())
                .collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
