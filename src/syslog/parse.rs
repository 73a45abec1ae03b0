//! One syslog message → its fields, the way syslog-ng 3.38 fills its macros.
//!
//! The reading is syslog-ng's (`modules/syslogformat/syslog-format.c`), with its
//! `syslog-protocol` flag: RFC 5424 when the PRI is followed by version `1`, RFC 3164
//! otherwise. `tests/syslog_differential.rs` holds the two side by side on public corpora.
//! In RFC 3164 headers, as syslog-ng reads them:
//! - the PRI may be missing (`<13>`, user.notice) or empty (`<>`, 0);
//! - a Cisco sequence number (`16261: `) and clock mark (`*` or `.`) may precede the date,
//!   blanks may follow the PRI;
//! - the date is `Mmm dd hh:mm:ss[.frac]`, `Mmm dd yyyy hh:mm:ss[:]` (PIX/ASA),
//!   `Mmm dd hh:mm:ss yyyy` (Linksys) or ISO 8601 (`T` or a space), a `:` may follow it;
//!   without a date, the tag comes first (`<13>prog[42]: msg`);
//! - a host name is a word followed by a space (so `pixel: MSG`, nginx's `nohostname`
//!   form, has none); an IPv6 address may hold colons;
//! - the tag is `PROGRAM[PID]:` and one space, each part optional; the message is the
//!   rest, as received (trailing blanks kept).
//!
//! Where pixelpipe reads more than syslog-ng (a day not padded to two characters,
//! `Nov 7`), it keeps the better reading; the README lists these differences.
//! A message that cannot be parsed (a bad PRI, a broken RFC 5424 header) goes through
//! with an empty program and its text as the message, flagged `malformed`.

use std::cell::Cell;

use chrono::{
    DateTime, Datelike, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _,
    Timelike,
};

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
/// The user.notice PRI a message without one gets.
const DEFAULT_PRI: u32 = 13;

/// Parses one message (already cut out of its frame, trailing `\n`/`\r`/`\0` removed).
/// `now` resolves the year of RFC 3164 dates. With `expect_host` false, an RFC 3164
/// header has no host name (what syslog daemons assume of local sockets): the first word
/// after the date is the tag. Never fails: see the module notes.
pub fn parse<'a>(raw: &'a [u8], now: DateTime<Local>, expect_host: bool) -> Message<'a> {
    let Some((pri, after_pri)) = read_pri(raw) else {
        return fallback(raw);
    };
    if let Some(rest) = version_one(after_pri) {
        return rfc5424(pri, rest).unwrap_or_else(|| fallback(raw));
    }
    rfc3164(pri, after_pri, now, expect_host)
}

/// `<digits>` (or nothing: the default PRI). `None`: a PRI syslog-ng refuses (a
/// non-digit), or one no facility has (over 191).
fn read_pri(raw: &[u8]) -> Option<(u32, &[u8])> {
    let Some(rest) = raw.strip_prefix(b"<") else {
        return Some((DEFAULT_PRI, raw));
    };
    let end = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
    let digits = &rest[..end];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pri = digits.iter().try_fold(0u32, |n, &d| {
        n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })?;
    if pri > 191 {
        return None;
    }
    Some((pri, rest.get(end + 1..).unwrap_or_default()))
}

/// `1 ` after the PRI (digits up to a space, worth 1): the rest, for RFC 5424.
fn version_one(s: &[u8]) -> Option<&[u8]> {
    let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
    let digits = &s[..end];
    let one = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && digits.iter().rev().skip(1).all(|&d| d == b'0')
        && digits.last() == Some(&b'1');
    one.then(|| &s[end..])
}

