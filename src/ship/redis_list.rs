//! The Redis list sink: a batch of records and the new shipped position, applied in one
//! atomic Lua script, so that a batch retried after a lost reply is recognised and skipped.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};

use crate::log::Batch;

/// KEYS[1]: this log's shipped position; KEYS[2..]: the lists, in the order of ARGV groups.
/// ARGV: batch start, batch end, then per list a count and that many values, oldest first.
/// Returns the position Redis holds afterwards: `end` when the batch is in (now or from an
/// earlier try), or a later position to resume from.
const SHIP: &str = r#"
local pos = tonumber(redis.call('GET', KEYS[1]) or '0')
local from, to = tonumber(ARGV[1]), tonumber(ARGV[2])
if pos > from then return pos end
local i = 3
for k = 2, #KEYS do
  local last = i + tonumber(ARGV[i])
  i = i + 1
  while i <= last do
    -- unpack() is bounded by Lua's C stack: push in slices.
    local j = math.min(i + 999, last)
    redis.call('LPUSH', KEYS[k], unpack(ARGV, i, j))
    i = j + 1
  end
end
redis.call('SET', KEYS[1], ARGV[2])
return to
"#;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

pub struct RedisList {
    client: Client,
    config: AsyncConnectionConfig,
    position_key: String,
    script: Script,
    conn: Option<MultiplexedConnection>,
}

impl RedisList {
    pub fn new(client: Client, position_key: String, timeout: Duration) -> RedisList {
        RedisList {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout)),
            position_key,
            script: Script::new(SHIP),
            conn: None,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Connects if need be and returns the shipped position Redis holds (0 if none).
    pub async fn connect(&mut self) -> Result<u64, SinkError> {
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let pos: Option<u64> = redis::cmd("GET")
            .arg(&self.position_key)
            .query_async(&mut conn)
            .await?;
        self.conn = Some(conn);
        Ok(pos.unwrap_or(0))
    }

    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Pushes the batch, `LPUSH` per list in record order, and moves the position to its
    /// end, atomically. Returns the position Redis holds afterwards.
    pub async fn ship(&mut self, batch: &Batch) -> Result<u64, SinkError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                return Err(SinkError::Redis(redis::RedisError::from(
                    std::io::Error::from(std::io::ErrorKind::NotConnected),
                )))
            }
        };
        // Group by list, keeping each list's records in log order.
        let mut lists: Vec<(&[u8], Vec<&[u8]>)> = Vec::new();
        for e in batch.entries() {
            match lists.iter_mut().find(|(k, _)| *k == e.key) {
                Some((_, values)) => values.push(e.value),
                None => lists.push((e.key, vec![e.value])),
            }
        }
        let mut invocation = self.script.key(&self.position_key);
        for (key, _) in &lists {
            invocation.key(*key);
        }
        invocation.arg(batch.start).arg(batch.end);
        for (_, values) in &lists {
            invocation.arg(values.len()).arg(values);
        }
        let pos: u64 = invocation.invoke_async(conn).await?;
        Ok(pos)
    }
}
