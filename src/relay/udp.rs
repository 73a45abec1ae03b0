//! The UDP source: a large receive buffer, and the kernel's drop counter for the socket
//! (read from `/proc/net/udp`) exported as a metric.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::SourceError;
use crate::config::relay::UdpSource;

pub fn bind(config: &UdpSource) -> Result<UdpSocket, SourceError> {
    let err = |source| SourceError::Udp {
        address: config.address,
        source,
    };
    let socket = Socket::new(
        Domain::for_address(config.address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(err)?;
    if let Err(e) = socket.set_recv_buffer_size(config.receive_buffer_bytes) {
        tracing::warn!(address = %config.address, error = %e, "could not set the UDP receive buffer size");
    }
    let got = socket.recv_buffer_size().unwrap_or(0);
    // Linux reports twice the size asked for (bookkeeping overhead included).
    if got < config.receive_buffer_bytes {
        tracing::warn!(
            address = %config.address,
            asked = config.receive_buffer_bytes,
            got,
            "the kernel capped the UDP receive buffer (raise net.core.rmem_max)"
        );
    }
    socket.bind(&config.address.into()).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

/// Exports the kernel's count of datagrams dropped on `socket` (receive buffer full) as
/// `pixelpipe_relay_udp_kernel_drops`, refreshed every few seconds until `stop`.
pub async fn watch_drops(socket: &UdpSocket, stop: tokio_util::sync::CancellationToken) {
    let address = socket
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let Ok(inode) =
        std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd())).map(|m| m.ino())
    else {
        return;
    };
    let gauge = metrics::gauge!("pixelpipe_relay_udp_kernel_drops", "address" => address);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Some(drops) = kernel_drops(inode) {
            gauge.set(drops as f64);
        }
    }
}

/// The `drops` column of the socket's line in `/proc/net/udp` or `/proc/net/udp6`.
fn kernel_drops(inode: u64) -> Option<u64> {
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        if let Some(drops) = find_drops(&text, inode) {
            return Some(drops);
        }
    }
    None
}

fn find_drops(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        (fields.get(9)?.parse::<u64>().ok()? == inode).then(|| fields.last()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_drops_column() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
             1: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n";
        assert_eq!(super::find_drops(table, 4242), Some(17));
        assert_eq!(super::find_drops(table, 1), None);
    }
}
