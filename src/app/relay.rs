//! `pixelpipe relay`: syslog in place of syslog-ng. Syslog messages → routes → local log →
//! Redis (or a file). Built like `serve`: the pipeline, the analytics it feeds, the admin
//! listener, then the sources.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::analytics;
use crate::config::Config;
use crate::pipeline::{Pipeline, PipelineError};
use crate::relay::key::KeyGuard;
use crate::relay::route::{RouteError, Router};
use crate::relay::{self, RelayError, Sources};
use crate::ship::sink::RefusedPolicy;

#[derive(Debug, thiserror::Error)]
pub enum RelayAppError {
    #[error("no sources: give --unix PATH, --udp HOST:PORT or --tcp HOST:PORT, or [[relay.sources]] in the configuration")]
    NoSources,
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error("bad relay route: {0}")]
    Route(#[from] RouteError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("analytics: cannot start its thread: {0}")]
    Analytics(std::io::Error),
    #[error("cannot listen on {address} (admin): {source}")]
    Admin {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Runs the relay until `shutdown` resolves, then stops reading, waits for what was read
/// to reach the local log, and ships what it can within the shutdown deadline.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RelayAppError> {
    let prometheus = crate::metrics::install();
    if config.relay.sources.is_empty() {
        return Err(RelayAppError::NoSources);
    }
    // First of all: SIGHUP's default action ends the process, and `logrotate` may send
    // one as soon as the files exist.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|e| {
            tracing::warn!(error = %e, "cannot handle SIGHUP; file destinations will not be reopened")
        })
        .ok();
    let keys = KeyGuard::new(&config.relay.key_pattern, &config.analytics.prefix)
        .map_err(|e| RouteError::KeyPattern(e.to_string()))?;
    let router =
        Arc::new(Router::new(&config.relay.routes, keys)?.with_fields(&config.ship.fields)?);
    // Sockets are bound before anything else starts, so that a source that cannot listen
    // stops the relay before it opens the log.
    let bound = relay::bind_all(&config.relay.sources)?;
    let cleanup = |e| {
        relay::remove_socket_files(&bound);
        e
    };
    let (tap, shipped) = analytics::tap(&config.analytics);
    // Keys come from senders: one that Redis refuses must not hold up the others.
    let pipeline = Pipeline::start(&config, tap, RefusedPolicy::DeadLetter)
        .map_err(RelayAppError::from)
        .map_err(cleanup)?;
    let (dashboard, aggregator) = analytics::start(&config, shipped)
        .map_err(RelayAppError::Analytics)
        .map_err(cleanup)?;
    // One token stops everything that serves: the sources, the admin listener.
    let stop = CancellationToken::new();
    let admin_state = AdminState {
        log: pipeline.log.clone(),
        shipper: pipeline.status.clone(),
        prometheus,
        ready_backlog_bytes: config.ship.ready_backlog_bytes,
    };
    let admin_addr = admin::serve(
        config.admin_listen,
        admin::router(admin_state).merge(dashboard),
        stop.clone(),
    )
    .await
    .map_err(|source| RelayAppError::Admin {
        address: config.admin_listen,
        source,
    })
    .map_err(cleanup)?;
    let sources = Sources::start(bound, router.clone(), pipeline.log.clone(), stop.clone())?;
    if let Some(hangup) = hangup {
        tokio::spawn(relay::reopen_files_on_hangup(
            hangup,
            router.clone(),
            stop.clone(),
        ));
    }
    tracing::info!(admin = %admin_addr, routes = router.routes.len(), "relaying syslog");
    shutdown.await;
    tracing::info!("stopping: no more reads; logging what was read");
    stop.cancel();
    sources.join().await;
    let left = pipeline.drain().await;
    aggregator.finish().await;
    tracing::info!(unshipped_bytes = left, "stopped");
    Ok(())
}
