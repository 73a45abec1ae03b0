//! The Redis list sink: a batch of records and the new shipped position, applied by one
//! Lua script (`ship.lua`), all or nothing.
//!
//! Why this is exactly once: this log is the only writer of its position key, and the
//! script applies the records and the position together or not at all. It first looks at
//! the position Redis holds: a batch applied before (its reply lost) is recognised and
//! not pushed again. After a broken connection the shipper also reads the position back
//! before sending anything ([`RedisList::connect`]).
//!
//! Why a script and not `MULTI`/`EXEC`: inside `EXEC`, Redis runs every queued command
//! even when one fails (an `LPUSH` on a key holding a string answers `WRONGTYPE`), so the
//! position `SET` applied while the records did not: they were skipped for good. The
//! script checks the lists' types before its first write, so an error answer means
//! nothing was applied (see `ship.lua` and the contract in [`super::sink`]).

use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Script, Value};

use super::sink::{dead_letter_key, RefusedPolicy, Shipped, Sink, SinkError};
use crate::log::Batch;

fn script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(include_str!("ship.lua")))
}

/// An error that leaves it open whether the batch was applied: the connection failed, no
/// answer came in time, or the answer was not one we can read.
fn is_broken(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.code().is_none()
}

fn classify(e: RedisError) -> SinkError {
    if is_broken(&e) {
        SinkError::Broken(e.to_string())
    } else {
        SinkError::Refused(e.to_string())
    }
}

pub struct RedisList {
    client: Client,
    config: AsyncConnectionConfig,
    position_key: String,
    policy: RefusedPolicy,
    conn: Option<MultiplexedConnection>,
}

impl RedisList {
    pub fn new(
        client: Client,
        position_key: String,
        timeout: Duration,
        policy: RefusedPolicy,
    ) -> RedisList {
        RedisList {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout)),
            position_key,
            policy,
            conn: None,
        }
    }
}

impl Sink for RedisList {
    fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    async fn connect(&mut self) -> Result<u64, SinkError> {
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| SinkError::Broken(e.to_string()))?;
        let pos: Option<u64> = redis::cmd("GET")
            .arg(&self.position_key)
            .query_async(&mut conn)
            .await
            .map_err(|e| SinkError::Broken(e.to_string()))?;
        self.conn = Some(conn);
        Ok(pos.unwrap_or(0))
    }

    fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Pushes the batch, `LPUSH` per list in record order, and moves the position to its
    /// end, in one script.
    async fn ship(&mut self, batch: &Batch) -> Result<Shipped, SinkError> {
        let Some(conn) = &mut self.conn else {
            return Err(SinkError::Broken("not connected".into()));
        };
        // Group by list, keeping each list's records in log order.
        let mut lists: Vec<(&[u8], Vec<&[u8]>)> = Vec::new();
        for e in batch.entries() {
            match lists.iter_mut().find(|(k, _)| *k == e.key) {
                Some((_, values)) => values.push(e.value),
                None => lists.push((e.key, vec![e.value])),
            }
        }
        let mut call = script().prepare_invoke();
        call.key(&self.position_key);
        for (key, _) in &lists {
            call.key(*key);
        }
        if self.policy == RefusedPolicy::DeadLetter {
            for (key, _) in &lists {
                call.key(dead_letter_key(key));
            }
        }
        call.arg(batch.start.to_string())
            .arg(batch.end.to_string())
            .arg(lists.len())
            .arg(match self.policy {
                RefusedPolicy::Hold => "hold",
                RefusedPolicy::DeadLetter => "dead",
            });
        for (_, values) in &lists {
            call.arg(values.len());
        }
        for (_, values) in &lists {
            call.arg(values.as_slice());
        }
        let answer: Vec<Value> = call.invoke_async(conn).await.map_err(classify)?;
        parse_answer(&answer, &lists)
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_answer(answer: &[Value], lists: &[(&[u8], Vec<&[u8]>)]) -> Result<Shipped, SinkError> {
    let bad = || {
        SinkError::Broken(format!(
            "unexpected answer from the ship script: {answer:?}"
        ))
    };
    let status = text(answer.first()).ok_or_else(bad)?;
    let position = || -> Result<u64, SinkError> {
        text(answer.get(1))
            .and_then(|p| p.parse().ok())
            .ok_or_else(bad)
    };
    match status.as_str() {
        "ok" => {
            let dead_lettered = answer[2..]
                .iter()
                .filter_map(|v| text(Some(v)))
                .map(|key| {
                    let n = lists
                        .iter()
                        .find(|(k, _)| *k == key.as_bytes())
                        .map_or(0, |(_, v)| v.len() as u64);
                    (key, n)
                })
                .collect();
            Ok(Shipped::Applied { dead_lettered })
        }
        "dup" | "ahead" => Ok(Shipped::Resume {
            position: position()?,
        }),
        "refused" => {
            let keys: Vec<String> = answer[2..]
                .chunks(2)
                .map(|kt| {
                    format!(
                        "`{}` holds a {}",
                        text(kt.first()).unwrap_or_default(),
                        text(kt.get(1)).unwrap_or_default()
                    )
                })
                .collect();
            Err(SinkError::Refused(format!(
                "WRONGTYPE: {}, not a list",
                keys.join("; ")
            )))
        }
        _ => Err(bad()),
    }
}
