//! The Redis list sink: a batch of records and the new shipped position, applied in one
//! `MULTI`/`EXEC` transaction.
//!
//! Why this is exactly once: this log is the only writer of its position key, and the
//! transaction applies the records and the position together or not at all. After any
//! error — a lost reply included — the shipper reconnects and reads the position back
//! before sending anything ([`RedisList::connect`]): a batch that did go in is then
//! behind the position and is not sent again; one that did not is sent again.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

use super::sink::{Sink, SinkError};
use crate::log::Batch;

pub struct RedisList {
    client: Client,
    config: AsyncConnectionConfig,
    position_key: String,
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
            .await?;
        let pos: Option<u64> = redis::cmd("GET")
            .arg(&self.position_key)
            .query_async(&mut conn)
            .await?;
        self.conn = Some(conn);
        Ok(pos.unwrap_or(0))
    }

    fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Pushes the batch, `LPUSH` per list in record order, and moves the position to its
    /// end, in one transaction.
    async fn ship(&mut self, batch: &Batch) -> Result<(), SinkError> {
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
        let mut tx = redis::pipe();
        tx.atomic();
        for (key, values) in &lists {
            tx.cmd("LPUSH").arg(*key).arg(values).ignore();
        }
        tx.cmd("SET")
            .arg(&self.position_key)
            .arg(batch.end)
            .ignore();
        tx.query_async::<()>(conn).await?;
        Ok(())
    }
}
