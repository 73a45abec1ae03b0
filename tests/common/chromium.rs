//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol: start it on a
//! page, evaluate JavaScript in that page, read what the browser itself logged (console,
//! network errors such as CORS refusals), take screenshots. Stopped, with its renderers,
//! on drop.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::{require, wait_until};

/// Headless Chromium with a fresh profile and the DevTools protocol on a port it picks.
pub struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
    pub cdp: Cdp,
}

impl Chromium {
    /// Opens `url` and attaches to the tab whose URL contains `tab`. `extra` flags go to
    /// the browser (e.g. `--ignore-certificate-errors` for a self-signed collector).
    pub fn start(url: &str, tab: &str, extra: &[&str]) -> Chromium {
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
            .args(extra)
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
        wait_until("the page's tab", Duration::from_secs(20), || {
            let targets = cdp.call("Target.getTargets", json!({}));
            let page = targets["targetInfos"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page" && t["url"].as_str().unwrap_or("").contains(tab))
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

    /// The value of a JavaScript expression in the page (a promise is awaited).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.cdp.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        r["result"]["value"].clone()
    }

    /// Starts recording the browser's own log (`Log.entryAdded`: CORS refusals, network
    /// errors) and the page's console; read it with [`Chromium::log`].
    pub fn record_log(&mut self) {
        self.cdp.call("Log.enable", json!({}));
        self.cdp.call("Runtime.enable", json!({}));
    }

    /// The texts logged since [`Chromium::record_log`], oldest first.
    pub fn log(&mut self) -> Vec<String> {
        // A round trip reads the events that arrived before its answer.
        self.cdp
            .call("Runtime.evaluate", json!({ "expression": "0" }));
        self.cdp
            .events
            .iter()
            .filter_map(|e| match e["method"].as_str()? {
                "Log.entryAdded" => Some(e["params"]["entry"]["text"].as_str()?.to_owned()),
                "Runtime.consoleAPICalled" => Some(
                    e["params"]["args"]
                        .as_array()?
                        .iter()
                        .map(|a| a["value"].to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                "Runtime.exceptionThrown" => Some(
                    e["params"]["exceptionDetails"]["exception"]["description"]
                        .as_str()
                        .unwrap_or("exception")
                        .to_owned(),
                ),
                _ => None,
            })
            .collect()
    }

    pub fn screenshot(&mut self, name: &str) -> PathBuf {
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

/// A minimal DevTools protocol client: one request at a time; events that arrive while
/// waiting for an answer are kept in `events`.
pub struct Cdp {
    ws: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
    pub session: Option<String>,
    pub events: Vec<Value>,
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
            events: Vec::new(),
        }
    }

    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("DevTools {method}: {e}"))
    }

    pub fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
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
            if v.get("method").is_some() && self.events.len() < 10_000 {
                self.events.push(v);
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
