//! The shipper: reads the local log from the last position Redis acknowledged and pushes
//! it on, batch by batch, exactly once. Serving never waits for it: when Redis is down or
//! slow the log grows, and the shipper catches up when Redis is back.

pub mod backoff;
pub mod cluster;
pub mod list_push;
pub mod position;
pub mod read_ahead;
pub mod redis_list;
pub mod script;
pub mod sink;
pub mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::ShipConfig;
use crate::log::{Batch, Log, Reader};
use crate::metrics::metrics;
use crate::state_log::StateLog;
use backoff::Backoff;
use position::PositionFile;
use read_ahead::ReadAhead;
use sink::{Shipped, Sink, SinkError};

/// Shipped batches, for whoever wants to see them after Redis has them (the analytics).
pub type Tap = mpsc::Sender<Arc<Batch>>;

pub struct Shipper<S: Sink> {
    log: Arc<Log>,
    reads: ReadAhead,
    sink: S,
    position_file: PositionFile,
    config: ShipConfig,
    /// Where the Redis URL points, password removed, for messages.
    redis_display: String,
    tap: Option<Tap>,
    up: watch::Sender<bool>,
    /// When the position cache file was last written.
    cached_at: Instant,
    state: State,
    /// While Redis refuses batches.
    backoff: Backoff,
    /// While Redis is unreachable.
    reconnect: Backoff,
    /// Lists already reported as dead-lettering.
    dead_said: std::collections::HashSet<String>,
}

/// Where shipping stands, as far as the operator needs to know: said once per change.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Health {
    Up,
    /// The connection fails or Redis does not answer in time.
    Unreachable,
    /// Redis answers, but refuses the batches (the reason as Redis gave it).
    Refused(String),
}

struct State {
    /// `None` until the first connection attempt.
    health: StateLog<Health>,
    /// Failed tries since the last change to a bad state, and when it began.
    failures: u64,
    since: Instant,
}

/// The position cache on disk is refreshed at most this often: it is a cache (Redis holds
/// the truth), and a rename per batch would cost more than the batch.
const CACHE_EVERY: Duration = Duration::from_secs(1);

