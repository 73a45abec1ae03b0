//! `pixelpipe tail --exec` with a command that hangs: bounded by `--exec-timeout`, and
//! stopped on SIGTERM with its events left for the next start.

mod common;

use std::time::{Duration, Instant};

use common::consume::{push, Tail};
use common::*;

/// A run that outlives `--exec-timeout` is killed and counts as a failed try: after the
/// retries, the event goes to the dead-letter list.
#[test]
fn a_hanging_command_times_out_and_its_event_is_dead_lettered() {
    let redis = Redis::start();
    push(&redis, "pixel", &["1379183721.115,foo=bar".to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut tail = Tail::start(
        &redis.url(),
        dir.path(),
        "hang",
        &[
            "--reliable",
            "--consumer",
            "c",
            "--exec",
            "sleep 100",
            "--exec-timeout",
            "300ms",
            "--retries",
            "1",
            "--retry-backoff",
            "10ms",
            "--count",
            "1",
        ],
    );
    wait_until("tail to give up and exit", Duration::from_secs(15), || {
        tail.child.try_wait().ok().flatten().is_some()
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        redis.list_oldest_first("pixel:dead"),
        vec!["1379183721.115,foo=bar"],
        "{}",
        tail.stderr()
    );
    assert_eq!(redis.llen("pixel:processing:c"), 0);
    assert!(tail.stderr().contains("timed out"), "{}", tail.stderr());
    tail.kill9();
}

/// SIGTERM while the command runs: the command is stopped (after a short grace), tail
/// exits, and the event stays in the processing list for the next start.
#[test]
fn sigterm_stops_a_running_command_and_leaves_its_event_for_the_next_start() {
    let redis = Redis::start();
    push(&redis, "pixel", &["1379183721.115,foo=bar".to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("finished");
    let command = format!("sleep 100; touch {}", marker.display());
    let mut tail = Tail::start(
        &redis.url(),
        dir.path(),
        "term",
        &["--reliable", "--consumer", "c", "--exec", &command],
    );
    wait_until(
        "the event to be in processing",
        Duration::from_secs(10),
        || redis.llen("pixel:processing:c") == 1,
    );
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    let status = tail.terminate();
    assert!(status.success(), "{status}: {}", tail.stderr());
    assert!(asked.elapsed() < Duration::from_secs(6));
    assert_eq!(
        redis.llen("pixel:processing:c"),
        1,
        "left for the next start"
    );
    assert_eq!(redis.llen("pixel:dead"), 0, "not a failure");
    assert!(!marker.exists());
}
