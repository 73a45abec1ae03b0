//! The dashboard on the admin listener: a page rendered on the server (it shows the
//! numbers without JavaScript), a script that keeps it live through server-sent events,
//! and the JSON API behind both. Everything is served by the binary: no CDN.
//!
//! Routes: `/` and `/dashboard` (the page), `/dashboard/app.js`, `/dashboard/style.css`,
//! `/api/snapshot`, `/api/series`, `/api/top`, `/api/uniques`, `/api/ab`, `/api/stream`.
//! Every `/api/…` route takes `key` (the list, default the served one) and `window`
//! (minutes, 1–1440, default 60).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query as UrlQuery, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::stats::{self, Query, Snapshot};
use crate::config::AnalyticsConfig;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

/// How often the live stream sends a snapshot.
const PUSH_EVERY: Duration = Duration::from_millis(1000);

#[derive(Clone)]
pub struct DashboardState {
    client: redis::Client,
    conn: Arc<Mutex<Option<MultiplexedConnection>>>,
    analytics: Arc<AnalyticsConfig>,
    default_key: String,
}

impl DashboardState {
    pub fn new(client: redis::Client, analytics: AnalyticsConfig, default_key: String) -> Self {
        DashboardState {
            client,
            conn: Arc::new(Mutex::new(None)),
            analytics: Arc::new(analytics),
            default_key,
        }
    }

    /// A snapshot, or why there is none (Redis unreachable).
    async fn snapshot(&self, p: &Params) -> Result<Snapshot, String> {
        let q = Query {
            list: p.key.clone().unwrap_or_else(|| self.default_key.clone()),
            window_minutes: p.window.unwrap_or(60).clamp(1, 1440),
            now: stats::now(),
        };
        let mut conn = {
            let mut guard = self.conn.lock().await;
            match &*guard {
                Some(c) => c.clone(),
                None => {
                    let config = AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(Duration::from_secs(1)))
                        .set_response_timeout(Some(Duration::from_secs(2)));
                    let c = self
                        .client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                        .map_err(|e| format!("Redis is unreachable: {e}"))?;
                    *guard = Some(c.clone());
                    c
                }
            }
        };
        match stats::snapshot(&mut conn, &self.analytics, &q).await {
            Ok(s) => Ok(s),
            Err(e) => {
                *self.conn.lock().await = None;
                Err(format!("Redis is unreachable: {e}"))
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    key: Option<String>,
    window: Option<i64>,
    /// `/api/series`: `second` (default) or `minute`.
    resolution: Option<String>,
    /// `/api/top`: one parameter instead of all.
    param: Option<String>,
}

pub fn router(state: DashboardState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/dashboard", get(page))
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/snapshot", get(api_snapshot))
        .route("/api/series", get(api_series))
        .route("/api/top", get(api_top))
        .route("/api/uniques", get(api_uniques))
        .route("/api/ab", get(api_ab))
        .route("/api/stream", get(api_stream))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn unavailable(error: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({ "error": error })),
    )
        .into_response()
}

async fn api_snapshot(State(s): State<DashboardState>, UrlQuery(p): UrlQuery<Params>) -> Response {
    match s.snapshot(&p).await {
        Ok(snap) => Json(snap).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn api_series(State(s): State<DashboardState>, UrlQuery(p): UrlQuery<Params>) -> Response {
    let snap = match s.snapshot(&p).await {
        Ok(snap) => snap,
        Err(e) => return unavailable(e),
    };
    match p.resolution.as_deref().unwrap_or("second") {
        "second" => Json(serde_json::json!({ "resolution": "second", "points": snap.per_second }))
            .into_response(),
        "minute" => Json(serde_json::json!({ "resolution": "minute", "points": snap.per_minute }))
            .into_response(),
        other => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": format!("resolution must be `second` or `minute`, not `{other}`") })),
        )
            .into_response(),
    }
}

async fn api_top(State(s): State<DashboardState>, UrlQuery(p): UrlQuery<Params>) -> Response {
    let snap = match s.snapshot(&p).await {
        Ok(snap) => snap,
        Err(e) => return unavailable(e),
    };
    let top: Vec<_> = snap
        .top
        .into_iter()
        .filter(|t| p.param.as_ref().is_none_or(|want| *want == t.param))
        .collect();
    if top.is_empty() && p.param.is_some() {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "that parameter is not in analytics.params" })),
        )
            .into_response();
    }
    Json(serde_json::json!({ "window_minutes": snap.window_minutes, "top": top })).into_response()
}

async fn api_uniques(State(s): State<DashboardState>, UrlQuery(p): UrlQuery<Params>) -> Response {
    match s.snapshot(&p).await {
        Ok(snap) => Json(
            serde_json::json!({ "window_minutes": snap.window_minutes, "uniques": snap.uniques }),
        )
        .into_response(),
        Err(e) => unavailable(e),
    }
}

