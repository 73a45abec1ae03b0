//! The relay's file destination can block (a full disk, a FIFO nobody reads): its writes
//! happen on a thread of their own, so the Redis routes of every source go on.

mod common;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use common::*;

#[test]
fn a_stuck_file_destination_does_not_stall_the_redis_routes() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("messages");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A reader that never reads: the relay can open the FIFO, and its writes block once
    // the pipe (64 KiB) is full.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let tcp = free_port();
    let relay = Pixelpipe::start(
        &dir.path().join("data"),
        &[
            "--redis",
            &redis.url(),
            "relay",
            "--tcp",
            &format!("127.0.0.1:{tcp}"),
            "--other-file",
            &fifo.display().to_string(),
        ],
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let filler = "x".repeat(900);
    for i in 0..400 {
        // facility user: the file route
        writeln!(s, "<14>Nov 28 12:00:00 web1 app: {i} {filler}").unwrap();
    }
    for i in 0..10 {
        // facility local3: the Redis route
        writeln!(s, "<158>Nov 28 12:00:00 web1 pixel: 1.000,id={i}").unwrap();
    }
    s.flush().unwrap();
    wait_until(
        "the local3 messages in Redis while the file is stuck",
        Duration::from_secs(10),
        || redis.llen("pixel") >= 10,
    );
    drop(relay);
}

/// Issue 9, item 3 (the relay's many keys): a key that holds a string cannot take its
/// records. They go to `{key}:dead` in the same script, and the other keys go on at
/// once; `pixelpipe tail --key {key}:dead` reads them back.
#[test]
fn a_refused_key_is_dead_lettered_and_does_not_stall_the_others() {
    let redis = Redis::start();
    let _: () = redis::cmd("SET")
        .arg("bad")
        .arg("not a list")
        .query(&mut redis.conn())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tcp = free_port();
    let relay = Pixelpipe::start(
        &dir.path().join("data"),
        &[
            "--redis",
            &redis.url(),
            "relay",
            "--tcp",
            &format!("127.0.0.1:{tcp}"),
        ],
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    for i in 0..20 {
        let program = if i % 2 == 0 { "good" } else { "bad" };
        writeln!(s, "<158>Nov 28 12:00:00 web1 {program}: 1.000,id={i}").unwrap();
    }
    s.flush().unwrap();
    wait_until("the good key's records", Duration::from_secs(10), || {
        redis.llen("good") >= 10
    });
    wait_until(
        "the bad key's records in its dead letters",
        Duration::from_secs(10),
        || redis.llen("bad:dead") >= 10,
    );
    let dead = redis.list_oldest_first("bad:dead");
    let want: Vec<String> = (0..20)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("1.000,id={i}"))
        .collect();
    assert_eq!(dead, want);
    let good = redis.list_oldest_first("good");
    assert_eq!(good.len(), 10);
    let log = relay.stderr();
    assert_eq!(
        log.lines().filter(|l| l.contains("bad:dead")).count(),
        1,
        "said once:\n{log}"
    );
    assert_eq!(
        relay.metric("pixelpipe_dead_lettered_records_total", ""),
        10.0
    );
}
