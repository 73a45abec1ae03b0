//! Where a `tail` list reader connects: one server, or a cluster (the crate's slot map
//! sends each shard's commands to the master of its slot). Connections made here carry
//! blocking reads, so their read timeout is longer than the block time: a quiet list is
//! never mistaken for a dead Redis.

use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::{Client, ConnectionLike, RedisError};

use super::source::BLOCK;
use crate::conn::RedisTarget;

/// Slack on top of [`BLOCK`] before a silent connection counts as dead.
const READ_SLACK: Duration = Duration::from_secs(10);
/// How long to wait for a connection to come up.
const CONNECT: Duration = Duration::from_secs(5);

// One per reader thread, made once: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Endpoint {
    Single(Client),
    Cluster(ClusterClient),
}

impl Endpoint {
    pub fn new(target: &RedisTarget) -> Result<Endpoint, RedisError> {
        match target {
            RedisTarget::Single { url } => Ok(Endpoint::Single(Client::open(url.as_str())?)),
            RedisTarget::Cluster { nodes, .. } => {
                let client = ClusterClient::builder(nodes.clone())
                    .connection_timeout(CONNECT)
                    .response_timeout(BLOCK + READ_SLACK)
                    // No retries inside the crate: a move to the processing list whose
                    // reply was lost must not run again unseen (its events would sit in
                    // the processing list ahead of the ones handed out, and the
                    // acknowledgement, which trims the oldest, would drop them). Every
                    // failure, `MOVED` included, comes back to the source, which
                    // reconnects (reading the new slot map) and recovers.
                    .retries(0)
                    .build()?;
                Ok(Endpoint::Cluster(client))
            }
        }
    }

    /// A new connection, with the timeouts blocking reads need.
    pub fn connect(&self) -> Result<Box<dyn ConnectionLike>, RedisError> {
        match self {
            Endpoint::Single(client) => {
                let conn = client.get_connection_with_timeout(CONNECT)?;
                conn.set_read_timeout(Some(BLOCK + READ_SLACK))?;
                conn.set_write_timeout(Some(READ_SLACK))?;
                Ok(Box::new(conn))
            }
            Endpoint::Cluster(client) => {
                let conn = client.get_connection()?;
                conn.set_write_timeout(Some(READ_SLACK))?;
                Ok(Box::new(conn))
            }
        }
    }
}
