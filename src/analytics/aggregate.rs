//! The live analytics writer. It runs beside the shipper (inside `serve`), is fed every
//! batch Redis acknowledged through the shipper's tap, counts the batch in memory and
//! writes the counts with one pipelined, atomic round trip. The HTTP handler never sees it.
//!
//! Counts are increments (`HINCRBY`, `INCRBY`, `PFADD`), so several collectors writing
//! under the same prefix add up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::sync::mpsc;

use super::keys::{day_of, minute_of, Keys, DAY, MINUTE};
use crate::config::AnalyticsConfig;
use crate::log::Batch;
use crate::record::Record;

/// Most batches merged into one Redis round trip when the aggregator is behind.
const MERGE_BATCHES: usize = 16;

/// The counts of one list key for some records.
#[derive(Debug, Default, PartialEq)]
pub struct KeyCounts {
    pub total: u64,
    pub malformed: u64,
    pub seconds: HashMap<i64, u64>,
    /// (param index in the config, minute, value) → events.
    pub values: HashMap<(usize, i64, String), u64>,
    /// minute → visitors seen.
    pub visitors: HashMap<i64, HashSet<String>>,
    /// (minute, variant) → events, and goal events.
    pub ab_hits: HashMap<(i64, String), u64>,
    pub ab_goals: HashMap<(i64, String), u64>,
}

/// Counts by list key.
#[derive(Debug, Default)]
pub struct Counts {
    pub keys: HashMap<Vec<u8>, KeyCounts>,
}

impl Counts {
    /// Counts one record pushed on `list`.
    pub fn add(&mut self, config: &AnalyticsConfig, list: &[u8], record: &[u8]) {
        let c = match self.keys.get_mut(list) {
            Some(c) => c,
            None => self.keys.entry(list.to_vec()).or_default(),
        };
        let record = Record::parse(record);
        let Some(second) = record.epoch_second() else {
            c.malformed += 1;
            return;
        };
        c.total += 1;
        *c.seconds.entry(second).or_default() += 1;
        let minute = minute_of(second);
        let goal = config.goal_pair();
        let mut variant = None;
        let mut is_goal = false;
        let mut visitor_seen = false;
        for (name, value) in record.fields() {
            if let Some(i) = config.params.iter().position(|p| *p == name) {
                *c.values.entry((i, minute, value.to_string())).or_default() += 1;
            }
            if !visitor_seen && !config.visitor.is_empty() && name == config.visitor {
                visitor_seen = true;
                if !value.is_empty() {
                    c.visitors
                        .entry(minute)
                        .or_default()
                        .insert(value.to_string());
                }
            }
            if variant.is_none() && !config.ab_param.is_empty() && name == config.ab_param {
                variant = Some(value.to_string());
            }
            if let Some((gp, gv)) = goal {
                is_goal |= name == gp && value == gv;
            }
        }
        if let Some(v) = variant {
            if is_goal {
                *c.ab_goals.entry((minute, v.clone())).or_default() += 1;
            }
            *c.ab_hits.entry((minute, v)).or_default() += 1;
        }
    }

    pub fn add_batch(&mut self, config: &AnalyticsConfig, batch: &Batch) {
        for e in batch.entries() {
            self.add(config, e.key, e.value);
        }
    }

    /// The Redis commands that add these counts, as one `MULTI`/`EXEC` (so a failed
    /// write counts nothing rather than part of a batch).
    pub fn commands(&self, config: &AnalyticsConfig) -> redis::Pipeline {
        let mut p = redis::pipe();
        p.atomic();
        let keep = |bucket_start: i64, len: i64, retention: Duration| {
            bucket_start + len + retention.as_secs() as i64
        };
        for (list, c) in &self.keys {
            let keys = Keys::new(&config.prefix, &String::from_utf8_lossy(list));
            if c.total > 0 {
                p.incr(keys.total(), c.total).ignore();
            }
            if c.malformed > 0 {
                p.incr(keys.malformed(), c.malformed).ignore();
            }
            let mut minutes: HashMap<i64, u64> = HashMap::new();
            let mut expire: HashMap<String, i64> = HashMap::new();
            for (&second, &n) in &c.seconds {
                let minute = minute_of(second);
                let key = keys.seconds(minute);
                p.hincr(&key, second, n).ignore();
                expire.insert(key, keep(minute, MINUTE, config.second_retention));
                *minutes.entry(minute).or_default() += n;
            }
            for (&minute, &n) in &minutes {
                let day = day_of(minute);
                let key = keys.minutes(day);
                p.hincr(&key, minute, n).ignore();
                expire.insert(key, keep(day, DAY, config.minute_retention));
            }
            for ((param, minute, value), &n) in &c.values {
                let key = keys.values(&config.params[*param], *minute);
                p.hincr(&key, value, n).ignore();
                expire.insert(key, keep(*minute, MINUTE, config.minute_retention));
            }
            let mut days: HashMap<i64, Vec<&String>> = HashMap::new();
            for (&minute, visitors) in &c.visitors {
                let key = keys.uniques_minute(minute);
                p.cmd("PFADD")
                    .arg(&key)
                    .arg(visitors.iter().collect::<Vec<_>>())
                    .ignore();
                expire.insert(key, keep(minute, MINUTE, config.minute_retention));
                days.entry(day_of(minute)).or_default().extend(visitors);
            }
            for (day, visitors) in days {
                let key = keys.uniques_day(day);
                p.cmd("PFADD").arg(&key).arg(visitors).ignore();
                expire.insert(key, keep(day, DAY, config.day_retention));
            }
            for ((minute, variant), &n) in &c.ab_hits {
                let key = keys.ab_hits(*minute);
                p.hincr(&key, variant, n).ignore();
                expire.insert(key, keep(*minute, MINUTE, config.minute_retention));
            }
            for ((minute, variant), &n) in &c.ab_goals {
                let key = keys.ab_goals(*minute);
                p.hincr(&key, variant, n).ignore();
                expire.insert(key, keep(*minute, MINUTE, config.minute_retention));
            }
            for (key, at) in expire {
                p.cmd("EXPIREAT").arg(key).arg(at).ignore();
            }
        }
        p
    }
}

