//! TCP source limits that hold whatever peers do: connections per peer, an idle timeout,
//! and over-long octet-counted frames skipped by their count with the connection kept.

#[allow(unused_imports)]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{free_port, wait_until, Pixelpipe, Redis};

/// A relay with one TCP source configured by `options` (TOML lines).
fn relay(redis: &Redis, options: &str) -> (Pixelpipe, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!("[[relay.sources]]\ntype = \"tcp\"\naddress = \"{address}\"\n{options}\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let p = Pixelpipe::start(
        &dir.path().join("data"),
        &["--config", &config, "--redis", &redis.url(), "relay"],
    );
    (p, address, dir)
}

/// Whether the relay closed `s` (a read returns end of file or fails) within `timeout`.
fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut b = [0u8; 16];
    !matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
}

#[test]
fn one_peer_cannot_take_every_connection() {
    let redis = Redis::start();
    let (relay, address, _dir) = relay(&redis, "max_connections_per_peer = 2");
    let mut first = TcpStream::connect(&address).unwrap();
    let mut second = TcpStream::connect(&address).unwrap();
    let mut third = TcpStream::connect(&address).unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(5)),
        "the third stayed open"
    );
    assert_eq!(
        relay.metric("pixelpipe_relay_rejected_connections_total", ""),
        1.0
    );
    // The two others still work.
    for (i, s) in [&mut first, &mut second].into_iter().enumerate() {
        writeln!(s, "<158>Nov 27 20:23:37 pixel: kept {i}").unwrap();
    }
    wait_until("both messages", Duration::from_secs(20), || {
        redis.llen("pixel") == 2
    });
    // A slot given back is free again.
    drop(first);
    wait_until(
        "a new connection to be kept",
        Duration::from_secs(10),
        || {
            let mut s = TcpStream::connect(&address).unwrap();
            !closed_within(&mut s, Duration::from_millis(300))
        },
    );
}

#[test]
fn idle_connections_are_closed() {
    let redis = Redis::start();
    let (relay, address, _dir) = relay(&redis, "idle_timeout = \"1s\"");
    let mut s = TcpStream::connect(&address).unwrap();
    writeln!(s, "<158>Nov 27 20:23:37 pixel: then silence").unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(10)),
        "an idle connection stayed open"
    );
    assert_eq!(relay.metric("pixelpipe_relay_idle_closed_total", ""), 1.0);
    assert_eq!(redis.list_oldest_first("pixel"), vec!["then silence"]);
}

#[test]
fn overlong_octet_counted_frames_are_skipped_by_their_count() {
    let redis = Redis::start();
    let (relay, address, _dir) = relay(&redis, "max_message_bytes = 64");
    let mut s = TcpStream::connect(&address).unwrap();
    let long = format!("<158>Nov 27 20:23:37 pixel: {}", "x".repeat(200));
    let short = "<158>Nov 27 20:23:37 pixel: after the long one";
    write!(s, "{} {long}{} {short}", long.len(), short.len()).unwrap();
    wait_until("both frames", Duration::from_secs(20), || {
        redis.llen("pixel") == 2
    });
    let records = redis.list_oldest_first("pixel");
    // The head of the long frame (64 bytes of it), then the next frame, whole.
    assert_eq!(
        records[0],
        "x".repeat(64 - "<158>Nov 27 20:23:37 pixel: ".len())
    );
    assert_eq!(records[1], "after the long one");
    assert_eq!(relay.metric("pixelpipe_relay_truncated_total", ""), 1.0);
    assert_eq!(
        relay.metric("pixelpipe_relay_framing_errors_total", ""),
        0.0
    );
    // The connection is still open and read.
    let more = "<158>Nov 27 20:23:37 pixel: still here";
    write!(s, "{} {more}", more.len()).unwrap();
    wait_until("the third frame", Duration::from_secs(20), || {
        redis.llen("pixel") == 3
    });
}
