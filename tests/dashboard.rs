//! The dashboard in a real browser: headless Chromium (Debian's `chromium`) loads the page
//! from `pixelpipe serve`'s admin listener; the test sends hits and reads the page through
//! the DevTools protocol until its numbers are the right ones, saves screenshots under
//! `target/test-artifacts/`, then stops Redis and checks the page says so.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::chromium::Chromium;
use common::consume::{hit, serve_with_analytics, traffic};
use common::{wait_until, Redis};
use serde_json::{json, Value};

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
    let mut browser = Chromium::start(
        &format!("http://{}/dashboard", pixelpipe.admin),
        "/dashboard",
        &[],
    );

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
