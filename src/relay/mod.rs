//! `pixelpipe relay`: a syslog relay in place of syslog-ng. Messages come in on unix
//! datagram, UDP and TCP sockets ([`unix`], [`udp`], [`tcp`]), are parsed and routed
//! ([`ingest`], [`route`]), and go to Redis through the same durable local log and
//! exactly-once shipper as `serve`, or to a plain file ([`file`]).
//!
//! Threads: each datagram source has a thread of its own, plus (unix sockets, by default)
//! a real-time receiver that empties the socket's short queue (see [`datagram`] and
//! [`unix_queue`], which makes that queue deeper than the host's default); the TCP
//! sources share one thread; the shipper and admin listener run on the caller's runtime.
//! Every source thread has its own appender (group commit).

pub mod config;
mod datagram;
pub mod file;
pub mod ingest;
pub mod metrics;
pub mod route;
pub mod tcp;
pub(crate) mod tls;
pub mod udp;
pub mod unix;
mod unix_queue;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::watch;

pub use config::RelayConfig;

use self::config::SourceConfig;
use self::ingest::Ingest;
use self::metrics::SourceMetrics;
use self::route::{RouteError, Router};
use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::log::{Appender, Log};
use crate::pipeline::{Pipeline, PipelineError};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("unix socket {path}: {source}")]
    Unix {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("UDP {address}: {source}")]
    Udp {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("TCP {address}: {source}")]
    Tcp {
        address: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("no sources: give --unix PATH, --udp HOST:PORT or --tcp HOST:PORT, or [[relay.sources]] in the configuration")]
    NoSources,
    #[error("cannot listen on {0}")]
    Source(#[from] SourceError),
    #[error("bad relay route: {0}")]
    Route(#[from] RouteError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("cannot listen on {address} (admin): {source}")]
    Admin {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("starting a source thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// A bound socket, waiting for its thread.
enum Bound {
    Unix(std::os::unix::net::UnixDatagram, config::UnixSource),
    Udp(std::net::UdpSocket, bool),
    Tcp(
        std::net::TcpListener,
        config::TcpSource,
        Option<tokio_rustls::TlsAcceptor>,
    ),
}

/// Runs the relay until `shutdown` resolves, then stops reading, waits for what was read
/// to reach the local log, and ships what it can within the shutdown deadline.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RelayError> {
    let prometheus = crate::metrics::install();
    if config.relay.sources.is_empty() {
        return Err(RelayError::NoSources);
    }
    // First of all: SIGHUP's default action ends the process, and `logrotate` may send
    // one as soon as the files exist.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|e| {
            tracing::warn!(error = %e, "cannot handle SIGHUP; file destinations will not be reopened")
        })
        .ok();
    let router = Arc::new(Router::new(&config.relay.effective_routes())?);
    // The same live analytics as `serve`, fed by the shipper.
    let analytics = crate::consume::start_analytics(&config).map_err(PipelineError::Redis)?;
    let mut bound = Vec::new();
    for source in &config.relay.sources {
        match bind(source) {
            Ok(b) => bound.push(b),
            Err(e) => {
                remove_socket_files(&bound);
                return Err(e);
            }
        }
    }
    let pipeline =
        Pipeline::start(&config, analytics.tap).inspect_err(|_| remove_socket_files(&bound))?;
    let (stop, stopped) = watch::channel(false);
    let admin_state = AdminState {
        log: pipeline.log.clone(),
        shipper: pipeline.status.clone(),
        prometheus,
        ready_backlog_bytes: config.ship.ready_backlog_bytes,
    };
    let admin_addr = admin::serve(
        config.admin_listen,
        admin::router(admin_state).merge(analytics.router),
        stopped.clone(),
    )
    .await
    .map_err(|source| {
        remove_socket_files(&bound);
        RelayError::Admin {
            address: config.admin_listen,
            source,
        }
    })?;
    let local_host = local_hostname();
    // The datagram receivers are plain threads: they poll this flag.
    let stop_flag = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut socket_files = Vec::new();
    let mut tcp_listeners = Vec::new();
    for b in bound {
        let (router, log) = (router.clone(), pipeline.log.clone());
        let (local_host, flag) = (local_host.clone(), stop_flag.clone());
        match b {
            Bound::Unix(socket, u) => {
                tracing::info!(path = %u.path.display(), "receiving syslog on a unix socket");
                socket_files.push(u.path);
                let (realtime, expect_host) = (u.realtime_receiver, u.parse_hostname);
                threads.push(spawn_source(
                    "relay-unix",
                    log,
                    move |appender| async move {
                        let metrics = SourceMetrics::new("unix");
                        let ingest =
                            Ingest::new(router, appender, metrics, local_host, expect_host);
                        if let Err(e) =
                            datagram::run("relay-unix", socket, ingest, realtime, flag).await
                        {
                            tracing::error!(error = %e, "unix source failed to start");
                        }
                    },
                )?);
            }
            Bound::Udp(socket, realtime) => {
                tracing::info!(address = %socket.local_addr().map(|a| a.to_string()).unwrap_or_default(), "receiving syslog on UDP");
                if let Ok(watched) = socket.try_clone() {
                    let stopped = stopped.clone();
                    tokio::spawn(async move { udp::watch_drops(&watched, stopped).await });
                }
                threads.push(spawn_source(
                    "relay-udp",
                    log,
                    move |appender| async move {
                        let metrics = SourceMetrics::new("udp");
                        let ingest = Ingest::new(router, appender, metrics, local_host, true);
                        if let Err(e) =
                            datagram::run("relay-udp", socket, ingest, realtime, flag).await
                        {
                            tracing::error!(error = %e, "UDP source failed to start");
                        }
                    },
                )?);
            }
            Bound::Tcp(listener, c, acceptor) => {
                let tls = acceptor.is_some();
                tracing::info!(address = %c.address, tls, "receiving syslog on TCP");
                tcp_listeners.push((listener, c, acceptor));
            }
        }
    }
    if !tcp_listeners.is_empty() {
        let (log, stopped, router) = (pipeline.log.clone(), stopped.clone(), router.clone());
        threads.push(spawn_source(
            "relay-tcp",
            log,
            move |appender| async move {
                let mut tasks = tokio::task::JoinSet::new();
                for (listener, c, acceptor) in tcp_listeners {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "TCP source failed to start");
                            continue;
                        }
                    };
                    let (router, appender, local_host) =
                        (router.clone(), appender.clone(), local_host.clone());
                    let new_ingest = move || {
                        Ingest::new(
                            router.clone(),
                            appender.clone(),
                            SourceMetrics::new("tcp"),
                            local_host.clone(),
                            true,
                        )
                    };
                    tasks.spawn(tcp::run(listener, c, acceptor, new_ingest, stopped.clone()));
                }
                while tasks.join_next().await.is_some() {}
            },
        )?);
    }
    if let Some(hangup) = hangup {
        tokio::spawn(reopen_files_on_hangup(
            hangup,
            router.clone(),
            stopped.clone(),
        ));
    }
    tracing::info!(admin = %admin_addr, routes = router.routes.len(), "relaying syslog");
    shutdown.await;
    tracing::info!("stopping: no more reads; logging what was read");
    let _ = stop.send(true);
    stop_flag.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    for path in socket_files {
        let _ = std::fs::remove_file(path);
    }
    let left = pipeline.drain().await;
    tracing::info!(unshipped_bytes = left, "stopped");
    Ok(())
}

