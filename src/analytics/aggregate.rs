//! The live analytics writer. It runs beside the shipper (inside `serve`), is fed every
//! batch Redis acknowledged through the shipper's tap, counts the batches in memory and
//! writes the counts of each [`FLUSH_EVERY`] with one pipelined, atomic round trip. The
//! HTTP handler never sees it.
//!
//! Counts are increments (`HINCRBY`, `INCRBY`, `PFADD`), so several collectors writing
//! under the same prefix add up.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use tokio::sync::mpsc;

use super::fields::fields;
use super::keys::{day_of, minute_of, Keys, DAY, MINUTE};
use crate::config::AnalyticsConfig;
use crate::conn::Link;
use crate::log::Batch;
use crate::record::Record;

/// How long the batches shipped meanwhile are counted together before one write. A
/// write per shipped batch cost Redis and the runtime a round trip every millisecond or
/// so under load (~0.5 µs of CPU per hit); the dashboard and `top` refresh every second.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Counts by some key, added to without an allocation when the key is already there.
type Tally = HashMap<String, u64>;

fn tally(t: &mut Tally, key: Cow<'_, str>) {
    match t.get_mut(key.as_ref()) {
        Some(n) => *n += 1,
        None => {
            t.insert(key.into_owned(), 1);
        }
    }
}

/// The counts of one list key for some records.
#[derive(Debug, Default, PartialEq)]
pub struct KeyCounts {
    pub total: u64,
    pub malformed: u64,
    pub seconds: HashMap<i64, u64>,
    /// (param index in the config, minute) → value → events.
    pub values: HashMap<(usize, i64), Tally>,
    /// minute → visitors seen.
    pub visitors: HashMap<i64, HashSet<String>>,
    /// minute → variant → events, and goal events.
    pub ab_hits: HashMap<i64, Tally>,
    pub ab_goals: HashMap<i64, Tally>,
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
        for (name, value) in fields(record.args) {
            if let Some(i) = config.params.iter().position(|p| *p == name) {
                tally(c.values.entry((i, minute)).or_default(), value.clone());
            }
            if !visitor_seen && !config.visitor.is_empty() && name == config.visitor {
                visitor_seen = true;
                // `-` is a template's missing value ($visitor of an opted-out hit):
                // nobody in particular, not one visitor.
                if !value.is_empty() && value != "-" {
                    let seen = c.visitors.entry(minute).or_default();
                    if !seen.contains(value.as_ref()) {
                        seen.insert(value.clone().into_owned());
                    }
                }
            }
            if let Some((gp, gv)) = goal {
                is_goal |= name == gp && value == gv;
            }
            if variant.is_none() && !config.ab_param.is_empty() && name == config.ab_param {
                variant = Some(value);
            }
        }
        if let Some(v) = variant {
            if is_goal {
                tally(c.ab_goals.entry(minute).or_default(), v.clone());
            }
            tally(c.ab_hits.entry(minute).or_default(), v);
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
            for (&(param, minute), values) in &c.values {
                let key = keys.values(&config.params[param], minute);
                for (value, &n) in values {
                    p.hincr(&key, value, n).ignore();
                }
                expire.insert(key, keep(minute, MINUTE, config.minute_retention));
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
            for (&minute, variants) in &c.ab_hits {
                let key = keys.ab_hits(minute);
                for (variant, &n) in variants {
                    p.hincr(&key, variant, n).ignore();
                }
                expire.insert(key, keep(minute, MINUTE, config.minute_retention));
            }
            for (&minute, variants) in &c.ab_goals {
                let key = keys.ab_goals(minute);
                for (variant, &n) in variants {
                    p.hincr(&key, variant, n).ignore();
                }
                expire.insert(key, keep(minute, MINUTE, config.minute_retention));
            }
            for (key, at) in expire {
                p.cmd("EXPIREAT").arg(key).arg(at).ignore();
            }
        }
        pipes.push(p);
        pipes
    }
}

