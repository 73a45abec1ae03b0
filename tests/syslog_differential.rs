//! `pixelpipe relay` side by side with Debian's syslog-ng: every message of the public
//! corpora in `tests/corpus/syslog/` is sent as one UDP datagram to each, and both write
//! every field syslog-ng's macros give (program, pid, host, facility, severity, msgid,
//! date, header, message) with the same template to a file. The lines must be the same,
//! except for the known differences listed below, each with its reason. A listed message
//! that stops differing fails too, so the list (repeated in the README's compatibility
//! section) stays true.
//!
//! syslog-ng runs with `keep-hostname(yes)` and `use-dns(no)`: by default it replaces the
//! host a network message names with the sender's name, which says nothing about parsing.

#[allow(unused_imports)]
mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};

use common::corpus::syslog_messages;
use common::relay::{free_udp_port, syslog_ng_command};
use common::{wait_until, Pixelpipe};

const END: &str = "<<END>>\n";
/// Both programs' template: every field, tab-separated, the message last. The relay's file
/// route ends each record with a newline itself; syslog-ng's `file()` is told to.
const TEMPLATE: &str = "P=${PROGRAM}\\tI=${PID}\\tH=${HOST}\\tF=${FACILITY}\\tS=${SEVERITY}\\tM=${MSGID}\\tD=${ISODATE}\\tR=${MSGHDR}\\tX=${MESSAGE}<<END>>";

/// Why pixelpipe reads a message differently from syslog-ng, on purpose: each rule
/// matches the messages (and syslog-ng's record of them) it explains.
struct Known {
    reason: &'static str,
    applies: fn(message: &[u8], syslog_ng: &str) -> bool,
}

const KNOWN_DIFFERENCES: &[Known] = &[
    Known {
        reason: "syslog-ng turns a message it cannot parse into an error message of its own \
                 (program syslog-ng, its pid, facility syslog); the relay passes it on \
                 unparsed (empty program, its text as the message) and counts it as malformed",
        applies: |_, syslog_ng| syslog_ng.starts_with("P=syslog-ng\t"),
    },
    Known {
        reason: "the relay reads an RFC 3164 date whose day is not padded to two characters \
                 (`Mar 7 19:06:53`); syslog-ng reads no date and takes the month for the program",
        applies: |m, _| {
            let after_pri = m.iter().position(|&b| b == b'>').map_or(m, |i| &m[i + 1..]);
            after_pri.len() > 6
                && after_pri[..3].iter().all(u8::is_ascii_alphabetic)
                && after_pri[3] == b' '
                && after_pri[4].is_ascii_digit()
                && after_pri[5] == b' '
        },
    },
    Known {
        reason: "the relay's file route writes one line per message: a newline inside a field \
                 becomes a space there (a Redis route gets the bytes as sent)",
        applies: |m, _| m.strip_suffix(b"\n").unwrap_or(m).contains(&b'\n'),
    },
    Known {
        reason: "a PRI above 191 names no facility: the relay reads the message as unparsed \
                 (user.notice, its text); syslog-ng makes up a facility number",
        applies: |m, _| {
            let digits: Vec<u8> = m
                .iter()
                .skip(1)
                .take_while(|b| b.is_ascii_digit())
                .copied()
                .collect();
            m.starts_with(b"<")
                && std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse::<u64>().ok())
                    .is_some_and(|p| p > 191)
        },
    },
    Known {
        reason: "the relay removes a trailing CR with the LF; syslog-ng keeps it in a datagram",
        applies: |m, _| m.ends_with(b"\r\n") || m.ends_with(b"\r"),
    },
];

