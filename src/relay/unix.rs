//! The unix datagram source (`/dev/log`, nginx's `syslog:server=unix:PATH`).

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use super::unix_queue;
use super::SourceError;
use crate::config::relay::UnixSource;

/// Binds the socket, replacing a stale socket file but never one a live process still
/// receives on, nor a file that is not a socket.
pub fn bind(config: &UnixSource) -> Result<UnixDatagram, SourceError> {
    let path = &config.path;
    let err = |source: io::Error| SourceError::Unix {
        path: path.clone(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            )));
        }
        if is_alive(path) {
            return Err(err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process is receiving on it",
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let (socket, queue_len) = deep_socket(config.queue_len).map_err(err)?;
    metrics::gauge!("pixelpipe_relay_unix_queue_len", "path" => path.display().to_string())
        .set(queue_len as f64);
    socket2::SockRef::from(&socket)
        .bind(&socket2::SockAddr::unix(path).map_err(err)?)
        .map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(config.mode.0)).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket)
}

/// A socket with the configured queue length, or with the host's if that cannot be had;
/// and the length it got.
fn deep_socket(queue_len: usize) -> io::Result<(UnixDatagram, usize)> {
    let host = unix_queue::host_queue_len().ok();
    match unix_queue::socket(queue_len) {
        Ok(socket) => Ok((socket, host.map_or(queue_len, |h| h.max(queue_len)))),
        Err(e) => {
            tracing::warn!(
                error = %e,
                queue_len,
                host_queue_len = host,
                "cannot give the unix socket a deeper queue (needs user namespaces, or root): \
                 under load, senders such as nginx drop messages when it is full; \
                 raise net.unix.max_dgram_qlen instead"
            );
            Ok((UnixDatagram::unbound()?, host.unwrap_or(0)))
        }
    }
}

fn is_alive(path: &Path) -> bool {
    UnixDatagram::unbound()
        .and_then(|s| s.connect(path))
        .is_ok()
}
