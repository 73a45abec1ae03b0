//! The counters and gauges behind `/metrics`, looked up once and kept as handles so that
//! counting a hit is one atomic add, not a registry lookup.

use std::sync::OnceLock;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub struct Metrics {
    /// Pixel hits answered 200.
    pub hits: Counter,
    /// Records written to the local log, and their encoded bytes.
    pub records: Counter,
    pub record_bytes: Counter,
    /// Records and value bytes that reached Redis.
    pub shipped_records: Counter,
    pub shipped_bytes: Counter,
    /// Unshipped bytes in the local log.
    pub backlog_bytes: Gauge,
    /// Records deleted unshipped by the `drop-oldest` policy.
    pub dropped_records: Counter,
    pub redis_errors: Counter,
    /// Records that could not be written to the local log (a full or read-only disk).
    pub log_write_errors: Counter,
    /// `fdatasync` calls on the local log that failed.
    pub fsync_failures: Counter,
    /// Batches Redis refused (nothing applied; retried with backoff).
    pub ship_refused_batches: Counter,
    /// Records moved to a `{key}:dead` list because their list could not take them.
    pub dead_lettered_records: Counter,
    /// 1 while the shipper has a working Redis connection.
    pub redis_up: Gauge,
    /// Seconds from reading a batch off the log to Redis acknowledging it.
    pub ship_seconds: Histogram,
    pub rejected_not_found: Counter,
    pub rejected_method: Counter,
    pub rejected_uri_too_long: Counter,
    pub rejected_header_too_large: Counter,
    pub rejected_bad_request: Counter,
    pub rejected_payload_too_large: Counter,
    pub rejected_not_implemented: Counter,
    pub rejected_version: Counter,
    pub rejected_send_timeout: Counter,
    pub rejected_log_full: Counter,
    pub rejected_log_error: Counter,
    pub rejected_timeout: Counter,
    pub rejected_connections: Counter,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder. Call before the first [`metrics()`]: handles taken
/// earlier count into nothing (which is what library tests want).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ],
                )
                .and_then(|b| b.install_recorder())
                .expect("a metrics recorder is installed once, before any other")
        })
        .clone()
}

pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(|| {
        let rejected =
            |reason: &'static str| counter!("pixelpipe_http_rejected_total", "reason" => reason);
        Metrics {
            hits: counter!("pixelpipe_http_hits_total"),
            records: counter!("pixelpipe_records_total"),
            record_bytes: counter!("pixelpipe_record_bytes_total"),
            shipped_records: counter!("pixelpipe_shipped_records_total"),
            shipped_bytes: counter!("pixelpipe_shipped_bytes_total"),
            backlog_bytes: gauge!("pixelpipe_backlog_bytes"),
            dropped_records: counter!("pixelpipe_dropped_records_total"),
            redis_errors: counter!("pixelpipe_redis_errors_total"),
            log_write_errors: counter!("pixelpipe_log_write_errors_total"),
            fsync_failures: counter!("pixelpipe_log_fsync_failures_total"),
            ship_refused_batches: counter!("pixelpipe_ship_refused_batches_total"),
            dead_lettered_records: counter!("pixelpipe_dead_lettered_records_total"),
            redis_up: gauge!("pixelpipe_redis_up"),
            ship_seconds: histogram!("pixelpipe_ship_batch_seconds"),
            rejected_not_found: rejected("not_found"),
            rejected_method: rejected("method_not_allowed"),
            rejected_uri_too_long: rejected("uri_too_long"),
            rejected_header_too_large: rejected("header_too_large"),
            rejected_bad_request: rejected("bad_request"),
            rejected_payload_too_large: rejected("payload_too_large"),
            rejected_not_implemented: rejected("not_implemented"),
            rejected_version: rejected("version_not_supported"),
            rejected_send_timeout: rejected("send_timeout"),
            rejected_log_full: rejected("log_full"),
            rejected_log_error: rejected("log_error"),
            rejected_timeout: rejected("timeout"),
            rejected_connections: rejected("too_many_connections"),
        }
    })
}
