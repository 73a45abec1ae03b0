//! The stream sink past the record: named fields rendered from each hit (`[ship.fields]`),
//! and the relay's dead letters (`RefusedPolicy::DeadLetter`) through the script sink.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const FIELDS: &str = "[ship]\nsink = \"stream\"\n[ship.fields]\npath = \"$uri\"\nip = \"$remote_addr\"\nua = \"$http_user_agent\"\n";

fn hit_with_agent(addr: SocketAddr, id: u64, agent: &str) -> u16 {
    let req = format!(
        "GET /pixel.gif?id={id} HTTP/1.1\r\nHost: test\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
    );
    raw_request(addr, req.as_bytes(), false).map_or(0, |r| r.status)
}

fn serve(data: &Path, config: Option<&Path>, redis_url: &str, addr: SocketAddr) -> Pixelpipe {
    let mut args = Vec::new();
    let config = config.map(|c| c.display().to_string());
    if let Some(c) = &config {
        args.extend(["--config", c.as_str()]);
    }
    let addr = addr.to_string();
    args.extend(["--redis", redis_url, "serve", "--listen", &addr]);
    Pixelpipe::start_with_env(
        data,
        &args,
        &[
            ("PIXELPIPE_SHIP__SINK", "stream"),
            ("PIXELPIPE_SHIP__SHUTDOWN_DEADLINE", "200ms"),
        ],
    )
}

/// The fields are rendered when the hit is taken and kept with the record in the local
/// log: records taken while Redis was away are shipped with them, even by a collector
/// restarted without `[ship.fields]`, and the log itself still prints the records alone.
#[test]
fn fields_rendered_at_the_hit_are_shipped_with_their_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pixelpipe.toml");
    std::fs::write(&config, FIELDS).unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut server = serve(&data, Some(&config), &url, addr);
    for id in 0..20 {
        assert_eq!(hit_with_agent(addr, id, "probe/1"), 200);
    }
    server.terminate(Duration::from_secs(10));
    let printed = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .arg("log")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout).into_owned();
    let lines: Vec<String> = printed.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 20, "{printed}");
    assert_exactly_once(&lines, &(0..20).collect::<Vec<_>>());
    assert!(!printed.contains("probe/1"), "records alone:\n{printed}");

    let redis = Redis::start_on(port, false);
    let _server = serve(&data, None, &url, addr);
    wait_until("the backlog in the stream", Duration::from_secs(10), || {
        redis.stream("pixel").len() >= 20
    });
    assert_eq!(hit_with_agent(addr, 20, "probe/2"), 200);
    wait_until("the new hit", Duration::from_secs(10), || {
        redis.stream("pixel").len() >= 21
    });
    let entries = redis.stream("pixel");
    assert_eq!(entries.len(), 21);
    assert_exactly_once(&redis.stream_records("pixel"), &(0..21).collect::<Vec<_>>());
    for e in &entries[..20] {
        assert_eq!(e.len(), 4, "{e:?}");
        assert_eq!(
            (e["path"].as_str(), e["ip"].as_str(), e["ua"].as_str()),
            // The address as recorded: anonymised by default.
            ("/pixel.gif", "127.0.0.0", "probe/1")
        );
    }
    assert_eq!(
        entries[20].keys().collect::<Vec<_>>(),
        ["r"],
        "no fields configured now"
    );

    // `tail --stream --json` shows an entry's fields beside its record.
    let out = Command::new(BIN)
        .args([
            "--redis", &url, "tail", "--stream", "--json", "--count", "21",
        ])
        .env("PIXELPIPE_SHIP__SINK", "stream")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 21);
    for line in &lines {
        match line["fields"]["id"].as_str().unwrap() {
            "20" => assert!(line.get("entry").is_none(), "{line}"),
            _ => assert_eq!(
                line["entry"],
                serde_json::json!({"ip": "127.0.0.0", "path": "/pixel.gif", "ua": "probe/1"}),
                "{line}"
            ),
        }
    }
}

#[test]
fn a_bad_field_template_stops_serve_and_relay() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pixelpipe.toml");
    std::fs::write(
        &config,
        "[ship]\nsink = \"stream\"\n[ship.fields]\npath = \"$nope\"\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let port = free_port().to_string();
    for (command, listen) in [("serve", "--listen"), ("relay", "--tcp")] {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path().join(command))
            .args(["--config", &config, command, listen])
            .arg(format!("127.0.0.1:{port}"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("`ship.fields.path`") && err.contains("nope"),
            "{command}: {err}"
        );
    }
}

