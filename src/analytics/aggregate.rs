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
use tokio::sync::mpsc;

use super::keys::{day_of, minute_of, Keys, DAY, MINUTE};
use crate::config::AnalyticsConfig;
use crate::conn::Link;
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
                // `-` is a template's missing value ($visitor of an opted-out hit):
                // nobody in particular, not one visitor.
                if !value.is_empty() && value != "-" {
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
    /// write counts nothing rather than part of a batch). With `tagged` keys (a cluster),
    /// one transaction per list: each list's aggregates share a slot, different lists
    /// do not.
    pub fn commands(&self, config: &AnalyticsConfig, tagged: bool) -> Vec<redis::Pipeline> {
        let mut pipes = Vec::new();
        let mut p = redis::pipe();
        p.atomic();
        let keep = |bucket_start: i64, len: i64, retention: Duration| {
            bucket_start + len + retention.as_secs() as i64
        };
        for (list, c) in &self.keys {
            if tagged && p.cmd_iter().next().is_some() {
                pipes.push(std::mem::take(&mut p));
                p.atomic();
            }
            let keys = Keys::new(&config.prefix, &String::from_utf8_lossy(list), tagged);
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
        pipes.push(p);
        pipes
    }
}

/// Counts what arrives on `batches` into Redis until the channel closes. A batch that
/// cannot be written (Redis gone between the shipper's write and ours) is skipped and
/// counted: analytics are best-effort, the events themselves are safe in the list.
pub async fn run(mut link: Link, config: AnalyticsConfig, mut batches: mpsc::Receiver<Arc<Batch>>) {
    let tagged = link.target().is_cluster();
    let mut said_refused = false;
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
        // The link says once when Redis goes and comes back; a refusal is said here.
        let mut result = Ok(());
        for pipe in counts.commands(&config, tagged) {
            let conn = match link.get().await {
                Ok(c) => c,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if let Err(e) = pipe.query_async::<()>(conn).await {
                link.failed(&e);
                result = Err(e);
                break;
            }
        }
        match result {
            Ok(()) => {
                counter!("pixelpipe_analytics_events_total").increment(events);
                counter!("pixelpipe_analytics_malformed_total").increment(malformed);
                said_refused = false;
            }
            Err(e) => {
                counter!("pixelpipe_analytics_dropped_batches_total", "reason" => "redis")
                    .increment(merged as u64);
                if !crate::conn::is_connection_error(&e) && !said_refused {
                    tracing::warn!(error = %e, "analytics: Redis refused the counts; skipping batches (the events themselves are shipped)");
                    said_refused = true;
                }
            }
        }
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
