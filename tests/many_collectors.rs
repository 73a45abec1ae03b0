//! Issue 13: many collectors on one key. Each `serve` keeps its own positions, named by
//! its instance id (made once in its data folder), so four of them writing `pixel` at
//! once, one restarted mid-load, still put every answered hit in Redis exactly once.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const COLLECTORS: u64 = 4;
const IDS_EACH: u64 = 2500;

/// How the collector restarted mid-load goes down.
#[derive(Clone, Copy)]
enum Stop {
    /// `kill -9`: with the default fsync, an answered hit is in the page cache already,
    /// so the process's death loses none.
    Kill,
    /// SIGTERM: stops accepting, answers what is in flight, ships what it can.
    Term,
}

struct Collector {
    data: PathBuf,
    addr: SocketAddr,
    process: Pixelpipe,
}

/// A collector on `addr`. The restarted one takes its port back: the port came from the
/// kernel's ephemeral range, so once its listener closed, the kernel may hand it to one of
/// this test's own outgoing connections for a moment (a real bind fails then too): then
/// it tries again until the port is free.
fn serve(data: &Path, redis: &Redis, addr: SocketAddr, env: &[(&str, &str)]) -> Pixelpipe {
    let args = [
        "--redis",
        &redis.url(),
        "serve",
        "--listen",
        &addr.to_string(),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Pixelpipe::try_start_with_env(data, &args, env) {
            Ok(p) => return p,
            Err(log)
                if log.contains("another process listens there") && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(log) => panic!("pixelpipe exited at start: {log}"),
        }
    }
}

/// Runs four collectors under load, restarts the first mid-load, and checks every
/// answered hit is among `records` exactly once and each collector had its own position.
fn four_collectors_one_key(env: &[(&str, &str)], stop: Stop, records: fn(&Redis) -> Vec<String>) {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut collectors: Vec<Collector> = (0..COLLECTORS)
        .map(|i| {
            let data = dir.path().join(format!("data{i}"));
            let addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let process = serve(&data, &redis, addr, env);
            Collector {
                data,
                addr,
                process,
            }
        })
        .collect();
    // Unique ids: collector i gets i*IDS_EACH.. .
    let loads: Vec<_> = collectors
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (addr, from) = (c.addr, i as u64 * IDS_EACH);
            std::thread::spawn(move || hit_ids(addr, from..from + IDS_EACH, 4))
        })
        .collect();
    wait_until(
        "a first part of the load in Redis",
        Duration::from_secs(15),
        || records(&redis).len() > 1000,
    );
    assert!(!loads[0].is_finished(), "its load still running: mid-load");
    let first = &mut collectors[0];
    match stop {
        Stop::Kill => first.process.kill9(),
        Stop::Term => assert!(first.process.terminate(Duration::from_secs(15)).success()),
    }
    first.process = serve(&first.data, &redis, first.addr, env);
    let answered: Vec<u64> = loads.into_iter().flat_map(|l| l.join().unwrap()).collect();
    assert!(
        answered.len() as u64 > COLLECTORS * IDS_EACH / 2,
        "most hits answered: {}",
        answered.len()
    );
    wait_until(
        "every answered hit in Redis",
        Duration::from_secs(20),
        || {
            let have: HashSet<u64> = ids_of(&records(&redis)).into_iter().collect();
            answered.iter().all(|id| have.contains(id))
        },
    );
    let shipped = records(&redis);
    assert_exactly_once(&shipped, &answered);
    // A hit written but not answered (the killed one's last) may be there too; nothing else.
    assert!(ids_of(&shipped)
        .iter()
        .all(|id| *id < COLLECTORS * IDS_EACH));

    // One position per collector, under its own instance id.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("pixelpipe:shipped:*")
        .query(&mut redis.conn())
        .unwrap();
    let ids: HashSet<String> = collectors
        .iter()
        .map(|c| std::fs::read_to_string(c.data.join("instance-id")).unwrap())
        .map(|id| format!("pixelpipe:shipped:{}", id.trim()))
        .collect();
    assert_eq!(ids.len(), COLLECTORS as usize, "distinct instance ids");
    assert_eq!(keys.into_iter().collect::<HashSet<_>>(), ids);
}

#[test]
fn four_collectors_on_one_list_one_killed_mid_load() {
    four_collectors_one_key(&[], Stop::Kill, |r| r.list_oldest_first("pixel"));
}

#[test]
fn four_collectors_on_one_stream_one_restarted_mid_load() {
    four_collectors_one_key(&[("PIXELPIPE_SHIP__SINK", "stream")], Stop::Term, |r| {
        r.stream_records("pixel")
    });
}
