//! The shipper's reads of the local log, on a blocking thread (a cold read of megabytes
//! after an outage must not stall the runtime the admin listener and dashboard share),
//! one batch ahead while catching up.
//!
//! Why the tail is read in place: when the shipper keeps up, a batch is the last few KiB
//! written, a copy out of the page cache that takes microseconds. Handing it to a
//! blocking thread and back costs two thread wake-ups per batch, and on a busy machine
//! each can wait a scheduler slice: that hop was most of the gap between a hit and Redis
//! at a few thousand hits a second. So a read that starts within [`HOT_BYTES`] of the
//! log's end runs on the shipper's own task.
//!
//! Why ahead: draining a backlog is a loop of read → ship → wait for Redis's answer.
//! Reading the next batch while the current one is in flight takes the read off that
//! loop's critical path. It does not touch exactly-once: Redis still sees one batch at a
//! time, and a batch read ahead is used only if it starts where the shipper's position
//! is when it asks (after the batch in flight was acknowledged); after a failure, a
//! resume or a drop it is thrown away and read again.

use tokio::task::JoinHandle;

use crate::log::{Batch, LogError, Reader};

/// A read starting this close to the log's end is of data just written (see above).
const HOT_BYTES: u64 = 64 * 1024;

type Read = (Reader, Result<Batch, LogError>);

enum Slot {
    Idle(Reader),
    /// A read from `pos` running on a blocking thread; it hands the reader back.
    Reading {
        pos: u64,
        task: JoinHandle<Read>,
    },
}

pub struct ReadAhead {
    /// `None` only while a read is being awaited.
    slot: Option<Slot>,
    max_records: usize,
    max_bytes: usize,
}

impl ReadAhead {
    pub fn new(reader: Reader, max_records: usize, max_bytes: usize) -> ReadAhead {
        ReadAhead {
            slot: Some(Slot::Idle(reader)),
            max_records,
            max_bytes,
        }
    }

    /// The next batch at or after `pos`: the one read ahead if it started there and found
    /// records, else a new read.
    pub async fn read(&mut self, pos: u64) -> Result<Batch, LogError> {
        let (mut reader, ahead) = match self.slot.take().expect("a slot between reads") {
            Slot::Idle(reader) => (reader, None),
            Slot::Reading { pos: from, task } => {
                let (reader, result) = task.await.expect("reading the log does not panic");
                (reader, Some((from, result)))
            }
        };
        if let Some((from, Ok(batch))) = ahead {
            // An empty read ahead may be stale: records may have come since.
            if from == pos && !batch.is_empty() {
                self.slot = Some(Slot::Idle(reader));
                return Ok(batch);
            }
        }
        let (reader, result) = if reader.unread_from(pos) <= HOT_BYTES {
            let result = reader.read(
                pos,
                self.max_records,
                self.max_bytes.min(HOT_BYTES as usize),
            );
            (reader, result)
        } else {
            self.spawn(reader, pos)
                .await
                .expect("reading the log does not panic")
        };
        self.slot = Some(Slot::Idle(reader));
        result
    }

    /// Starts reading the batch at `pos` in the background, for the next [`Self::read`].
    pub fn start(&mut self, pos: u64) {
        self.slot = match self.slot.take().expect("a slot between reads") {
            Slot::Idle(reader) => Some(Slot::Reading {
                pos,
                task: self.spawn(reader, pos),
            }),
            reading => Some(reading),
        };
    }

    fn spawn(&self, mut reader: Reader, pos: u64) -> JoinHandle<Read> {
        let (max_records, max_bytes) = (self.max_records, self.max_bytes);
        tokio::task::spawn_blocking(move || {
            let result = reader.read(pos, max_records, max_bytes);
            (reader, result)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::LogConfig;
    use crate::log::{entry, Log};

    /// Appends `n` records numbered from `first`; returns the log's end.
    fn append(log: &Log, first: usize, n: usize) -> u64 {
        let mut buf = Vec::new();
        for i in first..first + n {
            entry::encode(&mut buf, b"pixel", format!("1.000,id={i:06}").as_bytes());
        }
        log.write(&buf, n as u64).unwrap()
    }

    fn ids(batch: &Batch) -> Vec<String> {
        batch
            .entries()
            .map(|e| String::from_utf8_lossy(e.value).into_owned())
            .collect()
    }

    /// A backlog is read on the blocking pool, one batch ahead; the tail in place. Either
    /// way the batches follow each other record for record.
    #[tokio::test(flavor = "current_thread")]
    async fn backlog_and_tail_reads_hand_out_every_record_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(&dir.path().join("log"), LogConfig::default(), 0).unwrap());
        // ~200 KiB: the first reads are of a backlog, the last ones of the tail.
        let total = 8_000;
        let end = append(&log, 0, total);
        assert!(end > 3 * HOT_BYTES);
        let mut reads = ReadAhead::new(Reader::new(log.clone()), 1_000, 4 << 20);
        let (mut pos, mut seen) = (0, Vec::new());
        while pos < end {
            let batch = reads.read(pos).await.unwrap();
            assert_eq!(batch.start, pos, "no gap between batches");
            assert!(!batch.is_empty());
            // As the shipper does while catching up.
            reads.start(batch.end);
            seen.extend(ids(&batch));
            pos = batch.end;
        }
        // New records after the backlog: read in place, just as whole.
        let end = append(&log, total, 5);
        let batch = reads.read(pos).await.unwrap();
        seen.extend(ids(&batch));
        assert_eq!(batch.end, end);
        let want: Vec<String> = (0..total + 5).map(|i| format!("1.000,id={i:06}")).collect();
        assert_eq!(seen, want);
    }
}