/// Counts what arrives on `batches` into Redis until the channel closes. A batch that
/// cannot be written (Redis gone between the shipper's write and ours) is skipped and
/// counted: analytics are best-effort, the events themselves are safe in the list.
pub async fn run(
    client: redis::Client,
    config: AnalyticsConfig,
    mut batches: mpsc::Receiver<Arc<Batch>>,
) {
    let conn_config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let mut conn: Option<MultiplexedConnection> = None;
    let mut said_down = false;
    while let Some(first) = batches.recv().await {
        let mut counts = Counts::default();
        counts.add_batch(&config, &first);
        let mut merged = 1;
        while merged < MERGE_BATCHES {
            match batches.try_recv() {
                Ok(b) => counts.add_batch(&config, &b),
                Err(_) => break,
            }
            merged += 1;
        }
        let events: u64 = counts.keys.values().map(|c| c.total).sum();
        let malformed: u64 = counts.keys.values().map(|c| c.malformed).sum();
        if conn.is_none() {
            match client
                .get_multiplexed_async_connection_with_config(&conn_config)
                .await
            {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    skipped(merged, &e, &mut said_down);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match counts.commands(&config).query_async::<()>(c).await {
            Ok(()) => {
                counter!("pixelpipe_analytics_events_total").increment(events);
                counter!("pixelpipe_analytics_malformed_total").increment(malformed);
                if said_down {
                    tracing::info!("analytics: Redis is reachable again");
                    said_down = false;
                }
            }
            Err(e) => {
                conn = None;
                skipped(merged, &e, &mut said_down);
            }
        }
    }
}

fn skipped(batches: usize, e: &redis::RedisError, said_down: &mut bool) {
    counter!("pixelpipe_analytics_dropped_batches_total", "reason" => "redis")
        .increment(batches as u64);
    if !*said_down {
        tracing::warn!(error = %e, "analytics: cannot write to Redis; skipping batches until it is back (the events themselves are shipped)");
        *said_down = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AnalyticsConfig {
        AnalyticsConfig {
            params: vec!["utm_source".into(), "variant".into()],
            visitor: "uid".into(),
            ab_param: "variant".into(),
            goal: Some("event=signup".parse().unwrap()),
            ..AnalyticsConfig::default()
        }
    }

    #[test]
    fn counts_a_batch() {
        let cfg = config();
        let mut c = Counts::default();
        for r in [
            &b"120.5,utm_source=a&variant=A&uid=1"[..],
            b"121.0,utm_source=a&variant=B&uid=2",
            b"121.9,utm_source=b%20c&variant=B&uid=2&event=signup",
            b"60,uid=3",
            b"garbage",
        ] {
            c.add(&cfg, b"pixel", r);
        }
        let k = &c.keys[&b"pixel"[..]];
        assert_eq!(k.total, 4);
        assert_eq!(k.malformed, 1);
        assert_eq!(k.seconds[&121], 2);
        assert_eq!(k.values[&(0, 120, "b c".to_string())], 1);
        assert_eq!(k.values[&(1, 120, "B".to_string())], 2);
        assert_eq!(k.visitors[&120].len(), 2);
        assert_eq!(k.visitors[&60].len(), 1);
        assert_eq!(k.ab_hits[&(120, "B".to_string())], 2);
        assert_eq!(k.ab_goals[&(120, "B".to_string())], 1);
        assert!(!k.ab_goals.contains_key(&(120, "A".to_string())));
    }
}
