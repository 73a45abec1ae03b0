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
//! nothing was applied (see `ship.lua` and the contract in [`super::sink`]). The script
//! and its call are the ones the script sink uses too ([`super::script::call`]).

use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Script, Value};

use super::script::call::{ShipCall, Write};
use super::sink::{RefusedPolicy, Shipped, Sink, SinkError};
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
        let ship = ShipCall::new(batch, Write::List, self.policy, <[u8]>::to_vec);
        let mut call = script().prepare_invoke();
        call.key(&self.position_key);
        for key in ship.keys() {
            call.key(key);
        }
        ship.args(|a| {
            call.arg(a);
        });
        let answer: Vec<Value> = call.invoke_async(conn).await.map_err(classify)?;
        ship.answer(&answer)
    }
}
