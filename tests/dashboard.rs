//! The dashboard in a real browser: headless Chromium (Debian's `chromium`) loads the page
//! from `pixelpipe serve`'s admin listener; the test sends hits and reads the page through
//! the DevTools protocol until its numbers are the right ones, saves screenshots under
//! `target/test-artifacts/`, then stops Redis and checks the page says so.

mod common;

use std::collections::HashMap;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::consume::{hit, serve_with_analytics, traffic};
use common::{require, wait_until, Redis};
use serde_json::{json, Value};

/// Headless Chromium with a fresh profile and the DevTools protocol on a port it picks.
struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
    cdp: Cdp,
}

impl Chromium {
    fn start(url: &str) -> Chromium {
        let bin = require("chromium", "chromium");
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1280,1000",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that the renderers go with it.
            .process_group(0)
            .spawn()
            .expect("starting chromium");
        // Chromium writes the port it chose (and the browser's endpoint) to this file.
        let active = profile.path().join("DevToolsActivePort");
        let mut endpoint = String::new();
        wait_until(
            "chromium's DevTools endpoint",
            Duration::from_secs(30),
            || {
                let text = std::fs::read_to_string(&active).unwrap_or_default();
                let mut lines = text.lines();
                match (lines.next(), lines.next()) {
                    (Some(port), Some(path)) => {
                        endpoint = format!("127.0.0.1:{port}{path}");
                        true
                    }
                    _ => false,
                }
            },
        );
        let mut cdp = Cdp::connect(&endpoint);
        let mut session = None;
        wait_until("the dashboard tab", Duration::from_secs(20), || {
            let targets = cdp.call("Target.getTargets", json!({}));
            let page = targets["targetInfos"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| {
                    t["type"] == "page" && t["url"].as_str().unwrap_or("").contains("/dashboard")
                })
                .cloned();
            if let Some(page) = page {
                let attached = cdp.call(
                    "Target.attachToTarget",
                    json!({ "targetId": page["targetId"], "flatten": true }),
                );
                session = attached["sessionId"].as_str().map(str::to_owned);
            }
            session.is_some()
        });
        cdp.session = session;
        Chromium {
            child,
            _profile: profile,
            cdp,
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.cdp.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self
            .cdp
            .call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.cdp.session = None;
        let _ = self.cdp.try_call("Browser.close", json!({}));
        let pgid = self.child.id() as i32;
        let mut exited = false;
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group this test started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        if !exited {
            let _ = self.child.wait();
        }
    }
}

/// A minimal DevTools protocol client: one request at a time, events skipped.
struct Cdp {
    ws: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    fn connect(endpoint: &str) -> Cdp {
        let addr = endpoint.split('/').next().unwrap();
        let stream = TcpStream::connect(addr).expect("DevTools port");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let (ws, _) =
            tungstenite::client(format!("ws://{endpoint}"), stream).expect("DevTools websocket");
        Cdp {
            ws,
            next_id: 0,
            session: None,
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("DevTools {method}: {e}"))
    }

    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .map_err(|e| e.to_string())?;
        loop {
            let m = self.ws.read().map_err(|e| e.to_string())?;
            let Ok(text) = m.to_text() else { continue };
            let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    return Err(err.to_string());
                }
                return Ok(v["result"].clone());
            }
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()) {
        acc = (acc << 6) | value(c) as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

const PAGE_STATE: &str = r##"JSON.stringify({
  live: document.body.dataset.live,
  total: document.getElementById("total").textContent,
  today: document.getElementById("uniques-today").textContent,
  status: document.getElementById("status").hidden ? "" : document.getElementById("status").textContent,
  top: Object.fromEntries([...document.querySelectorAll("#top section")].map(s =>
    [s.dataset.param, [...s.querySelectorAll("tr")].map(tr => [tr.cells[0].textContent, Number(tr.cells[1].textContent)])])),
  ab: [...document.querySelectorAll("#ab tbody tr")].map(tr =>
    [tr.dataset.variant, Number(tr.querySelector(".hits").textContent), Number(tr.querySelector(".goals").textContent), tr.querySelector(".conversion").textContent]),
})"##;

fn state(browser: &mut Chromium) -> Value {
    let text = browser.eval(PAGE_STATE);
    serde_json::from_str(text.as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

#[test]
fn dashboard_updates_live_in_a_real_browser() {
    const N: usize = 60;
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let (pixelpipe, listen) = serve_with_analytics(&redis, dir.path(), &[]);
    let mut browser = Chromium::start(&format!("http://{}/dashboard", pixelpipe.admin));

    wait_until(
        "the page to get its first live snapshot",
        Duration::from_secs(20),
        || state(&mut browser)["live"] == "yes",
    );
    assert_eq!(state(&mut browser)["total"], "0");

    let queries = traffic(N, 40, 3);
    for q in &queries {
        hit(listen, q);
    }
    // What the page must show, counted from the hits sent.
    let common::consume::Expected {
        sources,
        hits,
        goals,
        uids,
    } = common::consume::expected(&queries);

    let mut page = Value::Null;
    wait_until(
        "the page to show every hit",
        Duration::from_secs(20),
        || {
            page = state(&mut browser);
            page["total"].as_str().and_then(|t| t.parse::<usize>().ok()) == Some(N)
        },
    );
    let mut want_ab: Vec<Value> = ["A", "B"]
        .iter()
        .map(|v| {
            let (h, g) = (hits[v], goals.get(v).copied().unwrap_or(0));
            json!([v, h, g, format!("{:.2}%", g as f64 * 100.0 / h as f64)])
        })
        .collect();
    want_ab.sort_by_key(|v| v[0].as_str().unwrap().to_owned());
    assert_eq!(page["ab"], Value::Array(want_ab), "{page}");
    let shown: HashMap<String, u64> = page["top"]["utm_source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_u64().unwrap()))
        .collect();
    assert_eq!(shown["google"], sources["google"]);
    assert_eq!(shown["news letter"], sources["news letter"]);
    assert_eq!(shown["direct"], sources["direct"]);
    // 40 visitors: HyperLogLog is exact or off by one at this size.
    let today: i64 = page["today"].as_str().unwrap().parse().unwrap();
    assert!(
        (today - uids.len() as i64).abs() <= 1,
        "{today} vs {}",
        uids.len()
    );
    assert_eq!(page["status"], "");
    let shot = browser.screenshot("dashboard.png");
    eprintln!("screenshot: {}", shot.display());

    redis.stop();
    wait_until(
        "the page to say Redis is unreachable",
        Duration::from_secs(20),
        || {
            page = state(&mut browser);
            page["status"]
                .as_str()
                .unwrap_or("")
                .contains("Redis is unreachable")
        },
    );
    assert_eq!(page["live"], "no");
    browser.screenshot("dashboard-redis-down.png");
    drop(browser);
    drop(pixelpipe);
}
