//! `[relay]` in the configuration: where syslog comes in (`sources`) and where each message
//! goes (`routes`). Without `routes`, the original syslog-ng configuration's two routes:
//! facility `local3` → Redis `LPUSH ${PROGRAM} ${MESSAGE}`, everything else → `other_file`.
//!
//! ```toml
//! [[relay.sources]]
//! type = "unix"
//! path = "/dev/log"
//!
//! [[relay.sources]]
//! type = "tcp"
//! address = "127.0.0.1:5140"
//!
//! [[relay.routes]]
//! filter = { facility = ["local3"], not = { program = ["debug"] } }
//! destination = { redis = { key = "${PROGRAM}", value = "${MESSAGE}" } }
//!
//! [[relay.routes]]
//! filter = { not = { facility = ["local3"] } }
//! destination = { file = { path = "/var/log/messages" } }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ConfigError;

/// The file line syslog-ng writes by default (its `file()` destination's template).
pub const DEFAULT_FILE_TEMPLATE: &str = "${DATE} ${HOST} ${MSGHDR}${MESSAGE}";

/// The names programs have: letters, digits, `_`, `.`, `-`, at most 64 bytes.
pub const DEFAULT_KEY_PATTERN: &str = "^[A-Za-z0-9_.-]{1,64}$";

/// `[relay]`. Templates are kept as written: the relay compiles them once when it
/// starts, and a bad one is an error naming its field then.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RelaySection", into = "RelaySection")]
pub struct RelayConfig {
    pub sources: Vec<SourceConfig>,
    pub routes: Routes,
    /// A Redis key rendered from message fields must match this (a regular expression);
    /// pixelpipe's own keys are refused whatever it says (see `relay/key.rs`).
    pub key_pattern: String,
}

/// Where messages go: the original configuration's two routes, or routes of your own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routes {
    /// No `[[relay.routes]]`: see the module notes.
    Original(OriginalRoutes),
    /// `[[relay.routes]]`, in order.
    Own(Vec<RouteConfig>),
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            sources: Vec::new(),
            routes: Routes::default(),
            key_pattern: DEFAULT_KEY_PATTERN.into(),
        }
    }
}

impl Default for Routes {
    fn default() -> Self {
        Routes::Original(OriginalRoutes::default())
    }
}

/// The original routes' settings: `local3` → Redis, everything else → `other_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalRoutes {
    /// The Redis list and the record.
    pub redis_key: String,
    pub redis_value: String,
    /// Where non-`local3` messages go (none: they are counted as unrouted and dropped,
    /// as a syslog-ng without that log path would).
    pub other_file: Option<PathBuf>,
    /// The line written to `other_file`.
    pub other_template: String,
}

impl Default for OriginalRoutes {
    fn default() -> Self {
        OriginalRoutes {
            redis_key: "${PROGRAM}".into(),
            redis_value: "${MESSAGE}".into(),
            other_file: None,
            other_template: DEFAULT_FILE_TEMPLATE.into(),
        }
    }
}

/// `[relay]` as written: the original routes' settings sit beside `routes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RelaySection {
    sources: Vec<SourceConfig>,
    /// Explicit routes; when empty, the original two.
    routes: Vec<RouteConfig>,
    other_file: Option<PathBuf>,
    other_template: String,
    redis_key: String,
    redis_value: String,
    key_pattern: String,
}

impl Default for RelaySection {
    fn default() -> Self {
        RelayConfig::default().into()
    }
}

impl TryFrom<RelaySection> for RelayConfig {
    type Error = String;

    fn try_from(s: RelaySection) -> Result<RelayConfig, String> {
        let routes = if s.routes.is_empty() {
            Routes::Original(OriginalRoutes {
                redis_key: s.redis_key,
                redis_value: s.redis_value,
                other_file: s.other_file,
                other_template: s.other_template,
            })
        } else if s.other_file.is_some() {
            return Err("`relay.other_file` only applies to the original routes; with `relay.routes`, add a route with a file destination".into());
        } else {
            Routes::Own(s.routes)
        };
        Ok(RelayConfig {
            sources: s.sources,
            routes,
            key_pattern: s.key_pattern,
        })
    }
}

