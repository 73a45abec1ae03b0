//! Delivery guarantees with real failures: no Redis at all, Redis killed and restarted
//! under load, pixelpipe killed with `kill -9` under load, SIGTERM, a full local log.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;

fn listen_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

fn serve(data: &Path, redis_url: &str, addr: SocketAddr, env: &[(&str, &str)]) -> Pixelpipe {
    Pixelpipe::start_with_env(
        data,
        &["--redis", redis_url, "serve", "--listen", &addr.to_string()],
        env,
    )
}

#[test]
fn serves_without_redis_and_ships_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = listen_addr();
    let server = serve(
        &dir.path().join("data"),
        &format!("redis://127.0.0.1:{port}"),
        addr,
        &[],
    );
    let ok = hit_ids(addr, 0..200, 4);
    assert_eq!(ok.len(), 200, "every hit is answered 200 with Redis absent");
    assert_eq!(http_get(server.admin, "/readyz").unwrap().status, 503);
    wait_until("the unreachable warning", Duration::from_secs(5), || {
        server.stderr().contains("Redis is unreachable")
    });
    // The records are in the local log, readable as text.
    let printed = std::process::Command::new(BIN)
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .arg("log")
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout).lines().count(),
        200
    );

    let redis = Redis::start_on(port, false);
    wait_until("the backlog to drain", Duration::from_secs(20), || {
        redis.llen("pixel") >= 200
    });
    let records = redis.list_oldest_first("pixel");
    assert_eq!(records.len(), 200);
    assert_exactly_once(&records, &ok);
    wait_until("/readyz to pass", Duration::from_secs(5), || {
        http_get(server.admin, "/readyz").map(|r| r.status) == Some(200)
    });
    let log = server.stderr();
    assert_eq!(
        log.matches("Redis is unreachable").count(),
        1,
        "said once, not per hit or retry:\n{log}"
    );
}

#[test]
fn redis_killed_and_restarted_mid_load_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start_persistent();
    let addr = listen_addr();
    let _server = serve(&dir.path().join("data"), &redis.url(), addr, &[]);
    let load = std::thread::spawn(move || hit_ids(addr, 0..6000, 8));
    wait_until("some records in Redis", Duration::from_secs(10), || {
        redis.llen("pixel") > 500
    });
    redis.restart(); // kill -9, then the same data back from its append-only file
    wait_until(
        "more records after the restart",
        Duration::from_secs(10),
        || redis.llen("pixel") > 2000,
    );
    redis.restart();
    let ok = load.join().unwrap();
    assert_eq!(ok.len(), 6000, "serving never waits on Redis");
    wait_until("every record", Duration::from_secs(30), || {
        redis.llen("pixel") >= 6000
    });
    let records = redis.list_oldest_first("pixel");
    assert_exactly_once(&records, &ok);
    assert_eq!(records.len(), 6000);
}

#[test]
fn a_redis_restarted_empty_is_not_sent_old_records_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start();
    let addr = listen_addr();
    let _server = serve(&dir.path().join("data"), &redis.url(), addr, &[]);
    assert_eq!(hit_ids(addr, 0..10, 1).len(), 10);
    wait_until("10 records", Duration::from_secs(10), || {
        redis.llen("pixel") == 10
    });
    redis.restart(); // empty: no persistence
    assert_eq!(hit_ids(addr, 10..15, 1).len(), 5);
    wait_until("5 records", Duration::from_secs(10), || {
        redis.llen("pixel") >= 5
    });
    let records = redis.list_oldest_first("pixel");
    assert_eq!(ids_of(&records), vec![10, 11, 12, 13, 14]);
}

