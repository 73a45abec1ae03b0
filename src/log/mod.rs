//! The durable local log: every record is appended here before its hit is answered, and
//! the shipper reads it from the last position its destination acknowledged. The log
//! knows records and positions, not where they are shipped.
//!
//! The log is a folder of append-only segments (see [`segment`]) addressed by global byte
//! positions. One [`Log`] is shared by all appenders (group commit per worker thread, see
//! [`appender`]) and the one [`reader`] of the shipper.

pub mod appender;
pub mod entry;
pub mod follow;
pub mod print;
pub mod reader;
pub mod reserve;
pub mod segment;
pub mod sync;

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::config::{FsyncPolicy, FullPolicy, LogConfig};
use crate::metrics::metrics;

pub use appender::{Appender, Ticket};
pub use reader::{Batch, Reader};
use reserve::Reservation;
use sync::Syncer;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log folder {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("writing the local log: {0}")]
    Write(#[source] io::Error),
    #[error("the local log is full ({backlog} unshipped bytes, bound {max}): the shipper is not keeping up or its destination is unreachable")]
    Full { backlog: u64, max: u64 },
    #[error("record too large ({0} bytes)")]
    TooLarge(usize),
    #[error("reading the local log: {0}")]
    Read(#[source] io::Error),
    #[error("fsync of the local log: {0}")]
    Sync(#[source] io::Error),
}

#[derive(Debug, Clone, Copy)]
struct SegmentInfo {
    base: u64,
    /// Bytes of whole records written so far.
    len: u64,
    records: u64,
}

impl SegmentInfo {
    fn end(&self) -> u64 {
        self.base + self.len
    }
}

struct Writer {
    /// The active (last) segment, open for appending.
    file: File,
    /// Every segment on disk, oldest first; the last is the active one.
    segments: VecDeque<SegmentInfo>,
    /// The durable bound on positions (see [`reserve`]).
    reservation: Reservation,
    /// The first position this process wrote (or will write): records from here on were
    /// written since the open, so no earlier run can have shipped them.
    epoch_base: u64,
}

pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    writer: Mutex<Writer>,
    /// Everything before this position has been written (`write` returned).
    end: AtomicU64,
    /// Everything before this position is in Redis.
    shipped: AtomicU64,
    /// Positions between `shipped` and `end` that no segment holds (the jump to a new
    /// epoch at an open): not backlog.
    holes: AtomicU64,
    /// Whether the last write failed (a full or read-only disk): said when it changes.
    write_failing: AtomicBool,
    /// Woken after each write, for the shipper.
    appended: Notify,
    syncer: Syncer,
    /// The end of the records found at the open, and where this process's positions
    /// began: a shipped position between the two means the disk lost records Redis has.
    recovered_end: u64,
    opened_at: u64,
    /// Whether appended values are framed with named fields (see [`entry`]).
    framed: bool,
}

/// Segments and positions as the reader needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub base: u64,
    pub end: u64,
}

