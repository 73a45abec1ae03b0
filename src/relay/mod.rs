//! The syslog sources of `pixelpipe relay` (wired in `app::relay`), in place of
//! syslog-ng. One message's way: it comes in on a unix datagram, UDP or TCP socket
//! ([`unix`], [`udp`], [`tcp`] with `tls`, and `datagram` for both datagram kinds), is
//! parsed by `syslog` and routed ([`ingest`], [`route`]); each route renders its
//! templates from the message as received ([`received`]) and appends the record to the
//! local log (then the shipper takes it to Redis) or writes a line to a plain file
//! ([`file`]). This module knows neither the shipper nor the analytics.
//!
//! Threads: each datagram source has a thread of its own, plus (unix sockets, by default)
//! a real-time receiver that empties the socket's short queue (see [`datagram`] and
//! [`unix_queue`], which makes that queue deeper than the host's default); the TCP
//! sources share one thread; the shipper and admin listener run on the caller's runtime.
//! Every source thread has its own appender (group commit).

mod datagram;
pub mod file;
mod idle;
pub mod ingest;
pub mod key;
pub mod metrics;
pub mod received;
pub mod route;
pub mod tcp;
pub(crate) mod tls;
pub mod udp;
pub mod unix;
mod unix_queue;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::ingest::Ingest;
use self::metrics::SourceMetrics;
use self::route::Router;
use crate::config::relay::{SourceConfig, TcpSource, UnixSource};
use crate::log::{Appender, Log};

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
    #[error("cannot listen on {0}")]
    Source(#[from] SourceError),
    #[error("starting a source thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// A bound socket, waiting for its thread.
pub enum Bound {
    Unix(std::os::unix::net::UnixDatagram, UnixSource),
    Udp(std::net::UdpSocket, bool),
    Tcp(
        std::net::TcpListener,
        TcpSource,
        Option<tokio_rustls::TlsAcceptor>,
    ),
}

/// Binds every source's socket; on failure, removes the socket files already bound.
pub fn bind_all(sources: &[SourceConfig]) -> Result<Vec<Bound>, RelayError> {
    let mut bound = Vec::new();
    for source in sources {
        match bind(source) {
            Ok(b) => bound.push(b),
            Err(e) => {
                remove_socket_files(&bound);
                return Err(e);
            }
        }
    }
    Ok(bound)
}

/// The running sources: their threads and the socket files to remove at the end.
pub struct Sources {
    threads: Vec<JoinHandle<()>>,
    socket_files: Vec<PathBuf>,
}

impl Sources {
    /// Starts a thread per datagram source and one for all TCP sources, each appending to
    /// `log` through its own appender. They stop reading when `stop` is cancelled.
    pub fn start(
        bound: Vec<Bound>,
        router: Arc<Router>,
        log: Arc<Log>,
        stop: CancellationToken,
    ) -> Result<Sources, RelayError> {
        let local_host = local_hostname();
        let mut threads = Vec::new();
        let mut socket_files = Vec::new();
        let mut tcp_listeners = Vec::new();
        for b in bound {
            let (router, log) = (router.clone(), log.clone());
            let (local_host, stop) = (local_host.clone(), stop.clone());
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
                                datagram::run("relay-unix", socket, ingest, realtime, stop).await
                            {
                                tracing::error!(error = %e, "unix source failed to start");
                            }
                        },
                    )?);
                }
                Bound::Udp(socket, realtime) => {
                    tracing::info!(address = %socket.local_addr().map(|a| a.to_string()).unwrap_or_default(), "receiving syslog on UDP");
                    if let Ok(watched) = socket.try_clone() {
                        let stop = stop.clone();
                        tokio::spawn(async move { udp::watch_drops(&watched, stop).await });
                    }
                    threads.push(spawn_source(
                        "relay-udp",
                        log,
                        move |appender| async move {
                            let metrics = SourceMetrics::new("udp");
                            let ingest = Ingest::new(router, appender, metrics, local_host, true);
                            if let Err(e) =
                                datagram::run("relay-udp", socket, ingest, realtime, stop).await
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
            threads.push(spawn_tcp(tcp_listeners, router, log, local_host, stop)?);
        }
        Ok(Sources {
            threads,
            socket_files,
        })
    }

    /// Waits for every source thread to finish (after `stop` was cancelled), so that
    /// everything read is in the local log, then removes the socket files.
    pub async fn join(self) {
        for t in self.threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        for path in self.socket_files {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// All TCP sources share one thread.
fn spawn_tcp(
    listeners: Vec<TcpBound>,
    router: Arc<Router>,
    log: Arc<Log>,
    local_host: Arc<[u8]>,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, RelayError> {
    spawn_source("relay-tcp", log, move |appender| async move {
        let tasks = TaskTracker::new();
        for (listener, c, acceptor) in listeners {
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
            tasks.spawn(tcp::run(listener, c, acceptor, new_ingest, stop.clone()));
        }
        tasks.close();
        tasks.wait().await;
    })
}

type TcpBound = (
    std::net::TcpListener,
    TcpSource,
    Option<tokio_rustls::TlsAcceptor>,
);

/// SIGHUP reopens the file destinations, as syslog daemons do after `logrotate`.
pub async fn reopen_files_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    router: Arc<Router>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            Some(()) = hangup.recv() => router.reopen_files(),
            _ = stop.cancelled() => return,
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

pub fn remove_socket_files(bound: &[Bound]) {
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
    let short = crate::hostname::short_name().unwrap_or_else(|| "localhost".into());
    Arc::from(short.as_bytes())
}
