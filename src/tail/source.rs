//! Where `tail` gets the events of one list (one shard): popped (the seed's way), moved to
//! a per-consumer processing list (reliable), or only looked at (`--no-remove`).
//!
//! Throughput comes from batching: while the list has events one round trip fetches up to
//! a batch (`RPOP key N`, or a script that moves N atomically); only when it is empty does
//! the source block (`BRPOP`/`BLMOVE`), if asked to. The connection is one server's or a
//! cluster's ([`Endpoint`]); every key a source touches shares the list's hash tag, so on
//! a cluster both scripts (move, acknowledge) run in one slot. A lost
//! connection is re-established (said once, and once when it is back).

use std::time::Duration;

use redis::{ConnectionLike, RedisError, Script};

use super::command::sleep_unless_stopped;
use super::endpoint::Endpoint;
use super::TailError;
use crate::conn::is_connection_error;

/// How long one blocking read waits before the loop looks at its stop flag again.
pub const BLOCK: Duration = Duration::from_secs(1);
/// Waits between tries while Redis (or a slot) is away: doubling, bounded.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Moves up to ARGV[1] of the oldest events of KEYS[1] to the head of KEYS[2], atomically,
/// and returns them oldest first (the processing list keeps the oldest at its tail).
const MOVE: &str = r#"
local v = redis.call('RPOP', KEYS[1], ARGV[1])
if v then redis.call('LPUSH', KEYS[2], unpack(v)) end
return v
"#;

/// Drops the oldest ARGV[1] events (at its tail) from the processing list KEYS[1] and
/// pushes ARGV[2..] to the dead-letter list KEYS[2], atomically. A script, not MULTI: the
/// cluster client sends no transactions, and both keys share the shard's slot.
const ACK: &str = r#"
if #ARGV > 1 then redis.call('LPUSH', KEYS[2], unpack(ARGV, 2)) end
redis.call('LTRIM', KEYS[1], 0, -tonumber(ARGV[1]) - 1)
"#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `RPOP`/`BRPOP`: an event is gone from Redis once fetched (the seed's semantics).
    Pop,
    /// Events move to `processing` and leave it only once handled.
    Reliable { processing: String },
    /// `LRANGE` from the oldest end: nothing is removed; ends at the list's head.
    Peek,
}

pub struct Source {
    endpoint: Endpoint,
    conn: Option<Box<dyn ConnectionLike>>,
    key: String,
    mode: Mode,
    mover: Script,
    acker: Script,
    /// Reliable mode: the processing list may hold events we have not handled (at start,
    /// and after a reconnect, when a move's reply may have been lost).
    recover: bool,
    /// Said that this recovery re-delivers events (once per recovery, not per batch).
    said_recovering: bool,
    /// Peek mode: how many of the oldest events were already returned.
    peeked: usize,
    said_down: bool,
    /// Wait before the next try after a failure.
    backoff: Duration,
    stop: Box<dyn Fn() -> bool>,
}

impl Source {
    pub fn new(endpoint: Endpoint, key: String, mode: Mode, stop: Box<dyn Fn() -> bool>) -> Source {
        Source {
            endpoint,
            conn: None,
            key,
            recover: matches!(mode, Mode::Reliable { .. }),
            said_recovering: false,
            mode,
            mover: Script::new(MOVE),
            acker: Script::new(ACK),
            peeked: 0,
            said_down: false,
            backoff: FIRST_BACKOFF,
            stop,
        }
    }

    /// Up to `max` events, oldest first. Empty when the list is empty and `wait` is false,
    /// or when a blocking read timed out (call again); `None` at the end (peek mode) or
    /// when stopped. With `wait`, an empty list is waited on for one event, up to [`BLOCK`].
    pub fn fetch(&mut self, max: usize, wait: bool) -> Result<Option<Vec<Vec<u8>>>, TailError> {
        let max = max.max(1);
        if !self.ensure_connected()? {
            return Ok(None);
        }
        if let Some(pending) = self.recover(max)? {
            return Ok(Some(pending));
        }
        let key = self.key.clone();
        let got = match self.mode.clone() {
            Mode::Pop => self.with_conn(true, |c| {
                let v: Option<Vec<Vec<u8>>> = redis::cmd("RPOP").arg(&key).arg(max).query(c)?;
                match v {
                    Some(v) if !v.is_empty() => Ok(v),
                    _ if !wait => Ok(Vec::new()),
                    _ => {
                        let one: Option<(Vec<u8>, Vec<u8>)> = redis::cmd("BRPOP")
                            .arg(&key)
                            .arg(BLOCK.as_secs_f64())
                            .query(c)?;
                        Ok(one.map(|(_, v)| vec![v]).unwrap_or_default())
                    }
                }
            })?,
            Mode::Reliable { processing } => {
                let mover = self.mover.clone();
                // Not retried: a lost reply leaves the events in the processing list,
                // which the next fetch recovers first.
                self.with_conn(false, |c| {
                    let v: Option<Vec<Vec<u8>>> =
                        mover.key(&key).key(&processing).arg(max).invoke(c)?;
                    match v {
                        Some(v) if !v.is_empty() => Ok(v),
                        _ if !wait => Ok(Vec::new()),
                        _ => {
                            let one: Option<Vec<u8>> = redis::cmd("BLMOVE")
                                .arg(&key)
                                .arg(&processing)
                                .arg("RIGHT")
                                .arg("LEFT")
                                .arg(BLOCK.as_secs_f64())
                                .query(c)?;
                            Ok(one.into_iter().collect())
                        }
                    }
                })?
            }
            Mode::Peek => {
                let from = -((self.peeked + max) as i64);
                let to = -(self.peeked as i64) - 1;
                let got: Option<Vec<Vec<u8>>> = self.with_conn(true, |c| {
                    redis::cmd("LRANGE").arg(&key).arg(from).arg(to).query(c)
                })?;
                let Some(mut v) = got else { return Ok(None) };
                if v.is_empty() {
                    return Ok(None);
                }
                v.reverse();
                self.peeked += v.len();
                Some(v)
            }
        };
        if (self.stop)() && got.is_none() {
            return Ok(None);
        }
        Ok(Some(got.unwrap_or_default()))
    }

