//! Making the log durable: `fdatasync` on a thread of its own, never on the HTTP workers
//! or the source threads that append.
//!
//! The appenders mark what they wrote ([`Syncer::wrote`]) and, at a segment roll, hand the
//! closed segment over ([`Syncer::rolled`]) instead of syncing it in place. The sync
//! thread syncs every `fsync_interval` (`interval`) or as soon as a group asks
//! (`always`: the group's hits are answered once [`Syncer::wait_durable`] says their
//! records are on disk; groups that arrive meanwhile share the next sync).
//!
//! A failed `fsync` is not retried as if nothing happened. After an error Linux may have
//! dropped the dirty pages and marked them clean, so a later `fsync` can succeed without
//! the data ever reaching the disk (PostgreSQL's "fsyncgate", 2018). So a failure is
//! counted, reported once, fails `/readyz`, and keeps the data marked unsynced (the next
//! tick tries again); the log counts as healthy again only once a later `fsync`
//! succeeded *and* every record written before the failure is in Redis — the copy that
//! does not depend on that disk. Records are read back for shipping from the page cache,
//! which keeps them readable.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::FsyncPolicy;
use crate::metrics::metrics;

/// What is on disk, for waiters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Everything before this position has been `fdatasync`ed.
    pub synced: u64,
    /// Failed syncs so far.
    pub failures: u64,
}

#[derive(Default)]
struct Pending {
    /// A handle on the active segment, for syncing it without the writer's lock.
    active: Option<File>,
    /// Closed segments whose data was not synced yet.
    closed: Vec<File>,
    /// The log's end at the last write.
    end: u64,
    /// Bumped on every write; `synced_gen` is the last one a sync covered.
    gen: u64,
    synced_gen: u64,
    /// A sync was asked for (`always`, or a roll).
    asked: bool,
    stop: bool,
}

struct Inner {
    policy: FsyncPolicy,
    interval: Duration,
    pending: Mutex<Pending>,
    wake: Condvar,
    status: watch::Sender<SyncStatus>,
    /// The end of the log when a sync last failed; 0 while no failure is outstanding.
    failed_upto: AtomicU64,
    /// A sync succeeded after that failure.
    ok_since_failure: AtomicBool,
    #[cfg(test)]
    faults: Mutex<test_faults::Faults>,
}

pub struct Syncer {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the sync thread (none for `never`: nothing is synced but at shutdown).
    pub fn start(policy: FsyncPolicy, interval: Duration, active: File, end: u64) -> Syncer {
        let inner = Arc::new(Inner {
            policy,
            interval,
            pending: Mutex::new(Pending {
                active: Some(active),
                end,
                ..Pending::default()
            }),
            wake: Condvar::new(),
            status: watch::Sender::new(SyncStatus {
                synced: end,
                failures: 0,
            }),
            failed_upto: AtomicU64::new(0),
            ok_since_failure: AtomicBool::new(false),
            #[cfg(test)]
            faults: Mutex::default(),
        });
        let thread = (policy != FsyncPolicy::Never).then(|| {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("log-sync".into())
                .spawn(move || inner.run())
                .expect("starting the log's sync thread")
        });
        Syncer { inner, thread }
    }

    /// Records a write that ended at `end` (call under the writer's lock, so ends come in
    /// order).
    pub fn wrote(&self, end: u64) {
        let mut p = self.inner.lock();
        p.end = end;
        p.gen += 1;
    }

    /// The writer moved to a new segment: the closed one is synced by the thread (unless
    /// the policy is `never`), the new one is the active one from now on.
    /// `closed` is `None` when the old segment needs no sync (it was deleted).
    pub fn rolled(&self, closed: Option<File>, active: File) {
        let mut p = self.inner.lock();
        if let Some(closed) = closed.filter(|_| self.inner.policy != FsyncPolicy::Never) {
            p.closed.push(closed);
            p.asked = true;
            self.inner.wake.notify_one();
        }
        p.active = Some(active);
    }

    /// Waits until everything before `end` is on disk; an error if a sync failed first.
    /// For `always`: the caller's hits are answered only after this.
    pub async fn wait_durable(&self, end: u64) -> io::Result<()> {
        let mut rx = self.inner.status.subscribe();
        let failures = rx.borrow().failures;
        {
            let mut p = self.inner.lock();
            p.asked = true;
            self.inner.wake.notify_one();
        }
        let status = *rx
            .wait_for(|s| s.synced >= end || s.failures > failures)
            .await
            .map_err(|_| io::Error::other("the log's sync thread stopped"))?;
        if status.synced >= end {
            Ok(())
        } else {
            Err(io::Error::other("fsync of the local log failed"))
        }
    }

