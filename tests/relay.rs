//! `pixelpipe relay` end to end, with real senders: util-linux `logger` over every
//! transport, raw TCP for framing edge cases, routes from a configuration file, and a
//! `kill -9` with Redis down. Every record is checked byte for byte. (nginx has a file of
//! its own, `relay_nginx.rs`.)

#[allow(unused_imports)]
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use std::process::{Command, Stdio};

use common::relay::{lines, logger, Relay};
use common::{free_port, require, self_signed_cert, wait_until, Pixelpipe, Redis, BIN};

const WAIT: Duration = Duration::from_secs(30);

fn wait_for_list(redis: &Redis, key: &str, len: usize) {
    wait_until(&format!("{len} records in Redis list {key}"), WAIT, || {
        redis.llen(key) >= len
    });
}

#[test]
fn logger_over_every_transport_byte_for_byte() {
    let redis = Redis::start();
    let relay = Relay::start(&redis, &[]);
    let socket = relay.socket.display().to_string();
    let (udp, tcp) = (relay.udp.to_string(), relay.tcp.to_string());
    // Quotes, backslashes, commas, UTF-8 and trailing blanks reach Redis unescaped, as
    // syslog-ng's `${MESSAGE}` puts them there.
    let odd = "1379183721.115,q=\"a\\b\" é  ";
    let cases: Vec<(&str, Vec<&str>, String)> = vec![
        (
            "via_unix",
            vec!["-u", &socket],
            "over the unix socket".into(),
        ),
        ("via_unix", vec!["-u", &socket], odd.into()),
        (
            "via_udp",
            vec!["-d", "-n", "127.0.0.1", "-P", &udp],
            "over UDP, rfc5424 by default".into(),
        ),
        (
            "via_udp",
            vec!["-d", "--rfc3164", "-n", "127.0.0.1", "-P", &udp],
            "over UDP, rfc3164".into(),
        ),
        (
            "via_tcp_lf",
            vec!["-T", "-n", "127.0.0.1", "-P", &tcp],
            "over TCP, newline-terminated".into(),
        ),
        (
            "via_tcp_lf",
            vec!["-T", "--rfc3164", "-n", "127.0.0.1", "-P", &tcp],
            odd.into(),
        ),
        (
            "via_tcp_octet",
            vec!["-T", "--octet-count", "-n", "127.0.0.1", "-P", &tcp],
            "over TCP, octet-counted".into(),
        ),
        (
            "via_5424",
            vec![
                "-T",
                "--rfc5424",
                "--sd-id",
                "zoo@123",
                "--sd-param",
                "tiger=\"hungry\"",
                "--msgid",
                "ID7",
                "-n",
                "127.0.0.1",
                "-P",
                &tcp,
            ],
            "with structured data".into(),
        ),
    ];
    for (tag, transport, message) in &cases {
        let mut args = transport.clone();
        args.extend([
            "-p",
            "local3.info",
            "-t",
            tag,
            "--id=4242",
            message.as_str(),
        ]);
        logger(&args);
    }
    // Not local3: to the file, in syslog-ng's default file format.
    logger(&[
        "-u",
        &socket,
        "-p",
        "user.notice",
        "-t",
        "other",
        "--id=4242",
        "to the file",
    ]);
    logger(&[
        "-T",
        "-n",
        "127.0.0.1",
        "-P",
        &tcp,
        "-p",
        "mail.err",
        "-t",
        "mailer",
        "also to the file",
    ]);

    for key in [
        "via_unix",
        "via_udp",
        "via_tcp_lf",
        "via_tcp_octet",
        "via_5424",
    ] {
        let expected: Vec<String> = cases
            .iter()
            .filter(|c| c.0 == key)
            .map(|c| c.2.clone())
            .collect();
        wait_for_list(&redis, key, expected.len());
        assert_eq!(redis.list_oldest_first(key), expected, "list {key}");
    }
    wait_until("two lines in the file", WAIT, || {
        relay.other_lines().len() >= 2
    });
    let file = relay.other_lines();
    assert_eq!(file.len(), 2, "{file:?}");
    // `${DATE} ${HOST} ${MSGHDR}${MESSAGE}`: `Nov 27 20:23:37 host other[4242]: to the file`.
    let unix_line = file
        .iter()
        .find(|l| l.contains("other"))
        .expect("the unix line");
    assert!(
        unix_line.ends_with(" other[4242]: to the file"),
        "{unix_line}"
    );
    assert_eq!(unix_line.as_bytes()[3], b' ', "date first: {unix_line}");
    assert!(
        file.iter()
            .any(|l| l.ends_with(" mailer: also to the file")),
        "{file:?}"
    );
    assert_eq!(relay.counter("pixelpipe_relay_malformed_total"), 0.0);
    assert_eq!(
        relay.counter("pixelpipe_relay_received_total"),
        cases.len() as f64 + 2.0
    );
}