impl From<RelayConfig> for RelaySection {
    fn from(c: RelayConfig) -> RelaySection {
        let (routes, original) = match c.routes {
            Routes::Original(o) => (Vec::new(), o),
            Routes::Own(routes) => (routes, OriginalRoutes::default()),
        };
        RelaySection {
            sources: c.sources,
            routes,
            other_file: original.other_file,
            other_template: original.other_template,
            redis_key: original.redis_key,
            redis_value: original.redis_value,
            key_pattern: c.key_pattern,
        }
    }
}

/// One listening socket. Each transport's options live in its own variant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceConfig {
    /// A unix datagram socket, like `/dev/log` (nginx `syslog:server=unix:PATH`).
    Unix(UnixSource),
    /// UDP, one message per datagram.
    Udp(UdpSource),
    /// TCP, RFC 6587 framing (octet counting or newline-terminated, per connection).
    Tcp(TcpSource),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UnixSource {
    pub path: PathBuf,
    /// Permissions of the socket file, octal. 0666 like `/dev/log`, so that programs
    /// running as other users (nginx workers) can write to it.
    #[serde(default = "default_mode")]
    pub mode: FileMode,
    /// Run the socket's reader with real-time (`SCHED_FIFO`) priority when allowed, so
    /// that the 10-deep datagram queue is emptied before senders drop messages.
    #[serde(default = "default_true")]
    pub realtime_receiver: bool,
    /// Datagrams the socket queues while the relay is busy. Where the host's
    /// `net.unix.max_dgram_qlen` is lower (10 by default), the socket is created in a
    /// private network namespace with this limit; the host's setting is not changed.
    #[serde(default = "default_queue_len")]
    pub queue_len: usize,
    /// Whether RFC 3164 messages here carry a host name. Yes by default, so that nginx's
    /// lines parse with or without `nohostname`. `false` reads them as syslog-ng and
    /// rsyslog read local sockets (the first word after the date is the program), which
    /// gives exactly the original's records for every sender.
    #[serde(default = "default_true")]
    pub parse_hostname: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UdpSource {
    pub address: SocketAddr,
    /// `SO_RCVBUF`: what the kernel holds while the relay is busy. The kernel caps it at
    /// `net.core.rmem_max` unless the process may raise it.
    #[serde(default = "default_receive_buffer")]
    pub receive_buffer_bytes: usize,
    /// As for unix sockets; off by default, the receive buffer is usually enough.
    #[serde(default)]
    pub realtime_receiver: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TcpSource {
    pub address: SocketAddr,
    /// Longest message: an over-long message (line or octet-counted frame) is truncated
    /// to it and counted; the rest of it is skipped and the connection kept.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Connections beyond this many are accepted and closed at once (and counted).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections from one address beyond this many are closed at once (and counted), so
    /// that one peer cannot take every slot.
    #[serde(default = "default_max_connections_per_peer")]
    pub max_connections_per_peer: usize,
    /// A connection that sends nothing for this long is closed: an idle syslog
    /// connection is legal, but not forever.
    #[serde(default = "default_tcp_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: std::time::Duration,
    /// Syslog over TLS (RFC 5425, port 6514 by convention) instead of plain TCP.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
}

/// A server certificate chain and its private key, PEM files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn default_true() -> bool {
    true
}
fn default_mode() -> FileMode {
    FileMode(0o666)
}
fn default_queue_len() -> usize {
    512
}
fn default_receive_buffer() -> usize {
    8 << 20
}
fn default_max_message() -> usize {
    64 * 1024
}
fn default_max_connections() -> usize {
    1024
}

fn default_max_connections_per_peer() -> usize {
    32
}

fn default_tcp_idle_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(600)
}

impl UnixSource {
    pub fn new(path: PathBuf) -> Self {
        UnixSource {
            path,
            mode: default_mode(),
            realtime_receiver: true,
            queue_len: default_queue_len(),
            parse_hostname: true,
        }
    }
}

/// A file's permission bits, written in octal as for `chmod` (`"0666"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl FromStr for FileMode {
    type Err = String;

    fn from_str(s: &str) -> Result<FileMode, String> {
        u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(FileMode)
            .ok_or_else(|| format!("`{s}` is not an octal file mode like \"0666\""))
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:04o}", self.0))
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FileMode, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl UdpSource {
    pub fn new(address: SocketAddr) -> Self {
        UdpSource {
            address,
            receive_buffer_bytes: default_receive_buffer(),
            realtime_receiver: false,
        }
    }
}

