//! `pixelpipe tail --stream --group G --consumer C`: reading a Redis Stream (or its shards)
//! with a consumer group, so several consumers share the work and none loses an entry.
//!
//! - The group is created if missing (`XGROUP CREATE … 0 MKSTREAM`: entries shipped before
//!   the first consumer came are read too).
//! - A consumer first re-reads its own pending entries (`XREADGROUP … 0`): what it was
//!   given before a crash and never acknowledged.
//! - Then it reads new entries with `XREADGROUP … BLOCK`, one blocking read per shard at
//!   the same time, each on its own connection (a blocking command holds a connection,
//!   and shards in different slots cannot be read by one command on a cluster).
//! - Every `--claim-idle`, it takes over (`XAUTOCLAIM`) entries another consumer was given
//!   and left idle that long — a consumer that died. An entry delivered more than
//!   `--max-deliveries` times goes to the dead-letter stream instead of being handled
//!   again (it is probably what kills consumers).
//! - `XACK` only once the entry was written out or `--exec` succeeded; given-up entries go
//!   to the dead-letter stream `{stream}:dead` (same slot) in the same transaction.
//!
//! At least once: an entry handled and not yet acknowledged when a consumer dies is
//! handled again (by itself after a restart, or by another after `--claim-idle`).

use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::{RedisError, Value};

use super::sink::{Event, Sink};
use super::Summary;
use super::TailError;
use crate::conn::{is_connection_error, Link, RedisConn, RedisTarget, Timeouts};

/// How long one blocking read waits before the loop looks at its stop flag again.
const BLOCK_MS: u64 = 1000;

/// What `tail --stream` needs besides the shared `tail` flags.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    pub group: String,
    pub consumer: String,
    /// Entries idle this long in another consumer's pending list are claimed.
    pub claim_idle: Duration,
    /// An entry delivered more often than this is dead-lettered.
    pub max_deliveries: u64,
    /// Most entries per read.
    pub fetch: usize,
}

/// One entry: its id, its record (`None` when the entry was trimmed away while pending)
/// and its other fields (`[ship.fields]`), in the order written.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub record: Option<Vec<u8>>,
    pub fields: Vec<(String, Vec<u8>)>,
}

impl Event for Entry {
    fn record(&self) -> &[u8] {
        self.record.as_deref().unwrap_or_default()
    }
    fn entry_fields(&self) -> &[(String, Vec<u8>)] {
        &self.fields
    }
}

/// Where one shard's reader is.
struct Shard {
    key: String,
    conn: Option<RedisConn>,
    /// Re-reading our own pending entries, from after this id; `None` once done.
    pending_from: Option<String>,
    /// `XAUTOCLAIM` cursor, and when it last ran.
    claim_cursor: String,
    claimed_at: Instant,
}

/// Reads `keys` (one stream, or its shards) as `opts.consumer` of `opts.group` into
/// `sink` until stopped or `count` entries were handled.
pub fn run(
    target: &RedisTarget,
    keys: Vec<String>,
    opts: &GroupOptions,
    sink: &mut Sink,
    count: Option<u64>,
    stopped: &dyn Fn() -> bool,
) -> Result<Summary, TailError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TailError::Output)?;
    runtime.block_on(Reader::new(target, keys, opts).run(sink, count, stopped))
}

struct Reader<'a> {
    target: RedisTarget,
    opts: &'a GroupOptions,
    /// Acknowledgements, dead letters, claims: short commands.
    link: Link,
    shards: Vec<Shard>,
    groups_made: bool,
}

type ReadResult = (usize, Option<RedisConn>, Result<Vec<Entry>, RedisError>);

