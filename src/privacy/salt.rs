//! The daily salt of the cookieless visitor id.
//!
//! Every collector writing to one Redis must hash with the same salt on the same day, and
//! no salt may outlive 48 hours anywhere. So the salt of UTC day D lives only in memory
//! and in Redis under `{prefix}D`, created by whichever collector comes first with
//! `SET … NX EX` (the others read the winner's), expiring at 01:00 UTC on D+1. Day D's
//! salt is fetched from 23:00 on D-1, so the switch at midnight needs no round trip: it
//! exists for at most 26 hours. Memory drops it at the end of its day.
//!
//! When Redis cannot be reached, a collector makes a salt of its own for the day (visitor
//! ids stay unlinkable, but the same visitor seen by two collectors counts twice) and
//! keeps trying; once Redis answers, it offers its salt (`NX`) and adopts whatever Redis
//! holds.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: u64 = 86_400;
/// Tomorrow's salt is fetched this long before midnight.
const FETCH_AHEAD: u64 = 3_600;
/// A salt stays in Redis this long after its day ended (clock skew between collectors).
const GRACE: u64 = 3_600;
const RETRY: Duration = Duration::from_secs(10);

/// Days since the Unix epoch, UTC.
pub fn day_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / DAY)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DaySalt {
    day: u64,
    key: [u8; 16],
    /// Agreed with Redis (false: this collector's own, until Redis answers).
    shared: bool,
}

/// The salts in memory: today's and, late in the day, tomorrow's.
#[derive(Debug, Default)]
pub struct SaltBook {
    slots: RwLock<[Option<DaySalt>; 2]>,
}

