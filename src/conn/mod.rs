//! Talking to Redis: the URL parsed once ([`RedisTarget`]), one connection type over a
//! single server or a cluster ([`RedisConn`]), and the one reconnecting helper every part
//! of the program uses ([`Link`]): connect when needed, drop the connection when it
//! failed, say once that Redis is gone and once that it is back.
//!
//! No client of our own: a single server is the `redis` crate's `MultiplexedConnection`,
//! a cluster its `cluster_async::ClusterConnection` (slot map, `MOVED`/`ASK`, failover).

use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, Value};

pub use crate::config::redis_target::{RedisTarget, TargetError};

/// How long to wait for a connection and for each reply. `response: None` is for blocking
/// reads (`XREADGROUP … BLOCK`, `BRPOP`), which must not be mistaken for a dead server:
/// they pass a bound of their own.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Option<Duration>,
}

impl Timeouts {
    pub fn new(both: Duration) -> Timeouts {
        Timeouts {
            connect: both,
            response: Some(both),
        }
    }
}

/// A connection to one server or to a cluster. Cheap to clone (both are handles to a
/// multiplexed connection task); commands from clones share the connection.
#[derive(Clone)]
pub enum RedisConn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Connects to `target`. For a cluster this reads the slot map from the seed nodes.
    pub async fn connect(target: &RedisTarget, t: Timeouts) -> Result<RedisConn, RedisError> {
        match target {
            RedisTarget::Single { url } => {
                let client = Client::open(url.as_str())?;
                let mut config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(t.connect))
                    .set_response_timeout(t.response);
                // A blocking read would otherwise trip the crate's default timeout.
                if t.response.is_none() {
                    config = config.set_response_timeout(None);
                }
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(RedisConn::Single(conn))
            }
            RedisTarget::Cluster { nodes, .. } => {
                let mut builder = redis::cluster::ClusterClient::builder(nodes.clone())
                    .connection_timeout(t.connect)
                    // Few, quick retries inside the crate (redirections, a node that is
                    // failing over); past them the caller's own backoff takes over.
                    .retries(4)
                    .min_retry_wait(50)
                    .max_retry_wait(1000);
                builder = match t.response {
                    Some(r) => builder.response_timeout(r),
                    None => builder.response_timeout(Duration::from_secs(24 * 3600)),
                };
                let client = builder.build()?;
                Ok(RedisConn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// Runs the commands of `pipe` (not a transaction), each where its key lives: one
    /// pipelined round trip on a single server; on a cluster, concurrently, one command
    /// each, since their keys may sit in different slots. Fails with the first error.
    pub async fn run_unordered(&mut self, pipe: &Pipeline) -> Result<(), RedisError> {
        match self {
            RedisConn::Single(c) => pipe.query_async::<()>(c).await,
            RedisConn::Cluster(c) => {
                let sends = pipe.cmd_iter().map(|cmd| {
                    let mut c = c.clone();
                    async move { cmd.query_async::<Value>(&mut c).await }
                });
                for r in futures_util::future::join_all(sends).await {
                    if let Value::ServerError(e) = r? {
                        return Err(e.into());
                    }
                }
                Ok(())
            }
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// The connection broke (or never came up), or the cluster moved the slot under us — as
/// opposed to Redis refusing the command. Either way: reconnect (a new cluster connection
/// reads the new slot map) and try again.
pub fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || moved_inside(e)
}

/// A transaction (or pipeline) refused because its slot moved or the cluster is failing
/// over: the crate follows `MOVED`/`ASK` for single commands only.
fn moved_inside(e: &RedisError) -> bool {
    e.clone().into_server_errors().is_some_and(|errors| {
        errors
            .iter()
            .any(|(_, s)| matches!(s.code(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"))
    })
}

/// The reconnecting helper: holds at most one connection, makes one when asked for it,
/// forgets it when a command on it failed for connection reasons, and logs only the
/// changes of state (down once, back once) under the name of its user.
pub struct Link {
    target: RedisTarget,
    timeouts: Timeouts,
    conn: Option<RedisConn>,
    /// Who uses this link, for messages: "shipper", "aggregator", "dashboard", …
    user: &'static str,
    said_down: bool,
}

impl Link {
    pub fn new(target: RedisTarget, timeouts: Timeouts, user: &'static str) -> Link {
        Link {
            target,
            timeouts,
            conn: None,
            user,
            said_down: false,
        }
    }

    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The current connection, or a new one. An error means Redis is unreachable now (said
    /// once); call again later.
    pub async fn get(&mut self) -> Result<&mut RedisConn, RedisError> {
        if self.conn.is_none() {
            match RedisConn::connect(&self.target, self.timeouts).await {
                Ok(c) => {
                    if self.said_down {
                        tracing::info!(user = self.user, redis = %self.target, "Redis is reachable again");
                        self.said_down = false;
                    }
                    self.conn = Some(c);
                }
                Err(e) => {
                    self.note_down(&e);
                    return Err(e);
                }
            }
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// A command on the connection failed: a broken connection is dropped (the next
    /// [`Link::get`] makes a new one); an error answered by Redis leaves it as it is.
    pub fn failed(&mut self, e: &RedisError) {
        if is_connection_error(e) {
            self.conn = None;
            self.note_down(e);
        }
    }

    /// Drops the connection whatever happened (e.g. a reply was lost and the caller wants
    /// to start again from what Redis holds).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    fn note_down(&mut self, e: &RedisError) {
        if !self.said_down {
            tracing::warn!(user = self.user, redis = %self.target, error = %e, "cannot reach Redis; retrying until it is back");
            self.said_down = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_then_a_retry() {
        // A port nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target: RedisTarget = format!("redis://127.0.0.1:{port}").parse().unwrap();
        let mut link = Link::new(target, Timeouts::new(Duration::from_secs(1)), "test");
        let e = link.get().await.err().expect("nobody listens");
        assert!(is_connection_error(&e));
        assert!(!link.is_connected());
        assert!(link.said_down);
    }
}
