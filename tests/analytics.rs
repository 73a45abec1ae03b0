//! The live analytics end to end: hits through `pixelpipe serve` → shipper → aggregator
//! → Redis, checked against counts computed here from the raw events of the run, then
//! read back through `/api/…`, `pixelpipe top` and the dashboard page.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use common::consume::{hit, serve_with_analytics, traffic};
use common::{http_get, run_ok, wait_until, Redis, BIN};

const N: usize = 1500;
const VISITORS: usize = 900;
const GOAL_EVERY: usize = 7;

fn api(admin: std::net::SocketAddr, target: &str) -> (u16, serde_json::Value) {
    let r = http_get(admin, target).expect("admin response");
    let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, v)
}

#[test]
fn aggregates_match_the_raw_events() {
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let (pixelpipe, listen) = serve_with_analytics(&redis, dir.path(), &[]);
    let queries = traffic(N, VISITORS, GOAL_EVERY);
    for q in &queries {
        hit(listen, q);
    }
    wait_until(
        "every hit shipped to Redis",
        Duration::from_secs(20),
        || redis.llen("pixel") == N,
    );
    wait_until(
        "the aggregator to count every hit",
        Duration::from_secs(20),
        || api(pixelpipe.admin, "/api/snapshot").1["total"] == N,
    );

    // Independent counts, from the raw records (timestamps) and the queries sent.
    let raw = redis.list_oldest_first("pixel");
    let mut per_second: HashMap<i64, u64> = HashMap::new();
    for r in &raw {
        let (ts, _) = r.split_once(',').expect("`$msec,$args`");
        let second: i64 = ts.split('.').next().unwrap().parse().unwrap();
        *per_second.entry(second).or_default() += 1;
    }
    let common::consume::Expected {
        sources,
        hits,
        goals,
        uids,
    } = common::consume::expected(&queries);

    // Redis holds exactly those per-second counts, with a retention set.
    let mut conn = redis.conn();
    let mut stored: HashMap<i64, u64> = HashMap::new();
    let minutes: HashSet<i64> = per_second.keys().map(|s| s - s.rem_euclid(60)).collect();
    for m in &minutes {
        let key = format!("pixelpipe:stats:pixel:s:{m}");
        let h: HashMap<i64, u64> = redis::cmd("HGETALL").arg(&key).query(&mut conn).unwrap();
        stored.extend(h);
        let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut conn).unwrap();
        assert!(
            ttl > 2 * 3600 - 5 && ttl <= 2 * 3600 + 60,
            "TTL of {key}: {ttl}"
        );
    }
    assert_eq!(stored, per_second);

    // The per-second series holds complete seconds only: wait for the run's last second
    // to end.
    let complete_seconds = |snap: &serde_json::Value| -> u64 {
        snap["per_second"]
            .as_array()
            .map(|a| a.iter().map(|p| p[1].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0)
    };
    wait_until(
        "the run's last second to be complete",
        Duration::from_secs(5),
        || complete_seconds(&api(pixelpipe.admin, "/api/snapshot").1) == N as u64,
    );
    let (status, snap) = api(pixelpipe.admin, "/api/snapshot?window=60");
    assert_eq!(status, 200);
    assert_eq!(snap["total"], N);
    assert_eq!(snap["malformed"], 0);
    let series_sum = complete_seconds(&snap);
    let minute_sum: u64 = snap["per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_u64().unwrap())
        .sum();
    assert_eq!(series_sum, N as u64, "the last 300 s hold the whole run");
    assert_eq!(minute_sum, N as u64);

    let top = &snap["top"];
    assert_eq!(top[0]["param"], "utm_source");
    let got: HashMap<String, u64> = top[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v[0].as_str().unwrap().to_owned(), v[1].as_u64().unwrap()))
        .collect();
    let want: HashMap<String, u64> = sources.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(got, want);

    for v in snap["ab"]["variants"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        assert_eq!(v["hits"], hits[name], "hits of {name}");
        assert_eq!(v["goals"], goals[name], "goals of {name}");
        let rate = goals[name] as f64 / hits[name] as f64;
        assert!((v["conversion"].as_f64().unwrap() - rate).abs() < 1e-9);
    }
    assert_eq!(snap["ab"]["variants"].as_array().unwrap().len(), 2);

    // HyperLogLog: Redis's standard error is 0.81 %; allow 4 standard errors.
    let exact = uids.len() as f64;
    for which in ["window", "today"] {
        let est = snap["uniques"][which].as_f64().unwrap();
        assert!(
            (est - exact).abs() <= exact * 0.0325,
            "{which} uniques {est} vs exactly {exact}"
        );
    }

    // The other routes are slices of the same snapshot.
    let (_, ab) = api(pixelpipe.admin, "/api/ab");
    assert_eq!(ab["ab"], snap["ab"]);
    let (_, top) = api(pixelpipe.admin, "/api/top?param=variant");
    assert_eq!(top["top"][0]["values"][0][1], hits["A"].max(hits["B"]));
    assert_eq!(api(pixelpipe.admin, "/api/top?param=nope").0, 404);
    let (_, series) = api(pixelpipe.admin, "/api/series?resolution=minute");
    assert_eq!(series["points"].as_array().unwrap().len(), 60);
    assert_eq!(api(pixelpipe.admin, "/api/series?resolution=hour").0, 400);
    let (_, uniques) = api(pixelpipe.admin, "/api/uniques");
    assert_eq!(uniques["uniques"]["today"], snap["uniques"]["today"]);

    // `top` with stdout not a terminal: plain text, the same numbers.
    let config = dir.path().join("pixelpipe.toml");
    let out = run_ok(
        Command::new(BIN)
            .args([
                "--config",
                config.to_str().unwrap(),
                "--redis",
                &redis.url(),
            ])
            .args(["top", "--iterations", "1"]),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\x1b'),
        "no escape codes when not a terminal:\n{text}"
    );
    assert!(text.contains(&format!("total {N}")), "{text}");
    let news = sources["news letter"];
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("news letter")
                && l.trim_end().ends_with(&format!(" {news}"))),
        "{text}"
    );
    assert!(
        text.contains("A/B variant against goal event=signup"),
        "{text}"
    );

    // The page without JavaScript shows the numbers, escaped.
    let page = http_get(pixelpipe.admin, "/dashboard").unwrap();
    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains(&format!("<span id=\"total\" class=\"big\">{N}</span>")));
    assert!(html.contains("news letter"));
    let script = http_get(pixelpipe.admin, "/dashboard/app.js").unwrap();
    assert_eq!(script.status, 200);
    assert!(script
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));

    // Redis gone: the API says so, and so does the page.
    redis.stop();
    let (status, err) = api(pixelpipe.admin, "/api/snapshot");
    assert_eq!(status, 503);
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("Redis is unreachable"));
    let html = String::from_utf8(http_get(pixelpipe.admin, "/").unwrap().body).unwrap();
    assert!(html.contains("Redis is unreachable"), "{html}");
}

