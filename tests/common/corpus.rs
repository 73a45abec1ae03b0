//! Readers for the public test vectors in `tests/corpus/` (see its README for the
//! sources and the notation).

use std::path::{Path, PathBuf};

pub fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}

/// One HTTP case: its name (`file: heading`) and the bytes sent.
pub struct HttpCase {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The cases of an `.http` file: each starts at a `=== name` line and runs to the next
/// one; lines before the first are comments. The text is in llhttp's notation.
pub fn http_cases(name: &str) -> Vec<HttpCase> {
    let text = std::fs::read_to_string(path(name)).expect("reading an HTTP corpus");
    let mut cases = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix("=== ") {
            cases.extend(current.take());
            current = Some((name.trim_end().to_owned(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
        }
    }
    cases.extend(current);
    cases
        .into_iter()
        .map(|(name, raw)| HttpCase {
            name,
            bytes: llhttp_input(&raw),
        })
        .collect()
}

/// llhttp's test notation (its `test/md-test.ts`): the block's last newline is dropped,
/// a backslash before a newline joins the lines, every newline is CRLF, and `\r`, `\n`,
/// `\t`, `\f`, `\xHH` and `\NNN` (octal) are those bytes (no escape for a backslash itself).
pub fn llhttp_input(raw: &str) -> Vec<u8> {
    let raw = raw.strip_suffix('\n').unwrap_or(raw);
    let joined = raw.replace("\\\r\n", "").replace("\\\n", "");
    let crlf = joined.replace("\r\n", "\n").replace('\n', "\r\n");
    unescape(crlf.as_bytes(), true)
}

/// Syslog messages, one a line: `#` starts a comment line, empty lines are skipped,
/// `\\`, `\xHH` are escapes (so a message can hold any byte, newlines included).
pub fn syslog_messages(name: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path(name)).expect("reading a syslog corpus");
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| unescape(l.as_bytes(), false))
        .collect()
}

fn unescape(s: &[u8], llhttp: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' || i + 1 == s.len() {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let next = s[i + 1];
        let hex_len = s[i + 2..]
            .iter()
            .take(2)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        let octal_len = s[i + 1..]
            .iter()
            .take(3)
            .take_while(|b| (b'0'..=b'7').contains(b))
            .count();
        match next {
            // llhttp has no escape for a backslash; the syslog files do.
            b'\\' if !llhttp => {
                out.push(b'\\');
                i += 2;
            }
            b'x' if hex_len > 0 => {
                let hex = std::str::from_utf8(&s[i + 2..i + 2 + hex_len]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2 + hex_len;
            }
            b'r' if llhttp => {
                out.push(b'\r');
                i += 2;
            }
            b'n' if llhttp => {
                out.push(b'\n');
                i += 2;
            }
            b't' if llhttp => {
                out.push(b'\t');
                i += 2;
            }
            b'f' if llhttp => {
                out.push(0x0c);
                i += 2;
            }
            _ if llhttp && octal_len > 0 => {
                let oct = std::str::from_utf8(&s[i + 1..i + 1 + octal_len]).unwrap();
                out.push(u8::from_str_radix(oct, 8).unwrap_or(0xff));
                i += 1 + octal_len;
            }
            _ => {
                out.push(b'\\');
                i += 1;
            }
        }
    }
    out
}