impl<'a> Reader<'a> {
    fn new(target: &RedisTarget, keys: Vec<String>, opts: &'a GroupOptions) -> Reader<'a> {
        let link = Link::new(
            target.clone(),
            Timeouts::new(Duration::from_secs(5)),
            "tail",
        );
        let shards = keys
            .into_iter()
            .map(|key| Shard {
                key,
                conn: None,
                pending_from: Some("0".into()),
                claim_cursor: "0-0".into(),
                claimed_at: Instant::now(),
            })
            .collect();
        Reader {
            target: target.clone(),
            opts,
            link,
            shards,
            groups_made: false,
        }
    }

    async fn run(
        mut self,
        sink: &mut Sink,
        count: Option<u64>,
        stopped: &dyn Fn() -> bool,
    ) -> Result<Summary, TailError> {
        let mut summary = Summary::default();
        let mut backoff = Duration::from_millis(50);
        while !self.groups_made {
            if stopped() {
                return Ok(summary);
            }
            match self.make_groups().await {
                Ok(()) => self.groups_made = true,
                Err(e) if is_connection_error(&e) => {
                    self.link.failed(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut reads: FuturesUnordered<_> = FuturesUnordered::new();
        for i in 0..self.shards.len() {
            reads.push(self.read(i, usize::MAX));
        }
        while let Some((i, conn, result)) = reads.next().await {
            self.shards[i].conn = conn;
            if stopped() || count.is_some_and(|n| summary.events >= n) {
                break;
            }
            let entries = match result {
                Ok(e) => e,
                // A broken connection, a slot that moved, or a blocked read that Redis
                // ended because the key moved away (`UNBLOCKED`): read again from a new
                // connection. The group travels with the key; if it is gone, make it.
                Err(e) if is_connection_error(&e) || e.code().is_some() => {
                    self.shards[i].conn = None;
                    self.link.failed(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    if e.code() == Some("NOGROUP") {
                        if let Err(e) = self.make_groups().await {
                            self.link.failed(&e);
                        }
                    }
                    // A read whose reply was lost left its entries pending for us.
                    self.shards[i].pending_from = Some("0".into());
                    reads.push(self.read(i, usize::MAX));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            backoff = Duration::from_millis(50);
            if !entries.is_empty() {
                let left = count.map_or(usize::MAX, |n| (n - summary.events) as usize);
                self.handle(i, entries, left, sink, &mut summary, stopped)
                    .await?;
            }
            let left = count.map_or(usize::MAX, |n| (n - summary.events) as usize);
            if left == 0 {
                break;
            }
            reads.push(self.read(i, left));
        }
        Ok(summary)
    }

    async fn make_groups(&mut self) -> Result<(), RedisError> {
        let keys: Vec<String> = self.shards.iter().map(|s| s.key.clone()).collect();
        let conn = self.link.get().await?;
        for key in keys {
            let r: Result<(), RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&key)
                .arg(&self.opts.group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(conn)
                .await;
            match r {
                Ok(()) => {
                    tracing::info!(stream = %key, group = %self.opts.group, "created the consumer group")
                }
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next entries of shard `i` for us: our pending ones first, then claimed ones
    /// when a claim is due, else new ones (blocking).
    fn read(
        &mut self,
        i: usize,
        left: usize,
    ) -> impl std::future::Future<Output = ReadResult> + 'static {
        let shard = &mut self.shards[i];
        let key = shard.key.clone();
        let group = self.opts.group.clone();
        let consumer = self.opts.consumer.clone();
        let n = self.opts.fetch.min(left).max(1);
        let claim_due =
            shard.claimed_at.elapsed() >= self.opts.claim_idle.min(Duration::from_secs(5));
        let pending_from = shard.pending_from.clone();
        let claim = claim_due.then(|| {
            shard.claimed_at = Instant::now();
            shard.claim_cursor.clone()
        });
        let claim_idle = self.opts.claim_idle.as_millis() as u64;
        let conn = shard.conn.take();
        let target = self.target.clone();
        async move {
            let mut conn = match conn {
                Some(c) => c,
                None => {
                    let t = Timeouts {
                        connect: Duration::from_secs(5),
                        response: None,
                    };
                    match RedisConn::connect(&target, t).await {
                        Ok(c) => c,
                        Err(e) => return (i, None, Err(e)),
                    }
                }
            };
            let result: Result<Vec<Entry>, RedisError> = async {
                if let Some(from) = pending_from {
                    let v: Value = redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg(&group)
                        .arg(&consumer)
                        .arg("COUNT")
                        .arg(n)
                        .arg("STREAMS")
                        .arg(&key)
                        .arg(&from)
                        .query_async(&mut conn)
                        .await?;
                    let mut entries = read_reply_entries(&v);
                    // Marks the end of the pending phase for the caller.
                    if entries.is_empty() {
                        entries.push(Entry {
                            id: PENDING_DONE.into(),
                            record: None,
                            fields: Vec::new(),
                        });
                    }
                    return Ok(entries);
                }
                if let Some(cursor) = claim {
                    let v: Value = redis::cmd("XAUTOCLAIM")
                        .arg(&key)
                        .arg(&group)
                        .arg(&consumer)
                        .arg(claim_idle)
                        .arg(&cursor)
                        .arg("COUNT")
                        .arg(n)
                        .query_async(&mut conn)
                        .await?;
                    let (next, mut entries) = autoclaim_reply(&v);
                    entries.push(Entry {
                        id: format!("{CLAIM_CURSOR}{next}"),
                        record: None,
                        fields: Vec::new(),
                    });
                    return Ok(entries);
                }
                let v: Value = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(&group)
                    .arg(&consumer)
                    .arg("COUNT")
                    .arg(n)
                    .arg("BLOCK")
                    .arg(BLOCK_MS)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(">")
                    .query_async(&mut conn)
                    .await?;
                Ok(read_reply_entries(&v))
            }
            .await;
            (i, Some(conn), result)
        }
    }

    /// Hands `entries` of shard `i` to the sink, then acknowledges them (dead letters
    /// added in the same transaction).
    async fn handle(
        &mut self,
        i: usize,
        mut entries: Vec<Entry>,
        left: usize,
        sink: &mut Sink,
        summary: &mut Summary,
        stopped: &dyn Fn() -> bool,
    ) -> Result<(), TailError> {
        // Bookkeeping markers from `read`. Entries re-read or claimed may have been
        // delivered many times; new ones were delivered once.
        let mut redelivered = self.shards[i].pending_from.is_some();
        if let Some(last) = entries.last() {
            if last.id == PENDING_DONE {
                self.shards[i].pending_from = None;
                entries.pop();
            } else if let Some(next) = last.id.strip_prefix(CLAIM_CURSOR) {
                self.shards[i].claim_cursor = next.to_owned();
                redelivered = true;
                entries.pop();
                if !entries.is_empty() {
                    tracing::info!(stream = %self.shards[i].key, entries = entries.len(), idle = ?self.opts.claim_idle, "claimed entries another consumer left idle");
                }
            }
        }
        if let (Some(_), Some(last)) = (&self.shards[i].pending_from, entries.last()) {
            self.shards[i].pending_from = Some(last.id.clone());
            tracing::info!(stream = %self.shards[i].key, entries = entries.len(), "re-delivering entries a previous run was given but did not acknowledge");
        }
        entries.truncate(left);
        if entries.is_empty() {
            return Ok(());
        }
        let key = self.shards[i].key.clone();
        let (dead_ids, mut dead) = if redelivered {
            self.over_delivered(&key, &entries).await?
        } else {
            (Vec::new(), Vec::new())
        };
        // Trimmed while pending: nothing to handle, only to acknowledge.
        let live: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.record.is_some() && !dead_ids.contains(&e.id))
            .collect();
        let outcome = sink.handle(&live, &mut summary.malformed, stopped)?;
        // Stopped part-way: only what was handled is acknowledged; the rest stays pending.
        let done = outcome.handled;
        let mut ack: Vec<&str> = live[..done].iter().map(|e| e.id.as_str()).collect();
        ack.extend(
            entries
                .iter()
                .filter(|e| e.record.is_none() || dead_ids.contains(&e.id))
                .map(|e| e.id.as_str()),
        );
        dead.extend(outcome.dead);
        summary.events += done as u64;
        summary.dead += dead.len() as u64;
        self.ack(&key, &ack, &dead).await?;
        Ok(())
    }

    /// Entries of `entries` delivered more than `max_deliveries` times (from `XPENDING`),
    /// and their records.
    async fn over_delivered(
        &mut self,
        key: &str,
        entries: &[Entry],
    ) -> Result<(Vec<String>, Vec<Vec<u8>>), TailError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut xpending = redis::cmd("XPENDING");
        xpending
            .arg(key)
            .arg(&self.opts.group)
            .arg(&first.id)
            .arg(&last.id)
            .arg(entries.len())
            .arg(&self.opts.consumer);
        let result = match self.link.get().await {
            Ok(conn) => xpending.query_async(conn).await,
            Err(e) => Err(e),
        };
        // Not knowing the counts only delays dead-lettering: handle them this time.
        let pending: Vec<(String, String, u64, u64)> = match result {
            Ok(p) => p,
            Err(e) if is_connection_error(&e) => {
                self.link.failed(&e);
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        let ids: Vec<String> = pending
            .into_iter()
            .filter(|(_, _, _, deliveries)| *deliveries > self.opts.max_deliveries)
            .map(|(id, ..)| id)
            .collect();
        let records = entries
            .iter()
            .filter(|e| ids.contains(&e.id))
            .filter_map(|e| e.record.clone())
            .collect::<Vec<_>>();
        if !ids.is_empty() {
            tracing::warn!(stream = %key, entries = ids.len(), max_deliveries = self.opts.max_deliveries, "entries delivered too often; moving them to the dead-letter stream");
        }
        Ok((ids, records))
    }

    /// `XACK` of `ids` and `XADD` of `dead` to `{key}:dead`, in one transaction (one
    /// slot: the dead-letter stream shares the key's hash tag). Retried until Redis
    /// answers: a dead letter added twice is better than one lost.
    async fn ack(&mut self, key: &str, ids: &[&str], dead: &[Vec<u8>]) -> Result<(), TailError> {
        if ids.is_empty() {
            return Ok(());
        }
        let dead_key = format!("{key}:dead");
        let mut tx = redis::pipe();
        tx.atomic();
        for record in dead {
            tx.cmd("XADD")
                .arg(&dead_key)
                .arg("*")
                .arg("r")
                .arg(record)
                .ignore();
        }
        tx.cmd("XACK")
            .arg(key)
            .arg(&self.opts.group)
            .arg(ids)
            .ignore();
        let mut backoff = Duration::from_millis(50);
        loop {
            let conn = match self.link.get().await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            match tx.query_async::<()>(conn).await {
                Ok(()) => return Ok(()),
                Err(e) if is_connection_error(&e) => {
                    self.link.failed(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Marker entries `read` appends for `handle`: the pending phase is over; the next
/// `XAUTOCLAIM` cursor.
const PENDING_DONE: &str = "\0pending-done";
const CLAIM_CURSOR: &str = "\0claim-cursor:";

/// The entries of an `XREADGROUP` reply for one stream (RESP2: `[[key, [[id, fields]…]]]`,
/// nil on timeout; fields nil for an entry trimmed while pending).
pub fn read_reply_entries(v: &Value) -> Vec<Entry> {
    let Value::Array(streams) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in streams {
        if let Value::Array(kv) = s {
            if let Some(entries) = kv.get(1) {
                out.extend(entry_list(entries));
            }
        }
    }
    out
}

/// `XAUTOCLAIM`'s reply: `[next cursor, [entries], [deleted ids]]`.
pub fn autoclaim_reply(v: &Value) -> (String, Vec<Entry>) {
    let Value::Array(parts) = v else {
        return ("0-0".into(), Vec::new());
    };
    let cursor = parts
        .first()
        .and_then(as_string)
        .unwrap_or_else(|| "0-0".into());
    let entries = parts.get(1).map(entry_list).unwrap_or_default();
    (cursor, entries)
}

fn entry_list(v: &Value) -> Vec<Entry> {
    let Value::Array(list) = v else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let Value::Array(pair) = e else { return None };
            let id = as_string(pair.first()?)?;
            let mut record = None;
            let mut fields = Vec::new();
            if let Some(Value::Array(kv)) = pair.get(1) {
                for f in kv.chunks(2) {
                    let (Some(name), Some(Value::BulkString(value))) =
                        (f.first().and_then(as_string), f.get(1))
                    else {
                        continue;
                    };
                    if name == "r" {
                        record = Some(value.clone());
                    } else {
                        fields.push((name, value.clone()));
                    }
                }
            }
            Some(Entry { id, record, fields })
        })
        .collect()
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn replies_are_read_into_entries() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("pixel"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("r"), bulk("1379183721.115,foo=bar")]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        assert_eq!(
            read_reply_entries(&reply),
            vec![
                Entry {
                    id: "1-0".into(),
                    record: Some(b"1379183721.115,foo=bar".to_vec()),
                    fields: Vec::new(),
                },
                Entry {
                    id: "2-0".into(),
                    record: None,
                    fields: Vec::new(),
                }
            ]
        );
        assert!(read_reply_entries(&Value::Nil).is_empty());
        let claim = Value::Array(vec![
            bulk("5-0"),
            Value::Array(vec![Value::Array(vec![
                bulk("3-0"),
                Value::Array(vec![bulk("r"), bulk("x")]),
            ])]),
            Value::Array(vec![]),
        ]);
        let (cursor, entries) = autoclaim_reply(&claim);
        assert_eq!(cursor, "5-0");
        assert_eq!(entries.len(), 1);
    }
}
