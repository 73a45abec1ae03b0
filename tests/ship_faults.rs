//! The shipper against a fault-injecting fake Redis (see `fake_redis`): answers a real
//! server cannot give on demand. `pixelpipe serve` runs as a child process, as in
//! production; the fake counts connections and batches so that retry storms show.

mod common;
mod fake_redis;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use fake_redis::{FakeRedis, Fault};

fn listen_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

fn serve(data: &std::path::Path, url: &str, addr: SocketAddr, env: &[(&str, &str)]) -> Pixelpipe {
    Pixelpipe::start_with_env(
        data,
        &["--redis", url, "serve", "--listen", &addr.to_string()],
        env,
    )
}

fn assert_exactly_once(records: &[String], expected: &[u64]) {
    let ids = ids_of(records);
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicates in {ids:?}");
    let mut got = ids.clone();
    got.sort_unstable();
    let mut want = expected.to_vec();
    want.sort_unstable();
    assert_eq!(got, want);
}

/// Errors that mean "nothing applied" are retried on the same connection, with backoff:
/// no reconnect, the records held, then delivered once.
fn refusals_are_retried_without_reconnecting(error: &str) {
    let faults = vec![Fault::Error(error.into()); 3];
    let fake = FakeRedis::start(0, faults);
    let dir = tempfile::tempdir().unwrap();
    let addr = listen_addr();
    let server = serve(&dir.path().join("data"), &fake.url(), addr, &[]);
    let ok = hit_ids(addr, 0..20, 1);
    wait_until(
        "the records after the refusals",
        Duration::from_secs(15),
        || fake.llen("pixel") >= 20,
    );
    assert_exactly_once(&fake.list_oldest_first("pixel"), &ok);
    assert_eq!(
        fake.connections(),
        1,
        "a refusal is not a broken connection:\n{}",
        server.stderr()
    );
    let log = server.stderr();
    let code = error.split(' ').next().unwrap().to_lowercase();
    assert_eq!(
        log.lines()
            .filter(|l| l.to_lowercase().contains(&code))
            .count(),
        1,
        "reported once:\n{log}"
    );
}

#[test]
fn execabort_is_nothing_applied_and_retried() {
    refusals_are_retried_without_reconnecting(
        "EXECABORT Transaction discarded because of previous errors.",
    );
}

#[test]
fn oom_is_nothing_applied_and_retried() {
    refusals_are_retried_without_reconnecting(
        "OOM command not allowed when used memory > 'maxmemory'.",
    );
}

#[test]
fn wrongtype_is_nothing_applied_and_retried() {
    refusals_are_retried_without_reconnecting(
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    );
}

/// Refused for good: the retries back off (capped exponential), they do not storm.
#[test]
fn a_lasting_refusal_backs_off() {
    let fake = FakeRedis::start(0, vec![Fault::Error("MISCONF no writes".into()); 10_000]);
    let dir = tempfile::tempdir().unwrap();
    let addr = listen_addr();
    let server = serve(&dir.path().join("data"), &fake.url(), addr, &[]);
    assert_eq!(hit_ids(addr, 0..5, 1).len(), 5);
    std::thread::sleep(Duration::from_secs(4));
    let calls = fake.calls();
    // 50 ms doubling to a cap: about 7 tries in 4 s. A storm is thousands.
    assert!((2..=15).contains(&calls), "{calls} tries in 4 s");
    assert_eq!(fake.connections(), 1);
    assert_eq!(http_get(server.admin, "/readyz").unwrap().status, 503);
    assert_eq!(server.metric("pixelpipe_redis_up", ""), 0.0);
}

/// The batch was applied but its reply was lost: reconnect, read the position back, do
/// not push again.
#[test]
fn a_lost_reply_is_not_pushed_twice() {
    let fake = FakeRedis::start(0, vec![Fault::ApplyThenDrop, Fault::Drop]);
    let dir = tempfile::tempdir().unwrap();
    let addr = listen_addr();
    let _server = serve(&dir.path().join("data"), &fake.url(), addr, &[]);
    let ok = hit_ids(addr, 0..30, 1);
    let more = {
        wait_until("the first batch", Duration::from_secs(10), || {
            fake.llen("pixel") > 0
        });
        hit_ids(addr, 30..60, 1)
    };
    let all: Vec<u64> = ok.iter().chain(&more).copied().collect();
    wait_until("everything", Duration::from_secs(15), || {
        fake.llen("pixel") >= 60
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_exactly_once(&fake.list_oldest_first("pixel"), &all);
}

/// The batch was applied and the answer never comes: the timeout fires, and the retry
/// is recognised as done.
#[test]
fn a_timed_out_batch_is_not_pushed_twice() {
    let fake = FakeRedis::start(0, vec![Fault::ApplyThenHang]);
    let dir = tempfile::tempdir().unwrap();
    let addr = listen_addr();
    let _server = serve(
        &dir.path().join("data"),
        &fake.url(),
        addr,
        &[("PIXELPIPE_SHIP__REDIS_TIMEOUT", "300ms")],
    );
    let ok = hit_ids(addr, 0..40, 1);
    wait_until("everything", Duration::from_secs(15), || {
        fake.llen("pixel") >= 40
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_exactly_once(&fake.list_oldest_first("pixel"), &ok);
}

/// Redis holds a shipped position far ahead of anything this log handed out (a data
/// folder restored from a backup, say), and it appears only after hits were answered:
/// those hits are still delivered, never taken for shipped ones.
#[test]
fn a_position_ahead_of_the_log_never_swallows_answered_hits() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let port = listener.local_addr().unwrap().port();
    drop(listener); // unreachable at first
    let dir = tempfile::tempdir().unwrap();
    let addr = listen_addr();
    let server = serve(&dir.path().join("data"), &url, addr, &[]);
    let ok = hit_ids(addr, 0..50, 1);
    assert_eq!(ok.len(), 50);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let fake = FakeRedis::on(listener, 1 << 40, vec![]);
    wait_until("the hits", Duration::from_secs(15), || {
        fake.llen("pixel") >= 50
    });
    let more = hit_ids(addr, 50..80, 1);
    wait_until("the later hits", Duration::from_secs(15), || {
        fake.llen("pixel") >= 80
    });
    let all: Vec<u64> = ok.iter().chain(&more).copied().collect();
    assert_exactly_once(&fake.list_oldest_first("pixel"), &all);
    assert!(
        server.stderr().contains("beyond"),
        "says what happened:\n{}",
        server.stderr()
    );
}