impl Log {
    /// Opens (or creates) the log in `dir`, truncating any torn tail. `shipped` is the
    /// cached shipped position. Appends start in a new segment at the reserved bound (a
    /// new position epoch, see [`reserve`]), never below `shipped`: positions stay unique
    /// even when every shipped segment was deleted or a power loss took the log's tail.
    pub fn open(dir: &Path, config: LogConfig, shipped: u64) -> Result<Log, LogError> {
        let open_err = |source| LogError::Open {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(open_err)?;
        let mut segments = VecDeque::new();
        for base in segment::list(dir).map_err(open_err)? {
            let path = segment::path(dir, base);
            let scan = segment::recover(&path).map_err(open_err)?;
            if scan.dropped_bytes > 0 {
                tracing::warn!(
                    segment = %path.display(),
                    kept_records = scan.records,
                    dropped_bytes = scan.dropped_bytes,
                    "truncated a torn tail left by a crash (those bytes were never acknowledged)"
                );
            }
            segments.push_back(SegmentInfo {
                base,
                len: scan.valid_len,
                records: scan.records,
            });
        }
        let mut reservation = Reservation::load(dir).map_err(open_err)?;
        let recovered_end = segments.back().map_or(0, SegmentInfo::end);
        let base = recovered_end.max(shipped).max(reservation.upto());
        let file = match segments.back() {
            Some(last) if last.end() == base => {
                segment::open_append(dir, last.base).map_err(open_err)?
            }
            _ => {
                // An empty segment left by the previous run holds nothing: replace it.
                if segments.back().is_some_and(|s| s.len == 0) {
                    let old = segments.pop_back().expect("checked above");
                    let _ = fs::remove_file(segment::path(dir, old.base));
                }
                segments.push_back(SegmentInfo {
                    base,
                    len: 0,
                    records: 0,
                });
                segment::create(dir, base).map_err(open_err)?
            }
        };
        // Reserve this run's first positions now. On a full disk this can fail: the log
        // still opens (so that shipping can free the disk), and the first write tries
        // again.
        if let Err(e) = reservation.raise(base + reserve::STEP) {
            tracing::warn!(error = %e, "could not reserve log positions yet; writes are refused until it works");
        }
        let end = segments.back().map_or(0, SegmentInfo::end);
        let active = file.try_clone().map_err(open_err)?;
        let log = Log {
            dir: dir.to_owned(),
            syncer: Syncer::start(config.fsync, config.fsync_interval, active, end),
            config,
            writer: Mutex::new(Writer {
                file,
                segments,
                reservation,
                epoch_base: base,
            }),
            end: AtomicU64::new(end),
            shipped: AtomicU64::new(shipped),
            holes: AtomicU64::new(0),
            write_failing: AtomicBool::new(false),
            appended: Notify::new(),
            recovered_end,
            opened_at: base,
            framed: false,
        };
        log.update_holes(&log.lock());
        log.update_backlog_metric();
        Ok(log)
    }

    /// Appended values come framed with their named fields (`[ship.fields]`): the
    /// appenders mark them so in their entries. Set before the first append. Why a
    /// property of the log rather than of each append: a source hands the appender one
    /// rendered value per record, and the template that rendered it framed it; both
    /// follow the same `[ship.fields]` for the life of the process.
    pub fn with_framed_values(mut self, framed: bool) -> Log {
        self.framed = framed;
        self
    }

    pub fn framed_values(&self) -> bool {
        self.framed
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock cannot leave a half-written record behind the
        // `end` position, so the state is still consistent: keep going.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// End of what has been written.
    pub fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    pub fn shipped(&self) -> u64 {
        self.shipped.load(Ordering::Acquire)
    }

    /// Unshipped bytes on disk.
    pub fn backlog(&self) -> u64 {
        self.end()
            .saturating_sub(self.shipped())
            .saturating_sub(self.holes.load(Ordering::Acquire))
    }

    /// Whether a shipped position `pos` lies beyond the records found at the open but
    /// not beyond this run's first position: the disk lost records that Redis has (a
    /// power loss before they were synced).
    pub fn lost_tail_below(&self, pos: u64) -> bool {
        pos > self.recovered_end && pos <= self.opened_at
    }

    /// False while writes fail (a full or read-only disk).
    pub fn writable(&self) -> bool {
        !self.write_failing.load(Ordering::Acquire)
    }

    /// False after a failed fsync, until the log is trustworthy again (see [`sync`]).
    pub fn durable(&self) -> bool {
        self.syncer.healthy(self.shipped())
    }

    /// Under the `reject` policy, whether a record of `len` more bytes is refused.
    pub fn check_room(&self, len: usize) -> Result<(), LogError> {
        let backlog = self.backlog();
        if self.config.when_full == FullPolicy::Reject
            && backlog + len as u64 > self.config.max_bytes
        {
            return Err(LogError::Full {
                backlog,
                max: self.config.max_bytes,
            });
        }
        Ok(())
    }

    /// Appends already-encoded records with one `write` (the group commit), rolling to a
    /// new segment past `segment_bytes` and applying the `drop-oldest` policy. Returns
    /// the log's end after them. Never syncs: see [`Log::wait_durable`].
    pub fn write(&self, buf: &[u8], records: u64) -> Result<u64, LogError> {
        if buf.is_empty() {
            return Ok(self.end());
        }
        let mut w = self.lock();
        if self.config.when_full == FullPolicy::DropOldest {
            self.drop_oldest(&mut w, buf.len() as u64);
        }
        let mut result = self.append(&mut w, buf);
        // A full disk whose active segment is all shipped: start a new one and delete
        // it, then try once more. This is what lets serving resume by itself.
        if result.is_err() && self.reclaim_shipped_active(&mut w) {
            result = self.append(&mut w, buf);
        }
        if let Err(e) = result {
            drop(w);
            self.note_write(Some(&e), records);
            return Err(LogError::Write(e));
        }
        let active = w.segments.back_mut().expect("the active segment");
        active.len += buf.len() as u64;
        active.records += records;
        let (end, len) = (active.end(), active.len);
        // The records are in the file now, whatever follows: account for them first.
        self.end.store(end, Ordering::Release);
        self.syncer.wrote(end);
        if len >= self.config.segment_bytes {
            if let Err(e) = self.roll(&mut w, end) {
                // Keep appending to the current segment; the next write tries again.
                tracing::error!(error = %e, "could not start a new log segment");
            }
        }
        drop(w);
        self.note_write(None, records);
        let m = metrics();
        m.records.increment(records);
        m.record_bytes.increment(buf.len() as u64);
        self.update_backlog_metric();
        self.appended.notify_one();
        Ok(end)
    }

    /// Under `fsync = always`, waits (without blocking the thread) until the records
    /// before `end` are on disk; a failed sync fails the group (its hits get 503, though
    /// the records are written and will be shipped). A no-op under the other policies.
    pub async fn wait_durable(&self, end: u64) -> Result<(), LogError> {
        if self.config.fsync != FsyncPolicy::Always {
            return Ok(());
        }
        self.syncer.wait_durable(end).await.map_err(LogError::Sync)
    }

    /// One `write` of whole records at the end of the active segment, within the
    /// reserved positions.
    fn append(&self, w: &mut Writer, buf: &[u8]) -> io::Result<()> {
        let end = self.end() + buf.len() as u64;
        if end > w.reservation.upto() {
            // Once per `reserve::STEP` bytes: a small file and its folder are synced.
            w.reservation.raise(end + reserve::STEP)?;
        }
        if let Err(e) = w.file.write_all(buf) {
            // A partial write leaves a torn record behind `end`; truncate it away so the
            // next group does not land after garbage.
            let last = *w.segments.back().expect("the active segment");
            let _ = w.file.set_len(last.len);
            return Err(e);
        }
        Ok(())
    }

    /// Counts a failed group and says when writing starts or stops failing — once per
    /// change, never per group (on a full disk, a line per group would fill it more).
    fn note_write(&self, error: Option<&io::Error>, records: u64) {
        match error {
            Some(e) => {
                metrics().log_write_errors.increment(records);
                if !self.write_failing.swap(true, Ordering::AcqRel) {
                    tracing::error!(log = %self.dir.display(), error = %e, "cannot write the local log; hits are answered 503 until it works again (nothing answered 200 is lost)");
                }
            }
            // A plain load first: no atomic read-modify-write per group when all is well.
            None if self.write_failing.load(Ordering::Acquire)
                && self.write_failing.swap(false, Ordering::AcqRel) =>
            {
                tracing::info!(log = %self.dir.display(), "writing the local log works again");
            }
            None => {}
        }
    }

    /// Closes the active segment and starts a new one at `base`. The closed segment is
    /// synced by the sync thread, not here (this runs on the appenders' threads).
    fn roll(&self, w: &mut Writer, base: u64) -> io::Result<()> {
        let file = segment::create(&self.dir, base)?;
        let active = file.try_clone()?;
        let closed = std::mem::replace(&mut w.file, file);
        self.syncer.rolled(Some(closed), active);
        w.segments.push_back(SegmentInfo {
            base,
            len: 0,
            records: 0,
        });
        Ok(())
    }

    /// When the active segment holds records and all of them are shipped, replaces it
    /// with a new, empty one and deletes it: frees the disk without touching anything
    /// unshipped. True if it did.
    fn reclaim_shipped_active(&self, w: &mut Writer) -> bool {
        let active = *w.segments.back().expect("the active segment");
        if active.len == 0 || active.end() > self.shipped() {
            return false;
        }
        let new = segment::create(&self.dir, active.end()).and_then(|f| Ok((f.try_clone()?, f)));
        let (handle, file) = match new {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "could not start a new log segment to free the disk");
                return false;
            }
        };
        // Every handle on the old file must go for its space to be freed: ours, the sync
        // thread's (nothing to sync: it is in Redis), the shipper's reader (it lets go
        // when it sees the segment gone; woken below).
        w.file = file;
        self.syncer.rolled(None, handle);
        w.segments.pop_back();
        w.segments.push_back(SegmentInfo {
            base: active.end(),
            len: 0,
            records: 0,
        });
        let _ = fs::remove_file(segment::path(&self.dir, active.base));
        self.appended.notify_one();
        tracing::info!(
            segment = active.base,
            "deleted the shipped segment being written, to free the disk"
        );
        true
    }

