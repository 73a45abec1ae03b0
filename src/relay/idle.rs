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