    /// Reliable mode, while recovering: the oldest `max` events of the processing list
    /// (oldest first), which the caller handles and acknowledges before anything new is
    /// moved; the next call gives the next ones. `None` once it holds nothing to recover
    /// (then new events are moved), and when the read failed (the next call tries again).
    fn recover(&mut self, max: usize) -> Result<Option<Vec<Vec<u8>>>, TailError> {
        let Mode::Reliable { processing } = &self.mode else {
            return Ok(None);
        };
        if !self.recover {
            return Ok(None);
        }
        let processing = processing.clone();
        let read = self.with_conn(false, |c| {
            redis::cmd("LRANGE")
                .arg(&processing)
                .arg(-(max as isize))
                .arg(-1)
                .query::<Vec<Vec<u8>>>(c)
        })?;
        let Some(mut oldest) = read else {
            return Ok(Some(Vec::new()));
        };
        if oldest.is_empty() {
            self.recover = false;
            self.said_recovering = false;
            return Ok(None);
        }
        if !self.said_recovering {
            tracing::info!(
                processing = %processing,
                "re-delivering events a previous run took but did not finish"
            );
            self.said_recovering = true;
        }
        oldest.reverse();
        Ok(Some(oldest))
    }

    /// The oldest `n` events handed out are done: drop them from the processing list
    /// and push `dead` (events given up on, oldest first) to the dead-letter list, in
    /// one atomic step.
    pub fn ack(&mut self, n: usize, dead: &[Vec<u8>], dead_letter: &str) -> Result<(), TailError> {
        let processing = match &self.mode {
            Mode::Reliable { processing } => Some(processing.clone()),
            _ => None,
        };
        if n == 0 || (processing.is_none() && dead.is_empty()) {
            return Ok(());
        }
        let acker = self.acker.clone();
        // Retried after a reconnect: the processing list holds only this batch (one in
        // flight), so trimming it again is harmless, and a dead letter pushed twice is
        // better than one lost.
        self.with_conn(true, |c| match &processing {
            Some(processing) => acker
                .key(processing)
                .key(dead_letter)
                .arg(n)
                .arg(dead)
                .invoke::<()>(c),
            None => redis::cmd("LPUSH").arg(dead_letter).arg(dead).query(c),
        })?;
        Ok(())
    }

    /// Connects if need be, retrying with backoff (said once) while Redis is away.
    /// False when stopped meanwhile.
    fn ensure_connected(&mut self) -> Result<bool, TailError> {
        while self.conn.is_none() {
            match self.endpoint.connect() {
                Ok(c) => {
                    self.conn = Some(c);
                    if self.said_down {
                        tracing::info!(key = %self.key, "reconnected to Redis; continuing");
                        self.said_down = false;
                    }
                    // A move whose reply was lost left its events in the processing list.
                    if matches!(self.mode, Mode::Reliable { .. }) {
                        self.recover = true;
                    }
                }
                Err(e) if is_connection_error(&e) => {
                    self.down(&e);
                    if !self.pause() {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Runs `op` on a working connection. When the connection fails, `retry` says whether
    /// to run `op` again once reconnected; `None` when it was not run again (or stopped).
    fn with_conn<T>(
        &mut self,
        retry: bool,
        mut op: impl FnMut(&mut dyn ConnectionLike) -> Result<T, RedisError>,
    ) -> Result<Option<T>, TailError> {
        loop {
            if !self.ensure_connected()? {
                return Ok(None);
            }
            let conn = self.conn.as_mut().expect("connected above");
            match op(conn.as_mut()) {
                Ok(v) => {
                    self.backoff = FIRST_BACKOFF;
                    return Ok(Some(v));
                }
                Err(e) if is_connection_error(&e) => {
                    self.conn = None;
                    self.down(&e);
                    // Also when a new connection fails at once (a slot in migration
                    // answers `ASK` until it is done): no tight reconnect loop.
                    if !self.pause() || !retry {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits before the next try, longer each time (reset by a success). False when
    /// stopped meanwhile.
    fn pause(&mut self) -> bool {
        let wait = self.backoff;
        self.backoff = (wait * 2).min(MAX_BACKOFF);
        sleep_unless_stopped(wait, &*self.stop)
    }

    fn down(&mut self, e: &RedisError) {
        if !self.said_down {
            tracing::warn!(error = %e, key = %self.key, "cannot reach Redis; retrying until it is back");
            self.said_down = true;
        }
    }
}