    /// Deletes the oldest segments (never the active one) until `incoming` more bytes fit.
    fn drop_oldest(&self, w: &mut Writer, incoming: u64) {
        while self.backlog() + incoming > self.config.max_bytes && w.segments.len() > 1 {
            let Some(old) = w.segments.pop_front() else {
                break;
            };
            let shipped = self.shipped();
            if old.end() <= shipped {
                let _ = fs::remove_file(segment::path(&self.dir, old.base));
                continue;
            }
            let lost = old.records;
            tracing::error!(
                segment = old.base,
                records = lost,
                "local log full: dropped the oldest unshipped segment (policy drop-oldest)"
            );
            metrics().dropped_records.increment(lost);
            let _ = fs::remove_file(segment::path(&self.dir, old.base));
            self.shipped.fetch_max(old.end(), Ordering::AcqRel);
            self.update_holes(w);
        }
    }

    /// Called by the shipper once Redis holds everything before `pos`: deletes shipped
    /// segments beyond the retention.
    pub fn set_shipped(&self, pos: u64) {
        self.shipped.fetch_max(pos, Ordering::AcqRel);
        let mut w = self.lock();
        let mut retained: u64 = w
            .segments
            .iter()
            .filter(|s| s.end() <= pos)
            .map(|s| s.len)
            .sum();
        while w.segments.len() > 1 {
            let oldest = w.segments[0];
            if oldest.end() > pos || retained <= self.config.retain_shipped_bytes {
                break;
            }
            if let Err(e) = fs::remove_file(segment::path(&self.dir, oldest.base)) {
                tracing::warn!(segment = oldest.base, error = %e, "could not delete a shipped segment");
                break;
            }
            retained -= oldest.len;
            w.segments.pop_front();
        }
        if !self.writable() {
            // The disk is full: free the active segment too if it is all shipped now,
            // rather than waiting for a write to fail once more.
            self.reclaim_shipped_active(&mut w);
        }
        self.update_holes(&w);
        drop(w);
        self.update_backlog_metric();
    }

