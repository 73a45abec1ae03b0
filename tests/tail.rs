//! `pixelpipe tail` against a real redis-server: the seed's output, JSON, inspection,
//! reliable consumption across `kill -9`, sharing between consumers, `--exec` with
//! retries and dead letters, and a Redis restart.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::consume::{push, tail, Tail};
use common::{wait_until, Redis};

fn records(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("1700000000.{:03},n={i}&v=x", i % 1000))
        .collect()
}

#[test]
fn prints_what_the_seed_printed_and_json() {
    let redis = Redis::start();
    let crafted: Vec<String> = [
        "1379183721.115,foo=bar&baz=1",
        "1379183721.116,a=1&a=2&q=hello+world%21&e=%C3%A9",
        "1379183721.117,",
        "1379183721.118,a=1,2",
        "no-comma-here",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    push(&redis, "pixel", &crafted);
    // Invalid UTF-8 cannot go through a Rust String: push raw bytes.
    let _: () = redis::cmd("LPUSH")
        .arg("pixel")
        .arg(&b"1379183721.119,x=%FF&y=\xfe"[..])
        .query(&mut redis.conn())
        .unwrap();

    let peek = tail(&redis, &["--no-remove", "--json"]);
    let json = String::from_utf8(peek.stdout).unwrap();
    assert_eq!(
        json,
        concat!(
            "{\"timestamp\":1379183721.115,\"fields\":{\"foo\":\"bar\",\"baz\":\"1\"}}\n",
            "{\"timestamp\":1379183721.116,\"fields\":{\"a\":[\"1\",\"2\"],\"q\":\"hello world!\",\"e\":\"é\"}}\n",
            "{\"timestamp\":1379183721.117,\"fields\":{}}\n",
            "{\"timestamp\":1379183721.118,\"fields\":{\"a\":\"1,2\"}}\n",
            "{\"timestamp\":null,\"fields\":{},\"raw\":\"no-comma-here\"}\n",
            "{\"timestamp\":1379183721.119,\"fields\":{\"x\":\"\u{fffd}\",\"y\":\"\u{fffd}\"}}\n",
        )
    );
    assert_eq!(redis.llen("pixel"), 6, "--no-remove removes nothing");
    assert!(String::from_utf8_lossy(&peek.stderr).contains("malformed"));

    let out = tail(&redis, &["--count", "6"]);
    assert_eq!(
        out.stdout,
        &b"1379183721.115 foo=bar&baz=1\n\
           1379183721.116 a=1&a=2&q=hello+world%21&e=%C3%A9\n\
           1379183721.117 \n\
           1379183721.118 a=1,2\n\
           no-comma-here\n\
           1379183721.119 x=%FF&y=\xfe\n"[..]
    );
    assert_eq!(redis.llen("pixel"), 0);
}

#[test]
fn count_stops_and_leaves_the_rest() {
    let redis = Redis::start();
    push(&redis, "pixel", &records(2500));
    let out = tail(&redis, &["--count", "1234", "--key", "pixel"]);
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 1234);
    assert_eq!(lines[0], "1700000000.000 n=0&v=x");
    assert_eq!(lines[1233], "1700000000.233 n=1233&v=x");
    assert_eq!(redis.llen("pixel"), 2500 - 1234);

    // Inspection pages through the list (7 a round trip here), oldest first.
    let peek = tail(&redis, &["--no-remove", "--fetch", "7"]);
    let lines: Vec<&str> = std::str::from_utf8(&peek.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 2500 - 1234);
    assert_eq!(lines[0], "1700000000.234 n=1234&v=x");
    assert_eq!(lines[lines.len() - 1], "1700000000.499 n=2499&v=x");
    assert_eq!(redis.llen("pixel"), 2500 - 1234);
}

