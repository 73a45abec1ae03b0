//! The list sink against a real `redis-server`, one batch at a time: every answer the
//! shipper's exactly-once guarantee rests on (see `src/ship/sink.rs`), from the usual
//! transaction (an `LPUSH` per list and `list_check.lua` in one `MULTI`/`EXEC`) and from
//! `ship.lua`, which takes over when a key holds another type.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use pixelpipe::config::LogConfig;
use pixelpipe::log::{entry, Batch, Log, Reader};
use pixelpipe::ship::redis_list::RedisList;
use pixelpipe::ship::sink::{RefusedPolicy, Shipped, Sink, SinkError};
use redis::Commands;

const POSITION: &str = "pixelpipe:shipped:test";

struct Fixture {
    redis: Redis,
    log: Arc<Log>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(&dir.path().join("log"), LogConfig::default(), 0).unwrap();
        Fixture {
            redis: Redis::start(),
            log: Arc::new(log),
            _dir: dir,
        }
    }

    async fn sink(&self, policy: RefusedPolicy) -> RedisList {
        let client = redis::Client::open(self.redis.url()).unwrap();
        let mut sink = RedisList::new(client, POSITION.into(), Duration::from_secs(5), policy);
        sink.connect().await.expect("connect");
        sink
    }

    /// Appends `(key, value)` records; returns the batch of them, read back from the log.
    fn append(&self, records: &[(&str, &str)]) -> Batch {
        let start = self.log.end();
        let mut buf = Vec::new();
        for (key, value) in records {
            entry::encode(&mut buf, key.as_bytes(), value.as_bytes());
        }
        self.log.write(&buf, records.len() as u64).unwrap();
        self.read(start)
    }

    /// Everything in the log from `start` on, as one batch.
    fn read(&self, start: u64) -> Batch {
        Reader::new(self.log.clone())
            .read(start, 100_000, 64 << 20)
            .unwrap()
    }

    fn position(&self) -> Option<u64> {
        self.redis.conn().get(POSITION).unwrap()
    }
}

fn records(key: &str, from: usize, n: usize) -> Vec<(&str, String)> {
    (from..from + n)
        .map(|i| (key, format!("1795811017.{:03},id={i}", i % 1000)))
        .collect()
}

fn values(records: &[(&str, String)]) -> Vec<String> {
    records.iter().map(|(_, v)| v.clone()).collect()
}