#[test]
fn corpora_read_as_syslog_ng_reads_them() {
    let files = [
        "syslog/rsyslog-testbench.txt",
        "syslog/go-syslog.txt",
        "syslog/rfc-and-vendors.txt",
    ];
    let messages: Vec<Vec<u8>> = files.iter().flat_map(|f| syslog_messages(f)).collect();
    assert!(
        messages.len() > 250,
        "only {} messages read",
        messages.len()
    );
    let started = Utc::now();

    let dir = tempfile::tempdir().unwrap();
    let sng = SyslogNgUdp::start(dir.path());
    let relay_port = free_udp_port();
    let relay_file = dir.path().join("relay.out");
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[[relay.sources]]\ntype = \"udp\"\naddress = \"127.0.0.1:{relay_port}\"\n\n\
             [[relay.routes]]\ndestination = {{ file = {{ path = {relay_file:?}, template = \"{TEMPLATE}\" }} }}\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let _relay = Pixelpipe::start(
        &dir.path().join("data"),
        &[
            "--config",
            &config,
            "--redis",
            "redis://127.0.0.1:1",
            "relay",
        ],
    );

    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for port in [sng.port, relay_port] {
        for m in &messages {
            sender.send_to(m, ("127.0.0.1", port)).unwrap();
            // Pace the datagrams a little: neither receive buffer may overflow.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let read = |path: &Path| -> Vec<String> {
        let text = std::fs::read(path).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        text.split_terminator(END).map(String::from).collect()
    };
    // Both write one record a message; what is missing after a while shows below.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline
        && (read(&sng.out).len() < messages.len() || read(&relay_file).len() < messages.len())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let theirs = read(&sng.out);
    let ours = read(&relay_file);
    assert_eq!(
        (theirs.len(), ours.len()),
        (messages.len(), messages.len()),
        "records written by syslog-ng and the relay, for {} messages; the relay's last: {:?}",
        messages.len(),
        ours.last()
    );

    let mut unexpected = Vec::new();
    let mut stale = Vec::new();
    let mut differing = 0;
    let mut explained = vec![0; KNOWN_DIFFERENCES.len()];
    for ((m, t), o) in messages.iter().zip(&theirs).zip(&ours) {
        let shown = escape(m);
        let known = KNOWN_DIFFERENCES.iter().position(|k| (k.applies)(m, t));
        if same(t, o, started) {
            if let Some(k) = known {
                stale.push(format!("{shown} ({})", KNOWN_DIFFERENCES[k].reason));
            }
            continue;
        }
        differing += 1;
        if let Some(k) = known {
            explained[k] += 1;
        } else {
            unexpected.push(format!(
                "{shown}\n    syslog-ng: {t:?}\n    relay:     {o:?}"
            ));
        }
    }
    for (k, n) in KNOWN_DIFFERENCES.iter().zip(&explained) {
        assert!(*n > 0, "known difference explains no message: {}", k.reason);
    }
    eprintln!(
        "{} messages, {differing} differ, by the known differences: {explained:?}",
        messages.len(),
    );
    assert!(
        unexpected.is_empty(),
        "{} of {} messages read differently from syslog-ng:\n{}",
        unexpected.len(),
        messages.len(),
        unexpected.join("\n")
    );
    assert!(
        stale.is_empty(),
        "listed as known differences, but now the same as syslog-ng: {stale:?}"
    );
}

/// The same record, or the same but for the date of a message that had none (each
/// program dates it when it received it, a moment apart).
fn same(theirs: &str, ours: &str, started: DateTime<Utc>) -> bool {
    if theirs == ours {
        return true;
    }
    let date = |r: &str| -> Option<(String, DateTime<Utc>)> {
        let start = r.find("\tD=")? + 3;
        let end = start + r[start..].find('\t')?;
        let date = DateTime::parse_from_rfc3339(&r[start..end]).ok()?;
        Some((format!("{}{}", &r[..start], &r[end..]), date.into()))
    };
    let received = |d: DateTime<Utc>| (d - started).num_seconds().abs() < 120;
    match (date(theirs), date(ours)) {
        (Some((t, td)), Some((o, od))) => t == o && received(td) && received(od),
        _ => false,
    }
}

/// A message as the corpus files write it.
fn escape(m: &[u8]) -> String {
    let mut s = String::new();
    for chunk in m.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                c if (c as u32) < 0x20 || c == '\x7f' => {
                    s.push_str(&format!("\\x{:02X}", c as u32))
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02X}"));
        }
    }
    s
}

/// Debian's syslog-ng with a UDP source and the comparison template to a file.
struct SyslogNgUdp {
    child: Child,
    port: u16,
    out: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl SyslogNgUdp {
    fn start(parent: &Path) -> SyslogNgUdp {
        let dir = parent.join("syslog-ng");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_udp_port();
        let out = dir.join("out");
        let conf = format!(
            "@version: 3.38\n\
             options {{ stats-freq(0); keep-hostname(yes); use-dns(no); }};\n\
             source s_udp {{ udp(ip(\"127.0.0.1\") port({port}) flags(syslog-protocol)); }};\n\
             destination d_file {{ file(\"{out}\" template(\"{TEMPLATE}\\n\")); }};\n\
             log {{ source(s_udp); destination(d_file); }};\n",
            out = out.display(),
        );
        std::fs::write(dir.join("syslog-ng.conf"), conf).unwrap();
        let child = syslog_ng_command()
            .args(["-F", "--no-caps", "-f"])
            .arg(dir.join("syslog-ng.conf"))
            .arg("-R")
            .arg(dir.join("persist"))
            .arg("-c")
            .arg(dir.join("ctl"))
            .arg("-p")
            .arg(dir.join("pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("starting syslog-ng");
        let mut s = SyslogNgUdp {
            child,
            port,
            out,
            dir,
        };
        // Ready once its UDP port is taken.
        wait_until("syslog-ng's UDP socket", Duration::from_secs(10), || {
            if let Ok(Some(status)) = s.child.try_wait() {
                let err = std::fs::read_to_string(s.dir.join("stderr")).unwrap_or_default();
                panic!("syslog-ng exited ({status}):\n{err}");
            }
            UdpSocket::bind(("127.0.0.1", port)).is_err()
        });
        s
    }
}

impl Drop for SyslogNgUdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
