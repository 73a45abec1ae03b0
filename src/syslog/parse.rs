//! One syslog message → its fields, the way syslog-ng fills its macros.
//!
//! `syslog_loose` does the RFC 3164 / RFC 5424 parsing. Around it, this file does what
//! syslog-ng does differently:
//! - `<158>Nov 27 20:23:37 pixel: MSG` (nginx with `nohostname`, glibc's `syslog(3)`):
//!   a single header word followed by `:` is the program, not a host; a tag's colon
//!   need not be followed by a space.
//! - The message is the rest of the input as received: `syslog_loose` trims trailing
//!   whitespace, which would change the bytes that reach Redis.
//! - A missing PRI is `<13>` (user.notice).
//! - A message that cannot be parsed keeps its PRI (if it has a valid one) and goes on
//!   with an empty program and its text as the message; it is flagged `malformed`.
//! - An RFC 3164 date has no year: the one that puts it nearest to now is taken (a
//!   `Dec 31` message received on Jan 1 belongs to the old year).

use chrono::format::{Fixed, Item, Numeric, Pad, Parsed};
#[cfg(test)]
use chrono::TimeZone;
use chrono::{DateTime, Datelike, FixedOffset, Local, NaiveDate};
use syslog_loose::{IncompleteDate, Protocol, Variant};

/// The fields of one message, borrowed from the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// 0–23.
    pub facility: u8,
    /// 0–7.
    pub severity: u8,
    /// The date in the message, if it had one.
    pub timestamp: Option<DateTime<FixedOffset>>,
    pub host: Option<&'a [u8]>,
    pub program: &'a [u8],
    pub pid: &'a [u8],
    pub msgid: &'a [u8],
    /// RFC 3164: the tag as sent (`PROGRAM[PID]: `), syslog-ng's `${MSGHDR}`. Empty for
    /// RFC 5424, whose header is made up from the fields.
    pub header: &'a [u8],
    pub message: &'a [u8],
    /// RFC 5424 (as opposed to RFC 3164 or unparsed).
    pub rfc5424: bool,
    /// Could not be parsed: the fields are the fallback described above.
    pub malformed: bool,
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses one message (already cut out of its frame, trailing `\n`/`\r`/`\0` removed).
/// `now` resolves the year of RFC 3164 dates. With `expect_host` false, an RFC 3164
/// header has no host name (what syslog daemons assume of local sockets): the first word
/// after the date is the tag. Never fails: see the module notes.
pub fn parse<'a>(raw: &'a [u8], now: DateTime<Local>, expect_host: bool) -> Message<'a> {
    // `syslog_loose` wants text. Non-UTF-8 bytes are kept: the header is parsed from the
    // valid prefix, and the message is taken from the raw bytes.
    let text = match std::str::from_utf8(raw) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&raw[..e.valid_up_to()]).unwrap_or_default(),
    };
    // An ISO date right after the PRI: try the zone-less form first (what loggen sends),
    // which `syslog_loose` would reject only after trying RFC 5424 and RFC 3164.
    if looks_like_iso_date(raw) {
        if let Some(m) = iso_without_zone(raw, expect_host) {
            return m;
        }
    }
    let year = |date: IncompleteDate| nearest_year(date, now);
    let Ok(m) = syslog_loose::parse_message_with_year_exact(text, year, Variant::Either) else {
        return iso_without_zone(raw, expect_host).unwrap_or_else(|| fallback(raw));
    };
    let offset = |s: &str| s.as_ptr() as usize - text.as_ptr() as usize;
    let is_5424 = matches!(m.protocol, Protocol::RFC5424(_));
    let mut host = m.hostname.map(str::as_bytes);
    let mut program = "";
    let mut pid: &[u8] = b"";
    let mut header: &[u8] = b"";
    // The message runs to the end of what was received (see the module notes).
    let mut message: &[u8] = if m.msg.is_empty() {
        // The slice of an empty message may point inside trailing blanks.
        b""
    } else {
        &raw[offset(m.msg)..]
    };
    if is_5424 {
        if let Some(app) = m.appname {
            program = app;
            // `syslog_loose` keeps a numeric PROCID as a number; take the token as sent
            // (`0123` stays `0123`).
            let start = (offset(app) + app.len() + 1).min(raw.len());
            let len = raw[start..].iter().take_while(|&&b| b != b' ').count();
            pid = &raw[start..start + len];
            if pid == b"-" {
                pid = b"";
            }
        }
        message = message.strip_prefix(UTF8_BOM).unwrap_or(message);
    } else {
        // Where the tag starts: after the host, if there is one.
        let tag_start = match m.hostname {
            Some(h) if !expect_host => {
                host = None;
                Some(offset(h))
            }
            Some(h) => {
                // `pixel: MSG`: the word before the colon names the program. So does
                // `pixel:MSG`, which `syslog_loose` reads as a host `pixel:MSG…`.
                let colon_follows = raw.get(offset(h) + h.len()) == Some(&b':');
                if (m.appname.is_none() && colon_follows) || is_tag(h.as_bytes()) {
                    host = None;
                    Some(offset(h))
                } else {
                    m.appname.map(offset)
                }
            }
            None => m.appname.map(offset),
        };
        if let Some(start) = tag_start {
            let tag = read_tag(&raw[start..]);
            // The program is text: a tag that is not UTF-8 makes the message unparseable.
            let Some(p) = text.get(start..start + tag.program.len()) else {
                return fallback(raw);
            };
            program = p;
            (pid, header, message) = (tag.pid, tag.header, tag.message);
        }
    }
    if message.is_empty() && text.len() < raw.len() {
        // A byte that is not UTF-8 cut the header short: nothing of it may be lost.
        return fallback(raw);
    }
    Message {
        facility: m.facility.map_or(1, |f| f as u8),
        severity: m.severity.map_or(5, |s| s as u8),
        timestamp: m.timestamp,
        host,
        program: program.as_bytes(),
        pid,
        msgid: m.msgid.map(str::as_bytes).unwrap_or_default(),
        header,
        message,
        rfc5424: is_5424,
        malformed: false,
    }
}

