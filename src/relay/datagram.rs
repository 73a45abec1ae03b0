//! The datagram sources (unix and UDP): one message per datagram, nothing to acknowledge,
//! so messages are appended and the loop moves on — but never dropped by the relay.
//!
//! Why two threads per source: a unix datagram socket queues only
//! `net.unix.max_dgram_qlen` (10 by default) datagrams, and nginx drops a log line as
//! soon as that queue is full. On a busy two-core machine, a thread that parses, renders
//! and appends between reads is not scheduled back soon enough. So a receiver thread
//! does nothing but empty the socket into batches (it sleeps most of the time, which the
//! kernel scheduler rewards with prompt wake-ups), and the source's runtime thread
//! processes the batches. A bounded channel between them bounds memory.
//!
//! Even a thread that only reads is not woken fast enough when nginx and the HTTP load
//! keep both cores busy (measured: a bare read loop in Python lost 31 % of nginx's lines
//! under `ab -c 10`). With `realtime_receiver` (the default for unix sockets), the
//! receiver asks for `SCHED_FIFO`, which needs root or `CAP_SYS_NICE`; it then lost
//! none. It cannot take over a core: it blocks as soon as the processing thread is
//! `BATCHES` behind.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::ingest::Ingest;
use crate::log::Ticket;
use crate::syslog::framing::trim_end;

/// The largest UDP payload; longer unix datagrams are cut there (and still delivered).
const MAX_DATAGRAM: usize = 65_536;
/// A batch is handed over once it holds this many bytes (or the socket is empty).
const BATCH_BYTES: usize = 64 * 1024;
/// Batches in flight between the receiver and the processing thread.
const BATCHES: usize = 64;
/// How often the receiver looks at the stop flag while the socket is idle.
const POLL_MS: i32 = 100;

/// Datagrams read back to back, stored end to end.
#[derive(Default)]
pub(super) struct Batch {
    bytes: Vec<u8>,
    /// End offset in `bytes` and sender of each datagram.
    ends: Vec<(usize, Option<IpAddr>)>,
}

/// A non-blocking datagram socket as the receiver sees it.
pub(super) trait Receive: AsRawFd + Send + 'static {
    /// Reads one datagram: its length and, for network sockets, the sender.
    fn receive(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)>;
}

impl Receive for std::os::unix::net::UnixDatagram {
    fn receive(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)> {
        self.recv(buf).map(|n| (n, None))
    }
}

impl Receive for std::net::UdpSocket {
    fn receive(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)> {
        self.recv_from(buf).map(|(n, a)| (n, Some(a.ip())))
    }
}

/// Starts the receiver thread for `socket` (non-blocking) and processes what it reads
/// until `stop` is set and everything read is in the local log.
pub(super) async fn run(
    name: &str,
    socket: impl Receive,
    mut ingest: Ingest,
    realtime: bool,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Batch>(BATCHES);
    let thread = format!("{name}-recv");
    std::thread::Builder::new()
        .name(thread.clone())
        .spawn(move || {
            if realtime {
                raise_priority(&thread);
            }
            receive_loop(socket, tx, stop)
        })?;
    let mut last: Option<Ticket> = None;
    let mut write_failing = false;
    while let Some(batch) = rx.recv().await {
        ingest.begin_batch();
        let mut start = 0;
        for &(end, peer) in &batch.ends {
            let trimmed = trim_end(&batch.bytes, start, end);
            if let Some(t) = ingest.message(&batch.bytes[start..trimmed], peer) {
                last = Some(t);
            }
            start = end;
        }
        ingest.end_batch();
        // Let the appender's flusher write this batch if more are already waiting.
        if !rx.is_empty() {
            tokio::task::yield_now().await;
        }
        // The previous write, if done by now: report a failing local log once.
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
    // Whatever was read is in the log before the source ends.
    if let Some(t) = last {
        let _ = t.wait().await;
    }
    Ok(())
}

/// The receiver thread: waits for the socket to be readable, empties it into a batch,
/// hands the batch over. While the processing side is behind, the batch keeps growing
/// (up to `BATCH_BYTES`) instead of the socket queue. Ends when `stop` is set.
fn receive_loop(socket: impl Receive, tx: mpsc::Sender<Batch>, stop: Arc<AtomicBool>) {
    let fd = socket.as_raw_fd();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut batch = Batch::default();
    while !stop.load(Ordering::Relaxed) {
        // With a batch waiting for room in the channel, come back soon to offer it again.
        let timeout = if batch.ends.is_empty() { POLL_MS } else { 1 };
        match wait_readable(fd, timeout) {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "waiting on a datagram socket failed; this source stops");
                break;
            }
        }
        while batch.bytes.len() < BATCH_BYTES {
            match socket.receive(&mut buf) {
                Ok((len, peer)) => {
                    batch.bytes.extend_from_slice(&buf[..len]);
                    batch.ends.push((batch.bytes.len(), peer));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "receiving a datagram failed");
                    break;
                }
            }
        }
        if batch.ends.is_empty() {
            continue;
        }
        let full = batch.bytes.len() >= BATCH_BYTES;
        match tx.try_send(std::mem::take(&mut batch)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(b)) if full => {
                // Memory is bounded: now the socket queue has to wait.
                if tx.blocking_send(b).is_err() {
                    return;
                }
            }
            Err(mpsc::error::TrySendError::Full(b)) => batch = b,
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
    if !batch.ends.is_empty() {
        let _ = tx.blocking_send(batch);
    }
}

/// Moves the calling thread to `SCHED_FIFO` (see the module notes), or says why not.
fn raise_priority(thread: &str) {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: plain system call on the calling thread with a valid parameter.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        tracing::debug!(thread, "datagram receiver runs with SCHED_FIFO priority");
    } else {
        tracing::warn!(
            thread,
            error = %io::Error::from_raw_os_error(rc),
            "cannot give the datagram receiver real-time priority (needs root or CAP_SYS_NICE): \
             under load, senders may drop messages when the socket queue is full \
             (raising net.unix.max_dgram_qlen helps too)"
        );
    }
}

/// `poll(2)` for readability, up to `timeout_ms`.
fn wait_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for a descriptor the caller keeps open.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0)
}
