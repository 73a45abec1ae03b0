//! `--count N` shared by the shard readers: how many more events they may fetch. A reader
//! reserves a share before it fetches and settles it once its batch was handled, so no
//! event is taken from Redis beyond the N to handle (in pop mode an event fetched and not
//! handled would be lost), and once all N are handled every reader ends.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::source::BLOCK;

pub struct Budget {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    /// Events neither reserved nor handled; `None`: no limit.
    left: Option<u64>,
    /// Reserved and not yet settled.
    reserved: u64,
    /// Readers waiting for a share, first come first served: a reader whose blocking read
    /// came back empty must not take the last share again ahead of one waiting on
    /// another shard.
    queue: VecDeque<usize>,
}

impl Budget {
    pub fn new(count: Option<u64>) -> Budget {
        Budget {
            state: Mutex::new(State {
                left: count,
                reserved: 0,
                queue: VecDeque::new(),
            }),
            changed: Condvar::new(),
        }
    }

    /// A share of at most `max` (≥ 1) events for reader `who`, waiting while the others
    /// hold all that is left. `None` once every event is handled, or when stopped.
    pub fn reserve(&self, who: usize, max: usize, stop: &dyn Fn() -> bool) -> Option<usize> {
        let mut s = self.lock();
        loop {
            if stop() {
                s.queue.retain(|&w| w != who);
                self.changed.notify_all();
                return None;
            }
            let Some(left) = s.left else {
                return Some(max);
            };
            if left == 0 && s.reserved == 0 {
                return None;
            }
            if left > 0 && s.queue.front().is_none_or(|&w| w == who) {
                if s.queue.front() == Some(&who) {
                    s.queue.pop_front();
                }
                let share = left.min(max as u64);
                s.left = Some(left - share);
                s.reserved += share;
                // What is left may do for the next in line.
                self.changed.notify_all();
                return Some(share as usize);
            }
            if !s.queue.contains(&who) {
                s.queue.push_back(who);
            }
            // Bounded, to look at the stop flag, which is not this lock's to signal.
            s = match self.changed.wait_timeout(s, BLOCK) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// A share of `share` events is done with: `handled` of them were handled, the
    /// rest may be fetched again.
    pub fn settle(&self, share: usize, handled: usize) {
        let mut s = self.lock();
        // Without a limit nothing was counted.
        if let Some(left) = s.left {
            s.left = Some(left + share.saturating_sub(handled) as u64);
            s.reserved -= share as u64;
            self.changed.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere: every update is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_never_exceed_the_count_and_unhandled_ones_come_back() {
        let b = Budget::new(Some(5));
        let go = || false;
        assert_eq!(b.reserve(0, 3, &go), Some(3));
        assert_eq!(b.reserve(1, 3, &go), Some(2));
        b.settle(3, 1);
        assert_eq!(b.reserve(0, 10, &go), Some(2), "two of the three came back");
        b.settle(2, 2);
        b.settle(2, 2);
        assert_eq!(b.reserve(1, 10, &go), None, "all five handled");
    }

    #[test]
    fn no_count_means_no_limit_and_stop_ends_a_wait() {
        let unlimited = Budget::new(None);
        assert_eq!(unlimited.reserve(0, 1000, &|| false), Some(1000));
        unlimited.settle(1000, 10);
        assert_eq!(unlimited.reserve(0, 1000, &|| false), Some(1000));
        let b = Budget::new(Some(1));
        assert_eq!(b.reserve(0, 1, &|| false), Some(1));
        // Reader 1 would wait for reader 0's share; stopping ends the wait.
        assert_eq!(b.reserve(1, 1, &|| true), None);
    }

    #[test]
    fn a_waiting_reader_goes_before_the_one_that_gave_its_share_back() {
        let b = std::sync::Arc::new(Budget::new(Some(1)));
        assert_eq!(b.reserve(0, 1, &|| false), Some(1));
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || b.reserve(1, 1, &|| false))
        };
        // Reader 1 is queued once it waits; then reader 0 gives its share back.
        while b.lock().queue.is_empty() {
            std::thread::yield_now();
        }
        b.settle(1, 0);
        let stop_at = std::time::Instant::now() + 2 * BLOCK;
        assert_eq!(
            b.reserve(0, 1, &|| std::time::Instant::now() > stop_at),
            None,
            "reader 0 waits behind reader 1, which holds the share"
        );
        assert_eq!(waiter.join().unwrap(), Some(1));
    }
}