fn rfc5424(pri: u32, s: &[u8]) -> Option<Message<'_>> {
    let mut c = Cur(s);
    c.space()?;
    let timestamp = if c.0.first() == Some(&b'-') {
        c.0 = &c.0[1..];
        None
    } else {
        Some(iso_date(&mut c, true)?)
    };
    c.space()?;
    let host = hostname(&mut c)?;
    c.space()?;
    let host = Some(host).filter(|h| !h.is_empty() && *h != b"-");
    let program = c.column(48);
    c.space()?;
    let pid = c.column(128);
    c.space()?;
    let msgid = c.column(32);
    c.space()?;
    structured_data(&mut c)?;
    let mut message = c.0;
    if !message.is_empty() {
        message = message.strip_prefix(b" ")?;
        message = message.strip_prefix(UTF8_BOM).unwrap_or(message);
    }
    Some(Message {
        facility: (pri >> 3) as u8,
        severity: (pri & 7) as u8,
        timestamp,
        host,
        program,
        pid,
        msgid,
        header: b"",
        message,
        rfc5424: true,
        malformed: false,
    })
}

fn rfc3164(pri: u32, s: &[u8], now: DateTime<Local>, expect_host: bool) -> Message<'_> {
    let mut c = Cur(s);
    cisco_sequence(&mut c);
    c.skip_spaces();
    if matches!(c.0.first(), Some(b'*' | b'.')) {
        c.0 = &c.0[1..];
    }
    let mut host = None;
    let timestamp = bsd_or_iso_date(&mut c, now);
    if timestamp.is_some() {
        c.skip_spaces();
        if expect_host && !c.0.starts_with(b"last message repeated") {
            host = hostname(&mut c);
            c.skip_spaces();
        }
    }
    let rest = c.0;
    let (program, pid, header, message) =
        if timestamp.is_some() && rest.starts_with(b"last message repeated") {
            (&b""[..], &b""[..], &b""[..], rest)
        } else {
            tag(rest)
        };
    Message {
        facility: (pri >> 3) as u8,
        severity: (pri & 7) as u8,
        timestamp,
        host,
        program,
        pid,
        msgid: b"",
        header,
        message,
        rfc5424: false,
        malformed: false,
    }
}

/// A cursor over what is left of the message.
#[derive(Clone, Copy)]
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn space(&mut self) -> Option<()> {
        self.0 = self.0.strip_prefix(b" ")?;
        Some(())
    }

    fn skip_spaces(&mut self) {
        while let Some(rest) = self.0.strip_prefix(b" ") {
            self.0 = rest;
        }
    }

    /// An RFC 5424 header field up to the next space, `-` for none, cut to `max` bytes.
    fn column(&mut self, max: usize) -> &'a [u8] {
        let end = self
            .0
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(self.0.len());
        let field = &self.0[..end];
        self.0 = &self.0[end..];
        if field == b"-" {
            return b"";
        }
        &field[..field.len().min(max)]
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let d = self.0.get(..n)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[n..];
        Some(d.iter().fold(0, |v, &b| v * 10 + u32::from(b - b'0')))
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.0 = self.0.strip_prefix(&[b])?;
        Some(())
    }
}

/// `16261: ` (digits, a colon, then a space): a Cisco sequence number, skipped.
fn cisco_sequence(c: &mut Cur<'_>) {
    let digits = c.0.iter().take_while(|b| b.is_ascii_digit()).count();
    if c.0.get(digits) == Some(&b':') && c.0.get(digits + 1) == Some(&b' ') {
        c.0 = &c.0[digits + 1..];
    }
}

/// A host name: up to a space or `[`; a colon ends it unless what came so far may be an
/// IPv6 address. It must be followed by a space; `None` (and the cursor left where it
/// was) otherwise.
fn hostname<'a>(c: &mut Cur<'a>) -> Option<&'a [u8]> {
    let s = c.0;
    let mut ipv6 = true;
    let mut digits_in_segment = 0;
    let mut segments = 0;
    let mut end = 0;
    while end < s.len() && s[end] != b' ' && s[end] != b'[' && end < 255 {
        let b = s[end];
        if ipv6 {
            if b == b':' {
                digits_in_segment = 0;
                segments += 1;
                ipv6 = segments < 8;
            } else if b.is_ascii_hexdigit() {
                digits_in_segment += 1;
                ipv6 = digits_in_segment <= 4;
            } else {
                ipv6 = false;
            }
        }
        if b == b':' && !ipv6 {
            break;
        }
        end += 1;
    }
    let word = &s[..end];
    // syslog-ng takes any hex-and-colons word for an IPv6 address (`cafe: msg` would lose
    // its program); pixelpipe wants a real one.
    if s.get(end) != Some(&b' ') || (word.contains(&b':') && !is_ipv6(word)) {
        return None;
    }
    c.0 = &s[end..];
    Some(word)
}

