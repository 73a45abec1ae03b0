//! The record format of the original recipe, written and read here: `$msec,$args`, e.g.
//! `1379183721.115,foo=bar&baz=1` — the timestamp before the first comma and the raw
//! query string after it.
//!
//! Written by the HTTP template's `$msec` ([`write_msec`]); read by `tail` and the
//! analytics ([`Record`]). Malformed records (no comma, a timestamp that is not a number)
//! are reported by the caller, never a panic.

use std::borrow::Cow;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The default `http.format`: the original's record.
pub const FORMAT: &str = "$msec,$args";

/// `$msec`: epoch seconds, a dot, exactly three digits of milliseconds (`1379183721.115`).
pub fn write_msec(out: &mut Vec<u8>, time: SystemTime) {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let millis = d.subsec_millis();
    out.extend_from_slice(itoa::Buffer::new().format(d.as_secs()).as_bytes());
    out.push(b'.');
    out.push(b'0' + (millis / 100) as u8);
    out.push(b'0' + (millis / 10 % 10) as u8);
    out.push(b'0' + (millis % 10) as u8);
}

/// Whether the records of the HTTP template `format` can be read as `$msec,…`: the
/// reader takes the text before the first comma for the timestamp.
pub fn readable(format: &str) -> bool {
    format.starts_with("$msec,") || format.starts_with("${msec},")
}

/// A record split at its first comma.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The text before the first comma (the whole record when there is none).
    pub timestamp: &'a [u8],
    /// The query string after the first comma (empty when there is none).
    pub args: &'a [u8],
    /// Whether the record had a comma at all.
    pub comma: bool,
    /// False when there was no comma or the timestamp is not a plain decimal number.
    pub well_formed: bool,
}

impl<'a> Record<'a> {
    pub fn parse(record: &'a [u8]) -> Record<'a> {
        match record.iter().position(|&b| b == b',') {
            Some(i) => Record {
                timestamp: &record[..i],
                args: &record[i + 1..],
                comma: true,
                well_formed: is_json_number(&record[..i]),
            },
            None => Record {
                timestamp: record,
                args: &[],
                comma: false,
                well_formed: false,
            },
        }
    }

    /// Whole epoch seconds of the timestamp, if it is one.
    pub fn epoch_second(&self) -> Option<i64> {
        if !self.well_formed {
            return None;
        }
        let int = self.timestamp.split(|&b| b == b'.').next()?;
        std::str::from_utf8(int).ok()?.parse().ok()
    }

    /// The decoded query: `+` and percent-encoding decoded, invalid UTF-8 replaced.
    pub fn fields(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> {
        form_urlencoded::parse(self.args)
    }

    /// The seed's output: `print timestamp, args` — the record with its first comma
    /// turned into a space. A record without a comma is printed as it is.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(self.timestamp)?;
        if self.comma {
            out.write_all(b" ")?;
            out.write_all(self.args)?;
        }
        out.write_all(b"\n")
    }

    /// One JSON object on one line:
    /// `{"timestamp":1379183721.115,"fields":{"foo":"bar","baz":["1","2"]}}`.
    /// Repeated keys become arrays, in the order they came. A malformed record has
    /// `"timestamp":null` and its text (invalid UTF-8 replaced) under `"raw"`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":");
        if self.well_formed {
            out.extend_from_slice(self.timestamp);
        } else {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b",\"fields\":{");
        let mut fields: Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)> = Vec::new();
        for (k, v) in self.fields() {
            match fields.iter_mut().find(|(name, _)| *name == k) {
                Some((_, values)) => values.push(v),
                None => fields.push((k, vec![v])),
            }
        }
        for (i, (name, values)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_str(out, name);
            out.push(b':');
            if let [one] = values.as_slice() {
                write_json_str(out, one);
            } else {
                out.push(b'[');
                for (j, v) in values.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_json_str(out, v);
                }
                out.push(b']');
            }
        }
        out.push(b'}');
        if !self.well_formed {
            out.extend_from_slice(b",\"raw\":");
            let mut raw = self.timestamp.to_vec();
            if self.comma {
                raw.push(b',');
                raw.extend_from_slice(self.args);
            }
            write_json_str(out, &String::from_utf8_lossy(&raw));
        }
        out.extend_from_slice(b"}\n");
    }
}

