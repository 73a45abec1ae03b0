//! A token bucket per client address, in a table of fixed size: memory is bounded
//! whatever the number of addresses.
//!
//! Each address hashes (with a per-process random key, so nobody can aim at a slot) to
//! two slots of its shard. A new address takes an empty slot or the one of the two whose
//! bucket is fullest — forgetting a full bucket loses nothing, so the addresses being
//! limited are the last ones evicted. IPv6 addresses count per /64, what one host gets.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: u128,
    tokens: f64,
    /// Seconds since the limiter's start.
    at: f64,
}

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    start: Instant,
    hasher: RandomState,
    shards: Vec<Mutex<Vec<Option<Slot>>>>,
    /// `pixelpipe_rate_limit_addresses`: addresses tracked now.
    tracked: metrics::Gauge,
}

impl RateLimiter {
    /// `rate` per second, `burst` at once, at most `max_addresses` tracked.
    pub fn new(rate: f64, burst: u32, max_addresses: usize) -> Self {
        let per_shard = max_addresses.div_ceil(SHARDS).max(2);
        RateLimiter {
            rate,
            burst: f64::from(burst),
            start: Instant::now(),
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(vec![None; per_shard]))
                .collect(),
            tracked: metrics::gauge!("pixelpipe_rate_limit_addresses"),
        }
    }

    /// Takes a token for `addr`; when there is none, how long until there is.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = key(addr);
        let hash = self.hasher.hash_one(key);
        let t = now.saturating_duration_since(self.start).as_secs_f64();
        let mut shard = self.shards[(hash as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = shard.len();
        // Two different slots, so a newcomer can always spare a limited address.
        let a = ((hash >> 8) as usize) % n;
        let b = (a + 1 + ((hash >> 36) as usize) % (n - 1)) % n;
        let i = if shard[a].is_some_and(|s| s.key == key) {
            a
        } else if shard[b].is_some_and(|s| s.key == key) {
            b
        } else {
            // A new address: the emptier choice is the fuller bucket (or no bucket).
            let level = |i: usize| shard[i].map_or(f64::INFINITY, |s| self.refill(s, t));
            let i = if level(b) > level(a) { b } else { a };
            if shard[i].is_none() {
                self.tracked.increment(1.0);
            }
            shard[i] = Some(Slot {
                key,
                tokens: self.burst,
                at: t,
            });
            i
        };
        let slot = shard[i]
            .as_mut()
            .expect("the slot was just found or filled");
        slot.tokens = self.refill(*slot, t);
        slot.at = t;
        // A hair under one token is one: seconds as floats do not add up exactly.
        if slot.tokens >= 1.0 - 1e-9 {
            slot.tokens = (slot.tokens - 1.0).max(0.0);
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - slot.tokens) / self.rate))
        }
    }

    fn refill(&self, s: Slot, t: f64) -> f64 {
        (s.tokens + (t - s.at).max(0.0) * self.rate).min(self.burst)
    }

    /// Addresses currently tracked (at most `max_addresses`, rounded up per shard).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .flatten()
                    .count()
            })
            .sum()
    }

    /// The most addresses the table can hold.
    pub fn capacity(&self) -> usize {
        self.shards.len()
            * self.shards[0]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len()
    }
}

/// IPv4 as the mapped IPv6 address; IPv6 cut to its /64.
fn key(addr: IpAddr) -> u128 {
    match addr.to_canonical() {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a) & (u128::MAX << 64),
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_rate() {
        let l = RateLimiter::new(2.0, 3, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip("203.0.113.1"), t0).is_ok());
        }
        let wait = l.check(ip("203.0.113.1"), t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert_eq!(retry_after_secs(wait), 1);
        // Another address is not affected.
        assert!(l.check(ip("203.0.113.2"), t0).is_ok());
        // Half a second later, one more token.
        let t1 = t0 + Duration::from_millis(500);
        assert!(l.check(ip("203.0.113.1"), t1).is_ok());
        assert!(l.check(ip("203.0.113.1"), t1).is_err());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let l = RateLimiter::new(1.0, 1, 100);
        let t = Instant::now();
        assert!(l.check(ip("2001:db8:1:2::1"), t).is_ok());
        assert!(l.check(ip("2001:db8:1:2::ffff"), t).is_err());
        assert!(l.check(ip("2001:db8:1:3::1"), t).is_ok());
    }

    #[test]
    fn memory_is_bounded_and_limited_addresses_stay() {
        let l = RateLimiter::new(1.0, 2, 1_000);
        let t = Instant::now();
        let hammer = ip("198.51.100.1");
        assert!(l.check(hammer, t).is_ok());
        assert!(l.check(hammer, t).is_ok());
        assert!(l.check(hammer, t).is_err());
        for i in 0..100_000u32 {
            let a = IpAddr::V4((0x0a00_0000 + i).into());
            assert!(l.check(a, t).is_ok());
        }
        assert!(l.tracked() <= l.capacity());
        assert!(l.capacity() <= 1_008);
        // Each newcomer spent one of its two tokens, so an empty bucket is never the
        // fullest of two: the limited address was not forgotten.
        assert!(l.check(hammer, t).is_err());
    }
}
