//! The pixel endpoint of `pixelpipe serve` (wired in `app::serve`): a small HTTP/1.1
//! server that answers one path with a GIF and logs each hit. One hit's way: a
//! [`connection`] reads the bytes, [`request`] parses the head, the hit ([`hit`], which
//! the record template reads) is rendered into a record and appended to the local log,
//! and once the log has it the [`response`] goes out. The shipper takes the record on to
//! Redis; this module knows neither the shipper nor the analytics.
//!
//! Why not hyper: the endpoint has one route and fixed answers, and the budget per hit is
//! what nginx spends. Parsing with httparse and writing canned bytes lets one
//! read serve a whole pipelined batch with one group-committed log write and one socket
//! write. Each worker thread runs its own single-threaded runtime on its own
//! `SO_REUSEPORT` listener, as nginx runs its workers, so hits never cross threads.

pub mod beacon;
pub mod body;
pub mod connection;
pub mod cors;
pub mod hit;
pub mod redirect;
pub mod request;
pub mod response;
pub mod script;
pub mod tls;
mod trim;
pub mod web;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::HttpConfig;
use crate::log::{Appender, Log};
use crate::metrics::metrics;
use crate::template::http::Template;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot listen on {0}: another process listens there (a second pixelpipe?); set http.reuse_port = true to share the port on purpose")]
    InUse(SocketAddr),
    #[error("cannot start a worker thread: {0}")]
    Thread(io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("bad configuration: `{0}`: {1}")]
    Web(&'static str, String),
}

/// What every connection needs to know, shared by all workers.
pub struct Endpoint {
    pub path: String,
    pub key: Vec<u8>,
    pub template: Template,
    pub limits: request::Limits,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Beacons, CORS, the tracker script, click redirects.
    pub web: web::Web,
    /// The privacy step every hit goes through.
    pub who: crate::who::Who,
    pub send_timeout: Duration,
}

