//! The datagram sources (unix and UDP): one message per datagram, nothing to acknowledge,
//! so messages are appended and the loop moves on. The relay drops one only when the local
//! log refuses it (full, or a record too large), and counts it.
//!
//! Why two threads per source: a unix datagram socket queues few datagrams (512 as
//! `unix_queue` creates it, 10 with the host's default), and nginx drops a log line as
//! soon as that queue is full. On a busy two-core machine, a thread that parses, renders
//! and appends between reads is not scheduled back soon enough. So a receiver thread
//! does nothing but move datagrams from the socket to a private socket pair, and the
//! source's runtime thread reads them from there and processes them.
//!
//! Why a socket pair between them: a connected unix datagram pair is exempt from the
//! queue-length limit (its depth is the sending end's `SO_SNDBUF`, so memory stays bounded),
//! and the hand-over takes no lock shared with a lower-priority thread. With
//! `realtime_receiver` (the default for unix sockets) the receiver runs with `SCHED_FIFO`
//! (needs root or `CAP_SYS_NICE`): a plain read loop lost 31 % of nginx's lines under
//! `ab -c 10` on two busy cores, a real-time one almost none — as long as it never waits
//! for a lock that a preempted normal thread holds (a channel's mutex did that: stalls of
//! tens of milliseconds). It cannot take over a core: when the pair is full it blocks.
//!
//! Without `realtime_receiver` (the default for UDP, whose receive buffer holds
//! megabytes, not 10 datagrams) one thread reads and processes: fewer system calls.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixDatagram;

use futures_util::FutureExt;
use rustix::event::{PollFd, PollFlags, Timespec};
use tokio_util::sync::CancellationToken;

use super::ingest::Ingest;
use crate::log::Ticket;
use crate::state_log::StateLog;
use crate::syslog::framing::trim_end;

/// The largest UDP payload; longer unix datagrams are cut there (and still delivered).
const MAX_DATAGRAM: usize = 65_536;
/// Before each forwarded datagram: the sender's address family (0, 4 or 6) and address.
const HEADER: usize = 17;
/// What the socket pair may hold (the kernel doubles it for bookkeeping).
const PAIR_BUFFER: usize = 4 << 20;
/// Messages processed before the appender's flusher gets a turn.
const BURST: usize = 512;
/// How often the receiver thread looks at the stop token while the socket is idle.
const POLL: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 100_000_000,
};

/// A non-blocking datagram socket as the receiver sees it.
pub(super) trait Receive: AsFd + AsRawFd + Send + 'static {
    /// Reads one datagram: its length and, for network sockets, the sender.
    fn receive(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)>;
}

impl Receive for UnixDatagram {
    fn receive(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)> {
        self.recv(buf).map(|n| (n, None))
    }
}

impl Receive for std::net::UdpSocket {
    fn receive(&self, buf: &mut [u8]) -> io::Result<(usize, Option<IpAddr>)> {
        self.recv_from(buf).map(|(n, a)| (n, Some(a.ip())))
    }
}

