//! Reads the aggregates back: one pipelined round trip builds a [`Snapshot`], the one
//! shape that `top`, the dashboard page, its live stream and `/api/…` all show.

use std::collections::HashMap;

use serde::Serialize;

use super::keys::{day_of, minute_of, Keys, MINUTE};
use crate::config::AnalyticsConfig;

/// Seconds of per-second history in a snapshot (the dashboard's chart).
pub const SECONDS: i64 = 300;
/// Minutes of per-minute history in a snapshot.
pub const MINUTES: i64 = 60;
/// Values shown per parameter.
pub const TOP_VALUES: usize = 10;

/// What to read: which list, over how many minutes the top values and A/B are counted.
#[derive(Debug, Clone)]
pub struct Query {
    pub list: String,
    pub window_minutes: i64,
    pub now: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    pub key: String,
    /// Epoch second the snapshot was taken at.
    pub now: i64,
    pub window_minutes: i64,
    /// Events ever counted on this list, and malformed records skipped.
    pub total: u64,
    pub malformed: u64,
    /// Events in the last complete second.
    pub rate_now: u64,
    /// Events per second over the last 60 complete seconds.
    pub rate_minute: f64,
    /// `[epoch second, events]`, oldest first, the last [`SECONDS`] complete seconds.
    pub per_second: Vec<(i64, u64)>,
    /// `[epoch minute start, events]`, oldest first, the last [`MINUTES`] minutes
    /// (the current one partial).
    pub per_minute: Vec<(i64, u64)>,
    pub uniques: Uniques,
    /// Top values of each configured parameter over the window.
    pub top: Vec<TopValues>,
    pub ab: Option<AbTable>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Uniques {
    /// Distinct visitors this minute, in the window, and today (UTC), by HyperLogLog
    /// (standard error 0.81 %).
    pub minute: u64,
    pub window: u64,
    pub today: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopValues {
    pub param: String,
    /// `[value, events]`, most events first.
    pub values: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AbTable {
    pub param: String,
    pub goal: String,
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Variant {
    pub name: String,
    /// Events carrying this variant, goal events included.
    pub hits: u64,
    /// Goal events carrying this variant.
    pub goals: u64,
    /// goals / hits (0 when there were no hits).
    pub conversion: f64,
}

/// Reads a snapshot. `conn` is any async connection (the dashboard's, `top`'s): one
/// pipelined round trip, then the replies read back in the order they were asked for.
pub async fn snapshot<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    config: &AnalyticsConfig,
    q: &Query,
) -> redis::RedisResult<Snapshot> {
    let span = Span::new(q);
    let keys = Keys::new(&config.prefix, &q.list);
    let replies: Vec<redis::Value> = span.ask(&keys, config).query_async(conn).await?;
    let mut replies = Replies(replies.into_iter());
    let total: Option<u64> = replies.next()?;
    let malformed: Option<u64> = replies.next()?;
    let seconds = replies.merged_counts(span.second_hashes.len())?;
    let minutes = replies.merged_counts(span.minute_days.len())?;
    let uniques = Uniques {
        minute: replies.next()?,
        window: replies.next()?,
        today: replies.next()?,
    };
    let mut top = Vec::new();
    for param in &config.params {
        let sum = replies.summed_values(span.window.len())?;
        top.push(TopValues {
            param: param.clone(),
            values: ranked(sum, TOP_VALUES),
        });
    }
    let ab = match config.ab_param.is_empty() {
        true => None,
        false => Some(replies.ab_table(span.window.len(), config)?),
    };
    let per_second: Vec<(i64, u64)> = (span.first_second..span.now)
        .map(|s| (s, seconds.get(&s).copied().unwrap_or(0)))
        .collect();
    let last_minute: u64 = per_second.iter().rev().take(60).map(|(_, n)| n).sum();
    Ok(Snapshot {
        key: q.list.clone(),
        now: span.now,
        window_minutes: q.window_minutes,
        total: total.unwrap_or(0),
        malformed: malformed.unwrap_or(0),
        rate_now: per_second.last().map(|(_, n)| *n).unwrap_or(0),
        rate_minute: last_minute as f64 / 60.0,
        per_second,
        per_minute: (0..MINUTES)
            .map(|i| span.first_minute + i * MINUTE)
            .map(|m| (m, minutes.get(&m).copied().unwrap_or(0)))
            .collect(),
        uniques,
        top,
        ab,
    })
}

/// The time a snapshot covers, and the hashes that hold it.
struct Span {
    now: i64,
    this_minute: i64,
    first_second: i64,
    first_minute: i64,
    /// The minutes of the window, newest first.
    window: Vec<i64>,
    /// The per-second hashes (one per minute) that hold the last [`SECONDS`].
    second_hashes: Vec<i64>,
    /// The per-minute hashes (one per day) that hold the last [`MINUTES`].
    minute_days: Vec<i64>,
}

impl Span {
    fn new(q: &Query) -> Span {
        let now = q.now;
        let this_minute = minute_of(now);
        let first_second = now - SECONDS;
        let first_minute = this_minute - (MINUTES - 1) * MINUTE;
        let mut minute_days = vec![day_of(first_minute)];
        if day_of(this_minute) != minute_days[0] {
            minute_days.push(day_of(this_minute));
        }
        Span {
            now,
            this_minute,
            first_second,
            first_minute,
            window: (0..q.window_minutes)
                .map(|i| this_minute - i * MINUTE)
                .collect(),
            second_hashes: (minute_of(first_second)..=this_minute)
                .step_by(MINUTE as usize)
                .collect(),
            minute_days,
        }
    }

    /// The commands of one snapshot, in the order [`snapshot`] reads their replies.
    fn ask(&self, keys: &Keys, config: &AnalyticsConfig) -> redis::Pipeline {
        let mut p = redis::pipe();
        p.get(keys.total()).get(keys.malformed());
        for m in &self.second_hashes {
            p.hgetall(keys.seconds(*m));
        }
        for d in &self.minute_days {
            p.hgetall(keys.minutes(*d));
        }
        p.cmd("PFCOUNT").arg(keys.uniques_minute(self.this_minute));
        let window_uniques: Vec<String> = self
            .window
            .iter()
            .map(|m| keys.uniques_minute(*m))
            .collect();
        p.cmd("PFCOUNT").arg(window_uniques);
        p.cmd("PFCOUNT").arg(keys.uniques_day(day_of(self.now)));
        for param in &config.params {
            for m in &self.window {
                p.hgetall(keys.values(param, *m));
            }
        }
        if !config.ab_param.is_empty() {
            for m in &self.window {
                p.hgetall(keys.ab_hits(*m));
                p.hgetall(keys.ab_goals(*m));
            }
        }
        p
    }
}

/// The pipeline's replies, taken in order.
struct Replies(std::vec::IntoIter<redis::Value>);

impl Replies {
    fn next<T: redis::FromRedisValue>(&mut self) -> redis::RedisResult<T> {
        Ok(redis::from_redis_value(
            self.0.next().unwrap_or(redis::Value::Nil),
        )?)
    }

    /// `n` hashes of counts merged into one (their keys do not overlap).
    fn merged_counts(&mut self, n: usize) -> redis::RedisResult<HashMap<i64, u64>> {
        let mut all = HashMap::new();
        for _ in 0..n {
            let h: HashMap<i64, u64> = self.next()?;
            all.extend(h);
        }
        Ok(all)
    }

    /// `n` hashes of value → count, added up.
    fn summed_values(&mut self, n: usize) -> redis::RedisResult<HashMap<String, u64>> {
        let mut sum: HashMap<String, u64> = HashMap::new();
        for _ in 0..n {
            add_into(&mut sum, self.next()?);
        }
        Ok(sum)
    }

    /// `minutes` pairs of (hits, goals) hashes → the A/B table, variants by name.
    fn ab_table(
        &mut self,
        minutes: usize,
        config: &AnalyticsConfig,
    ) -> redis::RedisResult<AbTable> {
        let mut hits: HashMap<String, u64> = HashMap::new();
        let mut goals: HashMap<String, u64> = HashMap::new();
        for _ in 0..minutes {
            add_into(&mut hits, self.next()?);
            add_into(&mut goals, self.next()?);
        }
        let mut variants: Vec<Variant> = hits
            .into_iter()
            .map(|(name, hits)| {
                let goals = goals.get(&name).copied().unwrap_or(0);
                Variant::new(name, hits, goals)
            })
            .collect();
        variants.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(AbTable {
            param: config.ab_param.clone(),
            goal: config
                .goal
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            variants,
        })
    }
}

fn add_into(sum: &mut HashMap<String, u64>, counts: HashMap<String, u64>) {
    for (v, n) in counts {
        *sum.entry(v).or_default() += n;
    }
}

impl Variant {
    fn new(name: String, hits: u64, goals: u64) -> Variant {
        Variant {
            conversion: if hits == 0 {
                0.0
            } else {
                goals as f64 / hits as f64
            },
            name,
            hits,
            goals,
        }
    }
}

/// Most events first, ties by value, at most `n`.
fn ranked(counts: HashMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// The current epoch second.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
