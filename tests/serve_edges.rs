//! "Answered 200 means delivered" at the edges, end to end with the real binary and a real
//! `redis-server`: a full disk (a small tmpfs), a log tail lost below Redis's position, a
//! list key that holds a string, Redis refusing writes (OOM), a Redis that stops
//! answering (`DEBUG SLEEP`), a second process on the same data folder or port.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

/// Every id exactly once, and nothing else.
fn assert_exactly_once(records: &[String], expected: &[u64]) {
    common::assert_exactly_once(records, expected);
    assert_eq!(
        common::ids_of(records).len(),
        expected.len(),
        "nothing but the expected ids"
    );
}

fn status(addr: SocketAddr, target: &str) -> Option<u16> {
    http_get(addr, target).map(|r| r.status)
}

fn redis_with_debug() -> Redis {
    Redis::start_with(free_port(), false, &["--enable-debug-command", "yes"])
}

fn redis_cmd(redis: &Redis, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut redis.conn())
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// `total_connections_received` from `INFO stats`: how often the shipper reconnected.
fn connections_received(redis: &Redis) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut redis.conn())
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_connections_received")
}

/// A small tmpfs mounted on `<tempdir>/data` (so that pixelpipe's own log, written next
/// to its data folder, is not on the full volume), unmounted on drop. `None` (with the
/// reason printed) only where mounting is not permitted.
struct Tmpfs {
    dir: tempfile::TempDir,
    data: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&data)
            .output()
            .expect("running mount");
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {}",
                why.trim()
            );
            return None;
        }
        Some(Tmpfs { dir, data })
    }

    /// The data folder: the volume itself.
    fn data(&self) -> &Path {
        &self.data
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.data).status();
        let _ = &self.dir;
    }
}

/// A padding that makes each record about 1 KiB, so a small volume fills quickly.
const PAD: &str = "pad=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// Hits `/pixel.gif?id=N&pad=…` from `first` on, one keep-alive connection, until `stop`
/// hits were refused (503) or `limit` ids were sent. Returns the ids answered 200 and the
/// next unused id.
fn hit_until_refused(addr: SocketAddr, first: u64, limit: u64, stop: usize) -> (Vec<u64>, u64) {
    let mut ok = Vec::new();
    let mut refused = 0;
    let mut client = Client::connect(addr).expect("connect");
    let mut id = first;
    while id < first + limit && refused < stop {
        match client.get(&format!("/pixel.gif?id={id}&{PAD}")) {
            Some(r) if r.status == 200 => ok.push(id),
            Some(r) if r.status == 503 => refused += 1,
            Some(r) => panic!("unexpected status {}", r.status),
            None => client = Client::connect(addr).expect("reconnect"),
        }
        id += 1;
    }
    assert!(
        refused >= stop,
        "the volume never filled ({} hits)",
        id - first
    );
    (ok, id)
}

/// After recovery: polls with padded hits until one is answered 200, then sends `more`
/// padded hits that must all be answered 200 (more than any slack left in the last page
/// of a full volume could hold). Returns the ids answered 200.
fn hits_resume(addr: SocketAddr, first: u64, within: Duration, more: u64) -> Vec<u64> {
    let started = Instant::now();
    let mut id = first;
    let mut client = Client::connect(addr).expect("connect");
    loop {
        assert!(
            started.elapsed() < within,
            "serving did not resume within {within:?}"
        );
        let r = client.get(&format!("/pixel.gif?id={id}&{PAD}"));
        id += 1;
        match r {
            Some(r) if r.status == 200 => break,
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
            None => client = Client::connect(addr).expect("reconnect"),
        }
    }
    let mut ok = vec![id - 1];
    for id in id..id + more {
        let r = client.get(&format!("/pixel.gif?id={id}&{PAD}"));
        assert_eq!(r.map(|r| r.status), Some(200), "hit {id} after recovery");
        ok.push(id);
    }
    ok
}

fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Issue 9, items 1 and 5: Redis down, the data volume fills and hits get 503; Redis back,
/// the backlog ships, and serving resumes within a second or so without a restart. The
/// full disk is reported once, not per failed group.
#[test]
fn a_full_disk_recovers_once_the_backlog_is_shipped_without_a_restart() {
    let Some(volume) = Tmpfs::mount("512k") else {
        return;
    };
    let port = free_port();
    let addr = listen_addr();
    let server = serve(
        volume.data(),
        &format!("redis://127.0.0.1:{port}"),
        addr,
        &[],
    );
    let (ok, next) = hit_until_refused(addr, 0, 5_000, 300);
    assert!(
        ok.len() > 100,
        "some hits were taken before the disk filled"
    );
    let log = server.stderr();
    assert!(
        count_lines(&log, "ERROR") <= 2,
        "a full disk is reported once, not per failed group:\n{log}"
    );
    assert!(server.metric("pixelpipe_log_write_errors_total", "") >= 300.0);
    assert_eq!(status(server.admin, "/readyz"), Some(503));

    let redis = Redis::start_on(port, false);
    wait_until("the backlog to ship", Duration::from_secs(20), || {
        redis.llen("pixel") >= ok.len()
    });
    // Serving resumes by itself: the shipped active segment is reclaimed.
    let after = hits_resume(addr, next, Duration::from_secs(3), 100);
    let all: Vec<u64> = ok.iter().chain(&after).copied().collect();
    wait_until("the new hits in Redis", Duration::from_secs(10), || {
        redis.llen("pixel") >= all.len()
    });
    assert_exactly_once(&redis.list_oldest_first("pixel"), &all);
}

/// Issue 9, item 1: a restart on a full disk starts, and recovers once Redis takes the
/// backlog.
#[test]
fn a_restart_on_a_full_disk_starts_and_recovers_by_itself() {
    let Some(volume) = Tmpfs::mount("512k") else {
        return;
    };
    let data = volume.data().to_owned();
    let port = free_port();
    let addr = listen_addr();
    let url = format!("redis://127.0.0.1:{port}");
    let mut server = serve(&data, &url, addr, &[]);
    let (ok, next) = hit_until_refused(addr, 0, 5_000, 50);
    server.kill9();
    let server = serve(&data, &url, addr, &[]);
    assert_eq!(
        status(addr, &format!("/pixel.gif?id={next}&{PAD}")),
        Some(503),
        "still full, Redis still down"
    );
    let redis = Redis::start_on(port, false);
    let after = hits_resume(addr, next + 1, Duration::from_secs(20), 100);
    let all: Vec<u64> = ok.iter().chain(&after).copied().collect();
    wait_until("everything in Redis", Duration::from_secs(20), || {
        redis.llen("pixel") >= all.len()
    });
    assert_exactly_once(&redis.list_oldest_first("pixel"), &all);
    drop(server);
}