/// The values of `key`'s records, in order.
fn of_key(records: &[(&str, String)], key: &str) -> Vec<String> {
    records
        .iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

/// Ships `batch` and expects it applied whole.
async fn assert_applied(sink: &mut RedisList, batch: &Batch) {
    match sink.ship(batch).await {
        Ok(Shipped::Applied { .. }) => {}
        other => panic!("expected the batch applied, got {other:?}"),
    }
}

fn borrowed<'a>(records: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    records.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Applied once, in log order on each list, with the position; the same batch again (a
/// retry after a lost reply) and a batch reaching back before Redis's position change
/// nothing and tell the shipper where to resume.
#[tokio::test]
async fn a_batch_is_applied_once_and_a_repeat_or_overlap_changes_nothing() {
    let f = Fixture::new();
    let mut sink = f.sink(RefusedPolicy::Hold).await;
    let first_start = f.log.end();
    let mut a = records("pixel", 0, 300);
    a.extend(records("other", 300, 20));
    a.extend(records("pixel", 320, 5));
    let batch_a = f.append(&borrowed(&a));
    assert_eq!(
        sink.ship(&batch_a).await.unwrap(),
        Shipped::Applied {
            dead_lettered: vec![]
        }
    );
    let want_pixel = of_key(&a, "pixel");
    let want_other = of_key(&a, "other");
    assert_eq!(f.redis.list_oldest_first("pixel"), want_pixel);
    assert_eq!(f.redis.list_oldest_first("other"), want_other);
    assert_eq!(f.position(), Some(batch_a.end));

    // The same batch again: nothing pushed, nothing taken from what is there.
    assert_eq!(
        sink.ship(&batch_a).await.unwrap(),
        Shipped::Resume {
            position: batch_a.end
        }
    );
    let b = records("pixel", 1000, 10);
    f.append(&borrowed(&b));
    // From the first record on: starts before Redis's position, ends after it.
    let overlapping = f.read(first_start);
    assert_eq!(
        sink.ship(&overlapping).await.unwrap(),
        Shipped::Resume {
            position: batch_a.end
        }
    );
    assert_eq!(f.redis.list_oldest_first("pixel"), want_pixel);
    assert_eq!(f.redis.list_oldest_first("other"), want_other);

    // Resuming where Redis said: the rest, once.
    let rest = f.read(batch_a.end);
    assert_eq!(rest.len(), 10);
    assert_applied(&mut sink, &rest).await;
    let mut want = want_pixel.clone();
    want.extend(values(&b));
    assert_eq!(f.redis.list_oldest_first("pixel"), want);
    assert_eq!(f.position(), Some(rest.end));
}

/// Under `hold` (serve's policy) a key of another type refuses the whole batch: the
/// other list keeps exactly what it had, the position stays; once the key is fixed the
/// same batch goes through whole.
#[tokio::test]
async fn a_key_of_another_type_refuses_the_batch_and_leaves_the_other_lists_whole() {
    let f = Fixture::new();
    let mut sink = f.sink(RefusedPolicy::Hold).await;
    let mut conn = f.redis.conn();
    let _: () = conn.rpush("pixel", &["old-1", "old-2"]).unwrap();
    let _: () = conn.set("bad", "a string").unwrap();
    let mut batch = records("pixel", 0, 50);
    batch.extend(records("bad", 50, 5));
    batch.extend(records("pixel", 55, 50));
    let batch = f.append(&borrowed(&batch));
    for _ in 0..2 {
        match sink.ship(&batch).await {
            Err(SinkError::Refused(why)) => {
                assert!(why.contains("WRONGTYPE") && why.contains("`bad`"), "{why}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(f.redis.list_oldest_first("pixel"), ["old-2", "old-1"]);
        assert_eq!(conn.get::<_, String>("bad").unwrap(), "a string");
        assert_eq!(f.position(), None);
    }
    let _: () = conn.del("bad").unwrap();
    assert_applied(&mut sink, &batch).await;
    assert_eq!(f.redis.llen("pixel"), 102);
    assert_eq!(f.redis.llen("bad"), 5);
    assert_eq!(f.position(), Some(batch.end));
}

/// Under `dead` (the relay's policy) the records of a key of another type go to its
/// dead-letter list, the others to their lists, in the same step.
#[tokio::test]
async fn a_key_of_another_type_is_dead_lettered_with_the_rest_applied() {
    let f = Fixture::new();
    let mut sink = f.sink(RefusedPolicy::DeadLetter).await;
    let mut conn = f.redis.conn();
    let _: () = conn.hset("bad", "field", "value").unwrap();
    let good = records("good", 0, 40);
    let bad = records("bad", 40, 7);
    let mut all = good.clone();
    all.extend(bad.clone());
    let batch = f.append(&borrowed(&all));
    assert_eq!(
        sink.ship(&batch).await.unwrap(),
        Shipped::Applied {
            dead_lettered: vec![("bad".into(), 7)]
        }
    );
    assert_eq!(f.redis.list_oldest_first("good"), values(&good));
    assert_eq!(f.redis.list_oldest_first("bad:dead"), values(&bad));
    assert_eq!(f.position(), Some(batch.end));
}

/// A position key of another type: nothing applied, said as Redis says it.
#[tokio::test]
async fn a_position_key_of_another_type_refuses_the_batch() {
    let f = Fixture::new();
    let mut sink = f.sink(RefusedPolicy::Hold).await;
    let _: () = f.redis.conn().rpush(POSITION, "not a position").unwrap();
    let batch = f.append(&borrowed(&records("pixel", 0, 10)));
    match sink.ship(&batch).await {
        Err(SinkError::Refused(why)) => assert!(why.contains("WRONGTYPE"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(f.redis.llen("pixel"), 0);
}

/// A batch that is pushed and taken back inside one transaction (here, one shipped
/// before) is never seen by a consumer blocked on the list: the seed's `BRPOP` gets the
/// next real entry, not one of the batch's.
#[tokio::test]
async fn a_blocked_consumer_never_sees_a_batch_taken_back() {
    let f = Fixture::new();
    let mut sink = f.sink(RefusedPolicy::Hold).await;
    let batch = f.append(&borrowed(&records("pixel", 0, 25)));
    assert_applied(&mut sink, &batch).await;
    let _: () = f.redis.conn().del("pixel").unwrap();
    let url = f.redis.url();
    let consumer = std::thread::spawn(move || {
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let got: Option<(String, String)> = conn.brpop("pixel", 30.0).unwrap();
        got
    });
    wait_until(
        "the consumer to block on BRPOP",
        Duration::from_secs(10),
        || {
            let info: String = redis::cmd("INFO")
                .arg("clients")
                .query(&mut f.redis.conn())
                .unwrap();
            info.contains("blocked_clients:1")
        },
    );
    assert_eq!(
        sink.ship(&batch).await.unwrap(),
        Shipped::Resume {
            position: batch.end
        }
    );
    let _: () = f.redis.conn().lpush("pixel", "next").unwrap();
    let got = consumer.join().unwrap();
    assert_eq!(got, Some(("pixel".into(), "next".into())));
    assert_eq!(f.redis.llen("pixel"), 0);
}

/// Redis refusing writes — out of memory under `noeviction`, a read-only replica — refuses
/// the whole transaction (`EXECABORT`): nothing applied, Redis's own reason given, and the
/// same batch applied once Redis takes writes again.
#[tokio::test]
async fn redis_refusing_writes_refuses_the_batch_whole() {
    let f = Fixture::new();
    let master = Redis::start();
    let mut sink = f.sink(RefusedPolicy::Hold).await;
    let mut conn = f.redis.conn();
    let batch = f.append(&borrowed(&records("pixel", 0, 30)));
    let refused = |result: Result<Shipped, SinkError>, code: &str| match result {
        // As the client names it ("OOM", "ReadOnly"), with Redis's own words.
        Err(SinkError::Refused(why)) => assert!(why.to_uppercase().contains(code), "{why}"),
        other => panic!("expected a {code} refusal, got {other:?}"),
    };

    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "noeviction"])
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "1"])
        .query(&mut conn)
        .unwrap();
    refused(sink.ship(&batch).await, "OOM");
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "0"])
        .query(&mut conn)
        .unwrap();
    assert_eq!(f.redis.llen("pixel"), 0);
    assert_eq!(f.position(), None);

    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master.port)
        .query(&mut conn)
        .unwrap();
    refused(sink.ship(&batch).await, "READONLY");
    let _: () = redis::cmd("REPLICAOF")
        .arg(&["NO", "ONE"])
        .query(&mut conn)
        .unwrap();
    // The replica took its master's (empty) data meanwhile, or not yet: either way
    // nothing of the batch is there.
    assert_eq!(f.redis.llen("pixel"), 0);
    assert_eq!(f.position(), None);

    assert_applied(&mut sink, &batch).await;
    assert_eq!(
        f.redis.list_oldest_first("pixel"),
        values(&records("pixel", 0, 30))
    );
}

