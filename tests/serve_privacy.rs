//! Who sent the hit, end to end through `pixelpipe serve`: trusted proxies and
//! anonymisation, the daily visitor id agreed in a real Redis, consent signals, bots and
//! prefetches (real crawler and browser user agents, a real headless Chromium), the
//! per-address rate limit with 100,000 addresses, the opt-in cookie, and the enrichment
//! variables (a MaxMind DB the test writes, reloaded on SIGHUP).

mod common;
#[path = "common/mmdb.rs"]
mod mmdb;

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::*;
use pixelpipe::http::response::GIF;
use pixelpipe::privacy::salt::{day_name, day_of};

struct Setup {
    redis: Redis,
    server: Pixelpipe,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// `serve` with `config` (TOML) on a Redis of its own.
fn setup(config: &str) -> Setup {
    setup_on(Redis::start(), config)
}

fn setup_on(redis: Redis, config: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config_path = dir.path().join("pixelpipe.toml");
    std::fs::write(&config_path, config).unwrap();
    let (url, listen) = (redis.url(), addr.to_string());
    let args = [
        "--config",
        config_path.to_str().unwrap(),
        "--redis",
        &url,
        "serve",
        "--listen",
        &listen,
    ];
    let server = Pixelpipe::start(&dir.path().join("data"), &args);
    Setup {
        redis,
        server,
        addr,
        dir,
    }
}

/// A GET with these headers; the answer.
fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw_request(addr, req.as_bytes(), false).expect("an answer")
}

/// Answered like any hit: 200 and the GIF.
fn assert_pixel(r: &Response) {
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body, GIF);
}