/// An IPv6 address, with or without a zone (`fe80::1%eth0`).
fn is_ipv6(word: &[u8]) -> bool {
    let Ok(word) = std::str::from_utf8(word) else {
        return false;
    };
    let address = word.split_once('%').map_or(word, |(a, _zone)| a);
    address.parse::<std::net::Ipv6Addr>().is_ok()
}

/// The RFC 3164 tag: `PROGRAM[PID]:` and one space; returns program, pid, the tag as
/// sent, and the message after it.
fn tag(s: &[u8]) -> (&[u8], &[u8], &[u8], &[u8]) {
    let program_len = s
        .iter()
        .position(|&b| matches!(b, b' ' | b'[' | b':'))
        .unwrap_or(s.len());
    let mut at = program_len;
    let mut pid: &[u8] = b"";
    if s.get(at) == Some(&b'[') {
        let start = at + 1;
        let len = s[start..]
            .iter()
            .position(|&b| matches!(b, b' ' | b']' | b':'))
            .unwrap_or(s.len() - start);
        at = start + len;
        if at < s.len() {
            pid = &s[start..at];
        }
        if s.get(at) == Some(&b']') {
            at += 1;
        }
    }
    if s.get(at) == Some(&b':') {
        at += 1;
    }
    if s.get(at) == Some(&b' ') {
        at += 1;
    }
    (&s[..program_len], pid, &s[..at], &s[at..])
}

/// RFC 5424 structured data, checked as syslog-ng checks it (a broken element makes the
/// message unparseable) and skipped: `-`, or `[ID param="value"…]…` (names of any
/// length up to syslog-ng's 255 bytes, values with `\` escapes and no bare `]`), or
/// nothing at all.
fn structured_data(c: &mut Cur<'_>) -> Option<()> {
    if let Some(rest) = c.0.strip_prefix(b"-") {
        c.0 = rest;
        return Some(());
    }
    let name_char = |b: u8| b.is_ascii() && !matches!(b, b'=' | b' ' | b']' | b'"');
    let mut s = c.0;
    while let Some(rest) = s.strip_prefix(b"[") {
        s = rest;
        let id = s.iter().take_while(|&&b| b != b' ' && b != b']').count();
        if id == 0 || id > 248 || !s[..id].iter().all(|&b| name_char(b)) {
            return None;
        }
        s = &s[id..];
        while s.first() != Some(&b']') {
            s = s.strip_prefix(b" ")?;
            let name = s.iter().take_while(|&&b| b != b'=').count();
            if name == 0 || name > 255 - id || !s[..name].iter().all(|&b| name_char(b)) {
                return None;
            }
            s = s[name..].strip_prefix(b"=\"")?;
            let mut i = 0;
            let mut quoted = false;
            loop {
                match (s.get(i)?, quoted) {
                    (b'"', false) => break,
                    (b'\\', false) => quoted = true,
                    (b']', false) => return None,
                    _ => quoted = false,
                }
                i += 1;
            }
            s = &s[i + 1..];
        }
        s = &s[1..];
    }
    c.0 = s;
    Some(())
}

