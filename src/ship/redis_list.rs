//! The Redis list sink: a batch of records and the new shipped position, applied all or
//! nothing: as a rule by an `LPUSH` per list and a check, in one `MULTI`/`EXEC`
//! ([`super::list_push`]), and by the Lua script `ship.lua` when a key holds another
//! type.
//!
//! Why this is exactly once: this log is the only writer of its position key, and the
//! transaction (or the script) applies the records and the position together or not at
//! all. Each looks at the position Redis holds: a batch applied before (its reply lost)
//! is recognised and not kept twice. After a broken connection the shipper also reads the position back
//! before sending anything ([`RedisList::connect`]).
//!
//! Why not `MULTI`/`EXEC` with a plain `SET` of the position: inside `EXEC`, Redis runs
//! every queued command even when one fails (an `LPUSH` on a key holding a string answers
//! `WRONGTYPE`), so the position would move while the records did not: they would be
//! skipped for good. The transaction's check script sees that and takes the batch back;
//! `ship.lua` checks the lists' types before its first write. Either way an error answer
//! means nothing was applied (the contract in [`super::sink`]). The script and its call
//! are the ones the script sink uses too ([`super::script::call`]).

use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Script, Value};

use super::list_push::{self, Pushed};
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

pub(super) fn classify(e: RedisError) -> SinkError {
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
    /// end, in one transaction, or in one script when a key holds another type.
    async fn ship(&mut self, batch: &Batch) -> Result<Shipped, SinkError> {
        let Some(conn) = &mut self.conn else {
            return Err(SinkError::Broken("not connected".into()));
        };
        let ship = ShipCall::new(batch, Write::List, self.policy, <[u8]>::to_vec);
        // A key of another type: the transaction took the batch back, and the script
        // decides (this costs Redis the batch twice, only while a key is wrong).
        if let Pushed::Done(shipped) = list_push::push(conn, &self.position_key, &ship).await? {
            return Ok(shipped);
        }
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
