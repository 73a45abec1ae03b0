//! The seam between the shipper and where records go. The shipper owns the loop (read a
//! batch, ship it, acknowledge, back off); a sink owns one way of applying a batch and
//! the shipped position atomically, so that each implementation only has to answer:
//! "where does Redis say this log is shipped up to?" and "apply this batch and move that
//! position, all or nothing".

use crate::log::Batch;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl SinkError {
    /// Redis answered with an error (rather than the connection failing).
    pub fn is_refusal(&self) -> bool {
        let SinkError::Redis(e) = self;
        !(e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal())
    }
}

/// One destination of shipped batches.
///
/// The contract that makes shipping exactly once: [`Sink::ship`] applies the batch's
/// records and sets the sink's shipped position to `batch.end` atomically; after any
/// error the shipper calls [`Sink::connect`] again, which reads that position back, and
/// resumes from it — so a batch that went in is never sent twice and one that did not is
/// sent again.
pub trait Sink: Send {
    /// Connects if need be and returns the shipped position the sink holds (0 if none).
    fn connect(&mut self) -> impl std::future::Future<Output = Result<u64, SinkError>> + Send;

    fn is_connected(&self) -> bool;

    /// Forgets the connection: the next [`Sink::connect`] makes a new one.
    fn disconnect(&mut self);

    /// Applies the batch and moves the shipped position to its end, all or nothing.
    fn ship(
        &mut self,
        batch: &Batch,
    ) -> impl std::future::Future<Output = Result<(), SinkError>> + Send;
}
