//! `[http]`: the pixel endpoint of `pixelpipe serve`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The pixel endpoint (`pixelpipe serve`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// The path that answers with the GIF; every other path is a 404.
    pub path: String,
    /// The Redis list the records are pushed to.
    pub key: String,
    /// The record template, nginx `log_format` style.
    pub format: String,
    /// Longest accepted request line (method, target, version); longer → 414.
    pub max_request_line: usize,
    /// Longest accepted header line (nginx: `large_client_header_buffers` 8k); longer → 400.
    pub max_header_line: usize,
    /// Longest accepted request head (request line and headers; nginx: four 8k buffers);
    /// longer → 400. The number of headers is not limited otherwise.
    pub max_header_bytes: usize,
    /// A request head must arrive within this time once its first byte came.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// An answer the client does not take (stops reading) for this long closes the
    /// connection (nginx's `send_timeout`).
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// Connections beyond this many are accepted and closed at once.
    pub max_connections: usize,
    /// Threads that accept and serve; 0 means one per core.
    pub workers: usize,
    /// Let other processes listen on the same address (`SO_REUSEPORT` across processes,
    /// e.g. a new pixelpipe taking over from an old one). Off: a port already in use is a
    /// start-up error, so a second instance cannot silently take half the traffic.
    pub reuse_port: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: ([127, 0, 0, 1], 8080).into(),
            path: "/pixel.gif".into(),
            key: "pixel".into(),
            format: "$msec,$args".into(),
            max_request_line: 8 * 1024,
            max_header_line: 8 * 1024,
            max_header_bytes: 32 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            workers: 0,
            reuse_port: false,
        }
    }
}
