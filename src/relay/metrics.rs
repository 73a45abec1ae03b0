//! The relay's counters, one set of handles per source kind (`unix`, `udp`, `tcp`), taken
//! once so that counting a message is an atomic add.

use metrics::{counter, Counter};

#[derive(Clone)]
pub struct SourceMetrics {
    /// Messages read off the socket.
    pub received: Counter,
    /// Parsed as RFC 3164 / RFC 5424.
    pub parsed: Counter,
    /// Not parseable: passed on with an empty program and the raw text.
    pub malformed: Counter,
    /// Over-long lines cut to the maximum message size.
    pub truncated: Counter,
    /// Connections closed for a bad octet count (one that is not a number).
    pub framing_errors: Counter,
    /// Messages no route took.
    pub unrouted: Counter,
    pub to_redis: Counter,
    pub to_file: Counter,
    /// Lines a file refused.
    pub file_errors: Counter,
    /// Datagrams dropped because the local log was full (stream sources wait instead).
    pub dropped_log_full: Counter,
    /// Records larger than the local log accepts.
    pub dropped_too_large: Counter,
    pub rejected_connections: Counter,
    /// TCP connections closed after `idle_timeout` without a byte.
    pub idle_closed: Counter,
    /// Keys refused by `relay.key_pattern` or as pixelpipe's own, by reason.
    pub refused_key_empty: Counter,
    pub refused_key_pattern: Counter,
    pub refused_key_reserved: Counter,
    /// TLS handshakes that failed or timed out.
    pub tls_failures: Counter,
}

impl SourceMetrics {
    pub fn new(kind: &'static str) -> SourceMetrics {
        let c = |name: &'static str| counter!(name, "source" => kind);
        SourceMetrics {
            received: c("pixelpipe_relay_received_total"),
            parsed: c("pixelpipe_relay_parsed_total"),
            malformed: c("pixelpipe_relay_malformed_total"),
            truncated: c("pixelpipe_relay_truncated_total"),
            framing_errors: c("pixelpipe_relay_framing_errors_total"),
            unrouted: c("pixelpipe_relay_unrouted_total"),
            to_redis: c("pixelpipe_relay_routed_redis_total"),
            to_file: c("pixelpipe_relay_routed_file_total"),
            file_errors: c("pixelpipe_relay_file_errors_total"),
            dropped_log_full: counter!("pixelpipe_relay_dropped_total", "source" => kind, "reason" => "log_full"),
            dropped_too_large: counter!("pixelpipe_relay_dropped_total", "source" => kind, "reason" => "too_large"),
            rejected_connections: c("pixelpipe_relay_rejected_connections_total"),
            idle_closed: c("pixelpipe_relay_idle_closed_total"),
            refused_key_empty: counter!("pixelpipe_relay_refused_keys_total", "source" => kind, "reason" => "empty_key"),
            refused_key_pattern: counter!("pixelpipe_relay_refused_keys_total", "source" => kind, "reason" => "key_pattern"),
            refused_key_reserved: counter!("pixelpipe_relay_refused_keys_total", "source" => kind, "reason" => "reserved_key"),
            tls_failures: c("pixelpipe_relay_tls_failures_total"),
        }
    }
}
