//! The admin listener: `/healthz`, `/readyz`, `/metrics`, and whatever routes the
//! subcommand adds (the dashboard). Kept off the pixel port so that probes and scrapes
//! never compete with hits, and so it can stay on loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::log::Log;
use crate::ship::ShipperStatus;

#[derive(Clone)]
pub struct AdminState {
    pub log: Arc<Log>,
    pub shipper: ShipperStatus,
    pub prometheus: PrometheusHandle,
    pub ready_backlog_bytes: u64,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .with_state(state)
}

/// Ready while Redis is reachable and the backlog is under its threshold: a load
/// balancer then sends hits elsewhere before this collector's disk fills.
/// Also not ready while the local log cannot be trusted to be durable (a failed fsync).
/// A full disk shows as `log_writable false` but does not fail readiness by itself:
/// only hits find out that writing works again, and an unready collector gets none.
async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let up = *s.shipper.redis_up.borrow();
    let backlog = s.log.backlog();
    let (writable, durable) = (s.log.writable(), s.log.durable());
    let body = format!(
        "redis_up {up}\nbacklog_bytes {backlog}\nlog_writable {writable}\nlog_durable {durable}\n"
    );
    if up && durable && backlog <= s.ready_backlog_bytes {
        (StatusCode::OK, body)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

async fn prometheus(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.prometheus.render(),
    )
}

/// Binds `addr` and serves `router` until `shutdown` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "admin listener failed");
        }
    });
    Ok(local)
}