/// An RFC 3164 tag and what follows it, read as syslog-ng reads them.
struct Tag<'a> {
    program: &'a [u8],
    pid: &'a [u8],
    /// The tag as sent, `PROGRAM[PID]: ` with whatever of it was there.
    header: &'a [u8],
    message: &'a [u8],
}

/// `PROGRAM[PID]: MSG` at the start of `tag`: the program runs to `[`, `:` or a space;
/// then come an optional `[PID]`, one `:` and one space, and the rest is the message,
/// whatever it looks like (`syslog_loose` would take a leading `[...]` for structured
/// data and eat extra spaces).
fn read_tag(tag: &[u8]) -> Tag<'_> {
    let program_len = tag
        .iter()
        .position(|&b| matches!(b, b'[' | b':' | b' '))
        .unwrap_or(tag.len());
    let mut pos = program_len;
    let mut pid: &[u8] = b"";
    if tag.get(pos) == Some(&b'[') {
        if let Some(close) = tag[pos..].iter().position(|&b| b == b']') {
            pid = &tag[pos + 1..pos + close];
            pos += close + 1;
        }
    }
    if tag.get(pos) == Some(&b':') {
        pos += 1;
    }
    if tag.get(pos) == Some(&b' ') {
        pos += 1;
    }
    Tag {
        program: &tag[..program_len],
        pid,
        header: &tag[..pos],
        message: &tag[pos..],
    }
}

/// Whether a header word with a colon is a tag (`pixel:MSG`) rather than a host: a host
/// name has no colon unless it is an IPv6 address (`::1`, `[fe80::1]`, `fe80::1%eth0`).
/// (`host:8080` reads as a tag: a syslog host name carries no port.)
fn is_tag(word: &[u8]) -> bool {
    if !word.contains(&b':') {
        return false;
    }
    let Ok(word) = std::str::from_utf8(word) else {
        return true;
    };
    let address = word.trim_start_matches('[').trim_end_matches(']');
    let address = address.split_once('%').map_or(address, |(a, _zone)| a);
    address.parse::<std::net::Ipv6Addr>().is_err()
}

/// `%Y-%m-%dT%H:%M:%S%.f`, compiled once: parsing the format string for every message
/// took a sixth of the relay's time under `loggen`.
const ISO_WITHOUT_ZONE: &[Item<'static>] = &[
    Item::Numeric(Numeric::Year, Pad::Zero),
    Item::Literal("-"),
    Item::Numeric(Numeric::Month, Pad::Zero),
    Item::Literal("-"),
    Item::Numeric(Numeric::Day, Pad::Zero),
    Item::Literal("T"),
    Item::Numeric(Numeric::Hour, Pad::Zero),
    Item::Literal(":"),
    Item::Numeric(Numeric::Minute, Pad::Zero),
    Item::Literal(":"),
    Item::Numeric(Numeric::Second, Pad::Zero),
    Item::Fixed(Fixed::Nanosecond),
];

