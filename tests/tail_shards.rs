//! Plain `pixelpipe tail` (lists) with `ship.shards = 3` on a real redis-server: the
//! records sit in `pixel:{0}`, `pixel:{1}`, `pixel:{2}`, and tail reads all of them —
//! `--count` exactly, `--no-remove` everything, `--reliable` across `kill -9`, blocking on
//! every shard at once, dead letters readable back with `--key pixel:dead`.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Output;
use std::time::Duration;

use common::consume::{push, tail_with_env, Tail};
use common::{wait_until, Redis};

const SHARDS: [&str; 3] = ["pixel:{0}", "pixel:{1}", "pixel:{2}"];
const ENV: [(&str, &str); 1] = [("PIXELPIPE_SHIP__SHARDS", "3")];

/// `per_shard` records in each shard, numbered `n=` across all of them (shard s holds
/// `s * per_shard ..`), pushed as the shipper pushes them.
fn fill(redis: &Redis, per_shard: usize) {
    for (s, key) in SHARDS.iter().enumerate() {
        let records: Vec<String> = (s * per_shard..(s + 1) * per_shard)
            .map(|i| format!("1700000000.{:03},n={i}&v=x", i % 1000))
            .collect();
        push(redis, key, &records);
    }
}

/// `pixelpipe tail <args>` with three shards, run to completion.
fn tail3(redis: &Redis, args: &[&str]) -> Output {
    tail_with_env(redis, args, &ENV)
}

fn start3(redis: &Redis, dir: &std::path::Path, name: &str, args: &[&str]) -> Tail {
    Tail::start_with_env(&redis.url(), dir, name, args, &ENV)
}