/// An ISO 8601 date: `YYYY-MM-DD(T| )hh:mm:ss[.frac][Z|±hh:mm]`; without a zone, local
/// time. `strict`: RFC 5424's (`T` only).
fn iso_date(c: &mut Cur<'_>, strict: bool) -> Option<DateTime<FixedOffset>> {
    let mut d = *c;
    let year = d.digits(4)?;
    d.expect(b'-')?;
    let month = d.digits(2)?;
    d.expect(b'-')?;
    let day = d.digits(2)?;
    match d.0.first()? {
        b'T' => {}
        b' ' if !strict => {}
        _ => return None,
    }
    d.0 = &d.0[1..];
    let time = clock(&mut d)?;
    let nanos = fraction(&mut d);
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let offset = match d.0.first() {
        Some(b'Z') => {
            d.0 = &d.0[1..];
            Some(0)
        }
        Some(&sign @ (b'+' | b'-'))
            if d.0.len() >= 6
                && d.0[1..3].iter().all(u8::is_ascii_digit)
                && d.0[3] == b':'
                && d.0[4..6].iter().all(u8::is_ascii_digit)
                && !d.0.get(6).is_some_and(u8::is_ascii_digit) =>
        {
            let h = i32::from(d.0[1] - b'0') * 10 + i32::from(d.0[2] - b'0');
            let m = i32::from(d.0[4] - b'0') * 10 + i32::from(d.0[5] - b'0');
            d.0 = &d.0[6..];
            Some(if sign == b'-' { -1 } else { 1 } * (h * 3600 + m * 60))
        }
        _ => None,
    };
    *c = d;
    match offset {
        Some(secs) => FixedOffset::east_opt(secs)?
            .from_local_datetime(&NaiveDateTime::new(date, time.with_nanosecond(nanos)?))
            .single(),
        None => LocalDate {
            year: Year::Given(date.year()),
            month,
            day,
            time,
        }
        .resolve()?
        .with_nanosecond(nanos),
    }
}

/// A date in local time to the second, as a header gives it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct LocalDate {
    year: Year,
    month: u32,
    day: u32,
    time: NaiveTime,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Year {
    Given(i32),
    /// None in the header: the one nearest to this day (see [`nearest_year`]).
    NearestTo(NaiveDate),
}

thread_local! {
    /// The last date resolved on this thread. Resolving one is the dearest part of a
    /// parse (chrono's local time zone reads the clock to check its cache, the nearest
    /// year takes date arithmetic), and a sender stamps a whole second's messages with
    /// the same date.
    static LAST_DATE: Cell<Option<(LocalDate, DateTime<FixedOffset>)>> = const { Cell::new(None) };
}

impl LocalDate {
    /// The date in the local time zone (the earlier one in a DST fold).
    fn resolve(self) -> Option<DateTime<FixedOffset>> {
        if let Some((last, stamp)) = LAST_DATE.get() {
            if last == self {
                return Some(stamp);
            }
        }
        let year = match self.year {
            Year::Given(y) => y,
            Year::NearestTo(today) => nearest_year((self.month, self.day), today),
        };
        let date = NaiveDate::from_ymd_opt(year, self.month, self.day)?;
        let stamp = NaiveDateTime::new(date, self.time)
            .and_local_timezone(Local)
            .earliest()?
            .fixed_offset();
        LAST_DATE.set(Some((self, stamp)));
        Some(stamp)
    }
}

/// `hh:mm:ss`.
fn clock(c: &mut Cur<'_>) -> Option<NaiveTime> {
    let h = c.digits(2)?;
    c.expect(b':')?;
    let m = c.digits(2)?;
    c.expect(b':')?;
    let s = c.digits(2)?;
    NaiveTime::from_hms_opt(h, m, s)
}

/// `.digits` or `,digits` (Aruba), as nanoseconds (microsecond precision, as syslog-ng).
fn fraction(c: &mut Cur<'_>) -> u32 {
    let Some(rest) = c.0.strip_prefix(b".").or_else(|| c.0.strip_prefix(b",")) else {
        return 0;
    };
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    c.0 = &rest[n..];
    let micros = rest[..n.min(6)]
        .iter()
        .fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'))
        * 10u32.pow(6 - n.min(6) as u32);
    micros * 1000
}

/// `Jan`…`Dec`, the first letter upper case, the rest in any case (syslog-ng's rule).
fn month(c: &mut Cur<'_>) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let m = c.0.get(..3)?;
    if !m[0].is_ascii_uppercase() {
        return None;
    }
    let i = MONTHS
        .iter()
        .position(|name| m.eq_ignore_ascii_case(&name[..]))?;
    c.0 = &c.0[3..];
    Some(i as u32 + 1)
}