    /// Redis holds a shipped position at `pos`, beyond this log's end. That cannot
    /// happen to records written since the open (they are above every position handed
    /// out before it, see [`reserve`]), unless this folder's history is gone: restored
    /// from a backup, or the reservation deleted. Records written since the open were
    /// never shipped by anyone, so they are copied to a new segment at `pos` and shipped
    /// from there; the positions below `pos` are left to Redis's word.
    pub fn skip_to(&self, pos: u64) -> Result<(), LogError> {
        let mut w = self.lock();
        let end = self.end();
        if pos <= end {
            return Ok(());
        }
        let carried = self
            .read_range(&w, w.epoch_base, end)
            .map_err(LogError::Read)?;
        tracing::warn!(
            log_end = end,
            redis_position = pos,
            carried_bytes = carried.len(),
            "the shipped position is beyond anything this log handed out (data folder restored from a backup?); the records written since the start are moved past it and shipped"
        );
        let new_end = pos + carried.len() as u64;
        w.reservation
            .raise(new_end + reserve::STEP)
            .map_err(LogError::Write)?;
        let empty_active = w.segments.back().is_some_and(|s| s.len == 0);
        self.roll(&mut w, pos).map_err(LogError::Write)?;
        if empty_active {
            let n = w.segments.len() - 2;
            let old = w.segments.remove(n).expect("the empty segment");
            let _ = fs::remove_file(segment::path(&self.dir, old.base));
        }
        w.file.write_all(&carried).map_err(LogError::Write)?;
        let active = w.segments.back_mut().expect("the active segment");
        active.len = carried.len() as u64;
        active.records = segment::scan(&carried).records;
        w.epoch_base = pos;
        self.end.store(new_end, Ordering::Release);
        self.syncer.wrote(new_end);
        self.update_holes(&w);
        drop(w);
        self.update_backlog_metric();
        self.appended.notify_one();
        Ok(())
    }

