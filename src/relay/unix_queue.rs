//! A unix datagram socket whose receive queue is deeper than the host's
//! `net.unix.max_dgram_qlen`.
//!
//! Why: the kernel lets a unix datagram socket queue only `max_dgram_qlen` datagrams (10
//! unless the host raised it), and nginx drops a log line as soon as that queue is full.
//! Draining it from a real-time thread (see `datagram`) is not enough on a VM whose
//! hypervisor can stall the receiver's core for a millisecond.
//!
//! How: the limit is a per-network-namespace setting, read once when a socket is created,
//! and a socket bound to a path is reachable from every network namespace. So a forked
//! child enters a network namespace of its own (inside a new user namespace, which needs
//! no privilege where user namespaces are allowed; as root, without one if they are not),
//! sets the limit there, creates the socket and hands it back over a socket pair. The
//! host's setting is not touched. The depth is then bounded by each sender's `SO_SNDBUF`
//! (about 270 short datagrams with Linux's defaults) rather than by a count of 10.

use std::ffi::CStr;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::process::{Pid, WaitOptions, WaitStatus};
use rustix::thread::UnshareFlags;

const SYSCTL: &CStr = c"/proc/sys/net/unix/max_dgram_qlen";

/// Room for one `SCM_RIGHTS` control message carrying one descriptor.
const ONE_FD: usize = rustix::cmsg_space!(ScmRights(1));

/// The host's `net.unix.max_dgram_qlen`, for this process's network namespace.
pub fn host_queue_len() -> io::Result<usize> {
    let text = std::fs::read_to_string(SYSCTL.to_str().expect("ASCII path"))?;
    text.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// An unbound unix datagram socket that queues up to `len` datagrams. The host's
/// setting is used as it is when it is deep enough already.
pub fn socket(len: usize) -> io::Result<UnixDatagram> {
    if host_queue_len().is_ok_and(|host| host >= len) {
        return UnixDatagram::unbound();
    }
    let fd = socket_in_own_namespace(len)?;
    Ok(UnixDatagram::from(fd))
}

fn socket_in_own_namespace(len: usize) -> io::Result<OwnedFd> {
    let (parent_end, child_end) = UnixDatagram::pair()?;
    // Everything the child needs is prepared here: after `fork` in a multi-threaded
    // process, the child may only make system calls (no allocation, no locks).
    let value = format!("{len}\n");
    // SAFETY: no safe `fork` exists (rustix has none). The child only makes system calls
    // through rustix (allocation-free, lock-free) and ends with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = match child(child_end.as_fd(), value.as_bytes()) {
            Ok(()) => 0,
            Err(e) => exit_code(e),
        };
        // SAFETY: ends the child without running the parent's destructors or atexit
        // handlers, which are not the child's to run.
        unsafe { libc::_exit(code) };
    }
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::other("fork gave no pid"))?;
    // The child exits at once, its socket (if any) already queued on the pair: wait for
    // it first, then read without blocking. (A datagram pair reports no end of file when
    // the other side closes, so reading first would hang if the child failed.)
    match wait_for(pid)?.exit_status() {
        None => Err(io::Error::other("the helper process was killed")),
        Some(0) => receive_fd(parent_end.as_fd())?
            .ok_or_else(|| io::Error::other("the helper process gave no socket")),
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// `waitpid` for our own child (so it leaves no zombie): its status.
fn wait_for(pid: Pid) -> io::Result<WaitStatus> {
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => return Ok(status),
            Ok(None) | Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The child's work: a network namespace of its own, the limit set there, a socket
/// created and sent back over `channel`.
fn child(channel: BorrowedFd<'_>, value: &[u8]) -> rustix::io::Result<()> {
    // SAFETY: `unshare_unsafe` is unsafe because of `FILES` (descriptors other threads
    // may still use); these flags leave the descriptor table alone, and the forked child
    // has one thread.
    let unshared = unsafe {
        rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNET)
            .or_else(|_| rustix::thread::unshare_unsafe(UnshareFlags::NEWNET))
    };
    unshared?;
    let sysctl = rustix::fs::open(SYSCTL, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    if rustix::io::write(&sysctl, value)? != value.len() {
        return Err(Errno::IO);
    }
    drop(sysctl);
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    send_fd(channel, socket.as_fd())
}

/// The child's exit code for `e`: its errno when it fits, so that the parent can say why.
fn exit_code(e: Errno) -> i32 {
    Some(e.raw_os_error())
        .filter(|&e| e > 0 && e < 256)
        .unwrap_or(libc::EIO)
}

/// `sendmsg` of one byte with `fd` attached. Allocation-free, for the child.
fn send_fd(channel: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> rustix::io::Result<()> {
    let mut space = [MaybeUninit::<u8>::uninit(); ONE_FD];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Errno::NOBUFS);
    }
    rustix::net::sendmsg(
        channel,
        &[IoSlice::new(&[0])],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Takes the child's socket off the pair, without waiting: `None` if there is none.
fn receive_fd(channel: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::<u8>::uninit(); ONE_FD];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        channel,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
    );
    let msg = match received {
        Ok(msg) => msg,
        Err(Errno::WOULDBLOCK) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if msg.bytes == 0 || msg.flags.contains(ReturnFlags::CTRUNC) {
        return Ok(None);
    }
    let fd = control.drain().find_map(|m| match m {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    });
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many short datagrams non-blocking senders get into `receiver` unread. Enough
    /// senders that their `SO_SNDBUF`s (each holds some 270) do not bound it first.
    fn queued(receiver: &UnixDatagram, senders: usize) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let socket = socket2::SockRef::from(receiver);
        socket
            .bind(&socket2::SockAddr::unix(&path).unwrap())
            .unwrap();
        let senders: Vec<_> = (0..senders)
            .map(|_| {
                let s = UnixDatagram::unbound().unwrap();
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect();
        let mut n = 0;
        loop {
            let sent = senders
                .iter()
                .filter(|s| {
                    s.send_to(b"<158>Nov 27 20:23:37 pixel: 1.1,a=b", &path)
                        .is_ok()
                })
                .count();
            if sent == 0 {
                return n;
            }
            n += sent;
        }
    }

    #[test]
    fn the_socket_queues_what_was_asked_beyond_the_host_setting() {
        let len = host_queue_len().unwrap() + 50;
        let deep = socket(len).expect("needs user namespaces, or root");
        // The kernel lets one more in than the limit.
        assert_eq!(queued(&deep, len / 100 + 2), len + 1);
    }

    #[test]
    fn a_failing_helper_is_an_error_not_a_hang() {
        // The kernel refuses a limit above i32::MAX: the child fails at its sysctl write.
        let e = socket(1 << 40).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    }

    #[test]
    fn a_deep_enough_host_setting_is_used_as_it_is() {
        let host = host_queue_len().unwrap();
        let plain = socket(host).unwrap();
        assert_eq!(queued(&plain, host / 100 + 2), host + 1);
    }
}
