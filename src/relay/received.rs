//! A syslog message as the relay received it, which is what its route templates read:
//! the parsed fields, when it came and from where. The templates know syslog-ng's macros,
//! not the syslog wire format: this is where the two meet.

use std::net::IpAddr;

use chrono::{DateTime, FixedOffset, Local};

use crate::syslog::Message;
use crate::template::syslog::{Host, MessageFields};

/// A message as the relay received it: what its route templates read.
pub struct Received<'a> {
    pub message: &'a Message<'a>,
    /// When the relay read it: the date of messages that carry none.
    pub received: DateTime<Local>,
    /// `${HOST}` of a message without a host name: the sender's address for network
    /// sources, this machine's name for local ones.
    pub peer: Option<IpAddr>,
    pub local_host: &'a [u8],
}

impl MessageFields for Received<'_> {
    fn program(&self) -> &[u8] {
        self.message.program
    }

    fn message(&self) -> &[u8] {
        self.message.message
    }

    fn pid(&self) -> &[u8] {
        self.message.pid
    }

    fn msgid(&self) -> &[u8] {
        self.message.msgid
    }

    fn facility(&self) -> u8 {
        self.message.facility
    }

    fn severity(&self) -> u8 {
        self.message.severity
    }

    fn header(&self) -> Option<&[u8]> {
        // RFC 5424 has no tag as sent: syslog-ng makes `${MSGHDR}` up from the fields.
        (!self.message.rfc5424).then_some(self.message.header)
    }

    fn time(&self) -> DateTime<FixedOffset> {
        self.message
            .timestamp
            .unwrap_or_else(|| self.received.fixed_offset())
    }

    fn host(&self) -> Host<'_> {
        match (self.message.host, self.peer) {
            (Some(name), _) => Host::Name(name),
            (None, Some(ip)) => Host::Address(ip),
            (None, None) => Host::Name(self.local_host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::syslog as template;
    use chrono::TimeZone;

    fn render(tpl: &str, raw: &str) -> String {
        let now = Local.with_ymd_and_hms(2026, 11, 27, 20, 0, 0).unwrap();
        let m = crate::syslog::parse(raw.as_bytes(), now, true);
        let r = Received {
            message: &m,
            received: now,
            peer: None,
            local_host: b"here",
        };
        let mut out = Vec::new();
        template::compile(tpl).unwrap().render(&r, &mut out);
        String::from_utf8(out).unwrap()
    }

    const NGINX: &str = "<158>Nov 27 20:23:37 pixel: 1379183721.115,foo=bar&baz=1";

    #[test]
    fn the_original_resp_template() {
        let t = "*3\r\n$$5\r\nLPUSH\r\n$$$(length ${PROGRAM})\r\n${PROGRAM}\r\n$$$(length ${MESSAGE})\r\n${MESSAGE}\r\n";
        assert_eq!(
            render(t, NGINX),
            "*3\r\n$5\r\nLPUSH\r\n$5\r\npixel\r\n$28\r\n1379183721.115,foo=bar&baz=1\r\n"
        );
    }

    #[test]
    fn macros() {
        assert_eq!(
            render(
                "$FACILITY.${SEVERITY} ${PRIORITY} ${PRI} ${HOST} ${MSGHDR}|${PID}",
                NGINX
            ),
            "local3.info info 158 here pixel: |"
        );
        assert_eq!(
            render("${MSGHDR}${MSG}", "<13>Nov 27 20:23:37 h app[12]: x"),
            "app[12]: x"
        );
        let iso = render("${ISODATE} ${DATE} ${UNIXTIME}", NGINX);
        assert!(iso.starts_with("2026-11-27T20:23:37"), "{iso}");
        assert!(iso.contains(" Nov 27 20:23:37 "), "{iso}");
    }

    #[test]
    fn values_are_not_escaped() {
        assert_eq!(
            render("${MESSAGE}", "<158>Nov 27 20:23:37 pixel: a \"b\"\\c"),
            "a \"b\"\\c"
        );
    }

    #[test]
    fn length_counts_bytes_and_nests() {
        assert_eq!(
            render("$(length ${MESSAGE})", "<13>Nov 27 20:23:37 h p: é"),
            "2"
        );
        assert_eq!(
            render(
                "$(length $(length ${MESSAGE}))",
                "<13>Nov 27 20:23:37 h p: 0123456789"
            ),
            "2"
        );
    }
}
