//! Idle keep-alive connections hold no buffers while they wait (allocated again when the
//! socket turns readable): what arrives after a wait — in pieces, or larger than one
//! buffer — is served whole, and the idle timeout still closes them.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

fn start(env: &[(&str, &str)]) -> (Redis, Pixelpipe, SocketAddr, tempfile::TempDir) {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (url, listen) = (redis.url(), addr.to_string());
    let server = Pixelpipe::start_with_env(
        &dir.path().join("data"),
        &["--redis", &url, "serve", "--listen", &listen],
        env,
    );
    (redis, server, addr, dir)
}

#[test]
fn requests_after_an_idle_wait_are_served_whole() {
    let (redis, _server, addr, _dir) = start(&[]);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(b"GET /pixel.gif?id=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);

    // The connection is idle now. The next request comes in three pieces, each one a
    // wake-up of the waiting connection.
    for piece in [
        &b"GET /pixel.gif?id"[..],
        b"=1 HTTP/1.1\r\nHo",
        b"st: x\r\n\r\n",
    ] {
        stream.write_all(piece).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50)); // a slow client, not a synchronisation
    }
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);

    // After another wait: a request larger than the buffer taken on wake-up (4 KiB),
    // then two pipelined ones.
    let big = format!(
        "GET /pixel.gif?id=2 HTTP/1.1\r\nHost: x\r\nUser-Agent: {}\r\n\r\n",
        "a".repeat(6_000) // above the 4 KiB buffer, below http.max_header_line
    );
    stream.write_all(big.as_bytes()).unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    stream
        .write_all(b"GET /pixel.gif?id=3 HTTP/1.1\r\nHost: x\r\n\r\nGET /pixel.gif?id=4 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);

    wait_until("5 records in Redis", Duration::from_secs(10), || {
        redis.llen("pixel") >= 5
    });
    assert_eq!(
        ids_of(&redis.list_oldest_first("pixel")),
        (0..5).collect::<Vec<_>>()
    );
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let (_redis, _server, addr, _dir) = start(&[("PIXELPIPE_HTTP__IDLE_TIMEOUT", "300ms")]);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(b"GET /pixel.gif?id=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    // The server closes the idle connection: end of stream, long before the read timeout.
    let mut rest = Vec::new();
    let read = reader.read_to_end(&mut rest);
    assert!(
        matches!(read, Ok(0)),
        "expected the server to close the idle connection, got {read:?} ({rest:?})"
    );
}
