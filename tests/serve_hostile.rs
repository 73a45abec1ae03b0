//! Clients that misbehave on purpose: one that never reads its answers must not hold its
//! connection slot forever (nginx's `send_timeout`), and every refusal is counted under
//! its own reason, and randomly mutated requests are answered or refused with nothing else
//! changing.

#[allow(unused_imports)]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::mutate::Mutator;
use common::{free_port, http_get, raw_request, wait_until, Pixelpipe, Redis};

fn serve(env: &[(&str, &str)]) -> (Pixelpipe, SocketAddr, Redis, tempfile::TempDir) {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (url, listen) = (redis.url(), addr.to_string());
    let server = Pixelpipe::start_with_env(
        &dir.path().join("data"),
        &["--redis", &url, "serve", "--listen", &listen],
        env,
    );
    (server, addr, redis, dir)
}

/// With every slot held by clients that send requests and never read the answers, the
/// send timeout frees the slots and others are served again.
#[test]
fn clients_that_never_read_lose_their_slot() {
    let (server, addr, _redis, _dir) = serve(&[
        ("PIXELPIPE_HTTP__MAX_CONNECTIONS", "2"),
        ("PIXELPIPE_HTTP__WORKERS", "1"),
        ("PIXELPIPE_HTTP__SEND_TIMEOUT", "1s"),
    ]);
    // Pipelined requests whose answers (some 40 MB) fill both socket buffers.
    let burst = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".repeat(300_000);
    let stuck: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            // The server may stop reading, or close: either way this client reads nothing.
            let _ = s.write_all(burst.as_bytes());
            s
        })
        .collect();
    wait_until("a send timeout", Duration::from_secs(20), || {
        server.metric("pixelpipe_http_rejected_total", "send_timeout") >= 1.0
    });
    wait_until("a new client to be served", Duration::from_secs(20), || {
        http_get(addr, "/pixel.gif?after=1").map(|r| r.status) == Some(200)
    });
    drop(stuck);
}

/// Each refusal has its own reason in `pixelpipe_http_rejected_total`.
#[test]
fn every_status_has_its_reason() {
    let (server, addr, _redis, _dir) = serve(&[]);
    for (request, status, reason) in [
        (
            &b"GET /pixel.gif HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"[..],
            413,
            "payload_too_large",
        ),
        (
            b"GET /pixel.gif HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "not_implemented",
        ),
        (
            b"GET /pixel.gif HTTP/2.0\r\n\r\n",
            505,
            "version_not_supported",
        ),
        (
            b"GET /pixel.gif HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
            "bad_request",
        ),
        (
            b"DELETE /pixel.gif HTTP/1.1\r\nHost: x\r\n\r\n",
            405,
            "method_not_allowed",
        ),
        (b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"),
    ] {
        let r = raw_request(addr, request, false).unwrap();
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(request));
        assert_eq!(
            server.metric("pixelpipe_http_rejected_total", &format!("\"{reason}\"")),
            1.0,
            "{reason}"
        );
    }
}

/// Requests mutated at random (bytes cut, inserted, flipped; framing and escape tokens
/// spliced in) from valid hits, beacons, preflights and the script: each one is answered
/// with an HTTP status or refused by closing, the server never panics, logs nothing per
/// bad request, and serves the next client as before.
#[test]
fn mutated_requests_are_answered_or_refused_and_nothing_else_changes() {
    let (server, addr, redis, _dir) = serve(&[]);
    let seeds: [&[u8]; 7] = [
        b"GET /pixel.gif?a=1&b=2 HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0\r\n\r\n",
        b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n\r\n{\"e\":\"view\",\"u\":\"/a?b=1\"}",
        b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[{\"e\"\r\n9\r\n:\"click\"}]\r\n0\r\n\r\n",
        b"GET /pixel.gif?%zz=%00&x=\xff HTTP/1.0\r\n\r\n",
        b"OPTIONS /e HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: POST\r\n\r\n",
        b"GET /p.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nIf-None-Match: \"x\"\r\n\r\n",
        b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\ne=view&u=%2",
    ];
    let tokens: [&[u8]; 16] = [
        b"\r\n",
        b"\n",
        b" ",
        b"\0",
        b"%",
        b"?",
        b"#",
        b"/../",
        b"Content-Length: 99999999999999999999\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Host: \r\n",
        b"\xff\xfe",
        b"HTTP/1.1",
        b"{\"",
        b"\\u0000",
        b"ffffffffffffffff\r\n",
    ];
    let mut mutator = Mutator::new(0x2545_f491_4f6c_dd1d);
    let cases = 1_500;
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..cases {
        let req = mutator.mutate(&seeds, &tokens);
        let answer = send_and_close(addr, &req);
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
            "an answer that is not HTTP to {:?}: {:?}",
            String::from_utf8_lossy(&req),
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        );
        let status = String::from_utf8_lossy(answer.get(9..12).unwrap_or(b"---")).into_owned();
        *statuses.entry(status).or_default() += 1;
    }
    // Mutations mild enough that some still succeed, harsh enough that many are refused.
    for status in ["200", "204", "400"] {
        assert!(
            statuses.contains_key(status),
            "no {status} among {statuses:?}"
        );
    }
    assert_eq!(
        http_get(addr, "/pixel.gif?after=mutations").map(|r| r.status),
        Some(200)
    );
    wait_until("the last hit in Redis", Duration::from_secs(10), || {
        redis
            .list_oldest_first("pixel")
            .iter()
            .any(|r| r.ends_with(",after=mutations"))
    });
    let log = server.stderr();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.lines().count() < 20,
        "a log line per bad request? {} lines for {cases} requests",
        log.lines().count()
    );
}

/// Sends `request`, closes the sending side, and returns all the server sent back until it
/// closed too.
fn send_and_close(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may refuse and close before taking it all.
    let _ = s.write_all(request);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}