#[test]
fn malformed_records_are_counted_not_fatal() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    // A record format without the timestamp first: every record is malformed for analytics.
    let (pixelpipe, listen) = serve_with_analytics(&redis, dir.path(), &["--format", "$args"]);
    for i in 0..10 {
        hit(listen, &format!("uid={i}&bad=%FF"));
    }
    wait_until(
        "the malformed records to be counted",
        Duration::from_secs(20),
        || api(pixelpipe.admin, "/api/snapshot").1["malformed"] == 10,
    );
    assert_eq!(api(pixelpipe.admin, "/api/snapshot").1["total"], 0);
    assert!(pixelpipe.metric("pixelpipe_analytics_malformed_total", "") >= 10.0);
}

/// `top` in a real pseudo-terminal (util-linux `script`): it draws on the alternate
/// screen and quits on `q`, and on Ctrl-C.
#[test]
fn top_in_a_terminal_quits_on_q_and_ctrl_c() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let script = common::require("script", "util-linux");
    let redis = Redis::start();
    for key in [&b"q"[..], b"\x03"] {
        let command = format!("{BIN} --redis {} top --interval 200ms", redis.url());
        let mut child = Command::new(&script)
            .args(["-qfec", &command, "/dev/null"])
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script");
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut screen = Vec::new();
        wait_until("top to draw its screen", Duration::from_secs(20), || {
            while let Ok(chunk) = rx.try_recv() {
                screen.extend(chunk);
            }
            String::from_utf8_lossy(&screen).contains("q: quit")
        });
        let text = String::from_utf8_lossy(&screen).into_owned();
        assert!(text.contains("\x1b[?1049h"), "alternate screen: {text:?}");
        assert!(text.contains("events/s now 0"), "{text:?}");
        child.stdin.as_mut().unwrap().write_all(key).unwrap();
        let mut status = None;
        wait_until("top to quit", Duration::from_secs(10), || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        assert!(status.unwrap().success(), "top exits 0 on {key:?}");
    }
}

/// The aggregator writes once a second; what it counted since its last write is written
/// when `serve` stops (after the shipper's last batch), not lost with the process.
#[test]
fn the_last_counts_are_written_when_serve_stops() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let (mut pixelpipe, listen) = serve_with_analytics(&redis, dir.path(), &[]);
    const HITS: usize = 40;
    for i in 0..HITS {
        hit(listen, &format!("utm_source=s&uid={i}"));
    }
    wait_until("every hit shipped", Duration::from_secs(10), || {
        redis.llen("pixel") == HITS
    });
    // Well within the aggregator's first second: nothing of it is written yet.
    let status = pixelpipe.terminate(Duration::from_secs(20));
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    let total: Option<u64> = redis::cmd("GET")
        .arg("pixelpipe:stats:pixel:total")
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(
        total,
        Some(HITS as u64),
        "the last counts, written on the way out"
    );
}