/// Framing edge cases over raw TCP: both framings, NUL/CR endings, an over-long line, a
/// line that is not syslog at all, and an octet count that cannot be trusted.
#[test]
fn tcp_framing_and_bad_input() {
    let redis = Redis::start();
    let relay = Relay::start(&redis, &[]);
    let mut lf = TcpStream::connect(relay.tcp_addr()).unwrap();
    let long = "x".repeat(70_000);
    let input = format!(
        "<158>Nov 27 20:23:37 web1 pixel: one\r\n\
         <158>Nov 27 20:23:37 pixel: two\0\n\
         this is not syslog\n\
         <158>Nov 27 20:23:37 pixel: {long}\n\
         <158>Nov 27 20:23:37 pixel: three"
    );
    lf.write_all(input.as_bytes()).unwrap();
    drop(lf);
    wait_for_list(&redis, "pixel", 4);
    let mut octet = TcpStream::connect(relay.tcp_addr()).unwrap();
    let frames = [
        "<158>Nov 27 20:23:37 pixel: four",
        "<158>Nov 27 20:23:37 pixel: five\n",
    ];
    for f in frames {
        write!(octet, "{} {f}", f.len()).unwrap();
    }
    octet.write_all(b"12x garbage after a bad count").unwrap();
    wait_for_list(&redis, "pixel", 6);
    let got = redis.list_oldest_first("pixel");
    assert_eq!(got.len(), 6, "one record per message");
    assert_eq!(got[..2], ["one", "two"]);
    // Truncated to the 64 KiB maximum message size, header included.
    assert!(got[2].len() < 65_536 && got[2].len() > 65_000 && got[2].bytes().all(|b| b == b'x'));
    assert_eq!(got[3..], ["three", "four", "five"]);
    wait_until("the bad count to be counted", WAIT, || {
        relay.counter("pixelpipe_relay_framing_errors_total") == 1.0
    });
    assert_eq!(relay.counter("pixelpipe_relay_truncated_total"), 1.0);
    // Read as syslog-ng reads it: no PRI (user.notice), no date, so `this` is the program.
    assert_eq!(relay.counter("pixelpipe_relay_malformed_total"), 0.0);
    // The line is not lost: it goes to the file.
    wait_until("the malformed line in the file", WAIT, || {
        !relay.other_lines().is_empty()
    });
    let file = relay.other_lines();
    assert!(
        file[0].ends_with(" 127.0.0.1 this is not syslog"),
        "{file:?}"
    );
}

/// SIGHUP reopens the file destination, as `logrotate` expects of a syslog daemon: lines
/// before it stay in the rotated file, lines after it go to a new file at the path.
#[test]
fn hangup_reopens_the_file_after_rotation() {
    let redis = Redis::start();
    let relay = Relay::start(&redis, &[]);
    let mut tcp = TcpStream::connect(relay.tcp_addr()).unwrap();
    writeln!(tcp, "<13>Nov 27 20:23:37 host app: before rotation").unwrap();
    wait_until("the first line in the file", WAIT, || {
        relay.other_lines().len() == 1
    });
    let rotated = relay.dir.path().join("messages.1");
    std::fs::rename(&relay.other_file, &rotated).unwrap();
    relay.process.signal("HUP");
    wait_until("the file to be reopened", WAIT, || {
        relay.other_file.exists()
    });
    writeln!(tcp, "<13>Nov 27 20:23:38 host app: after rotation").unwrap();
    wait_until("the second line in the new file", WAIT, || {
        relay.other_lines().len() == 1
    });
    assert!(relay.other_lines()[0].ends_with("app: after rotation"));
    let old = lines(&rotated);
    assert_eq!(old.len(), 1);
    assert!(old[0].ends_with("app: before rotation"));
    // Still running and relaying to Redis.
    writeln!(tcp, "<158>Nov 27 20:23:39 pixel: 1.1,a=b").unwrap();
    wait_for_list(&redis, "pixel", 1);
}

