//! The shipper: reads the local log from the last position Redis acknowledged and pushes
//! it on, batch by batch, exactly once. Serving never waits for it: when Redis is down or
//! slow the log grows, and the shipper catches up when Redis is back.

pub mod position;
pub mod redis_list;
pub mod sink;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::config::ShipConfig;
use crate::log::{Batch, Log, Reader};
use crate::metrics::metrics;
use crate::state_log::StateLog;
use position::PositionFile;
use sink::Sink;

/// Shipped batches, for whoever wants to see them after Redis has them (the analytics).
pub type Tap = mpsc::Sender<Arc<Batch>>;

pub struct Shipper<S: Sink> {
    log: Arc<Log>,
    reader: Reader,
    sink: S,
    position_file: PositionFile,
    config: ShipConfig,
    /// Where the Redis URL points, password removed, for messages.
    redis_display: String,
    tap: Option<Tap>,
    up: watch::Sender<bool>,
    /// When the position cache file was last written.
    cached_at: Instant,
    /// Whether Redis was last seen up, for saying so once per change.
    redis_state: StateLog<bool>,
    backoff: Backoff,
}

/// Capped exponential backoff between reconnection attempts.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);

    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(Self::MAX);
        d
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// The position cache on disk is refreshed at most this often: it is a cache (Redis holds
/// the truth), and a rename per batch would cost more than the batch.
const CACHE_EVERY: Duration = Duration::from_secs(1);

/// What the admin endpoints read of the shipper.
#[derive(Clone)]
pub struct ShipperStatus {
    pub redis_up: watch::Receiver<bool>,
}

impl<S: Sink> Shipper<S> {
    pub fn new(
        log: Arc<Log>,
        sink: S,
        position_file: PositionFile,
        config: ShipConfig,
        redis_display: String,
        tap: Option<Tap>,
    ) -> (Shipper<S>, ShipperStatus) {
        let (up, redis_up) = watch::channel(false);
        let shipper = Shipper {
            reader: Reader::new(log.clone()),
            log,
            sink,
            position_file,
            config,
            redis_display,
            tap,
            up,
            cached_at: Instant::now(),
            redis_state: StateLog::new(),
            backoff: Backoff {
                next: Backoff::FIRST,
            },
        };
        (shipper, ShipperStatus { redis_up })
    }