/// Counts what arrives on `batches` into Redis until the channel closes, one write per
/// [`FLUSH_EVERY`] while batches come (none while idle). A write that fails (Redis gone
/// between the shipper's write and ours) skips its batches, counted: analytics are
/// best-effort, the events themselves are safe in the list.
///
/// Why it takes the queue every few milliseconds ([`Gather`]) rather than each batch as
/// it comes: it runs on a thread of its own (see [`super::start`]), and a receiver
/// waiting on the channel would be woken across threads for every batch, thousands a
/// second at a few thousand hits a second, each wake-up costing more CPU than counting
/// the batch. Parked on a timer instead, it is not woken by a send; only the first batch
/// after a quiet spell wakes it.
pub async fn run(link: Link, config: AnalyticsConfig, mut batches: mpsc::Receiver<Arc<Batch>>) {
    let mut writer = Writer {
        tagged: link.target().is_cluster(),
        link,
        said_refused: false,
    };
    let mut taken = Vec::new();
    while let Some(first) = batches.recv().await {
        let mut counts = Counts::default();
        counts.add_batch(&config, &first);
        let mut merged = 1;
        let due = tokio::time::Instant::now() + FLUSH_EVERY;
        let mut every = Gather::MIN;
        let open = loop {
            tokio::time::sleep_until(due.min(tokio::time::Instant::now() + every)).await;
            let open = gather(&mut batches, &mut taken);
            every = Gather::next(every, taken.len());
            for b in taken.drain(..) {
                counts.add_batch(&config, &b);
                merged += 1;
            }
            if !open || tokio::time::Instant::now() >= due {
                break open;
            }
        };
        writer.write(&config, &counts, merged).await;
        if !open {
            return;
        }
    }
}

/// How long batches queue between two looks at the channel while they come: long enough
/// that a look finds about [`Gather::AIM`] of them (few wake-ups when batches are few,
/// which under load they are: they grow), short enough that the queue
/// (`analytics.queue_batches`, 64) never fills: at the most the shipper sends, ~6,000
/// batches/s (small batches at ~10,000 hits/s; past that they grow), [`Gather::MAX`]
/// queues 48.
struct Gather;

impl Gather {
    const MIN: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(8);
    const AIM: u32 = 16;

    fn next(every: Duration, taken: usize) -> Duration {
        let taken = u32::try_from(taken).unwrap_or(u32::MAX).max(1);
        (every * Self::AIM / taken).clamp(Self::MIN, Self::MAX)
    }
}

/// Moves every queued batch into `into`; false once the shipper's end is gone.
fn gather(batches: &mut mpsc::Receiver<Arc<Batch>>, into: &mut Vec<Arc<Batch>>) -> bool {
    loop {
        match batches.try_recv() {
            Ok(b) => into.push(b),
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
}

/// Writes counts to Redis, and says once when Redis refuses them.
struct Writer {
    link: Link,
    tagged: bool,
    said_refused: bool,
}

impl Writer {
    async fn write(&mut self, config: &AnalyticsConfig, counts: &Counts, batches: u64) {
        let events: u64 = counts.keys.values().map(|c| c.total).sum();
        let malformed: u64 = counts.keys.values().map(|c| c.malformed).sum();
        // The link says once when Redis goes and comes back; a refusal is said here.
        let mut result = Ok(());
        for pipe in counts.commands(config, self.tagged) {
            let conn = match self.link.get().await {
                Ok(c) => c,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if let Err(e) = pipe.query_async::<()>(conn).await {
                self.link.failed(&e);
                result = Err(e);
                break;
            }
        }
        match result {
            Ok(()) => {
                counter!("pixelpipe_analytics_events_total").increment(events);
                counter!("pixelpipe_analytics_malformed_total").increment(malformed);
                self.said_refused = false;
            }
            Err(e) => {
                counter!("pixelpipe_analytics_dropped_batches_total", "reason" => "redis")
                    .increment(batches);
                if !crate::conn::is_connection_error(&e) && !self.said_refused {
                    tracing::warn!(error = %e, "analytics: Redis refused the counts; skipping batches (the events themselves are shipped)");
                    self.said_refused = true;
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

    /// The look at the queue comes sooner as batches come faster, later as they thin
    /// out, within its bounds.
    #[test]
    fn gathering_follows_the_batch_rate() {
        let ms = Duration::from_millis;
        assert_eq!(Gather::next(ms(4), 16), ms(4), "on aim");
        assert_eq!(
            Gather::next(ms(4), 32),
            ms(2),
            "twice as many: twice as often"
        );
        assert_eq!(Gather::next(ms(2), 4), ms(8), "a quarter: four times later");
        assert_eq!(
            Gather::next(ms(1), 0),
            Gather::MAX,
            "none: the longest wait"
        );
        assert_eq!(Gather::next(ms(8), 1_000_000), Gather::MIN);
        // The longest wait at the most batches the shipper sends (~6,000/s) fits the
        // default queue.
        let default = AnalyticsConfig::default().queue_batches as u128;
        assert!(6_000 * Gather::MAX.as_millis() / 1000 < default);
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
        assert_eq!(k.values[&(0, 120)]["b c"], 1);
        assert_eq!(k.values[&(1, 120)]["B"], 2);
        assert_eq!(k.visitors[&120].len(), 2);
        assert_eq!(k.visitors[&60].len(), 1);
        assert_eq!(k.ab_hits[&120]["B"], 2);
        assert_eq!(k.ab_goals[&120]["B"], 1);
        assert!(!k.ab_goals[&120].contains_key("A"));
    }
}
