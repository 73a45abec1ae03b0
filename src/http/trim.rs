//! Gives memory back to the system after a burst of connections.
//!
//! When thousands of connections close, glibc keeps what they freed in its arenas: a
//! per-thread arena only shrinks from its top, so one live allocation above the freed
//! space pins it and RSS stays at the peak. `malloc_trim(0)` also returns the free pages in
//! the middle of every arena. It walks the heaps, so it runs once per burst — when the
//! open connections have fallen to half of their peak since the last trim — never per
//! connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Below this peak there is too little to give back to be worth a trim.
const MIN_PEAK: usize = 256;
/// How often the connection count is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Decides when to trim, from successive readings of the open connections.
#[derive(Debug, Default)]
pub(crate) struct AfterBurst {
    peak: usize,
}

impl AfterBurst {
    /// Takes a reading; true when a burst has passed and memory should be given back.
    pub(crate) fn observe(&mut self, open: usize) -> bool {
        self.peak = self.peak.max(open);
        if self.peak >= MIN_PEAK && open <= self.peak / 2 {
            self.peak = open;
            return true;
        }
        false
    }
}

/// Watches `connections` (the server's count of open connections) from a thread of its
/// own, which ends once the server has dropped the count.
pub(crate) fn watch(connections: &Arc<AtomicUsize>) {
    let connections: Weak<AtomicUsize> = Arc::downgrade(connections);
    let spawned = std::thread::Builder::new()
        .name("http-trim".into())
        .spawn(move || {
            let mut burst = AfterBurst::default();
            loop {
                std::thread::sleep(EVERY);
                let Some(open) = connections.upgrade().map(|c| c.load(Ordering::Relaxed)) else {
                    return;
                };
                if burst.observe(open) {
                    give_back();
                }
            }
        });
    if let Err(e) = spawned {
        // Only memory stays higher after bursts: serving goes on.
        tracing::warn!(error = %e, "could not start the memory trimming thread");
    }
}

fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only touches glibc's allocator state, under its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::AfterBurst;

    #[test]
    fn trims_once_per_burst_when_half_have_closed() {
        let mut b = AfterBurst::default();
        assert!(!b.observe(10), "a small peak is not worth a trim");
        assert!(!b.observe(0));
        assert!(!b.observe(10_000));
        assert!(!b.observe(6_000), "still more than half open");
        assert!(b.observe(4_000), "half of the peak has closed");
        assert!(!b.observe(3_000), "the peak restarted from 4,000");
        assert!(b.observe(100), "the rest of the burst closed");
        assert!(!b.observe(0), "a peak of 100 is below MIN_PEAK");
    }
}