/// `SCRIPT FLUSH` between two batches changes nothing: the transaction's check travels
/// with each batch (`EVAL`), and `ship.lua` is loaded again when Redis has lost it.
#[tokio::test]
async fn a_flushed_script_cache_changes_nothing() {
    let f = Fixture::new();
    let mut sink = f.sink(RefusedPolicy::DeadLetter).await;
    let mut conn = f.redis.conn();
    let first = records("pixel", 0, 20);
    let batch = f.append(&borrowed(&first));
    assert_applied(&mut sink, &batch).await;
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut conn).unwrap();
    let second = records("pixel", 20, 20);
    let batch = f.append(&borrowed(&second));
    assert_applied(&mut sink, &batch).await;
    // Through ship.lua (a key of another type), with the cache flushed again.
    let _: () = conn.set("bad", "a string").unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut conn).unwrap();
    let third = records("bad", 40, 5);
    let batch = f.append(&borrowed(&third));
    assert_eq!(
        sink.ship(&batch).await.unwrap(),
        Shipped::Applied {
            dead_lettered: vec![("bad".into(), 5)]
        }
    );
    let mut want = values(&first);
    want.extend(values(&second));
    assert_eq!(f.redis.list_oldest_first("pixel"), want);
    assert_eq!(f.redis.list_oldest_first("bad:dead"), values(&third));
    assert_eq!(f.position(), Some(batch.end));
}