/// The day of a BSD date: two characters, `07` or ` 7`; pixelpipe also reads `7`.
fn day(c: &mut Cur<'_>) -> Option<u32> {
    let s = c.0;
    let (d, len) = match (s.first()?, s.get(1)) {
        (b' ', Some(d)) if d.is_ascii_digit() => (u32::from(d - b'0'), 2),
        (a, Some(b)) if a.is_ascii_digit() && b.is_ascii_digit() => {
            (u32::from(a - b'0') * 10 + u32::from(b - b'0'), 2)
        }
        (a, Some(b' ')) if a.is_ascii_digit() => (u32::from(a - b'0'), 1),
        _ => return None,
    };
    c.0 = &s[len..];
    Some(d)
}

/// An RFC 3164 header's date, in any of the forms syslog-ng reads, with the `:` that
/// may follow it (Cisco).
fn bsd_or_iso_date(c: &mut Cur<'_>, now: DateTime<Local>) -> Option<DateTime<FixedOffset>> {
    let stamp = if c.0.len() >= 19 && c.0[4] == b'-' && c.0[7] == b'-' {
        iso_date(c, false)?
    } else {
        let mut d = *c;
        let month = month(&mut d)?;
        d.expect(b' ')?;
        let day = day(&mut d)?;
        d.expect(b' ')?;
        // `Mmm dd yyyy hh:mm:ss` (PIX/ASA), else `Mmm dd hh:mm:ss[.frac][ yyyy]`.
        let (year, time, nanos) =
            if d.0.len() > 4 && d.0[..4].iter().all(u8::is_ascii_digit) && d.0[4] == b' ' {
                let year = d.digits(4)?;
                d.expect(b' ')?;
                (Some(year as i32), clock(&mut d)?, 0)
            } else {
                let time = clock(&mut d)?;
                let nanos = fraction(&mut d);
                let linksys = d.0.len() >= 6
                    && d.0[0] == b' '
                    && d.0[1..5].iter().all(u8::is_ascii_digit)
                    && d.0[5].is_ascii_whitespace();
                let year = if linksys {
                    d.0 = &d.0[1..];
                    d.digits(4).map(|y| y as i32)
                } else {
                    None
                };
                (year, time, nanos)
            };
        let year = match year {
            Some(y) => Year::Given(y),
            None => Year::NearestTo(now.date_naive()),
        };
        let stamp = LocalDate {
            year,
            month,
            day,
            time,
        }
        .resolve()?
        .with_nanosecond(nanos)?;
        *c = d;
        stamp
    };
    if let Some(rest) = c.0.strip_prefix(b":") {
        c.0 = rest;
    }
    Some(stamp)
}

/// What an unparseable message becomes: its PRI if valid, no program, the text after the
/// PRI as the message.
fn fallback(raw: &[u8]) -> Message<'_> {
    let (pri, rest) = match read_pri(raw) {
        Some((pri, rest)) if raw.starts_with(b"<") => (pri, rest),
        _ => (DEFAULT_PRI, raw),
    };
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

