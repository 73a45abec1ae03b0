//! The seam between the shipper and where records go. The shipper owns the loop (read a
//! batch, ship it, acknowledge, back off); a sink owns one way of applying a batch and
//! the shipped position atomically, so that each implementation only has to answer:
//! "where does Redis say this log is shipped up to?" and "apply this batch and move that
//! position, all or nothing".
//!
//! What a sink answers about one batch is the exactly-once contract every sink keeps,
//! and all the shipper needs to know to keep it too:
//!
//! - **Acknowledged only when whole.** A sink answers [`Shipped::Applied`] only when every
//!   record of the batch was applied (pushed to its list, or moved to its dead-letter
//!   list by the sink's [`RefusedPolicy`]) *and* the shipped position moved to the
//!   batch's end, in one atomic step. The shipper then moves its position.
//! - **"Nothing applied" is a [`SinkError::Refused`].** Redis answered with an error and
//!   none of the batch was applied: a wrong type on a list (`WRONGTYPE`), a transaction
//!   discarded whole (`EXECABORT`, a command refused while queued), `OOM`, `MISCONF`,
//!   `READONLY`. A sink must make sure an error answer really means nothing was applied
//!   (check everything that can fail before the first write, as `ship.lua` does). The
//!   connection is fine: the shipper keeps it, backs off, and sends the batch again.
//! - **"Maybe applied" is a [`SinkError::Broken`].** The connection failed or no answer
//!   came in time (a lost reply), or the answer cannot be read: the batch may or may not
//!   be in Redis. The shipper drops the connection, reconnects with backoff, and reads
//!   the position back before sending anything again. A sink that finds a batch *partly*
//!   applied (possible with `MULTI`/`EXEC`, where Redis runs the other commands of a
//!   transaction when one fails at run time) must report it as `Broken` — never
//!   `Applied` — and its position must not have moved (put the position write where it
//!   cannot apply unless every push did).
//! - **Redis knows better.** [`Shipped::Resume`]: Redis holds a position at or past the
//!   batch's start (the batch, or part of it, was applied before: a lost reply, another
//!   process). Nothing was applied now; the shipper resumes from Redis's position.

use crate::log::Batch;

/// What to do with the records of a list that cannot take them (it holds another type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedPolicy {
    /// Apply nothing: the batch waits (retried with backoff) until the key is fixed.
    /// `serve`'s: one key, chosen by its operator.
    Hold,
    /// Move those records to `{key}:dead` (a list's to a list, a stream's to a stream)
    /// in the same atomic step, ship the rest. The
    /// relay's: its keys come from its senders, and one bad key must not hold up all the
    /// others. `pixelpipe tail --key {key}:dead` reads them back.
    DeadLetter,
}

/// The dead-letter key of a key (a shard's stays in the shard's slot: `k:{0}:dead`).
pub fn dead_letter_key(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.extend_from_slice(b":dead");
    k
}

#[derive(Debug, PartialEq, Eq)]
pub enum Shipped {
    /// The whole batch is in Redis, with the new position.
    Applied {
        /// Lists whose records went to their dead-letter list instead, and how many.
        dead_lettered: Vec<(String, u64)>,
    },
    /// Nothing applied now: Redis already holds this position (at or past the batch's
    /// start); resume from there.
    Resume { position: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The batch may or may not have been applied: reconnect and read the position back.
    #[error("Redis: {0}")]
    Broken(String),
    /// Redis refused the batch and applied nothing of it: retry on the same connection.
    #[error("Redis refused the batch: {0}")]
    Refused(String),
}

/// One destination of shipped batches. See the module's documentation for what its
/// answers must mean: the shipper's exactly-once guarantee rests on them.
pub trait Sink: Send {
    /// Connects if need be and returns the shipped position the sink holds (0 if none).
    /// An error is [`SinkError::Broken`]: the shipper backs off and tries again.
    fn connect(&mut self) -> impl std::future::Future<Output = Result<u64, SinkError>> + Send;

    fn is_connected(&self) -> bool;

    /// Forgets the connection: the next [`Sink::connect`] makes a new one.
    fn disconnect(&mut self);

    /// Applies the batch and moves the shipped position to its end, all or nothing.
    fn ship(
        &mut self,
        batch: &Batch,
    ) -> impl std::future::Future<Output = Result<Shipped, SinkError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::cluster::Layout;
    use redis::cluster_routing::Slot;

    #[test]
    fn a_shards_dead_letter_key_is_in_the_shards_slot() {
        let layout = Layout::new(3, true);
        let dead = dead_letter_key(&layout.data_key(b"bad", 1));
        assert_eq!(dead, b"bad:{1}:dead");
        // One slot with the shard and its position: one script can write all three.
        assert_eq!(
            Slot::for_key(&dead),
            Slot::for_key(layout.position_key("abc", 1))
        );
    }
}
