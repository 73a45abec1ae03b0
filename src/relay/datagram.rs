//! The receive loop shared by the datagram sources (unix and UDP): one message per
//! datagram, nothing to acknowledge, so messages are appended and the loop moves on.
//!
//! Why it drains in bursts on a thread of its own: a unix datagram socket queues only
//! `net.unix.max_dgram_qlen` (10) datagrams and nginx drops a log line when that queue is
//! full. The loop reads until the socket is empty (or a burst is done), then yields so the
//! appender's flusher writes the burst with one `write`.

use std::io;
use std::net::IpAddr;

use futures_util::FutureExt;
use tokio::net::{UdpSocket, UnixDatagram};
use tokio::sync::watch;

use super::ingest::Ingest;
use crate::log::Ticket;
use crate::syslog::framing::trim_end;

/// Messages read before letting the flusher run even if more are waiting.
const BURST: usize = 512;
/// The largest UDP payload; unix datagrams beyond it are cut (and still delivered).
const MAX_DATAGRAM: usize = 65_536;

pub(super) trait DatagramSocket {
    async fn readable(&self) -> io::Result<()>;
    /// Non-blocking receive: the length and, for network sockets, the sender.
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)>;
}

impl DatagramSocket for UnixDatagram {
    async fn readable(&self) -> io::Result<()> {
        UnixDatagram::readable(self).await
    }
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)> {
        UnixDatagram::try_recv(self, buf).map(|n| (n, None))
    }
}

impl DatagramSocket for UdpSocket {
    async fn readable(&self) -> io::Result<()> {
        UdpSocket::readable(self).await
    }
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)> {
        self.try_recv_from(buf).map(|(n, a)| (n, Some(a.ip())))
    }
}

pub(super) async fn run(socket: impl DatagramSocket, mut ingest: Ingest, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last: Option<Ticket> = None;
    let mut write_failing = false;
    loop {
        tokio::select! {
            r = socket.readable() => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "datagram socket failed; this source stops");
                    break;
                }
            }
            _ = super::stop_requested(&mut stop) => break,
        }
        ingest.begin_batch();
        let mut n = 0;
        while n < BURST {
            match socket.try_recv(&mut buf) {
                Ok((len, peer)) => {
                    let end = trim_end(&buf, 0, len);
                    if let Some(t) = ingest.message(&buf[..end], peer) {
                        last = Some(t);
                    }
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "receiving a datagram failed");
                    break;
                }
            }
        }
        ingest.flush_files();
        if n == BURST {
            tokio::task::yield_now().await;
        }
        // The previous burst's write, if done by now: report a failing local log once.
        if let Some(result) = last.as_ref().and_then(|t| t.wait().now_or_never()) {
            match result {
                Err(e) if !write_failing => {
                    tracing::error!(error = %e, "datagrams are being lost: the local log cannot be written");
                    write_failing = true;
                }
                Ok(()) => write_failing = false,
                _ => {}
            }
        }
    }
    // Whatever was read is in the log before the thread ends.
    if let Some(t) = last {
        let _ = t.wait().await;
    }
}