    /// Syncs now, on the calling thread (at shutdown; in tests).
    pub fn sync_now(&self) -> io::Result<()> {
        self.inner.sync_once()
    }

    /// False from a failed sync until a later one succeeded and Redis holds every record
    /// written before the failure (`shipped` is the shipped position).
    pub fn healthy(&self, shipped: u64) -> bool {
        let failed = self.inner.failed_upto.load(Ordering::Acquire);
        if failed == 0 {
            return true;
        }
        if self.inner.ok_since_failure.load(Ordering::Acquire) && shipped >= failed {
            // Only clear the failure we looked at: a newer one stays.
            let cleared = self
                .inner
                .failed_upto
                .compare_exchange(failed, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if cleared {
                tracing::info!("the local log is durable again: fsync works and what was written before the failure is in Redis");
            }
            return true;
        }
        false
    }

    pub fn status(&self) -> SyncStatus {
        *self.inner.status.borrow()
    }

    #[cfg(test)]
    pub(crate) fn inject(&self, faults: test_faults::Faults) {
        *self.inner.faults.lock().unwrap() = faults;
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.inner.lock().stop = true;
        self.inner.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self) {
        let mut next_tick = Instant::now() + self.interval;
        loop {
            {
                let mut p = self.lock();
                loop {
                    if p.stop {
                        return;
                    }
                    if p.asked {
                        break;
                    }
                    // `always` ticks too: a failed sync is retried even when no hits
                    // come to ask (a tick with nothing unsynced costs a lock).
                    if self.policy != FsyncPolicy::Never {
                        let now = Instant::now();
                        if now >= next_tick {
                            next_tick = now + self.interval;
                            break;
                        }
                        p = self
                            .wake
                            .wait_timeout(p, next_tick - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    } else {
                        p = self.wake.wait(p).unwrap_or_else(|e| e.into_inner());
                    }
                }
            }
            // Failures are counted and reported inside; the next round retries.
            let _ = self.sync_once();
        }
    }

    /// One sync of everything written so far.
    fn sync_once(&self) -> io::Result<()> {
        let (active, closed, end, gen) = {
            let mut p = self.lock();
            p.asked = false;
            let dirty = p.gen != p.synced_gen;
            if !dirty && p.closed.is_empty() {
                return Ok(());
            }
            let active = match (&p.active, dirty) {
                (Some(f), true) => Some(f.try_clone()?),
                _ => None,
            };
            (active, std::mem::take(&mut p.closed), p.end, p.gen)
        };
        let result = closed
            .iter()
            .chain(active.as_ref())
            .try_for_each(|f| self.sync_file(f));
        match result {
            Ok(()) => {
                {
                    let mut p = self.lock();
                    p.synced_gen = p.synced_gen.max(gen);
                }
                if self.failed_upto.load(Ordering::Acquire) != 0 {
                    self.ok_since_failure.store(true, Ordering::Release);
                }
                self.status.send_modify(|s| s.synced = s.synced.max(end));
                Ok(())
            }
            Err(e) => {
                // Keep the closed segments for the next try; the active one stays dirty.
                self.lock().closed.splice(0..0, closed);
                self.ok_since_failure.store(false, Ordering::Release);
                let before = self.failed_upto.fetch_max(end, Ordering::AcqRel);
                metrics().fsync_failures.increment(1);
                if before == 0 {
                    tracing::error!(error = %e, "fsync of the local log failed: what was written since the last good fsync may not survive a power loss (after a failed fsync the kernel's cache cannot be trusted); /readyz fails until a later fsync succeeds and those records are in Redis");
                }
                self.status.send_modify(|s| s.failures += 1);
                Err(e)
            }
        }
    }

    fn sync_file(&self, f: &File) -> io::Result<()> {
        #[cfg(test)]
        {
            let faults = self.faults.lock().unwrap().clone();
            std::thread::sleep(faults.delay);
            if faults.fail {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
        }
        f.sync_data()
    }
}

#[cfg(test)]
pub(crate) mod test_faults {
    use std::time::Duration;

    /// What the next syncs do, for tests: fail with EIO, or take a while.
    #[derive(Debug, Clone, Default)]
    pub struct Faults {
        pub fail: bool,
        pub delay: Duration,
    }
}