/// The year of an RFC 3164 date: the latest that does not put it more than a month in the
/// future (clocks drift, but logs come from the past). So a `Dec 31` message received on
/// Jan 1 is from the old year, and a `Jan 1` one received on Dec 31 from the new one.
fn nearest_year((month, day): (u32, u32), today: NaiveDate) -> i32 {
    let y = today.year();
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
        // (`[2001:db8::1]` is no host name: syslog-ng stops a host name at `[`.)
        for host in ["::1", "fe80::1%eth0", "2001:db8::1"] {
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
        // No 13th month: not a date, so the first word is the tag.
        let m = p("<38>2026-13-27T21:28:57 prg: x");
        assert_eq!((m.timestamp, m.program), (None, &b"2026-13-27T21"[..]));
    }

    #[test]
    fn without_a_date_the_tag_comes_first() {
        // As syslog-ng reads them (`<13>prog[42]: msg` is what glibc's syslog(3) sends
        // without a date).
        let m = p("<13>prog[42]: msg");
        assert!(!m.malformed);
        assert_eq!(
            (m.program, m.pid, m.message),
            (&b"prog"[..], &b"42"[..], &b"msg"[..])
        );
        assert_eq!(m.timestamp, None);
        let m = p("plain text");
        assert_eq!((m.facility, m.severity), (1, 5));
        assert_eq!((m.program, m.message), (&b"plain"[..], &b"text"[..]));
    }

    #[test]
    fn bad_pri_goes_through_flagged() {
        for raw in ["<aaa>x", "<192>Nov 27 20:23:37 host p: x", "<1x>"] {
            let m = p(raw);
            assert!(m.malformed, "{raw}");
            assert_eq!((m.facility, m.severity), (1, 5));
            assert_eq!(m.program, b"");
            assert_eq!(m.message, raw.as_bytes());
        }
        // A broken RFC 5424 header keeps its PRI.
        let m = p("<165>1 2003-13-11T22:14:15Z h a - - - x");
        assert!(m.malformed);
        assert_eq!((m.facility, m.severity), (20, 5));
        assert_eq!(m.message, b"1 2003-13-11T22:14:15Z h a - - - x");
        // An empty PRI is 0, as in syslog-ng.
        assert_eq!(p("<>Nov 27 20:23:37 h p: x").facility, 0);
    }

    #[test]
    fn syslog_ng_header_forms() {
        let m = p("<189>16261: May 28 16:09:56.185: %SYS-5-CONFIG_I: Configured");
        assert_eq!(
            (m.host, m.program, m.message),
            (None, &b"%SYS-5-CONFIG_I"[..], &b"Configured"[..])
        );
        let m = p("<13> Nov 27 20:23:37 host prog: spaced");
        assert_eq!((m.host, m.program), (Some(&b"host"[..]), &b"prog"[..]));
        let m = p("<13>Nov 27 20:23:37.123 host prog: x");
        assert_eq!(m.timestamp.unwrap().nanosecond(), 123_000_000);
        let m = p("<13>Nov 27 2025 20:23:37 host prog: x");
        assert_eq!(m.timestamp.unwrap().year(), 2025);
        let m = p("<13>Aug 30 23:00:05 X4711");
        assert_eq!((m.host, m.program), (None, &b"X4711"[..]));
        let m = p("<13>2025-11-27 20:23:37 host prog: x");
        assert_eq!((m.host, m.program), (Some(&b"host"[..]), &b"prog"[..]));
        // RFC 5424 needs version 1; anything else is read as RFC 3164.
        let m = p("<13>2 2025-11-27T20:23:37Z h app - - - x");
        assert!(!m.rfc5424);
        assert_eq!(m.program, b"2");
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
                    raw.ends_with(&[m.header, m.message].concat()) && m.message.ends_with(b"x"),
                    "{raw:?}"
                );
            }
        }
    }

    #[test]
    fn year_is_the_nearest() {
        let jan1 = at(2027, 1, 1).date_naive();
        assert_eq!(nearest_year((12, 31), jan1), 2026);
        assert_eq!(nearest_year((1, 1), jan1), 2027);
        let dec31 = at(2026, 12, 31).date_naive();
        assert_eq!(nearest_year((1, 1), dec31), 2027);
        assert_eq!(nearest_year((6, 1), dec31), 2026);
        // Feb 29 only exists in leap years.
        assert_eq!(nearest_year((2, 29), at(2028, 3, 1).date_naive()), 2028);
    }

    #[test]
    fn a_reused_date_is_the_same_header_on_the_same_day() {
        let year = |raw: &[u8], now| parse(raw, now, true).timestamp.map(|t| t.year());
        let dec31 = b"<13>Dec 31 23:59:59 host p: m";
        assert_eq!(year(dec31, at(2027, 1, 1)), Some(2026));
        assert_eq!(year(dec31, at(2027, 1, 1)), Some(2026));
        // Received on another day, the same header may be of another year.
        assert_eq!(year(dec31, at(2027, 12, 30)), Some(2027));
        let stamp = |raw: &[u8]| parse(raw, at(2026, 11, 27), true).timestamp;
        let whole = stamp(b"<13>Nov 28 12:00:00 host p: m").unwrap();
        let frac = stamp(b"<13>Nov 28 12:00:00.250 host p: m").unwrap();
        assert_eq!((frac - whole).num_milliseconds(), 250);
        // The same time in ISO form is not the same date as the BSD one in another year.
        let iso = stamp(b"<13>2025-11-28T12:00:00 host p: m").unwrap();
        assert_eq!(iso.year(), 2025);
        assert_eq!(iso.time(), whole.time());
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