    /// Ships until `drain` turns true and everything written before then is in Redis.
    /// The caller bounds the drain with a deadline.
    pub async fn run(mut self, mut drain: watch::Receiver<bool>) {
        let mut pos = self.log.shipped();
        let mut last_was_full = true;
        loop {
            if *drain.borrow() && pos >= self.log.end() {
                self.cache_position(pos);
                return;
            }
            if !last_was_full && !*drain.borrow() && !self.config.linger.is_zero() {
                // Under a steady trickle, wait a moment so that one Redis round trip
                // carries many records instead of a few.
                tokio::time::sleep(self.config.linger).await;
            }
            if !self.sink.is_connected() {
                match self.connect(pos).await {
                    Some(resumed) => pos = resumed,
                    None => {
                        sleep_or_drain(self.backoff.next(), &mut drain).await;
                        continue;
                    }
                }
            }
            let batch =
                match self
                    .reader
                    .read(pos, self.config.batch_records, self.config.batch_bytes)
                {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the local log failed; retrying");
                        sleep_or_drain(Duration::from_secs(1), &mut drain).await;
                        continue;
                    }
                };
            if batch.is_empty() {
                last_was_full = true;
                pos = pos.max(batch.end);
                if *drain.borrow() {
                    self.cache_position(pos);
                    return;
                }
                tokio::select! {
                    _ = self.log.wait_past(pos) => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = drain.changed() => {}
                }
                continue;
            }
            last_was_full = batch.len() >= self.config.batch_records
                || batch.bytes() + 64 * 1024 >= self.config.batch_bytes;
            if let Some(end) = self.ship(batch).await {
                pos = end;
            }
        }
    }

    /// Connects the sink and returns the position to resume from, or `None` (said once,
    /// counted) when Redis cannot be reached.
    async fn connect(&mut self, pos: u64) -> Option<u64> {
        match self.sink.connect().await {
            Ok(redis_pos) => {
                let pos = self.resume_from(pos, redis_pos);
                self.backoff.reset();
                if self.redis_state.change(true) == Some(Some(false)) {
                    tracing::info!(redis = %self.redis_display, backlog_bytes = self.log.backlog(), "Redis is reachable again; shipping the backlog");
                }
                self.set_up(true);
                Some(pos)
            }
            Err(e) => {
                metrics().redis_errors.increment(1);
                if self.redis_state.change(false).is_some() {
                    tracing::warn!(
                        redis = %self.redis_display,
                        error = %e,
                        log = %self.log.dir().display(),
                        "Redis is unreachable; events are kept in the local log and shipped when it is back"
                    );
                }
                self.set_up(false);
                None
            }
        }
    }

    /// Ships one batch; on success acknowledges it, hands it to the tap and returns the
    /// position after it.
    async fn ship(&mut self, batch: Batch) -> Option<u64> {
        let started = Instant::now();
        match self.sink.ship(&batch).await {
            Ok(()) => {
                let m = metrics();
                m.ship_seconds.record(started.elapsed().as_secs_f64());
                m.shipped_records.increment(batch.len() as u64);
                m.shipped_bytes.increment(batch.bytes() as u64);
                let end = batch.end;
                self.acknowledge(end, false);
                if let Some(tap) = &self.tap {
                    // Analytics must never hold up shipping: a full tap drops the batch.
                    if tap.try_send(Arc::new(batch)).is_err() {
                        metrics::counter!("pixelpipe_analytics_dropped_batches_total", "reason" => "queue_full").increment(1);
                    }
                }
                Some(end)
            }
            Err(e) => {
                metrics().redis_errors.increment(1);
                if e.is_refusal() {
                    // EXEC ran the rest of the transaction, position included: these
                    // records can never be pushed (e.g. the key holds another type).
                    tracing::error!(redis = %self.redis_display, error = %e, batch_start = batch.start, records = batch.len(), "Redis answered a batch with an error; the position Redis holds decides what is sent again, and records of a command refused inside the transaction are not delivered");
                } else {
                    tracing::warn!(redis = %self.redis_display, error = %e, "shipping a batch failed; resuming from the position Redis holds (nothing is pushed twice)");
                }
                self.redis_state.change(false);
                self.sink.disconnect();
                self.set_up(false);
                None
            }
        }
    }

    /// The later of our position and Redis's. Redis behind us means it restarted without
    /// the data (we never push again what it once acknowledged); Redis ahead means our
    /// cache lagged (or the disk lost its tail) and Redis is right.
    fn resume_from(&mut self, ours: u64, redis_pos: u64) -> u64 {
        if redis_pos < ours {
            tracing::warn!(
                ours,
                redis_pos,
                "Redis's shipped position is behind ours (Redis restarted without persistence?); not pushing again what it already acknowledged"
            );
            return ours;
        }
        if redis_pos > self.log.end() {
            if let Err(e) = self.log.skip_to(redis_pos) {
                tracing::error!(error = %e, "could not move the log past Redis's position");
            }
        }
        self.acknowledge(redis_pos, true);
        redis_pos
    }

    fn acknowledge(&mut self, pos: u64, cache_now: bool) {
        self.log.set_shipped(pos);
        if cache_now || self.cached_at.elapsed() >= CACHE_EVERY {
            self.cache_position(pos);
        }
    }

    fn cache_position(&mut self, pos: u64) {
        self.cached_at = Instant::now();
        if let Err(e) = self.position_file.store(pos) {
            tracing::warn!(error = %e, "could not cache the shipped position on disk (Redis keeps it)");
        }
    }

    fn set_up(&self, up: bool) {
        metrics().redis_up.set(if up { 1.0 } else { 0.0 });
        self.up.send_if_modified(|v| std::mem::replace(v, up) != up);
    }
}

async fn sleep_or_drain(d: Duration, drain: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = drain.changed() => {}
    }
}

/// The URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
