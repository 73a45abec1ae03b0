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
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;

const SYSCTL: &CStr = c"/proc/sys/net/unix/max_dgram_qlen";

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
    // SAFETY: the child only calls async-signal-safe functions and ends with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = child(child_end.as_raw_fd(), value.as_bytes());
        // SAFETY: ends the child without running the parent's destructors or atexit.
        unsafe { libc::_exit(code) };
    }
    // The child exits at once, its socket (if any) already queued on the pair: wait for
    // it first, then read without blocking. (A datagram pair reports no end of file when
    // the other side closes, so reading first would hang if the child failed.)
    let status = wait_for(pid)?;
    if !libc::WIFEXITED(status) {
        return Err(io::Error::other("the helper process was killed"));
    }
    match libc::WEXITSTATUS(status) {
        0 => receive_fd(parent_end.as_raw_fd())?
            .ok_or_else(|| io::Error::other("the helper process gave no socket")),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// `waitpid` for our own child (so it leaves no zombie): its status.
fn wait_for(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: plain system call with a valid pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The child's work. Returns its exit code: 0 when the socket was sent, otherwise the
/// errno of the step that failed, so that the parent can say why.
fn child(channel: RawFd, value: &[u8]) -> i32 {
    // SAFETY (whole function): plain system calls on descriptors and buffers it owns.
    unsafe {
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0
            && libc::unshare(libc::CLONE_NEWNET) != 0
        {
            return errno();
        }
        let sysctl = libc::open(SYSCTL.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if sysctl < 0 {
            return errno();
        }
        let written = libc::write(sysctl, value.as_ptr().cast(), value.len());
        libc::close(sysctl);
        if written != value.len() as isize {
            return errno();
        }
        let socket = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if socket < 0 {
            return errno();
        }
        if send_fd(channel, socket) != 0 {
            return errno();
        }
        0
    }
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .filter(|&e| e > 0 && e < 256)
        .unwrap_or(libc::EIO)
}

/// Space for one `SCM_RIGHTS` control message carrying one descriptor.
#[repr(C)]
union ControlBuffer {
    _align: libc::cmsghdr,
    bytes: [u8; 64],
}

/// `sendmsg` of one byte with `fd` attached. Allocation-free, for the child.
unsafe fn send_fd(channel: RawFd, fd: RawFd) -> isize {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control: ControlBuffer = mem::zeroed();
    let mut msg: libc::msghdr = mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes.as_mut_ptr().cast();
    msg.msg_controllen = libc::CMSG_SPACE(mem::size_of::<RawFd>() as u32) as _;
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    (*cmsg).cmsg_level = libc::SOL_SOCKET;
    (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<RawFd>() as u32) as _;
    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    if libc::sendmsg(channel, &msg, 0) < 0 {
        -1
    } else {
        0
    }
}

/// Takes the child's socket off the pair, without waiting: `None` if there is none.
fn receive_fd(channel: RawFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: zeroed C structs are valid; the pointers set below outlive the call.
    unsafe {
        let mut control: ControlBuffer = mem::zeroed();
        let mut msg: libc::msghdr = mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.bytes.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of::<ControlBuffer>() as _;
        let n = libc::recvmsg(
            channel,
            &mut msg,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
        );
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0
            || msg.msg_flags & libc::MSG_CTRUNC != 0
            || cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Ok(None);
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
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