/// `<PRI>dddd-`: a date in ISO form follows.
fn looks_like_iso_date(raw: &[u8]) -> bool {
    split_pri(raw).is_some_and(|(_, rest)| {
        rest.len() > 5 && rest[..4].iter().all(u8::is_ascii_digit) && rest[4] == b'-'
    })
}

/// `<38>2026-11-27T21:28:57 host prg[1234]: MSG`: an ISO date without a time zone (what
/// `loggen` and some devices send), which `syslog_loose` refuses. Read in local time, and
/// the rest of the header as syslog-ng reads it.
fn iso_without_zone(raw: &[u8], expect_host: bool) -> Option<Message<'_>> {
    let (pri, rest) = split_pri(raw)?;
    let date_len = rest.iter().position(|&b| b == b' ')?;
    let date = std::str::from_utf8(&rest[..date_len]).ok()?;
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, date, ISO_WITHOUT_ZONE.iter()).ok()?;
    let naive = parsed.to_naive_datetime_with_offset(0).ok()?;
    let timestamp = naive.and_local_timezone(Local).earliest()?.fixed_offset();
    let rest = &rest[date_len + 1..];
    // The first word is the host unless it already is the tag (`prog:` or `prog[pid]`).
    let word = &rest[..rest.iter().position(|&b| b == b' ').unwrap_or(rest.len())];
    let pid_follows = word.contains(&b'[') && !word.starts_with(b"[");
    let (host, tag) = if !expect_host || is_tag(word) || pid_follows {
        (None, rest)
    } else {
        (Some(word), rest.get(word.len() + 1..).unwrap_or_default())
    };
    let tag = read_tag(tag);
    Some(Message {
        facility: (pri >> 3) as u8,
        severity: (pri & 7) as u8,
        timestamp: Some(timestamp),
        host,
        program: tag.program,
        pid: tag.pid,
        msgid: b"",
        header: tag.header,
        message: tag.message,
        rfc5424: false,
        malformed: false,
    })
}

/// What an unparseable message becomes: its PRI if valid, no program, the text after the
/// PRI as the message.
fn fallback(raw: &[u8]) -> Message<'_> {
    let (pri, rest) = split_pri(raw).unwrap_or((13, raw));
    Message {
        facility: (pri >> 3) as u8,
        severity: (pri & 7) as u8,
        timestamp: None,
        host: None,
        program: b"",
        pid: b"",
        msgid: b"",
        header: b"",
        message: rest,
        rfc5424: false,
        malformed: true,
    }
}

/// `<PRI>` at the start: its value (0–191) and the bytes after it.
fn split_pri(raw: &[u8]) -> Option<(u16, &[u8])> {
    let rest = raw.strip_prefix(b"<")?;
    let close = rest.iter().take(4).position(|&b| b == b'>')?;
    let digits = &rest[..close];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pri: u16 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (pri <= 191).then_some((pri, &rest[close + 1..]))
}

/// The year of an RFC 3164 date: the latest that does not put it more than a month in the
/// future (clocks drift, but logs come from the past). So a `Dec 31` message received on
/// Jan 1 is from the old year, and a `Jan 1` one received on Dec 31 from the new one.
fn nearest_year(date: IncompleteDate, now: DateTime<Local>) -> i32 {
    let (month, day, ..) = date;
    let today = now.date_naive();
    let y = now.year();
    [y + 1, y, y - 1]
        .into_iter()
        .filter_map(|year| Some((year, NaiveDate::from_ymd_opt(year, month, day)?)))
        .find(|(_, d)| (*d - today).num_days() <= 31)
        .map_or(y, |(year, _)| year)
}

