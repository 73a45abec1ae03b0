//! The TCP source: RFC 6587 framing per connection, optionally inside TLS (RFC 5425), a
//! connection limit, and the stream guarantee — a chunk's messages are in the local log
//! before the next chunk is read, so what the sender got past TCP flow control survives
//! a `kill -9`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::idle::IdleTimer;
use super::ingest::Ingest;
use super::SourceError;
use crate::config::relay::TcpSource;
use crate::log::Ticket;
use crate::syslog::framing::{Decoder, Step};

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 128 * 1024;
/// A read that brought this many messages or more means the sender writes many times per
/// wake-up of this thread (as a busy nginx does, a short line per request). When the
/// socket then has nothing more yet, [`BUSY_PAUSE`] is waited before the next read,
/// which then brings many times more messages for the same wake-up, read, log write and
/// TCP ack. After a single message, a trickle, the next one is read as soon as it comes.
const BUSY_READ: usize = 2;
const BUSY_PAUSE: Duration = Duration::from_millis(1);
/// A TLS client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn bind(config: &TcpSource) -> Result<std::net::TcpListener, SourceError> {
    let err = |source| SourceError::Tcp {
        address: config.address,
        source,
    };
    let listener = std::net::TcpListener::bind(config.address).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}

/// Accepts connections until `stop`, then waits for the open ones to finish their chunk.
/// With `tls`, each connection shakes hands first. `new_ingest` makes each connection's
/// message handler.
pub async fn run(
    listener: TcpListener,
    config: TcpSource,
    tls: Option<TlsAcceptor>,
    new_ingest: impl Fn() -> Ingest,
    stop: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let peers = Arc::new(PeerCounts::default());
    let connections = TaskTracker::new();
    let rejected = super::metrics::SourceMetrics::new("tcp").rejected_connections;
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a TCP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        // One peer may not take every slot: idle or hostile, it would lock others out.
        let Some(peer_slot) = peers.take(peer.ip(), config.max_connections_per_peer) else {
            rejected.increment(1);
            drop(stream);
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            rejected.increment(1);
            drop(stream);
            continue;
        };
        let ingest = new_ingest();
        let stop = stop.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let limits = Limits {
                max_message: config.max_message_bytes,
                idle: config.idle_timeout,
            };
            match tls {
                None => connection(stream, peer, limits, ingest, stop).await,
                Some(tls) => {
                    let handshake = tokio::select! {
                        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)) => r,
                        _ = stop.cancelled() => return,
                    };
                    match handshake {
                        Ok(Ok(stream)) => connection(stream, peer, limits, ingest, stop).await,
                        Ok(Err(e)) => {
                            ingest.metrics.tls_failures.increment(1);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            ingest.metrics.tls_failures.increment(1);
                            tracing::debug!(%peer, "TLS handshake timed out");
                        }
                    }
                }
            }
            drop(permit);
            drop(peer_slot);
        });
    }
    connections.close();
    connections.wait().await;
}

/// Open connections per peer address, for `max_connections_per_peer`.
#[derive(Default)]
struct PeerCounts(Mutex<HashMap<IpAddr, usize>>);

/// A peer's share of the connections, given back when the connection ends.
struct PeerSlot {
    counts: Arc<PeerCounts>,
    ip: IpAddr,
}

impl PeerCounts {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Limits {
    max_message: usize,
    /// A connection silent for this long is closed.
    idle: Duration,
}

async fn connection(
    mut stream: impl AsyncRead + Unpin,
    peer: SocketAddr,
    limits: Limits,
    mut ingest: Ingest,
    stop: CancellationToken,
) {
    let ip: IpAddr = peer.ip();
    let mut decoder = Decoder::new(limits.max_message);
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut tickets: Vec<Ticket> = Vec::new();
    let log = ingest.appender().log().clone();
    let mut idle = IdleTimer::new(limits.idle);
    let mut busy = false;
    loop {
        // Backpressure instead of loss: while the local log is full, stop reading.
        while log.check_room(READ_SIZE * 2).is_err() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.cancelled() => return,
            }
        }
        buf.reserve(READ_SIZE);
        // After a busy read, what is there already is read at once (a sender faster than
        // this thread is never held up); only when nothing is does the pause come first.
        let ready = if busy {
            stream.read_buf(&mut buf).now_or_never()
        } else {
            None
        };
        let read = match ready {
            Some(r) => r,
            None => {
                if busy {
                    tokio::time::sleep(BUSY_PAUSE).await;
                }
                tokio::select! {
                    r = stream.read_buf(&mut buf) => r,
                    () = idle.expired() => {
                        ingest.metrics.idle_closed.increment(1);
                        tracing::debug!(%peer, "closing an idle TCP connection");
                        return;
                    }
                    _ = stop.cancelled() => return,
                }
            }
        };
        idle.read();
        let eof = match read {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TCP connection failed");
                true
            }
        };
        ingest.begin_batch();
        let mut consumed = 0;
        let mut close = eof;
        let mut messages = 0;
        loop {
            match decoder.next(&buf[consumed..], eof) {
                Ok(Step::Message { range, consumed: n }) => {
                    let msg = &buf[consumed + range.start..consumed + range.end];
                    tickets.extend(ingest.message(msg, Some(ip)));
                    consumed += n;
                    messages += 1;
                }
                Ok(Step::Truncated { range, consumed: n }) => {
                    ingest.metrics.truncated.increment(1);
                    let msg = &buf[consumed + range.start..consumed + range.end];
                    tickets.extend(ingest.message(msg, Some(ip)));
                    consumed += n;
                    messages += 1;
                }
                Ok(Step::Skip { consumed: n }) => consumed += n,
                Ok(Step::NeedMore) => break,
                Err(e) => {
                    // An octet count that cannot be trusted: there is no way to find the
                    // next frame, so the connection ends here.
                    ingest.metrics.framing_errors.increment(1);
                    tracing::debug!(%peer, error = %e, "closing a TCP connection: bad framing");
                    close = true;
                    break;
                }
            }
        }
        buf.advance(consumed);
        ingest.end_batch();
        for t in tickets.drain(..) {
            if let Err(e) = t.wait().await {
                // The log says once that it cannot be written; not once per connection.
                tracing::debug!(%peer, error = %e, "closing a TCP connection: its messages could not be logged");
                return;
            }
        }
        if close {
            return;
        }
        busy = messages >= BUSY_READ;
    }
}