/// With `ship.linger = 0`: a batch of [`BUSY_BATCH`] records or more that arrived at
/// [`BUSY_RATE`] or faster (per second, since the batch before) means hits arrive many
/// times per round trip, and [`BUSY_LINGER`] is waited before the next batch (see
/// `Shipper::linger`). Both, because a few thousand hits a second can gather a dozen
/// records in one batch after a scheduling hiccup (slow, pausing would only add latency),
/// and one record can follow its predecessor by a fast round trip (fast, but a trickle).
const BUSY_BATCH: usize = 8;
const BUSY_RATE: f64 = 20_000.0;
const BUSY_LINGER: Duration = Duration::from_millis(1);
/// A batch this large at that rate means a flood (a relay fed at 100,000+ messages/s):
/// the pause is [`FLOOD_LINGER`], so that each Redis round trip carries a few hundred
/// records.
const FLOOD_BATCH: usize = 64;
const FLOOD_LINGER: Duration = Duration::from_millis(3);

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
            reads: ReadAhead::new(
                Reader::new(log.clone()),
                config.batch_records,
                config.batch_bytes,
            ),
            log,
            sink,
            position_file,
            config,
            redis_display,
            tap,
            up,
            cached_at: Instant::now(),
            state: State {
                health: StateLog::new(),
                failures: 0,
                since: Instant::now(),
            },
            backoff: Backoff::shipper(),
            reconnect: Backoff::reconnect(),
            dead_said: Default::default(),
        };
        (shipper, ShipperStatus { redis_up })
    }

    /// Ships until `drain` is cancelled and everything written before then is in Redis.
    /// The caller bounds the drain with a deadline.
    ///
    /// Every failed try waits a capped exponential backoff with jitter; the connection is
    /// dropped only when it is broken (see [`sink`] for what a sink's answers mean).
    pub async fn run(mut self, drain: CancellationToken) {
        let mut pos = self.log.shipped();
        let mut last_was_full = true;
        let mut last_len = 0;
        // When the last batch was read: its records arrived over the time before it.
        let mut last_read = Instant::now();
        let mut since_last_read = Duration::ZERO;
        loop {
            if drain.is_cancelled() && pos >= self.log.end() {
                self.cache_position(pos);
                return;
            }
            if !last_was_full && !drain.is_cancelled() {
                if let Some(wait) = self.linger(last_len, since_last_read) {
                    tokio::time::sleep(wait).await;
                }
            }
            if !self.sink.is_connected() {
                match self.connect(pos, &drain).await {
                    Some(resumed) => pos = resumed,
                    None => continue,
                }
            }
            let batch = match self.reads.read(pos).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "reading the local log failed; retrying");
                    sleep_or_drain(Duration::from_secs(1), &drain).await;
                    continue;
                }
            };
            last_len = batch.len();
            since_last_read = last_read.elapsed();
            last_read = Instant::now();
            last_was_full = batch.len() >= self.config.batch_records
                || batch.bytes() + 64 * 1024 >= self.config.batch_bytes;
            if batch.is_empty() {
                last_was_full = true;
                pos = pos.max(batch.end);
                if drain.is_cancelled() {
                    self.cache_position(pos);
                    return;
                }
                tokio::select! {
                    _ = self.log.wait_past(pos) => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = drain.cancelled() => {}
                }
                continue;
            }
            if last_was_full {
                // A backlog: the next batch is read while this one is in flight.
                self.reads.start(batch.end);
            }
            pos = self.ship(pos, batch, &drain).await;
        }
    }

    /// Connects the sink and returns the position to resume from, or `None` after a
    /// failed try (said once, counted, backed off).
    async fn connect(&mut self, pos: u64, drain: &CancellationToken) -> Option<u64> {
        match self.sink.connect().await {
            Ok(redis_pos) => {
                let pos = self.resume_from(pos, redis_pos);
                // Up once a batch goes through (a Redis that takes connections but
                // breaks or refuses batches is not up), or at once when there is nothing
                // to send.
                if pos >= self.log.end() {
                    self.change(Health::Up);
                }
                Some(pos)
            }
            Err(e) => {
                self.failed(Health::Unreachable, &e, drain).await;
                None
            }
        }
    }

    /// Ships one batch and returns the position to go on from: after it once applied
    /// (acknowledged, handed to the tap), Redis's when it knew better, the same after a
    /// failed try (said once, counted, backed off).
    async fn ship(&mut self, pos: u64, batch: Batch, drain: &CancellationToken) -> u64 {
        let started = Instant::now();
        match self.sink.ship(&batch).await {
            Ok(Shipped::Applied { dead_lettered }) => {
                self.change(Health::Up);
                let m = metrics();
                m.ship_seconds.record(started.elapsed().as_secs_f64());
                m.shipped_records.increment(batch.len() as u64);
                m.shipped_bytes.increment(batch.bytes() as u64);
                for (key, records) in dead_lettered {
                    m.dead_lettered_records.increment(records);
                    self.dead_lettered(&key, records);
                }
                let end = batch.end;
                self.acknowledge(end, false);
                if let Some(tap) = &self.tap {
                    // Analytics must never hold up shipping: a full tap drops the batch.
                    if tap.try_send(Arc::new(batch)).is_err() {
                        metrics::counter!("pixelpipe_analytics_dropped_batches_total", "reason" => "queue_full").increment(1);
                    }
                }
                end
            }
            Ok(Shipped::Resume { position }) => {
                self.change(Health::Up);
                self.resume_from(pos, position)
            }
            Err(e @ SinkError::Refused(_)) => {
                metrics().ship_refused_batches.increment(1);
                let reason = e.to_string();
                self.failed(Health::Refused(reason), &e, drain).await;
                pos
            }
            Err(e @ SinkError::Broken(_)) => {
                self.sink.disconnect();
                self.failed(Health::Unreachable, &e, drain).await;
                pos
            }
        }
    }

    /// How long to wait before reading the next batch, after one of `last_len` records
    /// that was not full. A configured `ship.linger` is waited as it is. Without one
    /// (the default), a trickle — a record or a few per batch, as at a few thousand hits a
    /// second — is shipped at once, so a hit reaches Redis within a round trip; but
    /// batches of [`BUSY_BATCH`] records or more at [`BUSY_RATE`] or faster mean hits arrive
    /// many times per round trip, and a pause of [`BUSY_LINGER`] (a flood's: [`FLOOD_LINGER`])
    /// then lets the next batch carry several times more of them for the same Redis round
    /// trip and CPU.
    fn linger(&self, last_len: usize, since_last_read: Duration) -> Option<Duration> {
        if !self.config.linger.is_zero() {
            return Some(self.config.linger);
        }
        busy_pause(last_len, since_last_read)
    }

    /// A failed try: counted, said once per change of state, then the backoff.
    async fn failed(&mut self, health: Health, error: &SinkError, drain: &CancellationToken) {
        metrics().redis_errors.increment(1);
        let wait = match health {
            Health::Unreachable => self.reconnect.next_wait(),
            Health::Up | Health::Refused(_) => self.backoff.next_wait(),
        };
        self.change_with(health, Some(error));
        self.state.failures += 1;
        sleep_or_drain(wait, drain).await;
    }

    fn change(&mut self, health: Health) {
        self.change_with(health, None);
    }

    /// Moves to `health`, saying so if it is a change; `/readyz` and
    /// `pixelpipe_redis_up` follow it (up only while batches go through).
    fn change_with(&mut self, health: Health, error: Option<&SinkError>) {
        let Some(old) = self.state.health.change(health.clone()) else {
            return;
        };
        let (failures, took) = (self.state.failures, self.state.since.elapsed());
        self.state.failures = 0;
        self.state.since = Instant::now();
        let error = error.map(ToString::to_string).unwrap_or_default();
        match &health {
            Health::Up => {
                self.backoff.reset();
                self.reconnect.reset();
                if old.is_some() {
                    tracing::info!(redis = %self.redis_display, failed_tries = failures, after = ?took, backlog_bytes = self.log.backlog(), "Redis takes batches again; shipping the backlog");
                }
            }
            Health::Unreachable => tracing::warn!(
                redis = %self.redis_display,
                error = %error,
                log = %self.log.dir().display(),
                "Redis is unreachable; events are kept in the local log and shipped when it is back"
            ),
            Health::Refused(_) => tracing::error!(
                redis = %self.redis_display,
                error = %error,
                log = %self.log.dir().display(),
                "Redis refuses the batches and applied none of them; the records are held in the local log and sent again with backoff until Redis takes them"
            ),
        }
        self.set_up(health == Health::Up);
    }

    /// Said once per key (per process): records of a key that cannot take them moved to
    /// its dead-letter key.
    fn dead_lettered(&mut self, key: &str, records: u64) {
        if self.dead_said.insert(key.to_owned()) {
            tracing::error!(key, records, dead_letter = %format!("{key}:dead"), "a key cannot take its records (it holds another type); they go to its dead-letter key, of the sink's kind (`pixelpipe tail --key {key}:dead` reads a list; `redis-cli XRANGE {key}:dead - +` a stream)");
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
        } else if redis_pos > ours && self.log.lost_tail_below(redis_pos) {
            // Redis holds records the local log no longer has: they were shipped, then
            // lost from the disk (a power loss before they were synced). Nothing written
            // since the start is affected: it lies above every position used before.
            tracing::warn!(
                local = ours,
                redis_pos,
                "the local log lost its tail (power loss?) below the position Redis holds: those records are in Redis already; new records are unaffected"
            );
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

/// The default's pause after a batch of `len` records gathered over `over` (see
/// [`BUSY_BATCH`]).
fn busy_pause(len: usize, over: Duration) -> Option<Duration> {
    let rate = len as f64 / over.as_secs_f64().max(1e-6);
    match len {
        n if n < BUSY_BATCH || rate < BUSY_RATE => None,
        n if n >= FLOOD_BATCH => Some(FLOOD_LINGER),
        _ => Some(BUSY_LINGER),
    }
}

/// Sleeps `d`, cut short when the drain begins. Once draining, sleeps in full: a backoff
/// still backs off.
async fn sleep_or_drain(d: Duration, drain: &CancellationToken) {
    let draining = drain.is_cancelled();
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = drain.cancelled(), if !draining => {}
    }
}
/// The shipper against an in-process fake sink (the seam tests inject faults through),
/// in tokio's paused time: the backoff schedule is checked without waiting it out.
#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::config::LogConfig;
    use crate::log::entry;

    #[derive(Default)]
    struct Calls {
        connects: usize,
        ships: Vec<tokio::time::Instant>,
    }

    /// Answers each `ship` from a script of outcomes, then applies everything.
    struct FakeSink {
        script: VecDeque<Result<Shipped, SinkError>>,
        calls: Arc<Mutex<Calls>>,
        connected: bool,
        position: u64,
    }

    impl Sink for FakeSink {
        async fn connect(&mut self) -> Result<u64, SinkError> {
            self.calls.lock().unwrap().connects += 1;
            self.connected = true;
            Ok(self.position)
        }

        fn is_connected(&self) -> bool {
            self.connected
        }

        fn disconnect(&mut self) {
            self.connected = false;
        }

        async fn ship(&mut self, batch: &Batch) -> Result<Shipped, SinkError> {
            self.calls
                .lock()
                .unwrap()
                .ships
                .push(tokio::time::Instant::now());
            let answer = self.script.pop_front().unwrap_or(Ok(Shipped::Applied {
                dead_lettered: Vec::new(),
            }));
            if answer.is_ok() {
                self.position = batch.end;
            }
            answer
        }
    }

    /// Runs a shipper over a log of one record against `script`; returns the calls once
    /// the record is acknowledged.
    async fn ship_through(script: Vec<Result<Shipped, SinkError>>) -> Calls {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(&dir.path().join("log"), LogConfig::default(), 0).unwrap());
        let mut buf = Vec::new();
        entry::encode(&mut buf, b"pixel", b"1.000,a=1");
        let end = log.write(&buf, 1).unwrap();
        let calls = Arc::new(Mutex::new(Calls::default()));
        let sink = FakeSink {
            script: script.into(),
            calls: calls.clone(),
            connected: false,
            position: 0,
        };
        let (shipper, status) = Shipper::new(
            log.clone(),
            sink,
            PositionFile::new(dir.path()),
            ShipConfig::default(),
            "fake".into(),
            None,
        );
        let _drain = CancellationToken::new();
        let task = tokio::spawn(shipper.run(_drain.clone()));
        while log.shipped() < end || log.backlog() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(*status.redis_up.borrow(), "up once a batch went through");
        task.abort();
        let calls = std::mem::take(&mut *calls.lock().unwrap());
        calls
    }

    #[test]
    fn the_default_pauses_only_when_hits_arrive_fast_and_many() {
        let ms = Duration::from_millis;
        // A trickle, however fast one record followed another: shipped at once.
        assert_eq!(busy_pause(1, Duration::from_micros(20)), None);
        // 5,000 hits/s after a hiccup: a dozen records, but slowly gathered.
        assert_eq!(busy_pause(12, Duration::from_micros(2400)), None);
        // 50,000 hits/s: a pause lets the next batch carry more.
        assert_eq!(
            busy_pause(25, Duration::from_micros(500)),
            Some(BUSY_LINGER)
        );
        // A relay's flood.
        assert_eq!(busy_pause(300, ms(2)), Some(FLOOD_LINGER));
    }

    fn gaps(calls: &Calls) -> Vec<Duration> {
        calls.ships.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Each gap between half and all of its step (and the time a try takes).
    fn assert_backoff(calls: &Calls, steps_ms: &[u64]) {
        assert_eq!(gaps(calls).len(), steps_ms.len());
        for (gap, &step) in gaps(calls).iter().zip(steps_ms) {
            let step = Duration::from_millis(step);
            assert!(
                *gap >= step / 2 && *gap <= step + Duration::from_millis(20),
                "waited {gap:?} for a {step:?} step"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_back_off_exponentially_on_the_same_connection() {
        let refused = || Err(SinkError::Refused("OOM command not allowed".into()));
        let calls = ship_through((0..9).map(|_| refused()).collect()).await;
        assert_eq!(calls.connects, 1, "a refusal is not a broken connection");
        // 50 ms doubling to the 5 s cap.
        assert_backoff(&calls, &[50, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_broken_connection_reconnects_with_a_shorter_backoff() {
        let broken = || Err(SinkError::Broken("connection reset".into()));
        let calls = ship_through((0..8).map(|_| broken()).collect()).await;
        assert_eq!(calls.connects, 9, "one reconnect per broken try");
        // 50 ms doubling to the 1 s cap.
        assert_backoff(&calls, &[50, 100, 200, 400, 800, 1000, 1000, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_already_in_redis_is_not_pushed_again() {
        // A lost reply: Redis has the batch; the next try learns it and moves on.
        let end = entry::encoded_len(b"pixel", b"1.000,a=1") as u64;
        let calls = ship_through(vec![Ok(Shipped::Resume { position: end })]).await;
        assert_eq!(calls.ships.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_position_ahead_of_the_log_gets_the_records_moved_past_it() {
        let calls = ship_through(vec![Ok(Shipped::Resume { position: 1 << 40 })]).await;
        assert_eq!(
            calls.ships.len(),
            2,
            "shipped again from past Redis's position"
        );
    }
}
