//! The relay's file destination can block (a full disk, a FIFO nobody reads): its writes
//! happen on a thread of their own, so the Redis routes of every source go on. And
//! randomly mutated messages are relayed or counted, with nothing else changing.

mod common;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use common::mutate::Mutator;
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

/// Messages mutated at random (bytes cut, inserted, flipped; priorities, brackets, quotes,
/// octet counts spliced in) from nginx's line, RFC 5424 and RFC 3164 examples, over UDP and
/// TCP: each is routed, counted as malformed, or ends its TCP connection (bad framing),
/// the relay never panics, logs nothing per message, and relays the next one as before.
#[test]
fn mutated_messages_are_relayed_or_counted_and_nothing_else_changes() {
    let redis = Redis::start();
    let relay = common::relay::Relay::start(&redis, &[]);
    let seeds: [&[u8]; 5] = [
        b"<158>Nov 28 12:00:00 pixel: 1795811017.123,foo=bar&baz=1",
        b"<158>1 2026-11-28T12:00:00.123456+01:00 host pixel 123 ID47 [ex@32473 a=\"b\\\"c\"] 1.000,a=1",
        b"<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8",
        b"<13>1 - - - - - -",
        b"<190>2026-11-28T12:00:00Z host pixel[1]: \xef\xbb\xbfhello",
    ];
    let tokens: [&[u8]; 12] = [
        b"<",
        b">",
        b"[",
        b"]",
        b"\"",
        b"\\",
        b"\n",
        b"\0",
        b" ",
        b"<999>",
        b"99999999999 ",
        b"\xff",
    ];
    let mut mutator = Mutator::new(0x9e37_79b9_7f4a_7c15);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut tcp: Option<std::net::TcpStream> = None;
    let cases = 3_000;
    for _ in 0..cases {
        let m = mutator.mutate(&seeds, &tokens);
        udp.send_to(&m, ("127.0.0.1", relay.udp)).unwrap();
        let s = tcp.get_or_insert_with(|| std::net::TcpStream::connect(relay.tcp_addr()).unwrap());
        let framed = if mutator.below(2) == 0 {
            [format!("{} ", m.len()).into_bytes(), m].concat()
        } else {
            [m, b"\n".to_vec()].concat()
        };
        // Bad framing ends the connection, as with syslog-ng: the next message opens another.
        if s.write_all(&framed).is_err() {
            tcp = None;
        }
    }
    drop(tcp);
    let mut s = std::net::TcpStream::connect(relay.tcp_addr()).unwrap();
    writeln!(s, "<158>Nov 28 12:00:00 web1 pixel: 1.000,after=mutations").unwrap();
    // Records are bytes as sent (syslog carries no encoding): read them as such.
    wait_until("the next message in Redis", Duration::from_secs(10), || {
        let records: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg("pixel")
            .arg(0)
            .arg(-1)
            .query(&mut redis.conn())
            .unwrap();
        records.iter().any(|r| r == b"1.000,after=mutations")
    });
    assert!(relay.counter("pixelpipe_relay_malformed_total") > 0.0);
    let log = relay.process.stderr();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.lines().count() < 30,
        "a log line per bad message? {} lines for {cases} messages",
        log.lines().count()
    );
}