pub struct HttpServer {
    pub local_addr: SocketAddr,
    /// The HTTPS address, when `http.tls` is set.
    pub tls_addr: Option<SocketAddr>,
    tls: Option<Arc<tls::ReloadableTls>>,
    workers: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds the listeners and starts the workers. They stop accepting when `shutdown`
    /// is cancelled, and end once their in-flight requests are answered.
    pub fn start(
        config: &HttpConfig,
        template: Template,
        who: crate::who::Who,
        log: Arc<Log>,
        shutdown: CancellationToken,
    ) -> Result<HttpServer, HttpError> {
        let endpoint = Arc::new(Endpoint {
            path: config.path.clone(),
            key: config.key.clone().into_bytes(),
            template,
            limits: request::Limits {
                max_request_line: config.max_request_line,
                max_header_line: config.max_header_line,
                max_header_bytes: config.max_header_bytes,
                // The beacons' bound, enforced as the body is read.
                max_body: config.max_body_bytes as u64,
            },
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            web: web::Web::new(config).map_err(|(field, e)| HttpError::Web(field, e))?,
            who,
            send_timeout: config.send_timeout,
        });
        // The certificate is read before anything listens: a bad one is a start-up error.
        let tls = config
            .tls
            .as_ref()
            .map(tls::ReloadableTls::load)
            .transpose()?;
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        // Our workers share the port through SO_REUSEPORT, which would also let us bind
        // silently next to another process and take half its traffic: unless sharing is
        // asked for, first make sure nobody listens there.
        if !config.reuse_port && config.listen.port() != 0 {
            refuse_if_in_use(config.listen)?;
        }
        // Bind the first listener, then the others to the address it got (the port may
        // have been 0).
        let first = bind(config.listen)?;
        let local_addr = first.local_addr().map_err(|source| HttpError::Bind {
            addr: config.listen,
            source,
        })?;
        let mut listeners = vec![first];
        for _ in 1..workers {
            listeners.push(bind(local_addr)?);
        }
        // The HTTPS listeners, one per worker as for plain HTTP.
        let mut tls_listeners: Vec<Option<std::net::TcpListener>> = Vec::new();
        let mut tls_addr = None;
        if let (Some(_), Some(addr)) = (&tls, config.tls_listen) {
            let first = bind(addr)?;
            let bound = first
                .local_addr()
                .map_err(|source| HttpError::Bind { addr, source })?;
            tls_addr = Some(bound);
            tls_listeners.push(Some(first));
            for _ in 1..workers {
                tls_listeners.push(Some(bind(bound)?));
            }
        }
        tls_listeners.resize_with(workers, || None);
        let connections = Arc::new(AtomicUsize::new(0));
        trim::watch(&connections);
        let mut handles = Vec::new();
        for (i, (listener, tls_listener)) in listeners.into_iter().zip(tls_listeners).enumerate() {
            let worker = Worker {
                tls: tls.clone().zip(tls_listener),
                endpoint: endpoint.clone(),
                log: log.clone(),
                shutdown: shutdown.clone(),
                connections: connections.clone(),
                max_connections: config.max_connections,
            };
            let handle = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || worker.run(listener))
                .map_err(HttpError::Thread)?;
            handles.push(handle);
        }
        Ok(HttpServer {
            local_addr,
            tls_addr,
            tls,
            workers: handles,
        })
    }

    /// Re-reads the TLS certificate and key (on SIGHUP). On an error the certificate in
    /// use stays. `Ok(false)`: no TLS configured.
    pub fn reload_tls(&self) -> Result<bool, tls::TlsError> {
        match &self.tls {
            Some(t) => t.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// Blocks until every worker has finished (after shutdown).
    pub fn join(self) {
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Binds `addr` without SO_REUSEPORT (and lets go at once): that fails if any process
/// listens there, whatever its options.
fn refuse_if_in_use(addr: SocketAddr) -> Result<(), HttpError> {
    let err = |source| HttpError::Bind { addr, source };
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(err)?;
    probe.set_reuse_address(true).map_err(err)?;
    match probe.bind(&addr.into()) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(HttpError::InUse(addr)),
        Err(e) => Err(err(e)),
        Ok(()) => Ok(()),
    }
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, HttpError> {
    let err = |source| HttpError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_reuse_port(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    Ok(socket.into())
}

struct Worker {
    /// The TLS acceptor and this worker's HTTPS listener.
    tls: Option<(Arc<tls::ReloadableTls>, std::net::TcpListener)>,
    endpoint: Arc<Endpoint>,
    log: Arc<Log>,
    shutdown: CancellationToken,
    connections: Arc<AtomicUsize>,
    max_connections: usize,
}

/// Counts a connection for the limit while it lives.
struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Worker {
    /// A place under `max_connections`, or `None` (counted): the connection is closed.
    fn slot(&self) -> Option<ConnectionSlot> {
        if self.connections.fetch_add(1, Ordering::Relaxed) >= self.max_connections {
            self.connections.fetch_sub(1, Ordering::Relaxed);
            metrics().rejected_connections.increment(1);
            return None;
        }
        Some(ConnectionSlot(self.connections.clone()))
    }

    fn run(self, listener: std::net::TcpListener) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start an HTTP worker runtime");
                return;
            }
        };
        runtime.block_on(self.accept_loop(listener));
    }

    async fn accept_loop(mut self, listener: std::net::TcpListener) {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot register the listener");
                return;
            }
        };
        let appender = Appender::new(self.log.clone());
        let mut tasks = JoinSet::new();
        let tls = match self.tls.take() {
            Some((acceptor, l)) => match TcpListener::from_std(l) {
                Ok(l) => Some((acceptor, l)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot register the HTTPS listener");
                    return;
                }
            },
            None => None,
        };
        loop {
            tokio::select! {
                accepted = tls::accept(tls.as_ref().map(|t| &t.1)) => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            accept_failed(e).await;
                            continue;
                        }
                    };
                    let Some(slot) = self.slot() else { continue };
                    let _ = stream.set_nodelay(true);
                    let acceptor = tls.as_ref().map(|t| t.0.acceptor());
                    let endpoint = self.endpoint.clone();
                    let appender = appender.clone();
                    let shutdown = self.shutdown.clone();
                    tasks.spawn(async move {
                        if let Some(acceptor) = acceptor {
                            tls::serve(stream, peer, acceptor, endpoint, appender, shutdown).await;
                        }
                        drop(slot);
                    });
                }
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            accept_failed(e).await;
                            continue;
                        }
                    };
                    let Some(slot) = self.slot() else { continue };
                    let _ = stream.set_nodelay(true);
                    let endpoint = self.endpoint.clone();
                    let appender = appender.clone();
                    let shutdown = self.shutdown.clone();
                    tasks.spawn(async move {
                        connection::serve(stream, peer, endpoint, appender, shutdown).await;
                        drop(slot);
                    });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = self.shutdown.cancelled() => break,
            }
        }
        drop(listener);
        // Idle connections end at once; a request in progress gets the header timeout to
        // finish. A client that keeps a connection busy past that is cut off (dropping the
        // set aborts its tasks): shutdown is bounded.
        let drained = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.endpoint.header_timeout, drained)
            .await
            .is_err()
        {
            tracing::warn!("closing connections still busy after the grace period");
        }
    }
}

/// An `accept` that failed — out of file descriptors, most likely: said (the listener
/// keeps going), then a short pause so the loop does not spin.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