/// A fixed local time, for tests.
#[cfg(test)]
fn at(y: i32, m: u32, d: u32) -> DateTime<Local> {
    Local.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str) -> Message<'_> {
        parse(raw.as_bytes(), at(2026, 11, 27), true)
    }

    #[test]
    fn nginx_with_hostname() {
        let m = p("<158>Nov 27 20:23:37 web1 pixel: 1379183721.115,foo=bar&baz=1");
        assert_eq!((m.facility, m.severity), (19, 6));
        assert_eq!(m.host, Some(&b"web1"[..]));
        assert_eq!(m.program, b"pixel");
        assert_eq!(m.message, b"1379183721.115,foo=bar&baz=1");
        assert!(!m.malformed);
        assert_eq!(m.timestamp.unwrap().year(), 2026);
    }

    #[test]
    fn nginx_nohostname_and_padded_day() {
        let m = p("<158>Nov  7 20:23:37 pixel: 1379183721.115,a=b");
        assert_eq!(m.host, None);
        assert_eq!(m.program, b"pixel");
        assert_eq!(m.message, b"1379183721.115,a=b");
    }

    #[test]
    fn no_space_after_the_tags_colon() {
        // syslog-ng: a tag ends at its colon, whatever follows; `pixel:no` is no host.
        for (raw, host, pid) in [
            ("<158>Nov 27 20:23:37 pixel:no space", None, &b""[..]),
            ("<158>Nov 27 20:23:37 pixel[12]:no space", None, b"12"),
            (
                "<158>Nov 27 20:23:37 web1 pixel:no space",
                Some(&b"web1"[..]),
                b"",
            ),
        ] {
            let m = p(raw);
            assert_eq!(
                (m.host, m.program, m.pid, m.message),
                (host, &b"pixel"[..], pid, &b"no space"[..]),
                "{raw}"
            );
        }
        // An IPv6 address is a host, on either date form.
        for host in ["::1", "fe80::1%eth0", "[2001:db8::1]"] {
            for date in ["Nov 27 20:23:37", "2026-11-27T20:23:37"] {
                let raw = format!("<158>{date} {host} pixel: x");
                let m = p(&raw);
                assert_eq!(
                    (m.host, m.program),
                    (Some(host.as_bytes()), &b"pixel"[..]),
                    "{raw}"
                );
            }
        }
    }

    #[test]
    fn without_hostnames_the_first_word_is_the_tag() {
        // As syslog-ng and rsyslog read local sockets: `web1` is the program.
        type Fields<'a> = (&'a [u8], &'a [u8], &'a [u8], &'a [u8]);
        let cases: [(&[u8], Fields); 3] = [
            (
                b"<158>Nov 27 20:23:37 web1 pixel: x",
                (b"web1", b"", b"web1 ", b"pixel: x"),
            ),
            (
                b"<158>Nov 27 20:23:37 pixel[7]:x",
                (b"pixel", b"7", b"pixel[7]:", b"x"),
            ),
            (
                b"<38>2026-11-27T21:28:57 localhost prg[1]: x",
                (b"localhost", b"", b"localhost ", b"prg[1]: x"),
            ),
        ];
        for (raw, fields) in cases {
            let m = parse(raw, at(2026, 11, 27), false);
            assert_eq!(m.host, None);
            assert_eq!((m.program, m.pid, m.header, m.message), fields);
        }
    }

    #[test]
    fn glibc_tag_with_pid() {
        let m = p("<13>Nov 27 20:23:37 root[4242]: hello  world  ");
        assert_eq!(m.program, b"root");
        assert_eq!(m.pid, b"4242");
        assert_eq!(m.host, None);
        // Trailing blanks are part of the message, as syslog-ng keeps them.
        assert_eq!(m.message, b"hello  world  ");
    }

    #[test]
    fn rfc5424_with_structured_data_and_bom() {
        let m = p("<13>1 2026-11-27T20:23:37.123+01:00 myhost app 0123 ID47 [ex@1 a=\"b\"] \u{feff}msg here");
        assert!(m.rfc5424);
        assert_eq!(m.host, Some(&b"myhost"[..]));
        assert_eq!(m.program, b"app");
        assert_eq!(m.pid, b"0123");
        assert_eq!(m.msgid, b"ID47");
        assert_eq!(m.message, b"msg here");
    }

    #[test]
    fn missing_pri_is_user_notice() {
        let m = p("Nov 27 20:23:37 host prog: msg");
        assert_eq!((m.facility, m.severity), (1, 5));
        assert_eq!(m.program, b"prog");
    }

    #[test]
    fn iso_date_without_zone_like_loggen() {
        let m =
            p("<38>2026-11-27T21:28:57 localhost prg00000[1234]: seq: 0000000001, thread: 0000");
        assert!(!m.malformed);
        assert_eq!((m.facility, m.severity), (4, 6));
        assert_eq!(m.host, Some(&b"localhost"[..]));
        assert_eq!((m.program, m.pid), (&b"prg00000"[..], &b"1234"[..]));
        assert_eq!(m.message, b"seq: 0000000001, thread: 0000");
        let stamp = m.timestamp.unwrap().naive_local();
        assert_eq!(stamp.to_string(), "2026-11-27 21:28:57");
        let m = p("<38>2026-11-27T21:28:57.123 prg: x");
        assert_eq!(
            (m.host, m.program, m.message),
            (None, &b"prg"[..], &b"x"[..])
        );
        let stamp = m.timestamp.unwrap().naive_local();
        assert_eq!(stamp.to_string(), "2026-11-27 21:28:57.123");
        // No 13th month: not a date, so the message cannot be parsed.
        assert!(p("<38>2026-13-27T21:28:57 prg: x").malformed);
    }

    #[test]
    fn garbage_goes_through_flagged() {
        let m = p("<158>not a syslog message");
        assert!(m.malformed);
        assert_eq!((m.facility, m.severity), (19, 6));
        assert_eq!(m.program, b"");
        assert_eq!(m.message, b"not a syslog message");
        let m = p("plain text");
        assert!(m.malformed);
        assert_eq!((m.facility, m.severity), (1, 5));
        assert_eq!(m.message, b"plain text");
    }

    #[test]
    fn non_utf8_message_bytes_are_kept() {
        let raw = b"<158>Nov 27 20:23:37 pixel: a\xff\xfeb";
        let m = parse(raw, at(2026, 11, 27), true);
        assert_eq!(m.program, b"pixel");
        assert_eq!(m.message, b"a\xff\xfeb");
    }

    #[test]
    fn non_utf8_in_the_header_loses_nothing() {
        for raw in [
            &b"<158>Nov 27 20:23:37 h\xff: x"[..],
            b"<158>Nov 27 20:23:37 \xffh p: x",
        ] {
            for expect_host in [true, false] {
                let m = parse(raw, at(2026, 11, 27), expect_host);
                assert!(
                    raw.ends_with(m.message) && m.message.ends_with(b": x"),
                    "{raw:?}"
                );
            }
        }
    }

    #[test]
    fn year_is_the_nearest() {
        let jan1 = at(2027, 1, 1);
        assert_eq!(nearest_year((12, 31, 23, 59, 59), jan1), 2026);
        assert_eq!(nearest_year((1, 1, 0, 0, 1), jan1), 2027);
        let dec31 = at(2026, 12, 31);
        assert_eq!(nearest_year((1, 1, 0, 0, 1), dec31), 2027);
        assert_eq!(nearest_year((6, 1, 0, 0, 0), dec31), 2026);
        // Feb 29 only exists in leap years.
        assert_eq!(nearest_year((2, 29, 0, 0, 0), at(2028, 3, 1)), 2028);
    }

    proptest::proptest! {
        /// Any bytes parse into a message without panicking, and the message is a tail of
        /// the input (never invented bytes).
        #[test]
        fn any_bytes_parse(
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            expect_host: bool,
        ) {
            let m = parse(&raw, at(2026, 11, 27), expect_host);
            proptest::prop_assert!(m.facility < 24 && m.severity < 8);
            proptest::prop_assert!(raw.ends_with(m.message) || m.message.is_empty());
            proptest::prop_assert!(m.message.is_empty() || m.header.is_empty() || raw.ends_with(&[m.header, m.message].concat()));
        }

        /// Syslog-shaped input with random fields parses and finds the program.
        #[test]
        fn shaped_input_parses(
            pri in 0u8..192,
            day in 1u32..29,
            program in "[a-z][a-z0-9_]{0,15}",
            msg in "[!-~][ -~]{0,80}",
            expect_host: bool,
        ) {
            let raw = format!("<{pri}>Mar {day:>2} 10:00:00 {program}: {msg}");
            let m = parse(raw.as_bytes(), at(2026, 3, 1), expect_host);
            proptest::prop_assert!(!m.malformed);
            proptest::prop_assert_eq!(m.program, program.as_bytes());
            proptest::prop_assert_eq!(m.message, msg.as_bytes());
            proptest::prop_assert_eq!(m.facility, pri >> 3);
        }
    }
}