fn records(s: &Setup, n: usize) -> Vec<String> {
    wait_until(&format!("{n} records"), Duration::from_secs(10), || {
        s.redis.llen("pixel") >= n
    });
    s.redis.list_oldest_first("pixel")
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Every file under `dir`, read whole.
fn all_bytes_under(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(all_bytes_under(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.extend(b);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn addresses_behind_trusted_proxies_are_anonymised() {
    let s = setup(
        r#"
        [http]
        format = "$remote_addr|$args"
        trusted_proxies = ["127.0.0.0/8"]
        "#,
    );
    let xff = [("X-Forwarded-For", "6.6.6.6, 198.51.100.77")];
    assert_pixel(&get(s.addr, "/pixel.gif?n=1", &xff));
    assert_pixel(&get(
        s.addr,
        "/pixel.gif?n=2",
        &[("X-Forwarded-For", "2001:db8:aa:bb::1")],
    ));
    assert_pixel(&get(s.addr, "/pixel.gif?n=3", &[]));
    let got = records(&s, 3);
    assert_eq!(
        got,
        ["198.51.100.0|n=1", "2001:db8:aa::|n=2", "127.0.0.0|n=3"]
    );
    // The raw address is nowhere on disk.
    let disk = all_bytes_under(s.dir.path());
    assert!(
        contains(&disk, "198.51.100.0|n=1"),
        "the log holds the records"
    );
    assert!(!contains(&disk, "198.51.100.77"));
    assert!(!contains(&disk, "2001:db8:aa:bb"));

    // No trusted proxy: a spoofed header changes nothing; anonymisation off keeps it all.
    let s = setup(
        r#"
        [http]
        format = "$remote_addr|$args"
        [privacy]
        anonymize_ip = false
        "#,
    );
    assert_pixel(&get(s.addr, "/pixel.gif?n=4", &xff));
    assert_pixel(&get(
        s.addr,
        "/pixel.gif?n=5",
        &[("Forwarded", "for=198.51.100.77")],
    ));
    assert_eq!(records(&s, 2), ["127.0.0.1|n=4", "127.0.0.1|n=5"]);
}

/// Hits until a record's first field is not `-` (the salt arrives from Redis just
/// after start); returns how many records that took.
fn wait_for_visitor(s: &Setup) -> usize {
    let mut sent = 0;
    wait_until("a visitor id in a record", Duration::from_secs(10), || {
        assert_pixel(&get(
            s.addr,
            "/pixel.gif?warmup",
            &[("User-Agent", FIREFOX)],
        ));
        sent += 1;
        let r = records(s, sent);
        !r.last().unwrap().starts_with('-')
    });
    sent
}

#[test]
fn visitor_ids_are_daily_hashes_agreed_in_redis() {
    let config = r#"
        [http]
        format = "$visitor|$args"
        trusted_proxies = ["127.0.0.1"]
        "#;
    let s = setup(config);
    let warm = wait_for_visitor(&s);
    let hit = |n: &str, ip: &str, ua: &str, extra: &[(&str, &str)]| {
        let mut h = vec![("X-Forwarded-For", ip), ("User-Agent", ua)];
        h.extend_from_slice(extra);
        assert_pixel(&get(s.addr, &format!("/pixel.gif?n={n}"), &h));
    };
    hit("1", "198.51.100.7", FIREFOX, &[]);
    hit("2", "198.51.100.7", FIREFOX, &[]);
    hit("3", "198.51.100.7", CHROME, &[]);
    hit("4", "198.51.100.8", FIREFOX, &[]);
    hit("5&site=other", "198.51.100.7", FIREFOX, &[]);
    hit("6", "198.51.100.7", FIREFOX, &[("DNT", "1")]);
    hit("7", "198.51.100.7", FIREFOX, &[("Sec-GPC", "1")]);
    let got = records(&s, warm + 7);
    let ids: Vec<&str> = got[warm..]
        .iter()
        .map(|r| r.split('|').next().unwrap())
        .collect();
    assert_eq!(ids[0].len(), 16, "{got:?}");
    assert_eq!(ids[0], ids[1], "one browser, one site, one day");
    assert_ne!(ids[0], ids[2], "another browser");
    assert_ne!(ids[0], ids[3], "another address (the full one: same /24)");
    assert_ne!(ids[0], ids[4], "another site");
    assert_eq!(
        &ids[5..],
        ["-", "-"],
        "DNT and GPC: recorded without a visitor id"
    );
    assert_eq!(
        s.server
            .metric("pixelpipe_http_opt_out_total", "signal=\"dnt\""),
        1.0
    );
    assert_eq!(
        s.server
            .metric("pixelpipe_http_opt_out_total", "signal=\"gpc\""),
        1.0
    );

    // The day's salt is in Redis (in the day's last hour tomorrow's too, fetched ahead),
    // expiring within 26 hours, and nowhere on disk.
    let today = day_of(SystemTime::now());
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("pixelpipe:salt:*")
        .query(&mut s.redis.conn())
        .unwrap();
    let key = |day| format!("pixelpipe:salt:{}", day_name(day));
    assert!(
        keys.contains(&key(today))
            && keys
                .iter()
                .all(|k| *k == key(today) || *k == key(today + 1)),
        "{keys:?}"
    );
    let salt: String = redis::cmd("GET")
        .arg(key(today))
        .query(&mut s.redis.conn())
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(key(today))
        .query(&mut s.redis.conn())
        .unwrap();
    assert!(ttl > 0 && ttl <= 26 * 3600, "TTL {ttl}");
    assert!(!contains(&all_bytes_under(s.dir.path()), &salt));

    // A second collector on the same Redis gives the same id to the same visitor.
    let Setup { redis, .. } = s;
    let other = setup_on(redis, config);
    wait_until(
        "the second collector's salt",
        Duration::from_secs(10),
        || {
            assert_pixel(&get(
                other.addr,
                "/pixel.gif?n=8",
                &[("X-Forwarded-For", "198.51.100.7"), ("User-Agent", FIREFOX)],
            ));
            let r = other.redis.list_oldest_first("pixel");
            r.last().unwrap().starts_with(ids[0])
        },
    );
}

#[test]
fn opted_out_hits_can_be_dropped() {
    let s = setup(
        r#"
        [privacy]
        opted_out = "drop"
        honor_dnt = false
        "#,
    );
    assert_pixel(&get(s.addr, "/pixel.gif?gpc", &[("Sec-GPC", "1")]));
    assert_pixel(&get(s.addr, "/pixel.gif?dnt", &[("DNT", "1")]));
    assert_pixel(&get(s.addr, "/pixel.gif?plain", &[]));
    assert_eq!(
        records(&s, 2)
            .iter()
            .map(|r| r.split(',').nth(1).unwrap())
            .collect::<Vec<_>>(),
        ["dnt", "plain"]
    );
    assert_eq!(
        s.server.metric(
            "pixelpipe_http_opt_out_total",
            "signal=\"gpc\",action=\"drop\""
        ),
        1.0
    );
}

/// `(kind, user agent)` of tests/data/user_agents.tsv.
fn corpus() -> Vec<(String, String)> {
    include_str!("data/user_agents.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].to_owned(), cols.last().unwrap().to_string())
        })
        .collect()
}

#[test]
fn bots_and_prefetches_are_answered_not_recorded() {
    let s = setup("");
    let corpus = corpus();
    let mut browsers = Vec::new();
    for (i, (kind, ua)) in corpus.iter().enumerate() {
        assert_pixel(&get(
            s.addr,
            &format!("/pixel.gif?i={i}"),
            &[("User-Agent", ua)],
        ));
        // HTTP tools (curl, python-requests…) are kept by default (`filter.tools`).
        if kind == "browser" || kind == "tool" {
            browsers.push(format!("i={i}"));
        }
    }
    let bots = corpus.len() - browsers.len();
    for (name, value) in [
        ("Sec-Purpose", "prefetch"),
        ("Purpose", "prefetch"),
        ("X-Moz", "prefetch"),
    ] {
        assert_pixel(&get(
            s.addr,
            "/pixel.gif?prefetch",
            &[(name, value), ("User-Agent", FIREFOX)],
        ));
    }
    assert_pixel(&get(s.addr, "/pixel.gif?last", &[("User-Agent", FIREFOX)]));
    browsers.push("last".into());
    let got: Vec<String> = records(&s, browsers.len())
        .iter()
        .map(|r| r.split_once(',').unwrap().1.to_owned())
        .collect();
    assert_eq!(got, browsers);
    assert_eq!(
        s.server
            .metric("pixelpipe_http_filtered_total", "reason=\"bot\""),
        bots as f64
    );
    assert_eq!(
        s.server
            .metric("pixelpipe_http_filtered_total", "reason=\"prefetch\""),
        3.0
    );

    // A real headless Chromium is a bot too.
    let chromium = require("chromium", "chromium");
    let profile = s.dir.path().join("chromium");
    let status = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("http://{}/pixel.gif?chromium", s.addr))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running chromium");
    assert!(status.success());
    wait_until("chromium's hit counted", Duration::from_secs(10), || {
        s.server
            .metric("pixelpipe_http_filtered_total", "reason=\"bot\"")
            == bots as f64 + 1.0
    });
    assert_eq!(s.redis.llen("pixel"), browsers.len());
}

#[test]
fn bots_and_prefetches_can_be_marked() {
    let s = setup(
        r#"
        [http]
        format = "$is_bot|$is_prefetch|$args"
        [filter]
        bots = "mark"
        prefetch = "mark"
        "#,
    );
    assert_pixel(&get(
        s.addr,
        "/pixel.gif?a",
        &[(
            "User-Agent",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        )],
    ));
    assert_pixel(&get(
        s.addr,
        "/pixel.gif?b",
        &[("User-Agent", FIREFOX), ("Sec-Purpose", "prefetch")],
    ));
    assert_pixel(&get(s.addr, "/pixel.gif?c", &[("User-Agent", FIREFOX)]));
    assert_eq!(records(&s, 3), ["1|0|a", "0|1|b", "0|0|c"]);
    assert_eq!(
        s.server
            .metric("pixelpipe_http_marked_total", "reason=\"bot\""),
        1.0
    );
}

#[test]
fn rate_limit_memory_is_bounded_with_100k_addresses() {
    let s = setup(
        r#"
        [http]
        trusted_proxies = ["127.0.0.1"]
        [limits.per_ip]
        rate = 1.0
        burst = 2
        max_addresses = 1024
        "#,
    );
    // 100,000 distinct addresses, one hit each, pipelined over a few connections.
    const N: u32 = 100_000;
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let addr = s.addr;
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut ok = 0;
                let mine: Vec<u32> = (0..N).filter(|i| i % 4 == t).collect();
                for chunk in mine.chunks(200) {
                    let mut batch = Vec::new();
                    for i in chunk {
                        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
                        write!(batch, "GET /pixel.gif?i={i} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {ip}\r\n\r\n").unwrap();
                    }
                    stream.write_all(&batch).unwrap();
                    for _ in chunk {
                        let r = read_response(&mut reader, false).expect("an answer");
                        ok += usize::from(r.status == 200);
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(ok, N as usize, "every new address gets its burst");
    let tracked = s.server.metric("pixelpipe_rate_limit_addresses", "");
    assert!(tracked > 0.0 && tracked <= 1024.0, "tracked {tracked}");

    // One address over its burst: 429 with Retry-After, no record.
    let one = [("X-Forwarded-For", "198.51.100.9")];
    assert_pixel(&get(s.addr, "/pixel.gif?x=1", &one));
    assert_pixel(&get(s.addr, "/pixel.gif?x=2", &one));
    let r = get(s.addr, "/pixel.gif?x=3", &one);
    assert_eq!(r.status, 429, "{}", r.head);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        s.server
            .metric("pixelpipe_http_rejected_total", "reason=\"rate_limited\""),
        1.0
    );
    let all = records(&s, N as usize + 2);
    assert_eq!(all.len(), N as usize + 2);
    assert!(!all.iter().any(|r| r.ends_with("x=3")));
}

#[test]
fn opt_in_cookie_is_the_visitor() {
    let s = setup(
        r#"
        [http]
        format = "$visitor|$args"
        [privacy.cookie]
        name = "vid"
        secure = false
        max_age = "30days"
        "#,
    );
    let first = get(s.addr, "/pixel.gif?n=1", &[]);
    assert_pixel(&first);
    let set = first.header("set-cookie").expect("a Set-Cookie").to_owned();
    let value = set
        .strip_prefix("vid=")
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    assert_eq!(value.len(), 32);
    assert!(
        set.contains("Max-Age=2592000") && set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let cookie = format!("vid={value}");
    let again = get(s.addr, "/pixel.gif?n=2", &[("Cookie", &cookie)]);
    assert_eq!(again.header("set-cookie"), None);
    let dnt = get(s.addr, "/pixel.gif?n=3", &[("DNT", "1")]);
    assert_eq!(
        dnt.header("set-cookie"),
        None,
        "no cookie for an opted-out visitor"
    );
    assert_eq!(
        records(&s, 3),
        [
            format!("{value}|n=1"),
            format!("{value}|n=2"),
            "-|n=3".to_owned()
        ]
    );
}

fn write_geo_db(path: &Path, city: &str) {
    let mut w = mmdb::MmdbWriter::new();
    w.insert(
        "203.0.113.0".parse().unwrap(),
        24,
        &mmdb::city("DE", "Germany", city),
    );
    w.insert(
        "2001:db8::".parse().unwrap(),
        32,
        &mmdb::city("NL", "Netherlands", "Amsterdam"),
    );
    // Written aside and renamed, as a database updater does.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, w.to_bytes()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[test]
fn user_agent_and_geo_enrichment_reloaded_on_sighup() {
    let geo_dir = tempfile::tempdir().unwrap();
    let db = geo_dir.path().join("city.mmdb");
    write_geo_db(&db, "Berlin");
    let s = setup(&format!(
        r#"
        [http]
        format = "$geo_country|$geo_city|$ua_browser|$ua_browser_version|$ua_os|$ua_device|$remote_addr"
        trusted_proxies = ["127.0.0.1"]
        [enrich]
        geoip_db = "{}"
        "#,
        db.display()
    ));
    let hit = |ip: &str, ua: &str| {
        assert_pixel(&get(
            s.addr,
            "/pixel.gif",
            &[("X-Forwarded-For", ip), ("User-Agent", ua)],
        ));
    };
    hit("203.0.113.9", FIREFOX);
    hit("2001:db8::5", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1");
    hit("192.0.2.1", "something/1.0");
    assert_eq!(
        records(&s, 3),
        [
            "DE|Berlin|Firefox|133.0|Linux|pc|203.0.113.0",
            "NL|Amsterdam|Safari|18.1|iPhone|smartphone|2001:db8::",
            "-|-|-|-|-|-|192.0.2.0",
        ]
    );
    write_geo_db(&db, "Hamburg");
    s.server.signal("HUP");
    wait_until("the reloaded database", Duration::from_secs(10), || {
        hit("203.0.113.9", FIREFOX);
        s.redis
            .list_oldest_first("pixel")
            .last()
            .unwrap()
            .starts_with("DE|Hamburg|")
    });

    // No database at that path: `-` and a warning at start.
    let s = setup(&format!(
        "[http]\nformat = \"$geo_country|$args\"\n[enrich]\ngeoip_db = \"{}\"\n",
        geo_dir.path().join("absent.mmdb").display()
    ));
    assert_pixel(&get(s.addr, "/pixel.gif?a", &[]));
    assert_eq!(records(&s, 1), ["-|a"]);
    assert!(
        s.server.stderr().contains("no GeoIP database"),
        "{}",
        s.server.stderr()
    );
}

#[test]
fn referrer_host_and_campaigns() {
    let s = setup(
        r#"
        [http]
        format = "$referrer_host|$utm_source|$utm_medium|$utm_campaign"
        "#,
    );
    // The tracker's parameters: the page's referrer, the page URL.
    assert_pixel(&get(
        s.addr,
        "/pixel.gif?ref=https%3A%2F%2Fwww.google.com%2Fsearch%3Fq%3Dx&url=https%3A%2F%2Fexample.com%2F%3Futm_source%3Dnewsletter%26utm_medium%3Demail%26utm_campaign%3Dspring",
        &[],
    ));
    // A plain pixel: the Referer header (the page) and the hit's own query.
    assert_pixel(&get(
        s.addr,
        "/pixel.gif?utm_source=hn",
        &[("Referer", "https://example.com/post?utm_medium=social")],
    ));
    assert_pixel(&get(s.addr, "/pixel.gif", &[]));
    assert_eq!(
        records(&s, 3),
        [
            "www.google.com|newsletter|email|spring",
            "example.com|hn|social|-",
            "-|-|-|-",
        ]
    );
}

#[test]
fn analytics_rank_browsers_and_countries_and_count_visitors() {
    let geo_dir = tempfile::tempdir().unwrap();
    let db = geo_dir.path().join("city.mmdb");
    write_geo_db(&db, "Berlin");
    let s = setup(&format!(
        r#"
        [http]
        format = "$msec,$args&visitor=$visitor&ua_browser=$ua_browser&geo_country=$geo_country&referrer_host=$referrer_host"
        trusted_proxies = ["127.0.0.1"]
        [enrich]
        geoip_db = "{}"
        [analytics]
        visitor = "visitor"
        params = ["ua_browser", "geo_country", "referrer_host"]
        "#,
        db.display()
    ));
    let warm = wait_for_visitor(&s);
    let hits = [
        ("203.0.113.1", FIREFOX),
        ("203.0.113.1", FIREFOX),
        ("203.0.113.2", FIREFOX),
        ("2001:db8::1", CHROME),
    ];
    for (ip, ua) in hits {
        let h = [
            ("X-Forwarded-For", ip),
            ("User-Agent", ua),
            ("Referer", "https://news.example/x"),
        ];
        assert_pixel(&get(s.addr, "/pixel.gif?e=view", &h));
    }
    let api = |target: &str| -> serde_json::Value {
        serde_json::from_slice(&http_get(s.server.admin, target).unwrap().body).unwrap_or_default()
    };
    wait_until("the hits in the analytics", Duration::from_secs(10), || {
        api("/api/snapshot")["total"] == serde_json::json!(warm + hits.len())
    });
    // `[value, count]` pairs as a map.
    let ranked = |param: &str| -> (serde_json::Value, HashMap<String, u64>) {
        let top = api(&format!("/api/top?param={param}"));
        let values = top["top"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let counts = values
            .iter()
            .map(|v| (v[0].as_str().unwrap().to_owned(), v[1].as_u64().unwrap()))
            .collect();
        (top["top"][0]["title"].clone(), counts)
    };
    let (title, countries) = ranked("geo_country");
    assert_eq!(title, "countries");
    assert_eq!((countries["DE"], countries["NL"]), (3, 1), "{countries:?}");
    let (title, browsers) = ranked("ua_browser");
    assert_eq!(title, "browsers");
    assert_eq!(
        (browsers["Firefox"], browsers["Chrome"]),
        (3 + warm as u64, 1)
    );
    let (_, referrers) = ranked("referrer_host");
    assert_eq!(referrers["news.example"], 4);
    // Three visitors above, and the warm-up's (127.0.0.1, Firefox); a warm-up hit that
    // came before the salt has `-`, which is nobody.
    let uniques = api("/api/uniques");
    assert_eq!(uniques["uniques"]["today"], 4, "{uniques}");
    let page = http_get(s.server.admin, "/dashboard").unwrap();
    let page = String::from_utf8_lossy(&page.body);
    for title in [
        "<h3>browsers</h3>",
        "<h3>countries</h3>",
        "<h3>referrer hosts</h3>",
    ] {
        assert!(page.contains(title), "{title} not on the dashboard");
    }
}

#[test]
fn privacy_config_errors_name_the_field() {
    let fails = |toml: &str| -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pixelpipe.toml");
        std::fs::write(&file, toml).unwrap();
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--config", file.to_str().unwrap(), "serve"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "expected a start-up error for {toml}"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let cases = [
        (
            "[http]\ntrusted_proxies = [\"10.0.0.0/33\"]",
            "trusted_proxies",
        ),
        ("[privacy]\nipv4_prefix = 40", "ipv4_prefix"),
        ("[privacy]\nopted_out = \"maybe\"", "opted_out"),
        (
            "[privacy.cookie]\nsame_site = \"None\"\nsecure = false",
            "privacy.cookie.secure",
        ),
        ("[privacy.cookie]\nname = \"a b\"", "name"),
        ("[filter]\nbots = \"sometimes\"", "bots"),
        ("[limits.per_ip]\nrate = 0.0", "limits.per_ip.rate"),
        // The raw address through a header variable, with anonymisation on.
        (
            "[http]\nformat = \"$msec,$http_x_forwarded_for\"",
            "http.format",
        ),
    ];
    for (toml, field) in cases {
        let err = fails(toml);
        assert!(err.contains(field), "{toml}: {err}");
    }
}
