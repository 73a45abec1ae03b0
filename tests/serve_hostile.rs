//! Clients that misbehave on purpose: one that never reads its answers must not hold its
//! connection slot forever (nginx's `send_timeout`), and every refusal is counted under
//! its own reason.

#[allow(unused_imports)]
mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

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