/// Syslog over TLS (RFC 5425) from `openssl s_client`, octet-counted as the RFC frames
/// it. A client that does not speak TLS gets nothing in, and is counted.
#[test]
fn tls_source() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let address = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[[relay.sources]]\ntype = \"tcp\"\naddress = \"{address}\"\n\
             tls = {{ cert = {cert:?}, key = {key:?} }}\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let relay = Pixelpipe::start(
        &dir.path().join("data"),
        &["--config", &config, "--redis", &redis.url(), "relay"],
    );
    let expected = ["1379183721.115,foo=bar&baz=1", "1379183721.116,over=tls"];
    let frames: String = expected
        .iter()
        .map(|m| {
            let m = format!("<158>Nov 27 20:23:37 web1 pixel: {m}");
            format!("{} {m}", m.len())
        })
        .collect();
    let client = Command::new(require("openssl", "openssl"))
        .args(["s_client", "-connect", &address, "-quiet", "-no_ign_eof"])
        .args(["-verify_return_error", "-CAfile"])
        .arg(&cert)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed on drop, should the test fail before it ends.
    let mut client = KillOnDrop(client);
    let mut stdin = client.0.stdin.take().unwrap();
    stdin.write_all(frames.as_bytes()).unwrap();
    drop(stdin);
    wait_until("openssl s_client to finish", WAIT, || {
        client.0.try_wait().unwrap().is_some()
    });
    assert!(
        client.0.wait().unwrap().success(),
        "openssl s_client failed"
    );
    wait_for_list(&redis, "pixel", 2);
    assert_eq!(redis.list_oldest_first("pixel"), expected);
    let mut plain = TcpStream::connect(&address).unwrap();
    writeln!(plain, "<158>Nov 27 20:23:37 pixel: not over TLS").unwrap();
    wait_until("the failed handshake to be counted", WAIT, || {
        relay.metric("pixelpipe_relay_tls_failures_total", "") == 1.0
    });
    assert_eq!(relay.metric("pixelpipe_relay_received_total", ""), 2.0);
    assert_eq!(redis.llen("pixel"), 2);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What was read from a stream socket is in the local log: a `kill -9` while Redis is
/// down loses nothing, and the restarted relay ships it.
#[test]
fn kill9_with_redis_down_loses_nothing() {
    let mut redis = Redis::start();
    let mut relay = Relay::start(&redis, &[]);
    redis.stop();
    let mut tcp = TcpStream::connect(relay.tcp_addr()).unwrap();
    let mut expected = Vec::new();
    for i in 0..500 {
        let m = format!("1379183721.{i:03},n={i}");
        writeln!(tcp, "<158>Nov 27 20:23:37 pixel: {m}").unwrap();
        expected.push(m);
    }
    tcp.flush().unwrap();
    wait_until("500 records written to the local log", WAIT, || {
        relay.counter("pixelpipe_records_total") == 500.0
    });
    relay.process.kill9();
    redis.restart();
    relay.restart(&redis, &[]);
    wait_for_list(&redis, "pixel", 500);
    assert_eq!(redis.list_oldest_first("pixel"), expected);
}

/// A busy connection (many messages per read) is paused briefly when it has nothing more
/// to read: the message that comes after the pause is still read, in order, and the
/// connection stays the same.
#[test]
fn a_message_after_a_burst_is_read() {
    let redis = Redis::start();
    let relay = Relay::start(&redis, &[]);
    let mut tcp = TcpStream::connect(relay.tcp_addr()).unwrap();
    let burst: String = (0..200)
        .map(|i| format!("<158>Nov 27 20:23:37 pixel: 1379183721.{i:03},n={i}\n"))
        .collect();
    tcp.write_all(burst.as_bytes()).unwrap();
    wait_for_list(&redis, "pixel", 200);
    writeln!(tcp, "<158>Nov 27 20:23:38 pixel: after").unwrap();
    wait_for_list(&redis, "pixel", 201);
    let got = redis.list_oldest_first("pixel");
    assert_eq!(got[0], "1379183721.000,n=0");
    assert_eq!(got[199], "1379183721.199,n=199");
    assert_eq!(got[200], "after");
}

