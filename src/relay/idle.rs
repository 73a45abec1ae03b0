//! A TCP connection's idle timeout as one timer that is moved on only when it fires: a
//! fresh timer per read would cost a timer registration, and a wake-up of the runtime's
//! driver, for every read of a busy connection.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub struct IdleTimer {
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    last_read: Instant,
}

impl IdleTimer {
    pub fn new(idle: Duration) -> IdleTimer {
        IdleTimer {
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            last_read: Instant::now(),
        }
    }

    /// Something was read: the connection is not idle.
    pub fn read(&mut self) {
        self.last_read = Instant::now();
    }

    /// Resolves once nothing was read for the idle timeout. Cancel-safe.
    pub async fn expired(&mut self) {
        loop {
            self.sleep.as_mut().await;
            let deadline = self.last_read + self.idle;
            if deadline <= Instant::now() {
                return;
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_one_idle_period_after_the_last_read() {
        let idle = Duration::from_secs(10);
        let mut timer = IdleTimer::new(idle);
        tokio::time::advance(Duration::from_secs(6)).await;
        timer.read();
        let last_read = Instant::now();
        // The first timer fires 10 s after the start, finds a read since, and moves on.
        timer.expired().await;
        let waited = last_read.elapsed();
        assert!(
            waited >= idle && waited <= idle + Duration::from_millis(1),
            "{waited:?}"
        );
    }
}
