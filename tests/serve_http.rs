//! The pixel endpoint seen from a client: exact bytes, records as the original writes
//! them, pipelining, and every bad request answered without a record.

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

struct Setup {
    redis: Redis,
    server: Pixelpipe,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn setup(extra: &[&str], env: &[(&str, &str)]) -> Setup {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let url = redis.url();
    let listen = addr.to_string();
    let mut args = vec!["--redis", &url, "serve", "--listen", &listen];
    args.extend_from_slice(extra);
    let server = Pixelpipe::start_with_env(&dir.path().join("data"), &args, env);
    Setup {
        redis,
        server,
        addr,
        _dir: dir,
    }
}

fn wait_for_records(redis: &Redis, key: &str, n: usize) -> Vec<String> {
    wait_until(
        &format!("{n} records in Redis"),
        Duration::from_secs(10),
        || redis.llen(key) >= n,
    );
    redis.list_oldest_first(key)
}

/// `1379183721.115`: seconds, a dot, exactly three digits.
fn is_msec(s: &str) -> bool {
    let Some((secs, millis)) = s.split_once('.') else {
        return false;
    };
    secs.len() >= 10
        && secs.bytes().all(|b| b.is_ascii_digit())
        && millis.len() == 3
        && millis.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn the_gif_bytes_and_headers() {
    let s = setup(&[], &[]);
    let r = http_get(s.addr, "/pixel.gif?foo=bar&baz=1").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        [
            0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x01, 0x00, 0x00,
            0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x01, 0x00, 0x2c,
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x4c, 0x01, 0x00,
            0x3b
        ]
    );
    assert_eq!(r.header("content-type"), Some("image/gif"));
    assert_eq!(r.header("content-length"), Some("43"));
    assert_eq!(
        r.header("cache-control"),
        Some("no-cache, no-store, must-revalidate")
    );
    let expires = httpdate::parse_http_date(r.header("expires").unwrap()).unwrap();
    assert!(expires < std::time::SystemTime::now());

    let head = raw_request(
        s.addr,
        b"HEAD /pixel.gif?h=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        true,
    )
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("43"));
    // Nothing follows the head of a HEAD answer.
    let records = wait_for_records(&s.redis, "pixel", 2);
    assert_eq!(records.len(), 2);
}

#[test]
fn records_are_the_originals_in_brpop_order() {
    let s = setup(&[], &[]);
    for target in [
        "/pixel.gif?foo=bar&baz=1",
        "/pixel.gif?n=2",
        "/pixel.gif",
        "/pixel.gif?",
    ] {
        assert_eq!(http_get(s.addr, target).unwrap().status, 200);
    }
    wait_for_records(&s.redis, "pixel", 4);
    // The original consumer: BRPOP pops the oldest, split(",", 1).
    let mut conn = s.redis.conn();
    let mut popped = Vec::new();
    for _ in 0..4 {
        let (_, event): (String, String) = redis::cmd("BRPOP")
            .arg("pixel")
            .arg(1)
            .query(&mut conn)
            .unwrap();
        let (ts, args) = event.split_once(',').unwrap();
        assert!(is_msec(ts), "{event}");
        popped.push(args.to_owned());
    }
    // nginx's $args: "-" when there is no '?', and when the query is empty (nginx logs
    // an empty value as "-"; tests/http_differential.rs compares with nginx itself).
    assert_eq!(popped, ["foo=bar&baz=1", "n=2", "-", "-"]);
}