#[test]
fn kill_9_under_load_then_restart_delivers_every_answered_hit_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let redis = Redis::start();
    let addr = listen_addr();
    let mut server = serve(&data, &redis.url(), addr, &[]);
    let load = std::thread::spawn(move || hit_ids(addr, 0..20_000, 8));
    wait_until("load under way", Duration::from_secs(10), || {
        redis.llen("pixel") > 1000
    });
    server.kill9();
    let ok = load.join().unwrap();
    assert!(
        ok.len() < 20_000,
        "the kill happened mid-load ({} answered)",
        ok.len()
    );
    let _server = serve(&data, &redis.url(), addr, &[]);
    wait_until(
        "every answered hit in Redis",
        Duration::from_secs(30),
        || redis.llen("pixel") >= ok.len(),
    );
    // Let the shipper finish whatever else the log held, then check.
    wait_until("the backlog to drain", Duration::from_secs(10), || {
        _server.metric("pixelpipe_backlog_bytes", "") == 0.0
    });
    assert_exactly_once(&redis.list_oldest_first("pixel"), &ok);
}

#[test]
fn sigterm_ships_everything_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start();
    let addr = listen_addr();
    let mut server = serve(&dir.path().join("data"), &redis.url(), addr, &[]);
    let ok = hit_ids(addr, 0..2000, 4);
    let status = server.terminate(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        server.stderr()
    );
    assert_exactly_once(&redis.list_oldest_first("pixel"), &ok);
    assert!(
        http_get(addr, "/pixel.gif").is_none(),
        "no longer listening"
    );
}