/// The segment files of a log folder, oldest first.
fn segments(log_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Cuts the log so that only its first `keep` records remain (what a power loss does to
/// records the disk had not yet been given).
fn cut_log_after(log_dir: &Path, keep: usize) {
    use pixelpipe::log::entry::{decode, Decoded};
    let mut kept = 0;
    for seg in segments(log_dir) {
        let data = std::fs::read(&seg).unwrap();
        let mut at = 0;
        while kept < keep {
            match decode(&data[at..]) {
                Decoded::Entry(_, n) => {
                    at += n;
                    kept += 1;
                }
                _ => break,
            }
        }
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(at as u64).unwrap();
    }
    assert_eq!(kept, keep, "the log held fewer records than asked to keep");
}

/// Issue 9, item 2: with `fsync = never`, Redis has records the disk lost in a "power
/// loss"; the shipped cache lags too. Restarted with Redis unreachable, new hits answered
/// 200 must all reach Redis once it is back: positions are never reused.
#[test]
fn a_log_tail_lost_below_redis_position_never_swallows_new_hits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut redis = Redis::start_persistent();
    let addr = listen_addr();
    let env = [("PIXELPIPE_LOG__FSYNC", "never")];
    let mut server = serve(&data, &redis.url(), addr, &env);
    let first = hit_ids(addr, 0..100, 2);
    assert_eq!(first.len(), 100);
    wait_until("the first hits in Redis", Duration::from_secs(10), || {
        redis.llen("pixel") >= 100
    });
    server.kill9();
    // The power cut: the disk kept 40 of the 100 records, and the shipped-position cache
    // (never fsynced) is gone too. Redis holds the position after all 100.
    cut_log_after(&data.join("log"), 40);
    let _ = std::fs::remove_file(data.join("shipped"));
    redis.stop();

    let server = serve(&data, &redis.url(), addr, &env);
    let second = hit_ids(addr, 100..600, 2);
    assert_eq!(second.len(), 500, "answered 200 with Redis down");
    redis.restart(); // the same data back from its append-only file
    let all: Vec<u64> = first.iter().chain(&second).copied().collect();
    wait_until("every hit in Redis", Duration::from_secs(20), || {
        redis.llen("pixel") >= all.len()
    });
    // Let the shipper finish anything extra it might (wrongly) send.
    std::thread::sleep(Duration::from_millis(300));
    assert_exactly_once(&redis.list_oldest_first("pixel"), &all);
    let log = server.stderr();
    assert!(
        log.contains("lost its tail"),
        "the recovery says what happened:\n{log}"
    );
}

/// Issue 9, item 3 (serve's single key): a string on the list key makes Redis refuse the
/// push. The records are held, not skipped: reported once with the key and Redis's error,
/// counted, `/readyz` fails; once the key is fixed they arrive exactly once.
#[test]
fn a_refused_push_holds_the_records_until_the_key_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start();
    redis_cmd(&redis, &["SET", "pixel", "not a list"]);
    let addr = listen_addr();
    let server = serve(&dir.path().join("data"), &redis.url(), addr, &[]);
    let ok = hit_ids(addr, 0..25, 1);
    assert_eq!(ok.len(), 25);
    wait_until(
        "the refusal to be reported",
        Duration::from_secs(10),
        || server.stderr().contains("WRONGTYPE"),
    );
    // Retried with backoff for a while: still held, reported once.
    std::thread::sleep(Duration::from_secs(2));
    let log = server.stderr();
    assert_eq!(count_lines(&log, "WRONGTYPE"), 1, "reported once:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("WRONGTYPE") && l.contains("pixel")),
        "names the key:\n{log}"
    );
    assert!(server.metric("pixelpipe_ship_refused_batches_total", "") >= 1.0);
    assert_eq!(status(server.admin, "/readyz"), Some(503));
    assert_eq!(server.metric("pixelpipe_redis_up", ""), 0.0);

    redis_cmd(&redis, &["DEL", "pixel"]);
    wait_until("the held records", Duration::from_secs(20), || {
        redis.llen("pixel") >= 25
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_exactly_once(&redis.list_oldest_first("pixel"), &ok);
    wait_until("/readyz to pass", Duration::from_secs(10), || {
        status(server.admin, "/readyz") == Some(200)
    });
    assert_eq!(server.metric("pixelpipe_redis_up", ""), 1.0);
}

/// Issue 9, item 4: Redis accepts connections but refuses writes (OOM under `maxmemory
/// noeviction`). The shipper backs off instead of reconnecting and resending at once: few
/// connections, one log line, `/readyz` steadily 503 and consistent with
/// `pixelpipe_redis_up`; everything arrives once the memory is raised.
#[test]
fn redis_refusing_writes_gets_backoff_not_a_retry_storm() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start();
    redis_cmd(&redis, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis_cmd(&redis, &["CONFIG", "SET", "maxmemory", "1"]);
    let addr = listen_addr();
    let server = serve(&dir.path().join("data"), &redis.url(), addr, &[]);
    let before = connections_received(&redis);
    let ok = hit_ids(addr, 0..5, 1);
    assert_eq!(ok.len(), 5);
    let started = Instant::now();
    let mut readiness = Vec::new();
    while started.elapsed() < Duration::from_secs(4) {
        let ready = status(server.admin, "/readyz");
        let up = server.metric("pixelpipe_redis_up", "");
        readiness.push((ready, up));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Skip the first second: the hits may still be on their way to the shipper.
    let steady = &readiness[10..];
    assert!(
        steady.iter().all(|&(r, up)| r == Some(503) && up == 0.0),
        "/readyz and pixelpipe_redis_up agree and stay down: {steady:?}"
    );
    let reconnects = connections_received(&redis) - before;
    assert!(reconnects <= 3, "{reconnects} reconnects in 4 s");
    let log = server.stderr();
    let lines = log.lines().filter(|l| l.contains("OOM")).count();
    assert_eq!(lines, 1, "one line per change of state:\n{log}");

    redis_cmd(&redis, &["CONFIG", "SET", "maxmemory", "0"]);
    wait_until("the records", Duration::from_secs(20), || {
        redis.llen("pixel") >= 5
    });
    assert_exactly_once(&redis.list_oldest_first("pixel"), &ok);
    wait_until("/readyz to pass", Duration::from_secs(10), || {
        status(server.admin, "/readyz") == Some(200)
    });
}

/// Issue 9, item 4: a Redis that stops answering (`DEBUG SLEEP`) past `redis_timeout`:
/// the batch's reply is lost; the shipper reconnects (with backoff), reads the position
/// back, and nothing is lost or pushed twice.
#[test]
fn a_redis_that_stops_answering_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let redis = redis_with_debug();
    let addr = listen_addr();
    let server = serve(
        &dir.path().join("data"),
        &redis.url(),
        addr,
        &[("PIXELPIPE_SHIP__REDIS_TIMEOUT", "300ms")],
    );
    let first = hit_ids(addr, 0..50, 1);
    wait_until("the first hits", Duration::from_secs(10), || {
        redis.llen("pixel") >= 50
    });
    let url = redis.url();
    let sleeper = std::thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let _: redis::Value = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(2)
            .query(&mut c)
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    let second = hit_ids(addr, 50..150, 2);
    sleeper.join().unwrap();
    let all: Vec<u64> = first.iter().chain(&second).copied().collect();
    wait_until("every hit", Duration::from_secs(20), || {
        redis.llen("pixel") >= all.len()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_exactly_once(&redis.list_oldest_first("pixel"), &all);
    let log = server.stderr();
    assert!(
        count_lines(&log, "WARN") + count_lines(&log, "ERROR") <= 4,
        "said once per change of state:\n{log}"
    );
}

/// Issue 9, item 6: the lock is on the data folder itself: deleting a file in it does
/// not let a second process open the same log.
#[test]
fn a_second_process_on_the_same_data_folder_is_refused_even_without_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let redis = Redis::start();
    let _first = serve(&data, &redis.url(), listen_addr(), &[]);
    let _ = std::fs::remove_file(data.join("lock"));
    let mut second = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--redis", &redis.url(), "serve", "--listen"])
        .arg(listen_addr().to_string())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = (0..250).find_map(|_| {
        std::thread::sleep(Duration::from_millis(20));
        second.try_wait().unwrap()
    });
    let _ = second.kill();
    let out = second.wait_with_output().unwrap();
    assert!(
        exited.is_some_and(|s| !s.success()),
        "the second process must not start"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "{err}");
}

/// Issue 9, item 6: a second `serve` on a port another process listens on is refused
/// (SO_REUSEPORT would let it bind silently and take half the traffic), unless
/// `http.reuse_port` says the port is meant to be shared.
#[test]
fn a_second_serve_on_a_used_port_is_refused_unless_configured_to_share() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start();
    let addr = listen_addr();
    let _first = serve(&dir.path().join("one"), &redis.url(), addr, &[]);
    let second = |env: &[(&str, &str)]| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path().join("two"))
            .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--redis", &redis.url(), "serve", "--listen"])
            .arg(addr.to_string())
            .envs(env.iter().copied())
            .spawn()
            .unwrap()
    };
    let mut refused = second(&[]);
    let exited = (0..250).find_map(|_| {
        std::thread::sleep(Duration::from_millis(20));
        refused.try_wait().unwrap()
    });
    let _ = refused.kill();
    assert!(
        exited.is_some_and(|s| !s.success()),
        "the second serve must refuse the port"
    );

    // Configured to share: both run.
    let shared_addr = listen_addr();
    let _a = serve(
        &dir.path().join("four"),
        &redis.url(),
        shared_addr,
        &[("PIXELPIPE_HTTP__REUSE_PORT", "true")],
    );
    let _b = serve(
        &dir.path().join("five"),
        &redis.url(),
        shared_addr,
        &[("PIXELPIPE_HTTP__REUSE_PORT", "true")],
    );
}