/// 400 steps at random (a fixed seed): batches of 1 to 60 records over three lists, some
/// sent again from an earlier start (a retry after a lost reply, an overlap), the script
/// cache flushed now and then, and one list's key holding a string for stretches (its
/// records dead-lettered meanwhile; the list moved aside before the string is put back).
/// Whatever the order, every record ends in Redis exactly once, each list in log order.
#[tokio::test]
async fn random_batches_retries_and_bad_keys_end_exactly_once() {
    let f = Fixture::new();
    let mut sink = f.sink(RefusedPolicy::DeadLetter).await;
    let mut conn = f.redis.conn();
    let mut rng = common::mutate::Mutator::new(0x5eed_1157);
    let keys = ["a", "b", "c"];
    let mut written: Vec<(String, String)> = Vec::new();
    let mut starts = Vec::new();
    let mut pos = f.log.end();
    let mut moved_aside = 0;
    let (mut repeats, mut overlaps) = (0, 0);
    let _: () = conn.set("c", "not a list").unwrap();
    for step in 0..400 {
        // New records, sometimes none (the batch is then a retry of what is there).
        let n = rng.below(61);
        let mut new = Vec::new();
        for i in 0..n {
            let key = keys[rng.below(keys.len())];
            new.push((
                key,
                format!("1795811017.{:03},step={step}&i={i}", step % 1000),
            ));
        }
        if !new.is_empty() {
            f.append(&borrowed(&new));
            written.extend(new.iter().map(|(k, v)| (k.to_string(), v.clone())));
        }
        match rng.below(10) {
            0 => {
                let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut conn).unwrap();
            }
            1 => {
                // The bad key goes away, or comes back once its list is moved aside.
                if key_type(&mut conn, "c") == "string" {
                    let _: () = conn.del("c").unwrap();
                } else {
                    if key_type(&mut conn, "c") == "list" {
                        let _: () = conn.rename("c", format!("c:aside:{moved_aside}")).unwrap();
                        moved_aside += 1;
                    }
                    let _: () = conn.set("c", "not a list").unwrap();
                }
            }
            _ => {}
        }
        // Mostly from where Redis is; one time in four from the start of one of the last
        // three batches applied (the batch may end before Redis's position, or past it).
        let from = if rng.below(4) == 0 && !starts.is_empty() {
            starts[starts.len() - 1 - rng.below(starts.len().min(3))]
        } else {
            pos
        };
        let batch = Reader::new(f.log.clone())
            .read(from, 1 + rng.below(80), 64 << 20)
            .unwrap();
        if batch.is_empty() {
            continue;
        }
        match sink.ship(&batch).await.unwrap() {
            Shipped::Applied { .. } => {
                assert_eq!(batch.start, pos, "applied only from Redis's position");
                starts.push(batch.start);
                pos = batch.end;
            }
            Shipped::Resume { position } => {
                assert_eq!(position, pos, "step {step}");
                assert!(
                    batch.start < pos,
                    "a batch from Redis's position is applied"
                );
                if batch.end > pos {
                    overlaps += 1;
                } else {
                    repeats += 1;
                }
            }
        }
    }
    // The rest, from where Redis is.
    loop {
        let batch = Reader::new(f.log.clone())
            .read(pos, 10_000, 64 << 20)
            .unwrap();
        if batch.is_empty() {
            break;
        }
        assert_applied(&mut sink, &batch).await;
        pos = batch.end;
    }
    assert_eq!(f.position(), Some(pos));
    // Each list holds its key's records in log order; together, every record once.
    let in_order = |key: &str, lists: &[String]| {
        let want: Vec<&String> = written
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect();
        let mut got: Vec<String> = Vec::new();
        for list in lists {
            let values = f.redis.list_oldest_first(list);
            // A list's entries are a subsequence of its key's records, in order.
            let mut at = want.iter();
            for v in &values {
                assert!(at.any(|w| *w == v), "{list}: {v} out of order or unknown");
            }
            got.extend(values);
        }
        let mut seen = std::collections::HashSet::new();
        let twice: Vec<&String> = got.iter().filter(|v| !seen.insert(*v)).collect();
        let missing: Vec<&&String> = want.iter().filter(|v| !seen.contains(**v)).collect();
        assert!(
            twice.is_empty() && missing.is_empty() && got.len() == want.len(),
            "{key}: every record exactly once; twice: {twice:?}, missing: {missing:?}"
        );
    };
    in_order("a", &["a".into()]);
    in_order("b", &["b".into()]);
    let mut c_lists: Vec<String> = vec!["c".into(), "c:dead".into()];
    c_lists.extend((0..moved_aside).map(|i| format!("c:aside:{i}")));
    in_order("c", &c_lists);
    assert!(
        f.redis.llen("c:dead") > 0 && moved_aside > 0,
        "the bad key was exercised"
    );
    assert!(
        repeats > 10 && overlaps > 10,
        "{repeats} repeats and {overlaps} overlaps"
    );
}

fn key_type(conn: &mut redis::Connection, key: &str) -> String {
    redis::cmd("TYPE").arg(key).query(conn).unwrap()
}
