//! `pixelpipe serve`: the pixel endpoint. HTTP hits → records → local log → Redis.
//! Built in the order the data flows back from Redis: the pipeline (log and shipper), the
//! analytics the shipper feeds, the admin listener that shows both, then the HTTP source.

use std::future::Future;
use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::analytics;
use crate::config::Config;
use crate::http::{HttpError, HttpServer};
use crate::pipeline::{Pipeline, PipelineError};
use crate::ship::sink::RefusedPolicy;
use crate::template::{self, http::TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("analytics: cannot start its thread: {0}")]
    Analytics(std::io::Error),
    #[error("bad configuration: `http.format`: {0}")]
    Format(#[from] TemplateError),
    #[error("bad configuration: `ship.fields.{0}`: {1}")]
    Field(String, TemplateError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Who(#[from] crate::who::SetupError),
    #[error(transparent)]
    Privacy(crate::config::ConfigError),
    #[error("cannot listen on {address} (admin): {source}")]
    Admin {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Serves until `shutdown` resolves, then stops accepting, answers what is in flight, and
/// ships what it can within the shutdown deadline.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    // The record template first: a bad one stops `serve` before anything starts.
    let template = template::http::compile(&config.http.format)?
        .with_fields(&config.ship.fields)
        .map_err(|(name, e)| ServeError::Field(name, e))?;
    let prometheus = crate::metrics::install();
    let (tap, shipped) = analytics::tap(&config.analytics);
    // One key, chosen by the operator: records Redis refuses are held until it is fixed.
    let pipeline = Pipeline::start(&config, tap, RefusedPolicy::Hold)?;
    let (dashboard, aggregator) =
        analytics::start(&config, shipped).map_err(ServeError::Analytics)?;
    if config.analytics.enabled && !crate::record::readable(&config.http.format) {
        tracing::warn!(
            format = %config.http.format,
            "the analytics read records as `$msec,…`: with this http.format, every record will be counted as malformed"
        );
    }
    // One token stops everything that serves: the sources, the admin listener.
    let stop = CancellationToken::new();
    let admin_state = AdminState {
        log: pipeline.log.clone(),
        shipper: pipeline.status.clone(),
        prometheus,
        ready_backlog_bytes: config.ship.ready_backlog_bytes,
    };
    let router = admin::router(admin_state).merge(dashboard);
    let admin_addr = admin::serve(config.admin_listen, router, stop.clone())
        .await
        .map_err(|source| ServeError::Admin {
            address: config.admin_listen,
            source,
        })?;
    // The privacy step of every hit, with its salt keeper and GeoIP reloads.
    config
        .privacy
        .check_format(template.headers(), &config.http.real_ip_header)
        .map_err(ServeError::Privacy)?;
    let who = crate::who::setup(&config, template.needs(), stop.clone())?;
    let server = HttpServer::start(
        &config.http,
        template,
        who,
        pipeline.log.clone(),
        stop.clone(),
    )?;
    tracing::info!(
        listen = %server.local_addr,
        path = %config.http.path,
        key = %config.http.key,
        admin = %admin_addr,
        "serving the pixel"
    );
    if let Some(tls) = server.tls_addr {
        tracing::info!(listen = %tls, "serving HTTPS");
    }
    reload_tls_until(&server, shutdown).await;
    tracing::info!("stopping: no new connections; finishing requests in flight");
    stop.cancel();
    let _ = tokio::task::spawn_blocking(move || server.join()).await;
    let left = pipeline.drain().await;
    aggregator.finish().await;
    tracing::info!(unshipped_bytes = left, "stopped");
    Ok(())
}

/// Waits for `shutdown`; on each SIGHUP meanwhile, re-reads the TLS certificate and key
/// (a bad new pair keeps the one in use, and says why).
async fn reload_tls_until(server: &HttpServer, shutdown: impl Future<Output = ()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot handle SIGHUP: no TLS reload");
            None
        }
    };
    tokio::pin!(shutdown);
    loop {
        let hangup = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = hangup => match server.reload_tls() {
                Ok(true) => tracing::info!("SIGHUP: TLS certificate and key re-read"),
                Ok(false) => tracing::info!("SIGHUP: no TLS to reload"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: keeping the certificate in use"),
            },
        }
    }
}