/// Starts the receiver thread for `socket` (non-blocking) and processes what it forwards
/// until `stop` is cancelled and everything read is in the local log.
pub(super) async fn run(
    name: &str,
    socket: impl Receive,
    mut ingest: Ingest,
    realtime: bool,
    stop: CancellationToken,
) -> io::Result<()> {
    if !realtime {
        return run_direct(socket, ingest, stop).await;
    }
    let (forward, inbox) = UnixDatagram::pair()?;
    let _ = socket2::SockRef::from(&forward).set_send_buffer_size(PAIR_BUFFER);
    let _ = socket2::SockRef::from(&inbox).set_recv_buffer_size(PAIR_BUFFER);
    inbox.set_nonblocking(true)?;
    let inbox = tokio::net::UnixDatagram::from_std(inbox)?;
    let thread = format!("{name}-recv");
    std::thread::Builder::new()
        .name(thread.clone())
        .spawn(move || {
            if realtime {
                raise_priority(&thread);
            }
            receive_loop(socket, forward, stop)
        })?;
    let mut buf = vec![0u8; HEADER + MAX_DATAGRAM];
    let mut last: Option<Ticket> = None;
    // Whether the local log refused the last write checked: said when it changes.
    let mut write_failing = StateLog::new();
    'outer: loop {
        inbox.readable().await?;
        ingest.begin_batch();
        let mut n = 0;
        while n < BURST {
            match inbox.try_recv(&mut buf) {
                // The receiver's end marker (every forwarded datagram has a header).
                Ok(0) => {
                    ingest.end_batch();
                    break 'outer;
                }
                Ok(len) if len >= HEADER => {
                    let peer = peer_from(&buf[..HEADER]);
                    let end = trim_end(&buf, HEADER, len);
                    if let Some(t) = ingest.message(&buf[HEADER..end], peer) {
                        last = Some(t);
                    }
                    n += 1;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        ingest.end_batch();
        if n == BURST {
            // More is waiting: let the appender's flusher write this burst first.
            tokio::task::yield_now().await;
        }
        // The previous write, if done by now: report a failing local log once.
        if let Some(result) = last.as_ref().and_then(|t| t.wait().now_or_never()) {
            match (write_failing.change(result.is_err()), result) {
                (Some(_), Err(e)) => {
                    tracing::error!(error = %e, "datagrams are being lost: the local log cannot be written");
                }
                (Some(Some(true)), Ok(())) => {
                    tracing::info!("the local log takes datagrams again");
                }
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

/// Without a real-time receiver (UDP by default, whose receive buffer holds megabytes):
/// read and process on this thread, saving the hand-over's two system calls per message.
async fn run_direct(
    socket: impl Receive,
    mut ingest: Ingest,
    stop: CancellationToken,
) -> io::Result<()> {
    // SAFETY: the AsyncFd owns `socket`, so its descriptor stays open while registered.
    let socket = unsafe { tokio::io::unix::AsyncFd::register(socket) }?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut last: Option<Ticket> = None;
    loop {
        let mut guard = tokio::select! {
            g = socket.readable() => g?,
            _ = stop.cancelled() => break,
        };
        ingest.begin_batch();
        let mut n = 0;
        while n < BURST {
            match guard.try_io(|s| s.get_ref().receive(&mut buf)) {
                Ok(Ok((len, peer))) => {
                    let end = trim_end(&buf, 0, len);
                    if let Some(t) = ingest.message(&buf[..end], peer) {
                        last = Some(t);
                    }
                    n += 1;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "receiving a datagram failed");
                    break;
                }
                // Drained: readiness was cleared by `try_io`.
                Err(_would_block) => break,
            }
        }
        ingest.end_batch();
        if n == BURST {
            tokio::task::yield_now().await;
        }
    }
    if let Some(t) = last {
        let _ = t.wait().await;
    }
    Ok(())
}

/// The receiver thread: waits for the socket to be readable, forwards every datagram
/// (with its sender) to the processing thread. Ends when `stop` is cancelled.
fn receive_loop(socket: impl Receive, forward: UnixDatagram, stop: CancellationToken) {
    forward_loop(socket, &forward, stop);
    // Closing a datagram pair does not wake the other end: an empty datagram (every
    // forwarded one has a header) says the end.
    let _ = forward.send(&[]);
}

fn forward_loop(socket: impl Receive, forward: &UnixDatagram, stop: CancellationToken) {
    let mut buf = vec![0u8; HEADER + MAX_DATAGRAM];
    // A plain thread cannot await the token: it looks at it between waits.
    while !stop.is_cancelled() {
        if let Err(e) = wait_readable(&socket, &POLL) {
            tracing::error!(error = %e, "waiting on a datagram socket failed; this source stops");
            return;
        }
        loop {
            match socket.receive(&mut buf[HEADER..]) {
                Ok((len, peer)) => {
                    write_peer(&mut buf[..HEADER], peer);
                    // Blocks while the pair is full: memory stays bounded.
                    if let Err(e) = forward.send(&buf[..HEADER + len]) {
                        tracing::error!(error = %e, "handing a datagram over failed; this source stops");
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "receiving a datagram failed");
                    break;
                }
            }
        }
    }
}

fn write_peer(header: &mut [u8], peer: Option<IpAddr>) {
    header.fill(0);
    match peer {
        None => {}
        Some(IpAddr::V4(a)) => {
            header[0] = 4;
            header[1..5].copy_from_slice(&a.octets());
        }
        Some(IpAddr::V6(a)) => {
            header[0] = 6;
            header[1..17].copy_from_slice(&a.octets());
        }
    }
}

fn peer_from(header: &[u8]) -> Option<IpAddr> {
    match header[0] {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            header[1], header[2], header[3], header[4],
        ))),
        6 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&header[1..17]);
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

/// Moves the calling thread to `SCHED_FIFO` (see the module notes), or says why not.
fn raise_priority(thread: &str) {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: neither rustix nor std wraps it. A plain call on the calling thread's own
    // handle with a valid, initialised parameter that outlives the call.
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

/// `poll(2)` for readability, up to `timeout`. `Ok(false)`: timed out or interrupted.
fn wait_readable(socket: &impl AsFd, timeout: &Timespec) -> io::Result<bool> {
    let mut fds = [PollFd::new(socket, PollFlags::IN)];
    match rustix::event::poll(&mut fds, Some(timeout)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_header_round_trips() {
        let mut h = [0xAAu8; HEADER];
        for peer in [
            None,
            Some("10.1.2.3".parse().unwrap()),
            Some("::1".parse().unwrap()),
        ] {
            write_peer(&mut h, peer);
            assert_eq!(peer_from(&h), peer);
        }
    }
}