#[test]
fn keep_alive_and_pipelining() {
    let s = setup(&[], &[]);
    let mut stream = TcpStream::connect(s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.extend_from_slice(
            format!("GET /pixel.gif?id={i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
    }
    batch.extend_from_slice(b"HEAD /pixel.gif?id=20 HTTP/1.1\r\nHost: x\r\n\r\n");
    batch.extend_from_slice(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(&batch).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for _ in 0..20 {
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!((r.status, r.body.len()), (200, 43));
    }
    assert_eq!(read_response(&mut reader, true).unwrap().status, 200);
    assert_eq!(read_response(&mut reader, false).unwrap().status, 404);
    // Still open: one more on the same connection.
    stream
        .write_all(b"GET /pixel.gif?id=21 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    let records = wait_for_records(&s.redis, "pixel", 22);
    assert_eq!(ids_of(&records), (0..22).collect::<Vec<_>>());
}

#[test]
fn a_hundred_concurrent_hits_make_a_hundred_records() {
    let s = setup(&[], &[]);
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let addr = s.addr;
            std::thread::spawn(move || {
                http_get(addr, &format!("/pixel.gif?id={i}")).map(|r| r.status)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Some(200));
    }
    let records = wait_for_records(&s.redis, "pixel", 100);
    let mut ids = ids_of(&records);
    assert_eq!(records.len(), 100);
    ids.sort_unstable();
    assert_eq!(ids, (0..100).collect::<Vec<_>>());
}

#[test]
fn bad_requests_get_their_status_and_no_record() {
    let s = setup(
        &[],
        &[
            ("PIXELPIPE_HTTP__HEADER_TIMEOUT", "300ms"),
            ("PIXELPIPE_HTTP__MAX_CONNECTIONS", "4"),
        ],
    );
    let ask = |req: &[u8], head_only| raw_request(s.addr, req, head_only).map(|r| (r.status, r));
    let (status, _) = ask(b"GET /nope.gif?a=1 HTTP/1.1\r\nHost: x\r\n\r\n", false).unwrap();
    assert_eq!(status, 404);
    let (status, r) = ask(
        b"PUT /pixel.gif?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!(status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    let long = format!(
        "GET /pixel.gif?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(ask(long.as_bytes(), false).unwrap().0, 414);
    let (status, r) = ask(b"\x16\x03\x01garbage\r\n\r\n", false).unwrap();
    assert_eq!(status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(
        ask(b"GET /pixel.gif HTTP/1.1\r\n\r\n", false).unwrap().0,
        400
    );
    // Over the head's 32 KiB: a 400, as nginx answers it ("Request Header Or Cookie Too
    // Large"), counted apart.
    let huge = format!(
        "GET /pixel.gif HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-A: b\r\n".repeat(5000)
    );
    assert_eq!(ask(huge.as_bytes(), false).unwrap().0, 400);
    assert_eq!(
        s.server
            .metric("pixelpipe_http_rejected_total", "header_too_large"),
        1.0
    );
    // A client that starts a request and stalls gets a 408 after the header timeout.
    let (status, _) = ask(b"GET /pixel.gif?slow=1 HTTP/1.1\r\nHost", false).unwrap();
    assert_eq!(status, 408);

    // Connections past the limit are closed at once, and the server still serves.
    let held: Vec<_> = (0..4)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    wait_until("4 connections held", Duration::from_secs(5), || {
        s.server
            .metric("pixelpipe_http_rejected_total", "too_many_connections")
            > 0.0
            || raw_request(
                s.addr,
                b"GET /pixel.gif?over=1 HTTP/1.1\r\nHost: x\r\n\r\n",
                false,
            )
            .is_none()
    });
    drop(held);
    wait_until("the server to serve again", Duration::from_secs(5), || {
        http_get(s.addr, "/pixel.gif?ok=1").map(|r| r.status) == Some(200)
    });
    // The probe for the limit (`over=1`) is a good hit too when it got in before the
    // held connections were counted: it may be a record; no bad request may.
    wait_until("the good hit's record", Duration::from_secs(5), || {
        s.redis
            .list_oldest_first("pixel")
            .iter()
            .any(|r| r.ends_with(",ok=1"))
    });
    let records = s.redis.list_oldest_first("pixel");
    let good: Vec<_> = records.iter().filter(|r| !r.ends_with(",over=1")).collect();
    assert_eq!(good.len(), 1, "only the good hit is a record: {records:?}");
    assert!(good[0].ends_with(",ok=1"), "{records:?}");
    assert_eq!(
        s.server.metric("pixelpipe_records_total", ""),
        records.len() as f64
    );
    assert!(s.server.metric("pixelpipe_http_rejected_total", "") >= 7.0);
}

#[test]
fn templates_escape_like_nginx() {
    let s = setup(
        &[
            "--format",
            "$msec|$args|$http_user_agent|$remote_addr|$request_id",
            "--key",
            "beacons",
        ],
        // Also runs the `fsync = always` path: a flush per group before answering.
        &[("PIXELPIPE_LOG__FSYNC", "always")],
    );
    let req = b"GET /pixel.gif?q=%22x%22&r=\"raw\" HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0 (X|Y) \xe2\x9c\x93\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_request(s.addr, req, false).unwrap().status, 200);
    let records = wait_for_records(&s.redis, "beacons", 1);
    let fields: Vec<&str> = records[0].split('|').collect();
    assert_eq!(fields.len(), 5, "{records:?}");
    assert!(is_msec(fields[0]));
    assert_eq!(fields[1], "q=%22x%22&r=\\x22raw\\x22");
    assert_eq!(fields[2], "Mozilla/5.0 (X\\x7CY) \\xE2\\x9C\\x93");
    // Anonymised by default (privacy.anonymize_ip): the last octet is zeroed.
    assert_eq!(fields[3], "127.0.0.0");
    assert_eq!(fields[4].len(), 32);
}
