//! Record templates, compiled once at start-up into a list of parts so that rendering a
//! record is a walk over literals and variable lookups, never a parse.
//!
//! `http` holds nginx-style `$variables` for `serve`, read from a hit through
//! [`http::HitFields`]; `syslog` holds syslog-ng-style `${MACROS}` for `relay`, read from
//! a message through [`syslog::MessageFields`]. The transports implement those traits:
//! templates know no socket, no HTTP parser and no syslog parser.
//!
//! Escaping follows the program each imitates: HTTP values are escaped as nginx escapes
//! access-log values ([`escape_into`]); syslog values go out as received, as syslog-ng's
//! `template-escape(no)` does.

pub mod http;
pub mod syslog;

/// Appends `value` to `out`, escaping what could break a record the way nginx's access
/// log does (`escape=default`): `"`, `\`, control characters and bytes ≥ 0x7f become
/// `\xXX`. `delim`, the literal that follows the value in its template, is escaped too, so
/// that a consumer splitting on it finds its fields where the template put them.
pub fn escape_into(out: &mut Vec<u8>, value: &[u8], delim: Option<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) || Some(b) == delim {
            out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.push(b);
        }
    }
}

/// The delimiter a variable needs escaped: the first byte of the literal after it, if any.
pub(crate) fn delimiter_after(next_literal: Option<&[u8]>) -> Option<u8> {
    next_literal.and_then(|l| l.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(v: &[u8], d: Option<u8>) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, v, d);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_values_pass_through() {
        assert_eq!(esc(b"foo=bar&baz=1", None), "foo=bar&baz=1");
        assert_eq!(esc(b"a,b", None), "a,b");
    }

    #[test]
    fn nginx_escapes() {
        assert_eq!(
            esc(b"a\"b\\c\n\x7f\xe2", None),
            "a\\x22b\\x5Cc\\x0A\\x7F\\xE2"
        );
    }

    #[test]
    fn delimiter_is_escaped() {
        assert_eq!(esc(b"a,b", Some(b',')), "a\\x2Cb");
    }
}