impl TcpSource {
    pub fn new(address: SocketAddr) -> Self {
        TcpSource {
            address,
            max_message_bytes: default_max_message(),
            max_connections: default_max_connections(),
            max_connections_per_peer: default_max_connections_per_peer(),
            idle_timeout: default_tcp_idle_timeout(),
            tls: None,
        }
    }
}

/// The syslog facilities, named as syslog-ng and `logger -p` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern = 0,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Ntp,
    Security,
    Console,
    Solaris,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

/// The severities, most severe first (their numeric value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Emerg = 0,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

/// A log path: messages that pass `filter` go to `destination`; with `final`, they stop
/// there (syslog-ng's `flags(final)`), otherwise later routes see them too.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default)]
    pub filter: Filter,
    pub destination: DestinationConfig,
    #[serde(default, rename = "final")]
    pub is_final: bool,
}

/// Every condition given must hold; `not` holds when its own filter does not. An empty
/// filter lets everything through.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// The message's facility is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<Vec<Facility>>,
    /// The message's severity is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Vec<Severity>>,
    /// The message's program is one of these (exact match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<Filter>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum DestinationConfig {
    /// `LPUSH key value`, through the durable local log and the shipper.
    Redis { key: String, value: String },
    /// One line per message appended to a plain file.
    File {
        path: PathBuf,
        #[serde(default = "default_file_template")]
        template: String,
    },
}

fn default_file_template() -> String {
    DEFAULT_FILE_TEMPLATE.into()
}

/// The sources `--unix`, `--udp` and `--tcp` stand for, with default options.
pub fn sources_from_flags(
    unix: &[PathBuf],
    udp: &[SocketAddr],
    tcp: &[SocketAddr],
) -> Vec<SourceConfig> {
    let unix = unix
        .iter()
        .map(|p| SourceConfig::Unix(UnixSource::new(p.clone())));
    let udp = udp.iter().map(|a| SourceConfig::Udp(UdpSource::new(*a)));
    let tcp = tcp.iter().map(|a| SourceConfig::Tcp(TcpSource::new(*a)));
    unix.chain(udp).chain(tcp).collect()
}

impl RelayConfig {
    /// The routes in effect: the explicit ones, or the original two.
    pub fn effective_routes(&self) -> Vec<RouteConfig> {
        match &self.routes {
            Routes::Own(routes) => routes.clone(),
            Routes::Original(o) => o.routes(),
        }
    }