/// The relay renders the fields from each message, in syslog templates' language.
#[test]
fn the_relay_renders_fields_from_each_message() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pixelpipe.toml");
    std::fs::write(
        &config,
        "[ship]\nsink = \"stream\"\n[ship.fields]\nhost = \"$HOST\"\nprogram = \"$PROGRAM\"\n",
    )
    .unwrap();
    let tcp = free_port();
    let _relay = Pixelpipe::start(
        &dir.path().join("data"),
        &[
            "--config",
            &config.display().to_string(),
            "--redis",
            &redis.url(),
            "relay",
            "--tcp",
            &format!("127.0.0.1:{tcp}"),
        ],
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    for i in 0..10 {
        writeln!(s, "<158>Nov 28 12:00:00 web{i} pixel: 1.000,id={i}").unwrap();
    }
    s.flush().unwrap();
    wait_until("the relayed entries", Duration::from_secs(10), || {
        redis.stream("pixel").len() >= 10
    });
    let entries = redis.stream("pixel");
    assert_eq!(entries.len(), 10);
    assert_exactly_once(&redis.stream_records("pixel"), &(0..10).collect::<Vec<_>>());
    for e in &entries {
        let id = e["r"].rsplit('=').next().unwrap();
        assert_eq!(e["host"], format!("web{id}"), "{e:?}");
        assert_eq!(e["program"], "pixel", "{e:?}");
        assert_eq!(e.len(), 3, "{e:?}");
    }
}

/// Issue 13: the relay's dead letters through the script sink, with a stream and shards.
/// The records of a key whose shards hold strings go to each shard's `{key}:{s}:dead`
/// stream (same slot) exactly once, the other keys go on, and once the key is fixed its
/// new records go to it.
#[test]
fn a_refused_stream_is_dead_lettered_once_and_flows_again_when_fixed() {
    let redis = Redis::start();
    for shard in ["bad:{0}", "bad:{1}"] {
        let _: () = redis::cmd("SET")
            .arg(shard)
            .arg("not a stream")
            .query(&mut redis.conn())
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let tcp = free_port();
    let relay = Pixelpipe::start_with_env(
        &dir.path().join("data"),
        &[
            "--redis",
            &redis.url(),
            "relay",
            "--tcp",
            &format!("127.0.0.1:{tcp}"),
        ],
        &[
            ("PIXELPIPE_SHIP__SINK", "stream"),
            ("PIXELPIPE_SHIP__SHARDS", "2"),
        ],
    );
    let records = |key: &str| -> Vec<String> {
        ["{0}", "{1}"]
            .iter()
            .flat_map(|s| redis.stream_records(&format!("{key}:{s}")))
            .collect()
    };
    let mut s = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let mut send = |ids: std::ops::Range<u64>| {
        for i in ids {
            let program = if i % 2 == 0 { "good" } else { "bad" };
            writeln!(s, "<158>Nov 28 12:00:00 web1 {program}: 1.000,id={i}").unwrap();
        }
        s.flush().unwrap();
    };
    send(0..40);
    let odd = |r: std::ops::Range<u64>| r.filter(|i| i % 2 == 1).collect::<Vec<_>>();
    let even = |r: std::ops::Range<u64>| r.filter(|i| i % 2 == 0).collect::<Vec<_>>();
    wait_until(
        "the good and dead-lettered records",
        Duration::from_secs(10),
        || records("good").len() >= 20 && dead(&redis).len() >= 20,
    );
    let dead_before = dead(&redis);
    assert_exactly_once(&dead_before, &odd(0..40));
    assert_eq!(dead_before.len(), 20);
    let kind: String = redis::cmd("TYPE")
        .arg("bad:{0}")
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(kind, "string", "the refused key is left as it was");
    assert_eq!(
        relay.metric("pixelpipe_dead_lettered_records_total", ""),
        20.0
    );

    for shard in ["bad:{0}", "bad:{1}"] {
        let _: () = redis::cmd("DEL")
            .arg(shard)
            .query(&mut redis.conn())
            .unwrap();
    }
    send(40..60);
    wait_until(
        "the fixed key's new records",
        Duration::from_secs(10),
        || records("bad").len() >= 10 && records("good").len() >= 30,
    );
    assert_exactly_once(&records("bad"), &odd(40..60));
    assert_eq!(records("bad").len(), 10);
    assert_exactly_once(&records("good"), &even(0..60));
    assert_eq!(records("good").len(), 30);
    assert_eq!(dead(&redis), dead_before, "nothing more dead-lettered");
}

/// Both shards' dead letters.
fn dead(redis: &Redis) -> Vec<String> {
    ["bad:{0}:dead", "bad:{1}:dead"]
        .iter()
        .flat_map(|k| redis.stream_records(k))
        .collect()
}
