//! `pixelpipe serve`: the pixel endpoint. HTTP hits → records → local log → Redis.
//! Built in the order the data flows back from Redis: the pipeline (log and shipper), the
//! analytics the shipper feeds, the admin listener that shows both, then the HTTP source.

use std::future::Future;
use std::net::SocketAddr;

use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::analytics;
use crate::config::Config;
use crate::http::{HttpError, HttpServer};
use crate::pipeline::{Pipeline, PipelineError};
use crate::ship::sink::RefusedPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("analytics: bad Redis URL: {0}")]
    Analytics(redis::RedisError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("cannot listen on {address} (admin): {source}")]
    Admin {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Serves until `shutdown` resolves, then stops accepting, answers what is in flight, and
/// ships what it can within the shutdown deadline.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let prometheus = crate::metrics::install();
    let (tap, shipped) = analytics::tap(&config.analytics);
    // One key, chosen by the operator: records Redis refuses are held until it is fixed.
    let pipeline = Pipeline::start(&config, tap, RefusedPolicy::Hold)?;
    let dashboard = analytics::start(&config, shipped).map_err(ServeError::Analytics)?;
    let (stop, stopped) = watch::channel(false);
    let admin_state = AdminState {
        log: pipeline.log.clone(),
        shipper: pipeline.status.clone(),
        prometheus,
        ready_backlog_bytes: config.ship.ready_backlog_bytes,
    };
    let router = admin::router(admin_state).merge(dashboard);
    let admin_addr = admin::serve(config.admin_listen, router, stopped.clone())
        .await
        .map_err(|source| ServeError::Admin {
            address: config.admin_listen,
            source,
        })?;
    let server = HttpServer::start(&config.http, pipeline.log.clone(), stopped)?;
    tracing::info!(
        listen = %server.local_addr,
        path = %config.http.path,
        key = %config.http.key,
        admin = %admin_addr,
        "serving the pixel"
    );
    shutdown.await;
    tracing::info!("stopping: no new connections; finishing requests in flight");
    let _ = stop.send(true);
    let _ = tokio::task::spawn_blocking(move || server.join()).await;
    let left = pipeline.drain().await;
    tracing::info!(unshipped_bytes = left, "stopped");
    Ok(())
}