impl SaltBook {
    /// The salt of `day`, if this collector has it.
    pub fn get(&self, day: u64) -> Option<[u8; 16]> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.iter().flatten().find(|s| s.day == day).map(|s| s.key)
    }

    fn entry(&self, day: u64) -> Option<DaySalt> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.iter().flatten().find(|s| s.day == day).copied()
    }

    fn put(&self, salt: DaySalt) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let i = slots
            .iter()
            .position(|s| s.is_some_and(|s| s.day == salt.day))
            .or_else(|| slots.iter().position(Option::is_none))
            // Both taken by other days: replace the older.
            .unwrap_or_else(|| {
                let day = |i: usize| slots[i].map_or(0, |s| s.day);
                usize::from(day(1) < day(0))
            });
        slots[i] = Some(salt);
    }

    /// Drops every salt of a day before `day`.
    fn forget_before(&self, day: u64) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        for s in slots.iter_mut() {
            if s.is_some_and(|s| s.day < day) {
                *s = None;
            }
        }
    }

    /// A book holding one salt, for tests and benchmarks of the visitor id.
    pub fn with(day: u64, key: [u8; 16]) -> SaltBook {
        let book = SaltBook::default();
        book.put(DaySalt {
            day,
            key,
            shared: true,
        });
        book
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SaltError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer in time")]
    Timeout,
    #[error("the salt in redis is not 32 hex digits")]
    Malformed,
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// Keeps the [`SaltBook`] filled: the task behind `$visitor`.
pub struct SaltKeeper {
    book: Arc<SaltBook>,
    redis: crate::conn::RedisTarget,
    prefix: String,
    timeout: Duration,
}

impl SaltKeeper {
    pub fn new(
        book: Arc<SaltBook>,
        redis: crate::conn::RedisTarget,
        prefix: String,
        timeout: Duration,
    ) -> Self {
        SaltKeeper {
            book,
            redis,
            prefix,
            timeout,
        }
    }

    /// Makes sure today's salt exists (asking Redis first), then runs until `shutdown`.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            let wait = self.tick(SystemTime::now()).await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// One round: forget past salts, get today's (and tomorrow's, late in the day).
    /// Returns how long to sleep before the next round.
    pub async fn tick(&self, now: SystemTime) -> Duration {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let today = secs / DAY;
        self.book.forget_before(today);
        let into_day = secs % DAY;
        let mut days = vec![today];
        if into_day >= DAY - FETCH_AHEAD {
            days.push(today + 1);
        }
        let mut all_shared = true;
        for day in days {
            all_shared &= self.ensure(day, secs).await;
        }
        let next_event = if into_day >= DAY - FETCH_AHEAD {
            DAY - into_day
        } else {
            DAY - FETCH_AHEAD - into_day
        };
        let next = Duration::from_secs(next_event.max(1));
        if all_shared {
            next
        } else {
            next.min(RETRY)
        }
    }

    /// Gets `day`'s salt into the book; true when it is the one Redis holds.
    async fn ensure(&self, day: u64, now_secs: u64) -> bool {
        let have = self.book.entry(day);
        if have.is_some_and(|s| s.shared) {
            return true;
        }
        let offer = match have {
            Some(s) => s.key,
            None => match random_key() {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!(error = %e, "cannot make a visitor salt: $visitor is `-`");
                    return false;
                }
            },
        };
        let expires_in = ((day + 1) * DAY + GRACE).saturating_sub(now_secs).max(1);
        match tokio::time::timeout(self.timeout, self.agree(day, offer, expires_in)).await {
            Ok(Ok(key)) => {
                if have.is_some() {
                    tracing::info!(day, "visitor salt: now the one shared through Redis");
                }
                self.book.put(DaySalt {
                    day,
                    key,
                    shared: true,
                });
                true
            }
            failed => {
                if have.is_none() {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => SaltError::Timeout.to_string(),
                    };
                    tracing::warn!(day, %error, "visitor salt: Redis unreachable, using one of this collector's own until it answers");
                    self.book.put(DaySalt {
                        day,
                        key: offer,
                        shared: false,
                    });
                }
                false
            }
        }
    }

    /// `SET key offer NX EX …` then `GET key`: the salt everybody uses for `day`.
    async fn agree(
        &self,
        day: u64,
        offer: [u8; 16],
        expires_in: u64,
    ) -> Result<[u8; 16], SaltError> {
        // One key, one slot: the same on a single server and on a cluster.
        let mut conn =
            crate::conn::RedisConn::connect(&self.redis, crate::conn::Timeouts::new(self.timeout))
                .await?;
        let key = format!("{}{}", self.prefix, day_name(day));
        let (held,): (Option<String>,) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(hex(&offer))
            .arg("NX")
            .arg("EX")
            .arg(expires_in)
            .ignore()
            .cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        held.as_deref().and_then(unhex).ok_or(SaltError::Malformed)
    }
}

/// `2026-11-28`: the day's name in the Redis key.
pub fn day_name(day: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(day * DAY);
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d")
        .to_string()
}

pub fn random_key() -> Result<[u8; 16], SaltError> {
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).map_err(|e| SaltError::Random(e.to_string()))?;
    Ok(key)
}

fn hex(key: &[u8; 16]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != 32 {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, pair) in s.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        key[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_keeps_two_days_and_forgets() {
        let book = SaltBook::default();
        let salt = |day, b| DaySalt {
            day,
            key: [b; 16],
            shared: true,
        };
        book.put(salt(10, 1));
        book.put(salt(11, 2));
        assert_eq!(book.get(10), Some([1; 16]));
        assert_eq!(book.get(11), Some([2; 16]));
        assert_eq!(book.get(12), None);
        book.forget_before(11);
        assert_eq!(book.get(10), None);
        book.put(salt(12, 3));
        assert_eq!(book.get(11), Some([2; 16]));
        assert_eq!(book.get(12), Some([3; 16]));
        // Replacing a day's salt (a local one adopting Redis's) keeps one entry.
        book.put(salt(12, 4));
        assert_eq!(book.get(12), Some([4; 16]));
        assert_eq!(book.get(11), Some([2; 16]));
    }

    #[test]
    fn names_and_hex() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(20_420), "2025-11-28");
        let k = random_key().unwrap();
        assert_eq!(unhex(&hex(&k)), Some(k));
        assert_eq!(unhex("xyz"), None);
        assert_ne!(random_key().unwrap(), k);
    }
}
