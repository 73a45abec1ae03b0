//! Capped exponential backoff with jitter, for every failed try of the shipper: a
//! refused batch, a broken connection, an unreadable log. Without it a Redis that
//! accepts connections but refuses writes (OOM, MISCONF, READONLY) gets a retry storm.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The shipper's while Redis refuses batches: 50 ms doubling up to 5 s.
    pub fn shipper() -> Backoff {
        Backoff::new(Duration::from_millis(50), Duration::from_secs(5))
    }

    /// The shipper's while Redis is unreachable: 50 ms doubling up to 1 s. A refused
    /// batch is work Redis does again on every try; a failed connection costs it nothing.
    /// And after an outage, every second the shipper still waits once Redis is back is
    /// backlog that grows and records that reach Redis late (at 5 s, a mean of ~3.7 s).
    pub fn reconnect() -> Backoff {
        Backoff::new(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// The wait before the next try: the current step with "equal jitter" (between half
    /// and all of it, so that collectors that failed together do not retry together, and
    /// the wait still grows), then the step doubles up to the cap.
    pub fn next_wait(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// After a success: the next failure starts from the first step again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<Duration> = (0..8).map(|_| b.next_wait()).collect();
        let steps = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (w, step) in waits.iter().zip(steps) {
            let step = Duration::from_millis(step);
            assert!(
                *w >= step / 2 && *w <= step,
                "{w:?} not within [{:?}, {step:?}]",
                step / 2
            );
        }
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(100));
    }
}
