//! The tracker in a real browser. Headless Chromium loads a page from one local origin
//! that embeds the tracker script (with a call queued before it loads) and an `<img>`
//! pixel from the collector on another origin, over HTTPS with a self-signed certificate
//! the browser is told to accept. The test navigates within the page (`pushState`),
//! clicks a button that sends a custom event, navigates away, loads a page whose browser
//! has no `sendBeacon` (the GIF fallback), pages where the script must stay silent
//! (opt-out, localhost), then a page on an origin not on the CORS list, and checks Redis:
//! every page view, the image hit and the events exactly once, with their fields; nothing
//! from the silent pages or the foreign origin; and the browser's own log showing the CORS
//! refusal.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::chromium::Chromium;
use common::*;

const WAIT: Duration = Duration::from_secs(20);

/// A tiny static web server for the test pages, on its own thread; `{collector}` in a
/// page is replaced by the collector's HTTPS origin.
fn page_server(collector: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let collector = collector.clone();
            std::thread::spawn(move || serve_page(stream, &collector));
        }
    });
    addr
}

fn serve_page(stream: TcpStream, collector: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // Skip the headers.
    let mut h = String::new();
    while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
        h.clear();
    }
    let path = line.split(' ').nth(1).unwrap_or("/");
    let body = match path.split('?').next().unwrap_or("") {
        "/page.html" | "/page.html/step2" => PAGE,
        "/bye.html" => "<!doctype html><title>Bye</title><p>bye</p>",
        "/nobeacon.html" => NO_BEACON,
        "/foreign.html" => FOREIGN,
        "/optout.html" => OPT_OUT,
        "/local.html" => LOCAL,
        _ => "",
    }
    .replace("{collector}", collector);
    let status = if body.is_empty() {
        "404 Not Found"
    } else {
        "200 OK"
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

const PAGE: &str = r#"<!doctype html>
<title>Shop &amp; more</title>
<script>
window.pixelpipe = window.pixelpipe || function () { (pixelpipe.q = pixelpipe.q || []).push(arguments) };
pixelpipe("event", "early", {step: 1});
</script>
<script defer src="{collector}/p.js" data-site="shop" data-allow-local></script>
<img id="banner" src="{collector}/pixel.gif?img=banner&site=shop" alt="">
<button id="signup" onclick="pixelpipe('event', 'signup', {variant: 'B'})">Sign up</button>
"#;

/// A browser without `sendBeacon`: the script falls back to the GIF.
const NO_BEACON: &str = r#"<!doctype html>
<title>Old browser</title>
<script>navigator.sendBeacon = undefined;</script>
<script defer src="{collector}/p.js" data-site="shop" data-allow-local></script>
"#;

/// The opt-out switch set: the script runs (its title says so) and sends nothing.
const OPT_OUT: &str = r#"<!doctype html>
<title>opt-out</title>
<script>localStorage.pixelpipe_ignore = "true";</script>
<script defer src="{collector}/p.js" data-site="shop" data-allow-local></script>
<script>addEventListener("DOMContentLoaded", () => {
  pixelpipe("event", "ignored"); document.title = "ran " + typeof pixelpipe + " " + location.pathname;
});</script>
"#;

/// A page on 127.0.0.1 without `data-allow-local`: the script runs and sends nothing.
const LOCAL: &str = r#"<!doctype html>
<title>local</title>
<script defer src="{collector}/p.js" data-site="shop"></script>
<script>addEventListener("DOMContentLoaded", () => {
  pixelpipe("event", "ignored"); document.title = "ran " + typeof pixelpipe + " " + location.pathname;
});</script>
"#;

/// A page on an origin not on the collector's CORS list: a beacon-like `fetch` (no
/// preflight) and a JSON one (preflighted); their outcomes land in `window.results`.
const FOREIGN: &str = r#"<!doctype html>
<title>Elsewhere</title>
<script>
const send = (type) => fetch("{collector}/e", {
  method: "POST", headers: {"Content-Type": type}, body: JSON.stringify({event: "foreign", type}),
}).then(r => "read " + r.status, e => "refused: " + e.name);
window.results = Promise.all([send("text/plain"), send("application/json")]);
</script>
"#;

/// The fields of a `ts,query` record.
fn fields(record: &str) -> HashMap<String, String> {
    let (ts, query) = record.split_once(',').expect("a ts,query record");
    assert!(ts.parse::<f64>().is_ok(), "{record}");
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn wait_for_records(redis: &Redis, n: usize) -> Vec<String> {
    wait_until(&format!("{n} records in Redis"), WAIT, || {
        redis.llen("pixel") >= n
    });
    redis.list_oldest_first("pixel")
}

#[test]
fn tracker_page_views_events_and_cors_in_chromium() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let tls_port = free_port();
    let collector = format!("https://127.0.0.1:{tls_port}");
    let site = page_server(collector.clone());
    let foreign = page_server(collector.clone());
    let site_origin = format!("http://{site}");
    let config = dir.path().join("pixelpipe.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\ntls_listen = \"127.0.0.1:{tls_port}\"\n\
             tls = {{ cert = \"{}\", key = \"{}\" }}\n\
             cors_origins = [\"{site_origin}\"]\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let (config, url) = (config.display().to_string(), redis.url());
    let server = Pixelpipe::start(
        &dir.path().join("data"),
        &[
            "--config", &config, "--redis", &url, "serve", "--listen", &listen,
        ],
    );

    let page = format!("{site_origin}/page.html");
    let mut browser = Chromium::start(&page, "/page.html", &["--ignore-certificate-errors"]);
    browser.record_log();

    // Load: the page view (a beacon), the event queued before the script ran, the image.
    let records = wait_for_records(&redis, 3);
    let by_kind = |records: &[String], pred: &dyn Fn(&HashMap<String, String>) -> bool| {
        records
            .iter()
            .map(|r| fields(r))
            .filter(|f| pred(f))
            .collect::<Vec<_>>()
    };
    let image = by_kind(&records, &|f| f.get("img").is_some_and(|v| v == "banner"));
    assert_eq!(image.len(), 1, "{records:?}");
    let views = by_kind(&records, &|f| {
        f.get("event").is_some_and(|v| v == "pageview")
    });
    assert_eq!(views.len(), 1, "{records:?}");
    let v = &views[0];
    assert_eq!(v["site"], "shop");
    assert_eq!(v["url"], page);
    assert_eq!(v["ref"], "");
    assert_eq!(v["title"], "Shop & more");
    assert!(v["sw"].parse::<u32>().unwrap() > 0, "{v:?}");
    assert!(!v["lang"].is_empty(), "{v:?}");
    assert!(v["ts"].parse::<u64>().unwrap() > 1_600_000_000_000, "{v:?}");
    let early = by_kind(&records, &|f| f.get("event").is_some_and(|v| v == "early"));
    assert_eq!(early.len(), 1, "{records:?}");
    assert_eq!(early[0]["step"], "1");
    assert_eq!(early[0]["url"], page);

    // A single-page-app navigation, with a fragment the record leaves out.
    browser.eval("history.pushState({}, '', '/page.html/step2#top')");
    let records = wait_for_records(&redis, 4);
    let step2 = fields(&records[3]);
    assert_eq!(step2["event"], "pageview", "{records:?}");
    assert_eq!(step2["url"], format!("{page}/step2"));
    assert_eq!(step2["ref"], page);
    // A hash change alone is not a page view; pushState to the same URL neither.
    browser.eval("history.pushState({}, '', '/page.html/step2#other')");

    // The custom event, then away at once: the beacon still arrives.
    browser.eval("document.getElementById('signup').click(); location.href = '/bye.html'; 1");
    let records = wait_for_records(&redis, 5);
    let event = fields(&records[4]);
    assert_eq!(event["event"], "signup", "{records:?}");
    assert_eq!(event["variant"], "B");
    assert_eq!(event["url"], format!("{page}/step2"));
    wait_until("the page to have gone", WAIT, || {
        browser.eval("document.title") == "Bye"
    });

    // No sendBeacon: the same page view through the GIF.
    browser.eval(&format!("location.href = '{site_origin}/nobeacon.html'; 1"));
    let records = wait_for_records(&redis, 6);
    let old = fields(&records[5]);
    assert_eq!(old["event"], "pageview", "{records:?}");
    assert_eq!(old["url"], format!("{site_origin}/nobeacon.html"));
    assert_eq!(old["ref"], format!("{site_origin}/bye.html"));
    // Same keys in the same order as a beacon's page view.
    let beacon_view = records[..3]
        .iter()
        .find(|r| r.contains("event=pageview"))
        .unwrap();
    let keys = ["event", "site", "url", "ref", "title", "sw", "lang", "ts"];
    assert_eq!(fields_in_order(beacon_view), keys);
    assert_eq!(fields_in_order(&records[5]), keys);

    // Opted out, and a local page without data-allow-local: the script runs, sends nothing
    // (checked at the end: nothing but the marker follows).
    for page in ["optout", "local"] {
        browser.eval(&format!("location.href = '{site_origin}/{page}.html'; 1"));
        wait_until(&format!("the script to run on {page}.html"), WAIT, || {
            browser.eval("document.title") == format!("ran function /{page}.html").as_str()
        });
    }
    browser.eval("localStorage.removeItem('pixelpipe_ignore'); 1");

    // An origin not on the list: the browser itself refuses to show the answers.
    browser.eval(&format!(
        "location.href = 'http://{foreign}/foreign.html'; 1"
    ));
    wait_until("the foreign page", WAIT, || {
        browser.eval("document.title") == "Elsewhere"
    });
    let results = browser.eval("window.results");
    assert_eq!(
        results,
        serde_json::json!(["refused: TypeError", "refused: TypeError"]),
        "{:?}",
        browser.log()
    );
    let foreign_origin = format!("http://{foreign}");
    wait_until("the browser to log the CORS refusal", WAIT, || {
        browser
            .log()
            .iter()
            .any(|l| l.contains("blocked by CORS policy") && l.contains(&foreign_origin))
    });
    // Refused and counted, not recorded: the no-preflight POST reached the server (403),
    // the JSON one stopped at its preflight (403).
    wait_until("the refusals to be counted", WAIT, || {
        server.metric("pixelpipe_http_rejected_total", "reason=\"cors_origin\"") >= 2.0
    });

    // A last hit, then the whole list: nothing else arrived, nothing twice.
    let marker = http_get(listen.parse().unwrap(), "/pixel.gif?marker=1").unwrap();
    assert_eq!(marker.status, 200);
    let records = wait_for_records(&redis, 7);
    assert_eq!(records.len(), 7, "{records:#?}");
    assert_eq!(fields(&records[6])["marker"], "1");
    assert!(
        !records
            .iter()
            .any(|r| r.contains("foreign") || r.contains("ignored")),
        "{records:#?}"
    );
    browser.screenshot("tracker-foreign.png");
}

/// A record's keys in the order they are in it.
fn fields_in_order(record: &str) -> Vec<String> {
    let (_, query) = record.split_once(',').unwrap();
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect()
}