#[test]
fn a_full_log_rejects_with_503_under_the_reject_policy() {
    let dir = tempfile::tempdir().unwrap();
    let addr = listen_addr();
    let nowhere = format!("redis://127.0.0.1:{}", free_port());
    let server = serve(
        &dir.path().join("data"),
        &nowhere,
        addr,
        &[
            ("PIXELPIPE_LOG__SEGMENT_BYTES", "4096"),
            ("PIXELPIPE_LOG__MAX_BYTES", "8192"),
        ],
    );
    let ok = hit_ids(addr, 0..1000, 1);
    assert!(
        ok.len() < 1000 && ok.len() > 100,
        "{} answered 200",
        ok.len()
    );
    // The first hits are the ones kept: reject refuses new ones, never loses old ones.
    assert_eq!(ok, (0..ok.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        server.metric("pixelpipe_http_rejected_total", "log_full") as usize,
        1000 - ok.len()
    );
    let r = http_get(addr, "/pixel.gif?late=1").unwrap();
    assert_eq!(r.status, 503);
}

#[test]
fn a_full_log_drops_the_oldest_under_drop_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let addr = listen_addr();
    let port = free_port();
    let server = serve(
        &dir.path().join("data"),
        &format!("redis://127.0.0.1:{port}"),
        addr,
        &[
            ("PIXELPIPE_LOG__SEGMENT_BYTES", "4096"),
            ("PIXELPIPE_LOG__MAX_BYTES", "8192"),
            ("PIXELPIPE_LOG__WHEN_FULL", "drop-oldest"),
        ],
    );
    let ok = hit_ids(addr, 0..1000, 1);
    assert_eq!(ok.len(), 1000, "drop-oldest never refuses a hit");
    let dropped = server.metric("pixelpipe_dropped_records_total", "");
    assert!(dropped > 0.0);
    let redis = Redis::start_on(port, false);
    wait_until("the kept records", Duration::from_secs(20), || {
        redis.llen("pixel") as f64 + dropped >= 1000.0
    });
    let ids = ids_of(&redis.list_oldest_first("pixel"));
    assert_eq!(ids.len() as f64 + dropped, 1000.0);
    // The newest survive, in order.
    assert_eq!(ids.last(), Some(&999));
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn ships_over_tls_with_rediss() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let port = free_port();
    let mut tls_redis = std::process::Command::new(require("redis-server", "redis-server"))
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--tls-port",
            &port.to_string(),
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&cert)
        .args(["--tls-auth-clients", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cli = require("redis-cli", "redis-tools");
    let llen = || {
        let out = std::process::Command::new(&cli)
            .args([
                "--tls",
                "--insecure",
                "-p",
                &port.to_string(),
                "LLEN",
                "pixel",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<usize>()
            .ok()
    };
    wait_until("the TLS Redis", Duration::from_secs(10), || {
        llen().is_some()
    });
    let addr = listen_addr();
    // `#insecure`: the test's certificate is self-signed.
    let url = format!("rediss://127.0.0.1:{port}/#insecure");
    let _server = serve(&dir.path().join("data"), &url, addr, &[]);
    assert_eq!(hit_ids(addr, 0..50, 2).len(), 50);
    wait_until("50 records over TLS", Duration::from_secs(10), || {
        llen() == Some(50)
    });
    let _ = tls_redis.kill();
    let _ = tls_redis.wait();
}

#[test]
fn honours_user_password_and_database_in_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start_with(free_port(), false, &["--requirepass", "s3cret"]);
    let addr = listen_addr();
    let url = format!("{}/3", redis.url());
    let server = serve(&dir.path().join("data"), &url, addr, &[]);
    assert_eq!(hit_ids(addr, 0..5, 1).len(), 5);
    let mut conn = redis.conn();
    redis::cmd("SELECT").arg(3).query::<()>(&mut conn).unwrap();
    wait_until("5 records in db 3", Duration::from_secs(10), || {
        redis::cmd("LLEN")
            .arg("pixel")
            .query::<usize>(&mut conn)
            .unwrap()
            == 5
    });
    assert_eq!(redis.llen("pixel"), 0, "nothing in db 0");
    // The password never appears in what pixelpipe logs.
    assert!(!server.stderr().contains("s3cret"));
}

#[test]
fn metrics_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start();
    let addr = listen_addr();
    let server = serve(&dir.path().join("data"), &redis.url(), addr, &[]);
    assert_eq!(hit_ids(addr, 0..30, 3).len(), 30);
    assert_eq!(http_get(addr, "/missing").unwrap().status, 404);
    wait_until("30 shipped", Duration::from_secs(10), || {
        server.metric("pixelpipe_shipped_records_total", "") == 30.0
    });
    assert_eq!(server.metric("pixelpipe_http_hits_total", ""), 30.0);
    assert_eq!(server.metric("pixelpipe_records_total", ""), 30.0);
    assert_eq!(
        server.metric("pixelpipe_http_rejected_total", "not_found"),
        1.0
    );
    assert_eq!(server.metric("pixelpipe_backlog_bytes", ""), 0.0);
    assert_eq!(server.metric("pixelpipe_redis_up", ""), 1.0);
    assert!(server.metric("pixelpipe_record_bytes_total", "") > 30.0 * 20.0);
    assert!(server.metric("pixelpipe_ship_batch_seconds_count", "") >= 1.0);
    let body = http_get(server.admin, "/metrics").unwrap().body;
    let text = String::from_utf8_lossy(&body);
    for name in [
        "pixelpipe_redis_errors_total",
        "pixelpipe_dropped_records_total",
        "pixelpipe_ship_batch_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

#[test]
fn a_key_of_the_wrong_type_is_reported_and_its_records_are_held_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start();
    redis::cmd("SET")
        .arg("pixel")
        .arg("not a list")
        .query::<()>(&mut redis.conn())
        .unwrap();
    let addr = listen_addr();
    let server = serve(&dir.path().join("data"), &redis.url(), addr, &[]);
    assert_eq!(hit_ids(addr, 0..3, 1).len(), 3);
    wait_until("the refusal", Duration::from_secs(10), || {
        server.stderr().contains("WRONGTYPE")
    });
    // Held, not skipped (issue 9; tests/serve_edges.rs has the full story).
    assert!(server.metric("pixelpipe_backlog_bytes", "") > 0.0);
    redis::cmd("DEL")
        .arg("pixel")
        .query::<()>(&mut redis.conn())
        .unwrap();
    assert_eq!(hit_ids(addr, 3..5, 1).len(), 2);
    wait_until("every record", Duration::from_secs(10), || {
        redis.llen("pixel") == 5
    });
    assert_eq!(ids_of(&redis.list_oldest_first("pixel")), [0, 1, 2, 3, 4]);
}