/// A plain decimal that is also a valid JSON number: `0`, `12`, `1379183721.115`.
fn is_json_number(s: &[u8]) -> bool {
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    digits(int) && (int.len() == 1 || int[0] != b'0') && frac.is_none_or(digits)
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_format_is_the_one_read_here() {
        assert_eq!(crate::config::HttpConfig::default().format, FORMAT);
        assert!(readable(FORMAT));
        assert!(readable("${msec},$args|$http_user_agent"));
        assert!(!readable("$args,$msec"));
        assert!(!readable("$msec $args"));
    }

    #[test]
    fn msec_keeps_three_digits() {
        let at = |ms| {
            let mut out = Vec::new();
            write_msec(&mut out, UNIX_EPOCH + std::time::Duration::from_millis(ms));
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(1_379_183_721_115), "1379183721.115");
        assert_eq!(at(1_000_007), "1000.007");
        assert_eq!(at(0), "0.000");
    }

    fn json(record: &[u8]) -> String {
        let mut out = Vec::new();
        Record::parse(record).write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn text(record: &[u8]) -> String {
        let mut out = Vec::new();
        Record::parse(record).write_text(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_is_the_seed_output() {
        assert_eq!(
            text(b"1379183721.115,foo=bar&baz=1"),
            "1379183721.115 foo=bar&baz=1\n"
        );
        assert_eq!(text(b"1379183721.115,a=1,2"), "1379183721.115 a=1,2\n");
        assert_eq!(text(b"1379183721.115,"), "1379183721.115 \n");
        assert_eq!(text(b"no comma"), "no comma\n");
    }

    #[test]
    fn json_decodes_the_query() {
        assert_eq!(
            json(b"1379183721.115,foo=bar&baz=1"),
            "{\"timestamp\":1379183721.115,\"fields\":{\"foo\":\"bar\",\"baz\":\"1\"}}\n"
        );
        assert_eq!(
            json(b"1.5,a=1&b=x&a=2&a=3"),
            "{\"timestamp\":1.5,\"fields\":{\"a\":[\"1\",\"2\",\"3\"],\"b\":\"x\"}}\n"
        );
        assert_eq!(
            json(b"1,q=hello+world%21&e=%C3%A9&k%20y=%22"),
            "{\"timestamp\":1,\"fields\":{\"q\":\"hello world!\",\"e\":\"é\",\"k y\":\"\\\"\"}}\n"
        );
        assert_eq!(json(b"1,"), "{\"timestamp\":1,\"fields\":{}}\n");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(
            json(b"1,a=%FF%FE&b=\xff"),
            "{\"timestamp\":1,\"fields\":{\"a\":\"\u{fffd}\u{fffd}\",\"b\":\"\u{fffd}\"}}\n"
        );
    }

    #[test]
    fn malformed_records_are_marked_not_dropped() {
        assert_eq!(
            json(b"garbage"),
            "{\"timestamp\":null,\"fields\":{},\"raw\":\"garbage\"}\n"
        );
        assert_eq!(
            json(b"01.5,a=1"),
            "{\"timestamp\":null,\"fields\":{\"a\":\"1\"},\"raw\":\"01.5,a=1\"}\n"
        );
        assert!(!Record::parse(b"1.,a").well_formed);
        assert_eq!(
            Record::parse(b"1379183721.115,x").epoch_second(),
            Some(1379183721)
        );
        assert_eq!(Record::parse(b"x,y").epoch_second(), None);
    }

    #[test]
    fn every_output_is_valid_json() {
        for r in [
            &b"1,a=%"[..],
            b"1,%%%=&&==",
            b"\xff,\xfe",
            b",",
            b"",
            b"1,a=\x00\x1f",
        ] {
            let line = json(r);
            serde_json::from_str::<serde_json::Value>(line.trim_end()).unwrap();
        }
    }
}