    /// The whole records between two positions, from the segments.
    fn read_range(&self, w: &Writer, from: u64, to: u64) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut out = Vec::new();
        for s in w.segments.iter().filter(|s| s.end() > from && s.base < to) {
            let start = from.max(s.base);
            let len = (to.min(s.end()) - start) as usize;
            let mut buf = vec![0; len];
            File::open(segment::path(&self.dir, s.base))?
                .read_exact_at(&mut buf, start - s.base)?;
            out.extend_from_slice(&buf);
        }
        Ok(out)
    }

    /// `fdatasync`s what was written so far, on the calling thread (at shutdown; the
    /// sync thread does it otherwise).
    pub fn sync(&self) -> io::Result<()> {
        self.syncer.sync_now()
    }

    /// Waits until something was written after `pos` (or a spurious wake-up).
    pub async fn wait_past(&self, pos: u64) {
        let notified = self.appended.notified();
        if self.end() > pos {
            return;
        }
        notified.await;
    }

    /// The segments as they are now, oldest first.
    pub(crate) fn spans(&self) -> Vec<Span> {
        self.lock()
            .segments
            .iter()
            .map(|s| Span {
                base: s.base,
                end: s.end(),
            })
            .collect()
    }

    /// Recomputes the positions between `shipped` and `end` that no segment holds.
    fn update_holes(&self, w: &Writer) {
        let shipped = self.shipped();
        let mut holes = 0;
        let mut covered = shipped;
        for s in &w.segments {
            if s.base > covered {
                holes += s.base - covered;
            }
            covered = covered.max(s.end());
        }
        self.holes.store(holes, Ordering::Release);
    }

    fn update_backlog_metric(&self) {
        metrics().backlog_bytes.set(self.backlog() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn record(value: &str) -> Vec<u8> {
        let mut buf = Vec::new();
        entry::encode(&mut buf, b"pixel", value.as_bytes());
        buf
    }

    fn config(fsync: FsyncPolicy) -> LogConfig {
        LogConfig {
            fsync,
            ..LogConfig::default()
        }
    }

    /// A power loss takes the log's tail (and the shipped cache) below what Redis holds:
    /// the next open hands out positions above everything handed out before.
    #[test]
    fn positions_are_never_reused_after_a_lost_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), config(FsyncPolicy::Never), 0).unwrap();
        let mut handed_out = 0;
        for i in 0..100 {
            handed_out = log.write(&record(&format!("r{i}")), 1).unwrap();
        }
        drop(log);
        // The disk kept only the first 10 records.
        let seg = segment::path(dir.path(), 0);
        let one = record("r0").len() as u64;
        File::options()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(10 * one)
            .unwrap();
        let log = Log::open(dir.path(), config(FsyncPolicy::Never), 0).unwrap();
        let first_new = log.end();
        assert!(first_new >= handed_out, "{first_new} < {handed_out}");
        // Only the 10 kept records are backlog: the jump is not.
        assert_eq!(log.backlog(), 10 * one);
        log.write(&record("r!"), 1).unwrap();
        assert_eq!(log.backlog(), 11 * one);
    }

    /// With Redis at a position beyond the log (its history gone), the records written
    /// since the open move past it instead of being taken for shipped ones.
    #[test]
    fn records_since_the_open_move_past_a_position_redis_holds_beyond_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(dir.path(), config(FsyncPolicy::Never), 0).unwrap());
        for v in ["a", "b", "c"] {
            log.write(&record(v), 1).unwrap();
        }
        let far = 1 << 40;
        log.skip_to(far).unwrap();
        log.set_shipped(far);
        assert_eq!(log.backlog(), 3 * record("a").len() as u64);
        let batch = Reader::new(log.clone()).read(far, 10, 1 << 20).unwrap();
        let values: Vec<_> = batch.entries().map(|e| e.value.to_vec()).collect();
        assert_eq!(values, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(batch.start, far);
    }

    /// A failed fsync is counted, fails the durability check, keeps the data marked
    /// unsynced (retried), and the log is durable again only once a later sync worked
    /// and what was written before the failure is shipped.
    #[test]
    fn a_failed_fsync_is_retried_and_not_trusted_until_shipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), config(FsyncPolicy::Never), 0).unwrap();
        let end = log.write(&record("a"), 1).unwrap();
        log.syncer.inject(sync::test_faults::Faults {
            fail: true,
            ..Default::default()
        });
        assert!(log.sync().is_err());
        assert!(!log.durable());
        assert!(log.syncer.status().synced < end);
        log.syncer.inject(sync::test_faults::Faults::default());
        // The retry syncs what the failure left unsynced…
        log.sync().unwrap();
        assert!(log.syncer.status().synced >= end);
        // …but the page cache is not trusted until Redis has those records.
        assert!(!log.durable());
        log.set_shipped(end);
        assert!(log.durable());
    }

    /// `fsync = always`: a group waits for its sync without blocking its runtime's
    /// thread (the HTTP worker's): other tasks go on meanwhile.
    #[tokio::test(flavor = "current_thread")]
    async fn always_waits_for_the_sync_without_blocking_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(dir.path(), config(FsyncPolicy::Always), 0).unwrap());
        log.syncer.inject(sync::test_faults::Faults {
            delay: Duration::from_millis(300),
            ..Default::default()
        });
        let appender = Appender::new(log.clone());
        let ticket = appender.append(b"pixel", b"a").unwrap();
        let ticks = Arc::new(AtomicU64::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                t.fetch_add(1, Ordering::Relaxed);
            }
        });
        ticket.wait().await.unwrap();
        ticker.abort();
        assert!(
            ticks.load(Ordering::Relaxed) >= 10,
            "the runtime kept running while the sync took 300 ms"
        );
        assert!(log.syncer.status().synced >= log.end());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn always_fails_the_group_when_its_sync_fails() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(dir.path(), config(FsyncPolicy::Always), 0).unwrap());
        log.syncer.inject(sync::test_faults::Faults {
            fail: true,
            ..Default::default()
        });
        let appender = Appender::new(log.clone());
        let ticket = appender.append(b"pixel", b"a").unwrap();
        assert!(ticket.wait().await.is_err());
        assert!(!log.durable());
    }
}
