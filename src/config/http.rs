//! `[http]`: the pixel endpoint of `pixelpipe serve`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cidr::Cidr;
pub use super::relay::TlsFiles;
use super::ConfigError;

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
    /// Peers whose `real_ip_header` is believed (CIDR list); none by default.
    pub trusted_proxies: Vec<Cidr>,
    /// `X-Forwarded-For` (or `X-Real-IP`…: a list of addresses), or `Forwarded` (RFC 7239).
    pub real_ip_header: String,
    /// Let other processes listen on the same address (`SO_REUSEPORT` across processes,
    /// e.g. a new pixelpipe taking over from an old one). Off: a port already in use is a
    /// start-up error, so a second instance cannot silently take half the traffic.
    pub reuse_port: bool,
    // The web collector: HTTPS, beacons, CORS, the tracker script, click redirects.
    /// Serve HTTPS too, on `tls_listen`, with this certificate chain and key (PEM).
    pub tls: Option<TlsFiles>,
    pub tls_listen: Option<SocketAddr>,
    /// `POST` beacons are taken here (and on `path`).
    pub beacon_path: String,
    /// A longer request body → 413 (at most 1 MiB).
    pub max_body_bytes: usize,
    /// More events in one JSON batch → 413.
    pub max_batch: usize,
    /// The answer to a recorded beacon.
    pub beacon_reply: BeaconReply,
    /// Page origins allowed by CORS (`https://shop.example`, or `*`); empty: no CORS.
    pub cors_origins: Vec<String>,
    /// `Access-Control-Allow-Credentials: true` for origins listed by name.
    pub cors_credentials: bool,
    /// Record requests from origins not on `cors_origins` (they get no CORS headers).
    pub cors_record_foreign: bool,
    /// The tracker script's path.
    pub script_path: String,
    #[serde(with = "humantime_serde")]
    pub script_max_age: Duration,
    /// The click-redirect path (`/r?u=<url>`); `""` turns it off.
    pub redirect_path: String,
    /// Hosts a click may be redirected to: `shop.example` or `*.shop.example`.
    pub redirect_hosts: Vec<String>,
}

/// The largest `http.max_body_bytes` allowed.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What a recorded beacon gets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BeaconReply {
    /// `204 No Content`.
    NoContent,
    /// `200` with the GIF, as a `GET` of the pixel.
    Gif,
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
            trusted_proxies: Vec::new(),
            real_ip_header: "X-Forwarded-For".into(),
            reuse_port: false,
            tls: None,
            tls_listen: None,
            beacon_path: "/e".into(),
            max_body_bytes: 64 * 1024,
            max_batch: 100,
            beacon_reply: BeaconReply::NoContent,
            cors_origins: Vec::new(),
            cors_credentials: false,
            cors_record_foreign: false,
            script_path: "/p.js".into(),
            script_max_age: Duration::from_secs(3600),
            redirect_path: "/r".into(),
            redirect_hosts: Vec::new(),
        }
    }
}

impl HttpConfig {
    /// The web collector's fields: paths that can be put in the script and compared as
    /// bytes, lists that parse, TLS files and listener together.
    pub(super) fn validate_web(&self) -> Result<(), ConfigError> {
        for (field, path) in [
            ("http.beacon_path", &self.beacon_path),
            ("http.script_path", &self.script_path),
            ("http.path", &self.path),
        ] {
            check_path(field, path)?;
        }
        if !self.redirect_path.is_empty() {
            check_path("http.redirect_path", &self.redirect_path)?;
        }
        let hit_paths = [&self.path, &self.beacon_path];
        if hit_paths.contains(&&self.script_path)
            || hit_paths.contains(&&self.redirect_path)
            || self.script_path == self.redirect_path
        {
            return Err(ConfigError::invalid(
                "http.script_path",
                "http.script_path and http.redirect_path must differ from each other and from http.path and http.beacon_path",
            ));
        }
        // A body is held whole in its connection's buffer: bounded.
        if !(1..=MAX_BODY_BYTES).contains(&self.max_body_bytes) {
            return Err(ConfigError::invalid(
                "http.max_body_bytes",
                format!("must be between 1 and {MAX_BODY_BYTES}"),
            ));
        }
        if self.max_batch == 0 {
            return Err(ConfigError::invalid("http.max_batch", "must be > 0"));
        }
        match (&self.tls, self.tls_listen) {
            (Some(_), None) => Err(ConfigError::invalid(
                "http.tls_listen",
                "needed with http.tls (the HTTPS address)",
            )),
            (None, Some(_)) => Err(ConfigError::invalid(
                "http.tls",
                "needed with http.tls_listen: { cert = \"….pem\", key = \"….pem\" }",
            )),
            _ => Ok(()),
        }
    }
}

/// A path served as it is written: it starts with `/` and holds no byte that would need
/// escaping in a request target or in the tracker script's string.
fn check_path(field: &'static str, path: &str) -> Result<(), ConfigError> {
    let ok = path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"?#\"'\\<>`%".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            "must start with '/' and hold only printable ASCII without ? # % quotes or backslash",
        ))
    }
}