async fn api_ab(State(s): State<DashboardState>, UrlQuery(p): UrlQuery<Params>) -> Response {
    match s.snapshot(&p).await {
        Ok(snap) => {
            Json(serde_json::json!({ "window_minutes": snap.window_minutes, "ab": snap.ab }))
                .into_response()
        }
        Err(e) => unavailable(e),
    }
}

/// `event: snapshot` with a [`Snapshot`] every second, or `event: unavailable` with
/// `{"error": …}` while Redis is unreachable.
async fn api_stream(
    State(s): State<DashboardState>,
    UrlQuery(p): UrlQuery<Params>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut tick = tokio::time::interval(PUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let events = stream::unfold((s, p, tick), |(s, p, mut tick)| async move {
        tick.tick().await;
        let event = match s.snapshot(&p).await {
            Ok(snap) => Event::default()
                .event("snapshot")
                .json_data(&snap)
                .unwrap_or_else(|_| Event::default().event("unavailable")),
            Err(e) => Event::default()
                .event("unavailable")
                .data(serde_json::json!({ "error": e }).to_string()),
        };
        Some((Ok(event), (s, p, tick)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

async fn page(State(s): State<DashboardState>, UrlQuery(p): UrlQuery<Params>) -> Html<String> {
    let snap = s.snapshot(&p).await;
    Html(render_page(&s.default_key, &p, snap))
}

fn render_page(default_key: &str, p: &Params, snap: Result<Snapshot, String>) -> String {
    let key = p.key.as_deref().unwrap_or(default_key);
    let (status, status_hidden) = match &snap {
        Ok(_) => (String::new(), " hidden"),
        Err(e) => (escape(e), ""),
    };
    let snap = snap.ok();
    let num = |f: &dyn Fn(&Snapshot) -> String| snap.as_ref().map(f).unwrap_or_else(|| "–".into());
    let mut top = String::new();
    let mut ab = String::new();
    if let Some(s) = &snap {
        for t in &s.top {
            top.push_str(&top_table(&t.param, &t.values));
        }
        if let Some(table) = &s.ab {
            ab = ab_table(table);
        }
    }
    PAGE.replace("{{key}}", &escape(key))
        .replace("{{status}}", &status)
        .replace("{{status_hidden}}", status_hidden)
        .replace("{{total}}", &num(&|s| s.total.to_string()))
        .replace("{{malformed}}", &num(&|s| s.malformed.to_string()))
        .replace("{{rate_now}}", &num(&|s| s.rate_now.to_string()))
        .replace(
            "{{rate_minute}}",
            &num(&|s| format!("{:.1}", s.rate_minute)),
        )
        .replace(
            "{{uniques_minute}}",
            &num(&|s| s.uniques.minute.to_string()),
        )
        .replace(
            "{{uniques_window}}",
            &num(&|s| s.uniques.window.to_string()),
        )
        .replace("{{uniques_today}}", &num(&|s| s.uniques.today.to_string()))
        .replace("{{window}}", &num(&|s| s.window_minutes.to_string()))
        .replace("{{top}}", &top)
        .replace("{{ab}}", &ab)
}

/// The same markup the script builds (app.js `topTable`).
fn top_table(param: &str, values: &[(String, u64)]) -> String {
    let mut h = format!(
        "<section class=\"top\" data-param=\"{p}\"><h3>{p}</h3><table><tbody>",
        p = escape(param)
    );
    for (v, n) in values {
        let _ = write!(h, "<tr><td>{}</td><td class=\"n\">{n}</td></tr>", escape(v));
    }
    h.push_str("</tbody></table></section>");
    h
}

/// The same markup the script builds (app.js `abTable`).
fn ab_table(t: &stats::AbTable) -> String {
    let mut h = format!(
        "<h3>A/B: {} → {}</h3><table><thead><tr><th>variant</th><th>hits</th><th>goals</th><th>conversion</th></tr></thead><tbody>",
        escape(&t.param),
        escape(&t.goal)
    );
    for v in &t.variants {
        let _ = write!(
            h,
            "<tr data-variant=\"{n}\"><td>{n}</td><td class=\"n hits\">{}</td><td class=\"n goals\">{}</td><td class=\"n conversion\">{:.2}%</td></tr>",
            v.hits,
            v.goals,
            v.conversion * 100.0,
            n = escape(&v.name)
        );
    }
    h.push_str("</tbody></table>");
    h
}

/// Values come from query strings anyone can send: escape everything put in the page.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_values_and_shows_redis_errors() {
        let p = Params {
            key: Some("<k>".into()),
            ..Params::default()
        };
        let html = render_page("pixel", &p, Err("Redis is unreachable: <refused>".into()));
        assert!(html.contains("Redis is unreachable: &lt;refused&gt;"));
        assert!(html.contains("&lt;k&gt;"));
        assert!(!html.contains("<k>"));
        assert!(!html.contains("{{"));
        assert_eq!(
            top_table("s", &[("<script>".into(), 2)]),
            "<section class=\"top\" data-param=\"s\"><h3>s</h3><table><tbody><tr><td>&lt;script&gt;</td><td class=\"n\">2</td></tr></tbody></table></section>"
        );
    }
}
