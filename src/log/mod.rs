//! The durable local log: every record is appended here before its hit is answered, and
//! the shipper reads it from the last position its destination acknowledged. The log
//! knows records and positions, not where they are shipped.
//!
//! The log is a folder of append-only segments (see [`segment`]) addressed by global byte
//! positions. One [`Log`] is shared by all appenders (group commit per worker thread, see
//! [`appender`]) and the one [`reader`] of the shipper.

pub mod appender;
pub mod entry;
pub mod print;
pub mod reader;
pub mod segment;

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::config::{FsyncPolicy, FullPolicy, LogConfig};
use crate::metrics::metrics;

pub use appender::{Appender, Ticket};
pub use reader::{Batch, Reader};

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
    /// Written since the last fsync.
    dirty: bool,
}

pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    writer: Mutex<Writer>,
    /// Everything before this position has been written (`write` returned).
    end: AtomicU64,
    /// Everything before this position is in Redis.
    shipped: AtomicU64,
    /// Woken after each write, for the shipper.
    appended: Notify,
}

/// Segments and positions as the reader needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub base: u64,
    pub end: u64,
}

impl Log {
    /// Opens (or creates) the log in `dir`, truncating any torn tail. `shipped` is the
    /// cached shipped position: a fresh segment never starts below it, so positions stay
    /// unique even when every shipped segment was deleted.
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
        let end = segments.back().map_or(0, SegmentInfo::end);
        let file = match segments.back() {
            Some(last) if last.end() >= shipped => {
                segment::open_append(dir, last.base).map_err(open_err)?
            }
            _ => {
                let base = end.max(shipped);
                segments.push_back(SegmentInfo {
                    base,
                    len: 0,
                    records: 0,
                });
                segment::create(dir, base).map_err(open_err)?
            }
        };
        let end = segments.back().map_or(0, SegmentInfo::end);
        let log = Log {
            dir: dir.to_owned(),
            config,
            writer: Mutex::new(Writer {
                file,
                segments,
                dirty: false,
            }),
            end: AtomicU64::new(end),
            shipped: AtomicU64::new(shipped),
            appended: Notify::new(),
        };
        log.update_backlog_metric();
        Ok(log)
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
        self.end().saturating_sub(self.shipped())
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
    /// new segment past `segment_bytes` and applying the `drop-oldest` policy.
    pub fn write(&self, buf: &[u8], records: u64) -> Result<(), LogError> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut w = self.lock();
        if self.config.when_full == FullPolicy::DropOldest {
            self.drop_oldest(&mut w, buf.len() as u64);
        }
        if let Err(e) = w.file.write_all(buf) {
            // A partial write leaves a torn record behind `end`; truncate it away so the
            // next group does not land after garbage.
            let last = *w.segments.back().expect("the active segment");
            let _ = w.file.set_len(last.len);
            return Err(LogError::Write(e));
        }
        let active = w.segments.back_mut().expect("the active segment");
        active.len += buf.len() as u64;
        active.records += records;
        let (end, len) = (active.end(), active.len);
        // The records are in the file now, whatever follows: account for them first.
        self.end.store(end, Ordering::Release);
        w.dirty = true;
        let synced = if self.config.fsync == FsyncPolicy::Always {
            w.file.sync_data().map(|()| w.dirty = false)
        } else {
            Ok(())
        };
        if len >= self.config.segment_bytes {
            if let Err(e) = self.roll(&mut w, end) {
                // Keep appending to the current segment; the next write tries again.
                tracing::error!(error = %e, "could not start a new log segment");
            }
        }
        drop(w);
        let m = metrics();
        m.records.increment(records);
        m.record_bytes.increment(buf.len() as u64);
        self.update_backlog_metric();
        self.appended.notify_one();
        // With `fsync = always` a failed sync fails the group: its hits are answered 503
        // even though the records are written (and will be shipped).
        synced.map_err(LogError::Write)
    }

    /// Closes the active segment and starts a new one at `base`.
    fn roll(&self, w: &mut Writer, base: u64) -> io::Result<()> {
        if self.config.fsync != FsyncPolicy::Never && w.dirty {
            w.file.sync_data()?;
        }
        w.file = segment::create(&self.dir, base)?;
        w.dirty = false;
        w.segments.push_back(SegmentInfo {
            base,
            len: 0,
            records: 0,
        });
        Ok(())
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
        drop(w);
        self.update_backlog_metric();
    }

    /// Makes sure positions before `pos` are never written: used when Redis already holds
    /// a position beyond this log's end (the disk lost its tail, e.g. a power loss with
    /// `fsync = never`), so that new records are not mistaken for shipped ones.
    pub fn skip_to(&self, pos: u64) -> Result<(), LogError> {
        let mut w = self.lock();
        if pos <= self.end() {
            return Ok(());
        }
        tracing::warn!(
            from = self.end(),
            to = pos,
            "the shipped position is beyond the local log's end; starting a new segment there"
        );
        let empty_active = w.segments.back().is_some_and(|s| s.len == 0);
        if empty_active {
            let old = w.segments.pop_back().expect("checked above");
            let _ = fs::remove_file(segment::path(&self.dir, old.base));
        }
        self.roll(&mut w, pos).map_err(LogError::Write)?;
        self.end.store(pos, Ordering::Release);
        Ok(())
    }

    /// `fdatasync`s what was written since the last call (the `interval` policy's timer).
    pub fn sync(&self) -> io::Result<()> {
        let file = {
            let mut w = self.lock();
            if !w.dirty {
                return Ok(());
            }
            w.dirty = false;
            w.file.try_clone()?
        };
        // Outside the lock: appends go on while the disk catches up.
        file.sync_data()
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

    fn update_backlog_metric(&self) {
        metrics().backlog_bytes.set(self.backlog() as f64);
    }
}