    /// Checks what serde cannot, naming the field at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        regex::bytes::Regex::new(&self.key_pattern)
            .map_err(|e| ConfigError::invalid("relay.key_pattern", e.to_string()))?;
        for (i, source) in self.sources.iter().enumerate() {
            match source {
                SourceConfig::Unix(u) => {
                    if u.path.as_os_str().is_empty() {
                        return Err(ConfigError::invalid(
                            "relay.sources",
                            format!("[{i}].path: must not be empty"),
                        ));
                    }
                    // The kernel's limit is an `int`.
                    if u.queue_len == 0 || u.queue_len > i32::MAX as usize {
                        return Err(ConfigError::invalid(
                            "relay.sources",
                            format!("[{i}].queue_len: must be between 1 and {}", i32::MAX),
                        ));
                    }
                }
                SourceConfig::Udp(u) if u.receive_buffer_bytes == 0 => {
                    return Err(ConfigError::invalid(
                        "relay.sources",
                        format!("[{i}].receive_buffer_bytes: must be > 0"),
                    ));
                }
                SourceConfig::Tcp(t)
                    if t.max_message_bytes < 64 || t.max_message_bytes > 16 << 20 =>
                {
                    return Err(ConfigError::invalid(
                        "relay.sources",
                        format!("[{i}].max_message_bytes: must be between 64 and 16777216"),
                    ));
                }
                SourceConfig::Tcp(t) if t.max_connections == 0 => {
                    return Err(ConfigError::invalid(
                        "relay.sources",
                        format!("[{i}].max_connections: must be > 0"),
                    ));
                }
                SourceConfig::Tcp(t) if t.max_connections_per_peer == 0 => {
                    return Err(ConfigError::invalid(
                        "relay.sources",
                        format!("[{i}].max_connections_per_peer: must be > 0"),
                    ));
                }
                SourceConfig::Tcp(t) if t.idle_timeout.is_zero() => {
                    return Err(ConfigError::invalid(
                        "relay.sources",
                        format!("[{i}].idle_timeout: must be > 0"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl OriginalRoutes {
    /// The two routes: `local3` → Redis, and (with `other_file`) the rest → the file.
    pub fn routes(&self) -> Vec<RouteConfig> {
        let local3 = Filter {
            facility: Some(vec![Facility::Local3]),
            ..Filter::default()
        };
        let mut routes = vec![RouteConfig {
            filter: local3.clone(),
            destination: DestinationConfig::Redis {
                key: self.redis_key.clone(),
                value: self.redis_value.clone(),
            },
            is_final: false,
        }];
        if let Some(path) = &self.other_file {
            routes.push(RouteConfig {
                filter: Filter {
                    not: Some(Box::new(local3)),
                    ..Filter::default()
                },
                destination: DestinationConfig::File {
                    path: path.clone(),
                    template: self.other_template.clone(),
                },
                is_final: false,
            });
        }
        routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(toml: &str) -> Result<RelayConfig, String> {
        use figment::providers::Format;
        let c: RelayConfig = figment::Figment::new()
            .merge(figment::providers::Serialized::defaults(
                RelayConfig::default(),
            ))
            .merge(figment::providers::Toml::string(toml))
            .extract()
            .map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn full_config() {
        let c = relay(
            r#"
            [[sources]]
            type = "unix"
            path = "/tmp/x.sock"
            [[sources]]
            type = "udp"
            address = "127.0.0.1:5514"
            [[sources]]
            type = "tcp"
            address = "127.0.0.1:5514"
            max_connections = 10
            [[routes]]
            filter = { facility = ["local3", "local4"], not = { severity = ["debug"] } }
            destination = { redis = { key = "${PROGRAM}", value = "${MESSAGE}" } }
            final = true
            [[routes]]
            destination = { file = { path = "/tmp/messages" } }
            "#,
        )
        .unwrap();
        assert_eq!(c.sources.len(), 3);
        assert_eq!(
            c.sources[0],
            SourceConfig::Unix(UnixSource::new("/tmp/x.sock".into()))
        );
        let routes = c.effective_routes();
        assert!(routes[0].is_final);
        assert_eq!(routes.len(), 2);
    }

    #[test]
    fn default_routes_are_the_original() {
        let c = RelayConfig {
            routes: Routes::Original(OriginalRoutes {
                other_file: Some("/tmp/m".into()),
                ..OriginalRoutes::default()
            }),
            ..RelayConfig::default()
        };
        let routes = c.effective_routes();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].filter.facility, Some(vec![Facility::Local3]));
        assert!(routes[1].filter.not.is_some());
        assert_eq!(RelayConfig::default().effective_routes().len(), 1);
    }

    #[test]
    fn errors_name_the_field() {
        let e = relay("[[sources]]\ntype = \"udp\"\naddress = \"127.0.0.1:1\"\nport = 3\n")
            .unwrap_err();
        assert!(e.contains("port"), "{e}");
        // The mode is parsed, not checked afterwards: serde names the source, the
        // message the mode.
        let e = relay("[[sources]]\ntype = \"unix\"\npath = \"/x\"\nmode = \"999\"\n").unwrap_err();
        assert!(
            e.contains("sources.0") && e.contains("file mode") && e.contains("999"),
            "{e}"
        );
        let e = relay("[[sources]]\ntype = \"unix\"\npath = \"/x\"\nqueue_len = 0\n").unwrap_err();
        assert!(e.contains("[0].queue_len"), "{e}");
        let e = relay("[[routes]]\nfilter = { facility = [\"local9\"] }\ndestination = { file = { path = \"/x\" } }\n").unwrap_err();
        assert!(e.contains("local9"), "{e}");
        let e = relay(
            "routes = [{ destination = { file = { path = \"/x\" } } }]\nother_file = \"/y\"\n",
        )
        .unwrap_err();
        assert!(e.contains("relay.other_file"), "{e}");
    }
}