/// SIGHUP reopens the file destinations, as syslog daemons do after `logrotate`.
async fn reopen_files_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    router: Arc<Router>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            Some(()) = hangup.recv() => router.reopen_files(),
            _ = stop_requested(&mut stopped) => return,
        }
    }
}

fn bind(source: &SourceConfig) -> Result<Bound, RelayError> {
    Ok(match source {
        SourceConfig::Unix(u) => Bound::Unix(unix::bind(u)?, u.clone()),
        SourceConfig::Udp(u) => Bound::Udp(udp::bind(u)?, u.realtime_receiver),
        SourceConfig::Tcp(t) => {
            let acceptor = t.tls.as_ref().map(tls::acceptor).transpose()?;
            Bound::Tcp(tcp::bind(t)?, t.clone(), acceptor)
        }
    })
}

fn remove_socket_files(bound: &[Bound]) {
    for b in bound {
        if let Bound::Unix(_, u) = b {
            let _ = std::fs::remove_file(&u.path);
        }
    }
}

/// Runs `source` on a thread of its own with a current-thread runtime and an appender
/// whose flusher runs on that runtime.
fn spawn_source<F, Fut>(name: &str, log: Arc<Log>, source: F) -> Result<JoinHandle<()>, RelayError>
where
    F: FnOnce(Appender) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RelayError::Thread)?;
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            runtime.block_on(async move {
                let appender = Appender::new(log);
                source(appender).await;
            })
        })
        .map_err(RelayError::Thread)
}

/// This machine's short name, the `${HOST}` of local messages without one.
fn local_hostname() -> Arc<[u8]> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let short = name.trim().split('.').next().unwrap_or_default();
    let short = if short.is_empty() { "localhost" } else { short };
    Arc::from(short.as_bytes())
}

/// Resolves once the relay is stopping. (Drops the watch guard inside, so the futures
/// that wait on it stay `Send`.)
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
