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

/// Reads a snapshot. `conn` is any async connection (the dashboard's, `top`'s).
pub async fn snapshot<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    config: &AnalyticsConfig,
    q: &Query,
) -> redis::RedisResult<Snapshot> {
    let keys = Keys::new(&config.prefix, &q.list);
    let now = q.now;
    let this_minute = minute_of(now);
    let first_second = now - SECONDS;
    let first_minute = this_minute - (MINUTES - 1) * MINUTE;
    let window: Vec<i64> = (0..q.window_minutes)
        .map(|i| this_minute - i * MINUTE)
        .collect();

    let mut p = redis::pipe();
    p.get(keys.total()).get(keys.malformed());
    let second_hashes: Vec<i64> = (minute_of(first_second)..=this_minute)
        .step_by(MINUTE as usize)
        .collect();
    for m in &second_hashes {
        p.hgetall(keys.seconds(*m));
    }
    let minute_days: Vec<i64> = {
        let mut d = vec![day_of(first_minute)];
        if day_of(this_minute) != d[0] {
            d.push(day_of(this_minute));
        }
        d
    };
    for d in &minute_days {
        p.hgetall(keys.minutes(*d));
    }
    p.cmd("PFCOUNT").arg(keys.uniques_minute(this_minute));
    p.cmd("PFCOUNT").arg(
        window
            .iter()
            .map(|m| keys.uniques_minute(*m))
            .collect::<Vec<_>>(),
    );
    p.cmd("PFCOUNT").arg(keys.uniques_day(day_of(now)));
    for param in &config.params {
        for m in &window {
            p.hgetall(keys.values(param, *m));
        }
    }
    let ab = !config.ab_param.is_empty();
    if ab {
        for m in &window {
            p.hgetall(keys.ab_hits(*m));
            p.hgetall(keys.ab_goals(*m));
        }
    }
    let replies: Vec<redis::Value> = p.query_async(conn).await?;
    let mut r = replies.into_iter();
    let mut next = || r.next().unwrap_or(redis::Value::Nil);
    let total: Option<u64> = redis::from_redis_value(next())?;
    let malformed: Option<u64> = redis::from_redis_value(next())?;

    let mut seconds: HashMap<i64, u64> = HashMap::new();
    for _ in &second_hashes {
        let h: HashMap<i64, u64> = redis::from_redis_value(next())?;
        seconds.extend(h);
    }
    let mut minutes: HashMap<i64, u64> = HashMap::new();
    for _ in &minute_days {
        let h: HashMap<i64, u64> = redis::from_redis_value(next())?;
        minutes.extend(h);
    }
    let uniques = Uniques {
        minute: redis::from_redis_value(next())?,
        window: redis::from_redis_value(next())?,
        today: redis::from_redis_value(next())?,
    };
    let mut top = Vec::new();
    for param in &config.params {
        let mut sum: HashMap<String, u64> = HashMap::new();
        for _ in &window {
            let h: HashMap<String, u64> = redis::from_redis_value(next())?;
            for (v, n) in h {
                *sum.entry(v).or_default() += n;
            }
        }
        top.push(TopValues {
            param: param.clone(),
            values: ranked(sum, TOP_VALUES),
        });
    }
    let ab = if ab {
        let mut hits: HashMap<String, u64> = HashMap::new();
        let mut goals: HashMap<String, u64> = HashMap::new();
        for _ in &window {
            let h: HashMap<String, u64> = redis::from_redis_value(next())?;
            let g: HashMap<String, u64> = redis::from_redis_value(next())?;
            for (v, n) in h {
                *hits.entry(v).or_default() += n;
            }
            for (v, n) in g {
                *goals.entry(v).or_default() += n;
            }
        }
        let mut variants: Vec<Variant> = hits
            .into_iter()
            .map(|(name, hits)| {
                let goals = goals.get(&name).copied().unwrap_or(0);
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
            })
            .collect();
        variants.sort_by(|a, b| a.name.cmp(&b.name));
        Some(AbTable {
            param: config.ab_param.clone(),
            goal: config.goal.clone(),
            variants,
        })
    } else {
        None
    };

    let per_second: Vec<(i64, u64)> = (first_second..now)
        .map(|s| (s, seconds.get(&s).copied().unwrap_or(0)))
        .collect();
    let last_minute: u64 = per_second.iter().rev().take(60).map(|(_, n)| n).sum();
    Ok(Snapshot {
        key: q.list.clone(),
        now,
        window_minutes: q.window_minutes,
        total: total.unwrap_or(0),
        malformed: malformed.unwrap_or(0),
        rate_now: per_second.last().map(|(_, n)| *n).unwrap_or(0),
        rate_minute: last_minute as f64 / 60.0,
        per_second,
        per_minute: (0..MINUTES)
            .map(|i| first_minute + i * MINUTE)
            .map(|m| (m, minutes.get(&m).copied().unwrap_or(0)))
            .collect(),
        uniques,
        top,
        ab,
    })
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