/// The `n=` of each whole line (text output); a killed process's torn last line is left out.
fn numbers(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .filter(|l| l.ends_with("&v=x"))
        .map(|l| {
            let n = l.split("n=").nth(1).and_then(|r| r.split('&').next());
            n.and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect()
}

fn stdout_numbers(out: &Output) -> Vec<usize> {
    let text = String::from_utf8_lossy(&out.stdout);
    numbers(&text.lines().map(str::to_owned).collect::<Vec<_>>())
}

/// Each shard's events in `got` came in its own order (oldest first).
fn assert_in_order_per_shard(got: &[usize], per_shard: usize) {
    let mut last: HashMap<usize, usize> = HashMap::new();
    for &n in got {
        if let Some(before) = last.insert(n / per_shard, n) {
            assert!(before < n, "shard {}: {n} after {before}", n / per_shard);
        }
    }
}

fn total_len(redis: &Redis) -> usize {
    SHARDS.iter().map(|k| redis.llen(k)).sum()
}

#[test]
fn count_and_no_remove_span_every_shard() {
    const PER: usize = 1000;
    let redis = Redis::start();
    fill(&redis, PER);

    let peek = tail3(&redis, &["--no-remove", "--fetch", "70"]);
    let seen = stdout_numbers(&peek);
    assert_eq!(seen.len(), 3 * PER);
    assert_eq!(
        seen.iter().copied().collect::<HashSet<_>>(),
        (0..3 * PER).collect(),
        "--no-remove sees every event of every shard"
    );
    assert_in_order_per_shard(&seen, PER);
    assert_eq!(total_len(&redis), 3 * PER, "--no-remove removes nothing");

    // Exactly the count, never more taken from Redis than printed.
    let first = stdout_numbers(&tail3(&redis, &["--count", "1234", "--fetch", "100"]));
    assert_eq!(first.len(), 1234);
    assert_eq!(total_len(&redis), 3 * PER - 1234);
    let second = stdout_numbers(&tail3(&redis, &["--count", "1766"]));
    assert_eq!(total_len(&redis), 0);
    assert_eq!(redis.llen("pixel"), 0, "the unsharded key is not involved");
    let all = [first, second].concat();
    assert_in_order_per_shard(&all, PER);
    assert_eq!(all.len(), 3 * PER);
    assert_eq!(
        all.into_iter().collect::<HashSet<_>>().len(),
        3 * PER,
        "each event once"
    );
}

#[test]
fn reliable_consumer_killed_and_restarted_loses_nothing_on_any_shard() {
    const PER: usize = 50_000;
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    fill(&redis, PER);
    let args = ["--reliable", "--consumer", "one", "--fetch", "200"];
    let processing = [
        "pixel:{0}:processing:one",
        "pixel:{1}:processing:one",
        "pixel:{2}:processing:one",
    ];
    let in_processing = || processing.iter().map(|k| redis.llen(k)).sum::<usize>();

    let mut first = start3(&redis, dir.path(), "first", &args);
    wait_until(
        "the first consumer to print",
        Duration::from_secs(20),
        || first.lines().len() >= 1000,
    );
    first.kill9();
    let in_flight = in_processing();
    assert!(in_flight <= 3 * 200, "at most a batch per shard in flight");
    let killed_at = numbers(&first.lines()).len();
    assert!(
        killed_at < 3 * PER,
        "killed mid-way (raise PER if this machine is fast)"
    );

    let mut second = start3(&redis, dir.path(), "second", &args);
    wait_until(
        "every shard and processing list to drain",
        Duration::from_secs(60),
        || total_len(&redis) == 0 && in_processing() == 0,
    );
    assert_eq!(second.terminate().code(), Some(0));
    if in_flight > 0 {
        assert!(
            second.stderr().contains("re-delivering"),
            "{}",
            second.stderr()
        );
    }
    let got = [numbers(&first.lines()), numbers(&second.lines())].concat();
    eprintln!(
        "killed after {killed_at}; {in_flight} in flight; {} lines in all",
        got.len()
    );
    let seen: HashSet<usize> = got.iter().copied().collect();
    assert_eq!(seen, (0..3 * PER).collect(), "every event of every shard");
    assert!(
        got.len() - seen.len() <= in_flight,
        "{} duplicates, but only {in_flight} were in flight",
        got.len() - seen.len()
    );
    if in_flight == 0 {
        assert_eq!(got.len(), 3 * PER, "exactly once");
    }
    assert_in_order_per_shard(&numbers(&second.lines()), PER);
}

/// Redis's count of clients blocked in a command (`BRPOP`, `BLMOVE`).
fn blocked_clients(redis: &Redis) -> usize {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(&mut redis.conn())
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("blocked_clients in INFO")
}

#[test]
fn waits_on_every_shard_at_once() {
    for mode in [&[][..], &["--reliable", "--consumer", "w"][..]] {
        let redis = Redis::start();
        let dir = tempfile::tempdir().unwrap();
        let mut t = start3(&redis, dir.path(), "t", mode);
        wait_until(
            "a blocking read on each of the three shards",
            Duration::from_secs(10),
            || blocked_clients(&redis) == 3,
        );
        push(&redis, "pixel:{2}", &["1.000,shard=2".to_string()]);
        wait_until("the event of shard 2", Duration::from_secs(10), || {
            t.lines() == ["1.000 shard=2"]
        });
        push(&redis, "pixel:{0}", &["2.000,shard=0".to_string()]);
        wait_until("the event of shard 0", Duration::from_secs(10), || {
            t.lines().len() == 2
        });
        assert_eq!(t.lines(), ["1.000 shard=2", "2.000 shard=0"], "{mode:?}");
        assert_eq!(t.terminate().code(), Some(0), "{}", t.stderr());
        assert_eq!(total_len(&redis), 0);
    }
}

#[test]
fn count_one_takes_the_event_from_whichever_shard_gets_it() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut t = start3(&redis, dir.path(), "t", &["--count", "1"]);
    wait_until("tail to wait on a shard", Duration::from_secs(10), || {
        blocked_clients(&redis) >= 1
    });
    push(
        &redis,
        "pixel:{1}",
        &["1.000,a=1".to_string(), "2.000,b=2".to_string()],
    );
    push(&redis, "pixel:{2}", &["3.000,c=3".to_string()]);
    wait_until(
        "tail to print one event and exit",
        Duration::from_secs(20),
        || t.child.try_wait().ok().flatten().is_some(),
    );
    let lines = t.lines();
    assert!(
        lines == ["1.000 a=1"] || lines == ["3.000 c=3"],
        "the oldest event of one shard: {lines:?}"
    );
    assert_eq!(total_len(&redis), 2, "nothing taken beyond the count");
}

#[test]
fn dead_letters_stay_in_their_shards_slot_and_read_back() {
    let redis = Redis::start();
    for (s, key) in SHARDS.iter().enumerate() {
        push(
            &redis,
            key,
            &[format!("{s}.000,fail={s}"), format!("{s}.500,ok={s}")],
        );
    }
    let out = tail3(
        &redis,
        &[
            "--reliable",
            "--consumer",
            "x",
            "--exec",
            "grep -q fail && exit 3; cat > /dev/null",
            "--retries",
            "0",
            "--count",
            "6",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("dead-letter"));
    for s in 0..3 {
        assert_eq!(
            redis.list_oldest_first(&format!("pixel:dead:{{{s}}}")),
            vec![format!("{s}.000,fail={s}")]
        );
        assert_eq!(redis.llen(&format!("pixel:{{{s}}}:processing:x")), 0);
    }
    let replay = tail3(&redis, &["--key", "pixel:dead", "--count", "3"]);
    let mut lines: Vec<String> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, ["0.000 fail=0", "1.000 fail=1", "2.000 fail=2"]);
}