/// Numbers `n=` of the events in `lines` (text output).
fn numbers(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .map(|l| {
            let n = l.split("n=").nth(1).and_then(|r| r.split('&').next());
            n.and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect()
}

/// Runs a reliable consumer over `n` events, kills it with SIGKILL once `output` shows
/// `kill_after` lines, restarts it with the same name and returns (the lines output,
/// events that were in flight at the kill, the restarted consumer's stderr).
/// `shared_output`: both runs append to one file (`--exec`), not each to its stdout.
fn kill_and_restart(
    n: usize,
    shared_output: bool,
    kill_after: usize,
    args: &[&str],
    output: &dyn Fn(&Tail) -> Vec<String>,
) -> (Vec<String>, usize, String) {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    push(&redis, "pixel", &records(n));
    let mut args = args.to_vec();
    args.extend(["--reliable", "--consumer", "one"]);
    let mut first = Tail::start(&redis.url(), dir.path(), "first", &args);
    wait_until(
        "the first consumer to handle some events",
        Duration::from_secs(20),
        || output(&first).len() >= kill_after,
    );
    first.kill9();
    let killed_at = output(&first).len();
    assert!(
        killed_at < n,
        "killed mid-stream (raise n if this machine is fast)"
    );
    let in_flight = redis.llen("pixel:processing:one");

    let mut second = Tail::start(&redis.url(), dir.path(), "second", &args);
    wait_until(
        "the list and the processing list to drain",
        Duration::from_secs(60),
        || redis.llen("pixel") == 0 && redis.llen("pixel:processing:one") == 0,
    );
    assert_eq!(second.terminate().code(), Some(0));
    let mut lines = output(&second);
    if !shared_output {
        lines = [output(&first), lines].concat();
    }
    // A killed process may have left a partial last line: only whole lines count.
    lines.retain(|l| l.ends_with("&v=x") || l.ends_with("\"v\":\"x\"}}"));
    eprintln!(
        "killed after {killed_at}; {in_flight} in flight; {} lines in all",
        lines.len()
    );
    (lines, in_flight, second.stderr())
}

/// Every event at least once; duplicates only from the batch in flight at the kill.
fn check_redelivery(n: usize, numbers: Vec<usize>, in_flight: usize) {
    let seen: HashSet<usize> = numbers.iter().copied().collect();
    assert_eq!(seen.len(), n, "every event delivered at least once");
    let duplicates = numbers.len() - n;
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates but only {in_flight} events were in flight"
    );
}

#[test]
fn reliable_consumer_killed_and_restarted_loses_nothing() {
    // Printing: the kill lands anywhere, often between batches (nothing in flight).
    const N: usize = 100_000;
    let (lines, in_flight, _) =
        kill_and_restart(N, false, 1000, &["--fetch", "200"], &|t| t.lines());
    assert!(in_flight <= 200);
    let got = numbers(&lines);
    check_redelivery(N, got.clone(), in_flight);
    if in_flight == 0 {
        assert_eq!(got, (0..N).collect::<Vec<_>>(), "exactly once, in order");
    }
}

#[test]
fn reliable_exec_killed_mid_batch_redelivers_the_unfinished_batch() {
    // A command per 5 events, 50 events a fetch: the kill lands inside a batch.
    const N: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("handled");
    let command = format!("cat >> {}", out.display());
    let read = |_: &Tail| -> Vec<String> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let (lines, in_flight, stderr) = kill_and_restart(
        N,
        true,
        60,
        &["--exec", &command, "--batch", "5", "--fetch", "50"],
        &read,
    );
    assert!(in_flight > 0 && in_flight <= 50, "{in_flight} in flight");
    assert!(stderr.contains("re-delivering"), "{stderr}");
    let got: Vec<usize> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["fields"]["n"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    check_redelivery(N, got, in_flight);
}

#[test]
fn two_reliable_consumers_share_the_work() {
    const N: usize = 20_000;
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Tail::start(
        &redis.url(),
        dir.path(),
        "a",
        &["--reliable", "--consumer", "a", "--fetch", "50"],
    );
    let mut b = Tail::start(
        &redis.url(),
        dir.path(),
        "b",
        &["--reliable", "--consumer", "b", "--fetch", "50"],
    );
    push(&redis, "pixel", &records(N));
    wait_until(
        "both consumers to drain the list",
        Duration::from_secs(30),
        || a.lines().len() + b.lines().len() >= N,
    );
    assert_eq!(a.terminate().code(), Some(0));
    assert_eq!(b.terminate().code(), Some(0));
    let (na, nb) = (numbers(&a.lines()), numbers(&b.lines()));
    assert!(
        !na.is_empty() && !nb.is_empty(),
        "both took a share: {} / {}",
        na.len(),
        nb.len()
    );
    let mut seen: HashMap<usize, u32> = HashMap::new();
    for n in na.iter().chain(&nb) {
        *seen.entry(*n).or_default() += 1;
    }
    assert_eq!(seen.len(), N, "the union is every event");
    assert!(seen.values().all(|&c| c == 1), "no event twice");
    assert_eq!(
        redis.llen("pixel:processing:a") + redis.llen("pixel:processing:b"),
        0
    );
}

#[test]
fn exec_retries_then_dead_letters() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let attempts = dir.path().join("attempts");
    let done = dir.path().join("done");
    push(
        &redis,
        "pixel",
        &[
            "1.000,ok=1".to_string(),
            "2.000,fail=1".to_string(),
            "3.000,ok=2".to_string(),
            "4.000,ok=3".to_string(),
        ],
    );
    // Fails on any input holding "fail"; records each run.
    let command = format!(
        "in=$(cat); echo \"$in\" >> {a}; case \"$in\" in *fail*) exit 3;; esac; echo \"$in\" >> {d}",
        a = attempts.display(),
        d = done.display()
    );
    let out = tail(
        &redis,
        &[
            "--reliable",
            "--consumer",
            "x",
            "--exec",
            &command,
            "--retries",
            "2",
            "--retry-backoff",
            "10ms",
            "--count",
            "4",
        ],
    );
    let done = std::fs::read_to_string(&done).unwrap();
    assert_eq!(
        done,
        "{\"timestamp\":1.000,\"fields\":{\"ok\":\"1\"}}\n\
         {\"timestamp\":3.000,\"fields\":{\"ok\":\"2\"}}\n\
         {\"timestamp\":4.000,\"fields\":{\"ok\":\"3\"}}\n"
    );
    let attempts = std::fs::read_to_string(&attempts).unwrap();
    assert_eq!(
        attempts.matches("fail").count(),
        3,
        "one run and two retries"
    );
    assert_eq!(redis.list_oldest_first("pixel:dead"), vec!["2.000,fail=1"]);
    assert_eq!(redis.llen("pixel:processing:x"), 0);
    assert_eq!(redis.llen("pixel"), 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dead-letter"), "{stderr}");

    // Batches: three events per run, all acknowledged together.
    push(
        &redis,
        "pixel",
        &(0..6).map(|i| format!("{i}.000,b={i}")).collect::<Vec<_>>(),
    );
    let runs = dir.path().join("runs");
    let command = format!("wc -l >> {}", runs.display());
    tail(
        &redis,
        &["--exec", &command, "--batch", "3", "--count", "6"],
    );
    let runs: Vec<String> = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    assert_eq!(runs, vec!["3", "3"]);
}

#[test]
fn survives_a_redis_restart_and_long_idle_blocks() {
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut t = Tail::start(
        &redis.url(),
        dir.path(),
        "t",
        &["--reliable", "--consumer", "r"],
    );
    // Idle longer than the blocking read's block time and any default client timeout:
    // the blocked read must not be taken for a dead connection.
    std::thread::sleep(Duration::from_millis(2500));
    push(&redis, "pixel", &["1.000,before=1".to_string()]);
    wait_until(
        "the event before the restart",
        Duration::from_secs(10),
        || t.lines().len() == 1,
    );
    assert!(!t.stderr().contains("cannot reach Redis"), "{}", t.stderr());

    redis.restart();
    push(&redis, "pixel", &["2.000,after=1".to_string()]);
    wait_until(
        "the event after the restart",
        Duration::from_secs(20),
        || t.lines().len() == 2,
    );
    assert_eq!(t.lines(), vec!["1.000 before=1", "2.000 after=1"]);
    let stderr = t.stderr();
    assert_eq!(stderr.matches("cannot reach Redis").count(), 1, "{stderr}");
    assert_eq!(
        stderr.matches("reconnected to Redis").count(),
        1,
        "{stderr}"
    );
    assert_eq!(t.terminate().code(), Some(0));
}
