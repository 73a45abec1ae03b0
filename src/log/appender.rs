//! Group commit: many concurrent appends, one `write`.
//!
//! Each worker thread owns an [`Appender`] with a flusher task on its own runtime. An
//! append encodes its record into the pending group and returns a [`Ticket`]; the first
//! append of a group wakes the flusher, which — because it is queued behind the tasks
//! that are already runnable — runs only after they have added their records too, then
//! writes the whole group with one `write` and completes every ticket of the group.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

use super::{entry, Log, LogError};

/// Why a ticket failed. Cheap to clone: every record of a failed group gets it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the local log could not be written: {0}")]
pub struct WriteFailed(Arc<str>);

// State 0 (the default) is "pending".
const WRITTEN: u8 = 1;
const FAILED: u8 = 2;

#[derive(Default)]
struct Completion {
    state: AtomicU8,
    error: Mutex<Option<WriteFailed>>,
    notify: Notify,
}

impl Completion {
    fn finish(&self, result: Result<(), LogError>) {
        match result {
            Ok(()) => self.state.store(WRITTEN, Ordering::Release),
            Err(e) => {
                *self.error.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(WriteFailed(e.to_string().into()));
                self.state.store(FAILED, Ordering::Release);
            }
        }
        self.notify.notify_waiters();
    }
}

/// A claim on one appended record: resolves once its group was written.
pub struct Ticket(Arc<Completion>);

impl Ticket {
    pub async fn wait(&self) -> Result<(), WriteFailed> {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a completion in between is not missed.
            notified.as_mut().enable();
            match self.0.state.load(Ordering::Acquire) {
                WRITTEN => return Ok(()),
                FAILED => {
                    let error = self.0.error.lock().unwrap_or_else(|e| e.into_inner());
                    return Err(error
                        .clone()
                        .unwrap_or_else(|| WriteFailed("unknown".into())));
                }
                _ => notified.await,
            }
        }
    }
}

struct Group {
    buf: Vec<u8>,
    records: u64,
    done: Arc<Completion>,
}

impl Group {
    fn new() -> Self {
        Group {
            buf: Vec::with_capacity(16 * 1024),
            records: 0,
            done: Arc::default(),
        }
    }
}

struct Shared {
    log: Arc<Log>,
    pending: Mutex<Group>,
    wake: Arc<Notify>,
}

impl Drop for Shared {
    /// The last appender is gone: the flusher wakes, finds nothing left, and ends. (No
    /// timer to poll for it: a timer armed at every wait cost the worker a wake-up write.)
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// Appends records to the log, group-committed. Clone it freely within a worker; make
/// one per runtime, since its flusher runs on the runtime that created it.
#[derive(Clone)]
pub struct Appender {
    shared: Arc<Shared>,
}

impl Appender {
    /// Must be called inside a tokio runtime: the flusher task is spawned on it and ends
    /// when the last clone of this appender is dropped.
    pub fn new(log: Arc<Log>) -> Appender {
        let shared = Arc::new(Shared {
            log,
            pending: Mutex::new(Group::new()),
            wake: Arc::new(Notify::new()),
        });
        tokio::spawn(flush_loop(Arc::downgrade(&shared), shared.wake.clone()));
        Appender { shared }
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.shared.log
    }

    /// Adds a record to the current group. Refused at once if it is too large or if the
    /// log is full under the `reject` policy.
    pub fn append(&self, key: &[u8], value: &[u8]) -> Result<Ticket, LogError> {
        let len = entry::encoded_len(key, value);
        if key.len() > entry::MAX_KEY || len - entry::HEADER > entry::MAX_BODY {
            return Err(LogError::TooLarge(len));
        }
        self.shared.log.check_room(len)?;
        let mut group = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        entry::encode(&mut group.buf, key, value);
        group.records += 1;
        if group.records == 1 {
            self.shared.wake.notify_one();
        }
        Ok(Ticket(group.done.clone()))
    }

    /// Adds several records to the same group, or none of them: one ticket for all (a
    /// beacon batch is written, and answered, whole).
    pub fn append_all(&self, key: &[u8], values: &[Vec<u8>]) -> Result<Ticket, LogError> {
        let mut total = 0;
        for v in values {
            let len = entry::encoded_len(key, v);
            if key.len() > entry::MAX_KEY || len - entry::HEADER > entry::MAX_BODY {
                return Err(LogError::TooLarge(len));
            }
            total += len;
        }
        self.shared.log.check_room(total)?;
        let mut group = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for v in values {
            entry::encode(&mut group.buf, key, v);
        }
        let first = group.records == 0;
        group.records += values.len() as u64;
        if first && !values.is_empty() {
            self.shared.wake.notify_one();
        }
        Ok(Ticket(group.done.clone()))
    }
}

async fn flush_loop(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        // Register before looking, so an append in between is not missed.
        notified.as_mut().enable();
        {
            // Holding the shared state only while flushing lets the appender's owners
            // drop it; the flusher then ends at its next wake-up.
            let Some(s) = shared.upgrade() else { return };
            let has_records = s.pending.lock().map(|g| g.records > 0).unwrap_or(true);
            if has_records {
                // Let the tasks that are runnable now add their records to this group.
                tokio::task::yield_now().await;
                let group = std::mem::replace(
                    &mut *s.pending.lock().unwrap_or_else(|e| e.into_inner()),
                    Group::new(),
                );
                // Under `fsync = always` the group waits here for its sync (on the sync
                // thread); appends meanwhile gather into the next group.
                let result = match s.log.write(&group.buf, group.records) {
                    Ok(end) => s.log.wait_durable(end).await,
                    Err(e) => Err(e),
                };
                group.done.finish(result);
                continue;
            }
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_appends_share_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(dir.path(), LogConfig::default(), 0).unwrap());
        let appender = Appender::new(log.clone());
        let tickets: Vec<_> = (0..100)
            .map(|i| {
                appender
                    .append(b"pixel", format!("{i}").as_bytes())
                    .unwrap()
            })
            .collect();
        for t in &tickets {
            t.wait().await.unwrap();
        }
        let spans = log.spans();
        assert_eq!(spans.len(), 1);
        let data = std::fs::read(super::super::segment::path(dir.path(), 0)).unwrap();
        assert_eq!(super::super::segment::scan(&data).records, 100);
        assert_eq!(log.end(), data.len() as u64);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_is_appended_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 4096,
            max_bytes: 8192,
            ..LogConfig::default()
        };
        let log = Arc::new(Log::open(dir.path(), config, 0).unwrap());
        let appender = Appender::new(log.clone());
        let batch: Vec<Vec<u8>> = (0..10).map(|i| format!("e={i}").into_bytes()).collect();
        appender
            .append_all(b"pixel", &batch)
            .unwrap()
            .wait()
            .await
            .unwrap();
        let data = std::fs::read(super::super::segment::path(dir.path(), 0)).unwrap();
        assert_eq!(super::super::segment::scan(&data).records, 10);
        // A batch over the room left is refused whole: nothing of it is written.
        let big: Vec<Vec<u8>> = (0..10).map(|_| vec![b'x'; 1000]).collect();
        assert!(matches!(
            appender.append_all(b"pixel", &big),
            Err(LogError::Full { .. })
        ));
        assert_eq!(log.end(), data.len() as u64);
    }
}