/// Routes from the configuration file: filters on facility, severity and program with
/// `not`, templates with several macros, `final`.
#[test]
fn configured_routes_and_templates() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    let file = dir.path().join("debug.log");
    std::fs::write(
        &config,
        format!(
            r#"
[relay]
# A key made of a literal part and a field: the pattern must admit the whole key.
key_pattern = "^events:[a-z0-9]+$"

[[relay.routes]]
filter = {{ program = ["noisy"] }}
destination = {{ file = {{ path = "{}", template = "${{FACILITY}}.${{SEVERITY}} ${{PRI}} ${{PROGRAM}} ${{MSG}}" }} }}
final = true

[[relay.routes]]
filter = {{ facility = ["local3", "local4"], not = {{ severity = ["debug"] }} }}
destination = {{ redis = {{ key = "events:${{FACILITY}}", value = "${{PROGRAM}}|${{PID}}|$(length ${{MESSAGE}})|${{MESSAGE}}" }} }}
"#,
            file.display()
        ),
    )
    .unwrap();
    let socket = dir.path().join("s.sock");
    let process = common::Pixelpipe::start(
        &dir.path().join("data"),
        &[
            "--redis",
            &redis.url(),
            "--config",
            config.to_str().unwrap(),
            "relay",
            "--unix",
            socket.to_str().unwrap(),
        ],
    );
    let s = socket.to_str().unwrap();
    logger(&["-u", s, "-p", "local3.info", "-t", "app", "--id=7", "héllo"]);
    logger(&["-u", s, "-p", "local4.warning", "-t", "app", "second"]);
    logger(&["-u", s, "-p", "local3.debug", "-t", "app", "dropped: debug"]);
    logger(&[
        "-u",
        s,
        "-p",
        "local3.info",
        "-t",
        "noisy",
        "to the file only",
    ]);
    wait_for_list(&redis, "events:local3", 1);
    wait_for_list(&redis, "events:local4", 1);
    wait_until("the noisy line", WAIT, || !lines(&file).is_empty());
    assert_eq!(redis.list_oldest_first("events:local3"), ["app|7|6|héllo"]);
    assert_eq!(redis.list_oldest_first("events:local4"), ["app||6|second"]);
    assert_eq!(lines(&file), ["local3.info 158 noisy to the file only"]);
    wait_until("four messages counted", WAIT, || {
        process.metric("pixelpipe_relay_received_total", "") == 4.0
    });
    assert_eq!(process.metric("pixelpipe_relay_unrouted_total", ""), 1.0);
    assert_eq!(redis.llen("events:local3"), 1);
    // SIGTERM stops every source thread and exits cleanly, removing the socket file.
    let mut process = process;
    assert!(process.terminate(Duration::from_secs(15)).success());
    assert!(!socket.exists());
}

/// Bad configuration is refused at start-up with the field named.
#[test]
fn bad_configuration_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let run = |toml: &str, args: &[&str]| {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, toml).unwrap();
        let out = std::process::Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("relay")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(
        "[relay]\nredis_value = \"${NOPE}\"\n",
        &["--tcp", "127.0.0.1:1"],
    );
    assert!(e.contains("relay.redis_value") && e.contains("NOPE"), "{e}");
    let e = run(
        "[[relay.routes]]\ndestination = { redis = { key = \"$(upper x)\", value = \"v\" } }\n",
        &["--tcp", "127.0.0.1:1"],
    );
    assert!(
        e.contains("[0].destination.redis.key") && e.contains("upper"),
        "{e}"
    );
    let e = run(
        "[[relay.sources]]\ntype = \"udp\"\naddress = \"127.0.0.1:1\"\nbuffer = 3\n",
        &[],
    );
    assert!(e.contains("buffer"), "{e}");
    let e = run("", &[]);
    assert!(e.contains("no sources"), "{e}");
    let e = run(
        "[[relay.sources]]\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n\
         tls = { cert = \"/nonexistent/cert.pem\", key = \"/nonexistent/key.pem\" }\n",
        &[],
    );
    assert!(e.contains("TLS certificate /nonexistent/cert.pem"), "{e}");
}
