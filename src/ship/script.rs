//! The sink for everything past one list on one server: a Redis Stream, shards, a Redis
//! Cluster, replicated acknowledgements. A batch goes to one shard (round-robin) as one
//! Lua script (`ship.lua`, the list sink's too) that checks this collector's position in
//! that shard, adds the records (`LPUSH`, or `XADD` per record) and moves the position —
//! atomically, in one slot. Under [`RefusedPolicy::DeadLetter`] the records of a key of
//! another type go to `{key}:dead` (same kind, same slot) in the same step, as with the
//! list sink. See [`super::stream`] for why this is exactly once and [`super::cluster`]
//! for the key layout and `WAIT`.

pub mod call;

use redis::{RedisError, Value};

use super::cluster::Layout;
use super::sink::{RefusedPolicy, Shipped, Sink, SinkError};
use crate::conn::{Link, RedisConn};
use crate::log::Batch;
use call::{ShipCall, Write};

/// Sent whole with each batch (`EVAL`): the cluster client routes it by its keys, and a
/// node that lost its script cache would refuse an `EVALSHA`.
const SHIP: &str = include_str!("ship.lua");

/// How long one `WAIT` blocks before the sink asks again (and the shipper can stop).
const WAIT_MS: u64 = 1000;

/// `Broken` (maybe applied: reconnect, read the position back) when the connection broke,
/// no answer came, or the cluster moved the slot or is failing over; `Refused` (nothing
/// applied) when Redis answered the script with an error.
fn retry(e: RedisError) -> SinkError {
    if crate::conn::is_connection_error(&e) || e.code().is_none() {
        SinkError::Broken(e.to_string())
    } else {
        SinkError::Refused(e.to_string())
    }
}

pub struct ScriptSink {
    link: Link,
    layout: Layout,
    instance: String,
    write: Write,
    policy: RefusedPolicy,
    wait_replicas: u32,
    next_shard: u32,
    /// Said once while replicas lag behind, once when they caught up.
    said_lagging: bool,
}

impl ScriptSink {
    pub fn new(
        link: Link,
        layout: Layout,
        instance: String,
        write: Write,
        policy: RefusedPolicy,
        wait_replicas: u32,
    ) -> ScriptSink {
        ScriptSink {
            link,
            layout,
            instance,
            write,
            policy,
            wait_replicas,
            next_shard: 0,
            said_lagging: false,
        }
    }
}

impl Sink for ScriptSink {
    fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    fn disconnect(&mut self) {
        self.link.disconnect();
    }

    /// Connects and returns the shipped position: the highest over the shards, since
    /// batches go to them one at a time.
    async fn connect(&mut self) -> Result<u64, SinkError> {
        self.link.disconnect();
        let keys: Vec<String> = (0..self.layout.shards)
            .map(|s| self.layout.position_key(&self.instance, s))
            .collect();
        let conn = self.link.get().await.map_err(retry)?;
        let mut highest = 0;
        for key in &keys {
            let pos: Option<u64> = match redis::cmd("GET").arg(key).query_async(conn).await {
                Ok(p) => p,
                Err(e) => {
                    self.link.failed(&e);
                    return Err(retry(e));
                }
            };
            highest = highest.max(pos.unwrap_or(0));
        }
        Ok(highest)
    }

    /// Ships the batch to the next shard; with `wait_replicas`, returns only once that
    /// many replicas have it.
    async fn ship(&mut self, batch: &Batch) -> Result<Shipped, SinkError> {
        let shard = self.next_shard;
        self.next_shard = (self.next_shard + 1) % self.layout.shards;
        let position_key = self.layout.position_key(&self.instance, shard);
        let layout = self.layout;
        let ship = ShipCall::new(batch, self.write, self.policy, |key| {
            layout.data_key(key, shard)
        });
        let mut eval = redis::cmd("EVAL");
        let keys = ship.keys();
        eval.arg(SHIP).arg(keys.len() + 1).arg(&position_key);
        for key in &keys {
            eval.arg(key);
        }
        ship.args(|a| {
            eval.arg(a);
        });
        let mut pipe = redis::pipe();
        // Each reply on its own: the script's refusal is not the connection's failure.
        pipe.ignore_errors();
        pipe.add_command(eval);
        if self.wait_replicas > 0 {
            // Same connection, same master (routed by the script's keys): WAIT counts the
            // replicas that have every write this connection made, the batch included.
            pipe.cmd("WAIT").arg(self.wait_replicas).arg(WAIT_MS);
        }
        let conn = self.link.get().await.map_err(retry)?;
        let mut replies: Vec<Result<Value, RedisError>> = match pipe.query_async(conn).await {
            Ok(r) => r,
            Err(e) => {
                self.link.failed(&e);
                return Err(retry(e));
            }
        };
        let wait = if replies.len() > 1 {
            replies.pop()
        } else {
            None
        };
        let answer = match replies.pop() {
            Some(Ok(Value::Array(answer))) => ship.answer(&answer)?,
            Some(Ok(other)) => {
                return Err(SinkError::Broken(format!(
                    "unexpected answer from the ship script: {other:?}"
                )))
            }
            Some(Err(e)) => {
                self.link.failed(&e);
                return Err(retry(e));
            }
            None => return Err(SinkError::Broken("no reply to the batch script".into())),
        };
        let shipped = match answer {
            // Found applied at exactly its end: this very batch, applied by a retry the
            // cluster client made on its own after a lost reply. It counts as applied
            // (the analytics get it), and its replicas are waited for all the same.
            Shipped::Resume { position } if position == batch.end => Shipped::Applied {
                dead_lettered: Vec::new(),
            },
            resume @ Shipped::Resume { .. } => return Ok(resume),
            applied @ Shipped::Applied { .. } => applied,
        };
        if self.wait_replicas > 0 {
            let mut acked = replica_count(wait);
            while acked < self.wait_replicas as i64 {
                self.lagging(true, acked);
                acked = self.wait_again(&position_key).await?;
            }
            self.lagging(false, acked);
        }
        Ok(shipped)
    }
}

impl ScriptSink {
    /// `WAIT` once more on the master of `position_key`'s slot.
    async fn wait_again(&mut self, position_key: &str) -> Result<i64, SinkError> {
        let mut pipe = redis::pipe();
        // The GET only routes the pipeline to the right master on a cluster.
        pipe.cmd("GET").arg(position_key).ignore();
        pipe.cmd("WAIT").arg(self.wait_replicas).arg(WAIT_MS);
        let conn: &mut RedisConn = self.link.get().await.map_err(retry)?;
        match pipe.query_async::<(i64,)>(conn).await {
            Ok((n,)) => Ok(n),
            Err(e) => {
                self.link.failed(&e);
                Err(retry(e))
            }
        }
    }

    fn lagging(&mut self, lagging: bool, acked: i64) {
        if lagging == self.said_lagging {
            return;
        }
        self.said_lagging = lagging;
        if lagging {
            tracing::warn!(
                wanted = self.wait_replicas,
                replicas = acked,
                "fewer replicas than ship.wait_replicas confirm the last batch; holding it in the local log until they do"
            );
        } else {
            tracing::info!(replicas = acked, "replicas confirm batches again");
        }
    }
}

fn replica_count(v: Option<Result<Value, RedisError>>) -> i64 {
    match v {
        Some(Ok(Value::Int(n))) => n,
        _ => 0,
    }
}
