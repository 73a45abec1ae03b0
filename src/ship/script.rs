//! The sink for everything past one list on one server: a Redis Stream, shards, a Redis
//! Cluster, replicated acknowledgements. A batch goes to one shard (round-robin) as one
//! Lua script that checks this collector's position in that shard, adds the records
//! (`LPUSH`, or `XADD` per record) and moves the position — atomically, in one slot.
//! See [`super::stream`] for why this is exactly once and [`super::cluster`] for the key
//! layout and `WAIT`.

use redis::{RedisError, Value};

use super::cluster::Layout;
use super::sink::{Shipped, Sink, SinkError};
use crate::config::StreamRetention;
use crate::conn::{Link, RedisConn};
use crate::log::Batch;

/// What the sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// `LPUSH` on a list, as the seed's syslog-ng did.
    List,
    /// `XADD` on a stream, the record in the field `r`.
    Stream(StreamRetention),
}

/// KEYS[1]: the position key; KEYS[2..]: the keys of the batch's records.
/// ARGV: start, end, "list"|"stream", trim kind ("", MAXLEN, MINID), trim value, then one
/// record count per data key, then the records, grouped by key in log order.
/// Answers `{"ok"|"dup"|"ahead", position}`, or an error when nothing was applied.
///
/// Positions are compared as decimal strings: Lua numbers are doubles, positions are u64.
/// All or nothing: a script is not rolled back, so what can fail (a key of another type)
/// is checked before the first write; Redis refuses only a script's first write for
/// `OOM`/`READONLY`/`MISCONF`.
const SHIP: &str = r#"
local function le(a, b) return #a < #b or (#a == #b and a <= b) end
local pos = redis.call('GET', KEYS[1]) or '0'
local start, stop = ARGV[1], ARGV[2]
if le(stop, pos) then return {'dup', pos} end
if not le(pos, start) then return {'ahead', pos} end
for k = 2, #KEYS do
  local t = redis.call('TYPE', KEYS[k])['ok']
  if t ~= ARGV[3] and t ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[k] .. ' holds a ' .. t .. ', not a ' .. ARGV[3])
  end
end
local nkeys = #KEYS - 1
local i = 6 + nkeys
for k = 1, nkeys do
  local key, n = KEYS[k + 1], tonumber(ARGV[5 + k])
  local last = i + n - 1
  if ARGV[3] == 'list' then
    for j = i, last, 1000 do
      redis.call('LPUSH', key, unpack(ARGV, j, math.min(j + 999, last)))
    end
  elseif ARGV[4] == '' then
    for j = i, last do redis.call('XADD', key, '*', 'r', ARGV[j]) end
  else
    for j = i, last do redis.call('XADD', key, ARGV[4], '~', ARGV[5], '*', 'r', ARGV[j]) end
  end
  i = last + 1
end
redis.call('SET', KEYS[1], stop)
return {'ok', stop}
"#;

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
        wait_replicas: u32,
    ) -> ScriptSink {
        ScriptSink {
            link,
            layout,
            instance,
            write,
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
        let eval = self.script_call(batch, shard, &position_key);
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
        match replies.pop() {
            Some(Ok(v)) => match redis::from_redis_value::<(String, u64)>(v) {
                Ok((status, _)) if status == "ok" || status == "dup" => {}
                Ok((_, position)) => return Ok(Shipped::Resume { position }),
                Err(e) => return Err(SinkError::Broken(e.to_string())),
            },
            Some(Err(e)) => {
                self.link.failed(&e);
                return Err(retry(e));
            }
            None => return Err(SinkError::Broken("no reply to the batch script".into())),
        }
        if self.wait_replicas > 0 {
            let mut acked = replica_count(wait);
            while acked < self.wait_replicas as i64 {
                self.lagging(true, acked);
                acked = self.wait_again(&position_key).await?;
            }
            self.lagging(false, acked);
        }
        Ok(Shipped::Applied {
            dead_lettered: Vec::new(),
        })
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

    fn script_call(&self, batch: &Batch, shard: u32, position_key: &str) -> redis::Cmd {
        // Group by key, each key's records in log order.
        let mut groups: Vec<(&[u8], Vec<&[u8]>)> = Vec::new();
        for e in batch.entries() {
            match groups.iter_mut().find(|(k, _)| *k == e.key) {
                Some((_, values)) => values.push(e.value),
                None => groups.push((e.key, vec![e.value])),
            }
        }
        let (kind, trim_kind, trim_value) = match self.write {
            Write::List => ("list", "", String::new()),
            Write::Stream(retention) => {
                let (k, v) = super::stream::xadd_trim(retention);
                ("stream", k, v)
            }
        };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SHIP).arg(groups.len() + 1).arg(position_key);
        for (key, _) in &groups {
            cmd.arg(self.layout.data_key(key, shard));
        }
        cmd.arg(batch.start.to_string())
            .arg(batch.end.to_string())
            .arg(kind)
            .arg(trim_kind)
            .arg(trim_value);
        for (_, values) in &groups {
            cmd.arg(values.len());
        }
        for (_, values) in &groups {
            for v in values {
                cmd.arg(*v);
            }
        }
        cmd
    }
}

fn replica_count(v: Option<Result<Value, RedisError>>) -> i64 {
    match v {
        Some(Ok(Value::Int(n))) => n,
        _ => 0,
    }
}
