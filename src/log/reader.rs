//! The shipper's view of the log: batches of whole records from a position on.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::entry::{self, Decoded};
use super::{segment, Log, LogError, Span};

/// Records read from the log, `start..end` in log positions.
#[derive(Debug, Default)]
pub struct Batch {
    pub start: u64,
    pub end: u64,
    /// The encoded records, back to back.
    data: Vec<u8>,
    /// Where each record's key and value lie in `data`, found (and checksummed) once
    /// when the batch was read.
    records: Vec<Record>,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    key: (usize, usize),
    value: (usize, usize),
    fields: (usize, usize),
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    pub fn entries(&self) -> impl Iterator<Item = entry::Entry<'_>> {
        self.records.iter().map(|r| entry::Entry {
            key: &self.data[r.key.0..r.key.1],
            value: &self.data[r.value.0..r.value.1],
            fields: entry::Fields(&self.data[r.fields.0..r.fields.1]),
        })
    }
}

pub struct Reader {
    log: Arc<Log>,
    /// The open segment and its base.
    file: Option<(u64, File)>,
    /// The mean encoded size of the last batch's records, to size the next read to the
    /// batch it is for (see [`Reader::read`]).
    record_bytes: usize,
}

/// Before anything was read: a record of a hit is typically 50 to 500 bytes.
const FIRST_RECORD_BYTES: usize = 256;
/// The smallest read that is worth a system call when more of a batch is wanted.
const MIN_READ: usize = 64 * 1024;

impl Reader {
    pub fn new(log: Arc<Log>) -> Reader {
        Reader {
            log,
            file: None,
            record_bytes: FIRST_RECORD_BYTES,
        }
    }

    /// Reads up to `max_records` / `max_bytes` of whole records at or after `pos`. The
    /// batch may start after `pos` when records before it are gone (dropped by the
    /// `drop-oldest` policy, or a corrupt stretch cut at recovery). Empty when there is
    /// nothing new.
    ///
    /// Why the reads are sized: after an outage the backlog is far longer than a batch,
    /// and `max_bytes` (4 MiB by default) is ten times what 5,000 records of a hit take.
    /// Reading (and zeroing) all of it for every batch was most of the copying a drain
    /// did. So the first read is what `max_records` records of the mean size seen so far
    /// take, and more is read only when the batch is not complete yet.
    pub fn read(
        &mut self,
        pos: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Batch, LogError> {
        let spans = self.log.spans();
        // Let go of a segment that was deleted: an open handle keeps its disk space.
        if let Some((base, _)) = &self.file {
            if !spans.iter().any(|s| s.base == *base) {
                self.file = None;
            }
        }
        let Some(span) = locate(&spans, pos) else {
            return Ok(Batch {
                start: pos,
                end: pos,
                ..Batch::default()
            });
        };
        let start = pos.max(span.base);
        let available = (span.end - start) as usize;
        let limit = available.min(max_bytes);
        let guess = self.guess(max_records);
        let file = self.segment_file(span.base)?;
        let mut data = Vec::new();
        let mut records = Vec::new();
        let mut at = 0;
        while records.len() < max_records && at < available {
            match entry::decode(&data[at..]) {
                Decoded::Entry(e, size) => {
                    // Where each part lies in `data`: the slices were cut from it (but
                    // for no fields, which may be a static empty slice).
                    let span = |part: &[u8]| {
                        if part.is_empty() {
                            return (0, 0);
                        }
                        let from = part.as_ptr() as usize - data.as_ptr() as usize;
                        (from, from + part.len())
                    };
                    records.push(Record {
                        key: span(e.key),
                        value: span(e.value),
                        fields: span(e.fields.0),
                    });
                    at += size;
                    continue;
                }
                Decoded::Incomplete => {
                    let current = record_len(&data[at..]);
                    let missing = guess.saturating_mul(max_records - records.len()) / max_records;
                    // A single record larger than `max_bytes` is shipped alone.
                    let cap = if records.is_empty() {
                        limit.max(current)
                    } else {
                        limit
                    };
                    let upto = (at + current.max(missing))
                        .max(data.len() + MIN_READ)
                        .min(cap)
                        .min(available);
                    if upto > data.len() && read_more(file, &mut data, upto, start - span.base)? {
                        continue;
                    }
                    // The read stopped inside a record: the next batch gets it.
                    if data.len() < available {
                        break;
                    }
                }
                Decoded::Corrupt => {}
            }
            // Only whole, written records lie before the span's end: this is damage on
            // disk after recovery. Skip the rest of the segment, loudly.
            tracing::error!(
                segment = span.base,
                offset = start + at as u64,
                "corrupt record in the local log; skipping the rest of this segment"
            );
            if records.is_empty() {
                return Ok(Batch {
                    start: span.end,
                    end: span.end,
                    ..Batch::default()
                });
            }
            break;
        }
        data.truncate(at);
        if !records.is_empty() {
            self.record_bytes = at.div_ceil(records.len());
        }
        Ok(Batch {
            start,
            end: start + at as u64,
            data,
            records,
        })
    }

    /// The log's bytes past `pos`.
    pub fn unread_from(&self, pos: u64) -> u64 {
        self.log.end().saturating_sub(pos)
    }

    /// The bytes `records` records are expected to take, with an eighth to spare.
    fn guess(&self, records: usize) -> usize {
        let bytes = records.saturating_mul(self.record_bytes);
        bytes.saturating_add(bytes / 8)
    }

    fn segment_file(&mut self, base: u64) -> Result<&File, LogError> {
        if self.file.as_ref().map(|(b, _)| *b) != Some(base) {
            let path = segment::path(self.log.dir(), base);
            let file = File::open(&path).map_err(LogError::Read)?;
            self.file = Some((base, file));
        }
        Ok(&self.file.as_ref().expect("just set").1)
    }
}

/// The first segment holding bytes at or after `pos`.
fn locate(spans: &[Span], pos: u64) -> Option<Span> {
    spans.iter().copied().find(|s| s.end > pos)
}

/// The encoded size of the record `rest` starts with, as far as its header tells (a
/// header with a bad length decodes as corrupt, never gets here).
fn record_len(rest: &[u8]) -> usize {
    match rest.get(..4) {
        Some(len) => entry::HEADER + u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize,
        None => entry::HEADER,
    }
}

/// Reads `data.len()..upto` of the segment (from `offset` on) onto the end of `data`.
/// False when nothing more could be read (the file ends sooner).
fn read_more(file: &File, data: &mut Vec<u8>, upto: usize, offset: u64) -> Result<bool, LogError> {
    let from = data.len();
    data.resize(upto, 0);
    let mut done = from;
    while done < upto {
        match file.read_at(&mut data[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) => {
                data.truncate(from);
                return Err(LogError::Read(e));
            }
        }
    }
    data.truncate(done);
    Ok(done > from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;

    fn write(log: &Log, values: &[&str]) {
        let mut buf = Vec::new();
        for v in values {
            entry::encode(&mut buf, b"k", v.as_bytes());
        }
        log.write(&buf, values.len() as u64).unwrap();
    }

    fn values(batch: &Batch) -> Vec<String> {
        batch
            .entries()
            .map(|e| String::from_utf8(e.value.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn reads_across_segments_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 4096,
            max_bytes: 1 << 20,
            ..LogConfig::default()
        };
        let log = Arc::new(Log::open(dir.path(), config, 0).unwrap());
        let all: Vec<String> = (0..1000).map(|i| format!("record-{i}")).collect();
        for chunk in all.chunks(7) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            write(&log, &refs);
        }
        assert!(log.spans().len() > 3);
        let mut reader = Reader::new(log.clone());
        let mut got = Vec::new();
        let mut pos = 0;
        loop {
            let batch = reader.read(pos, 50, 1 << 20).unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 50);
            got.extend(values(&batch));
            pos = batch.end;
        }
        assert_eq!(got, all);
        assert_eq!(pos, log.end());
    }

    #[test]
    fn reads_sized_by_guess_keep_every_bound_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(dir.path(), LogConfig::default(), 0).unwrap());
        // Sizes that change under the reader's guess: runs of tiny records, runs of
        // large ones, and one record larger than a batch's bytes.
        let all: Vec<String> = (0..3000)
            .map(|i| match (i / 400) % 3 {
                _ if i == 1234 => "x".repeat(400_000),
                0 => format!("{i}"),
                1 => format!("{i}-{}", "y".repeat(3000)),
                _ => format!("{i}-{}", "z".repeat(100)),
            })
            .collect();
        for chunk in all.chunks(13) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            write(&log, &refs);
        }
        let (max_records, max_bytes) = (300, 256 * 1024);
        let mut reader = Reader::new(log.clone());
        let mut got = Vec::new();
        let mut pos = 0;
        loop {
            let batch = reader.read(pos, max_records, max_bytes).unwrap();
            if batch.is_empty() {
                break;
            }
            assert_eq!(batch.start, pos);
            assert!(batch.len() <= max_records);
            assert!(
                batch.bytes() <= max_bytes || batch.len() == 1,
                "{} bytes in {} records",
                batch.bytes(),
                batch.len()
            );
            got.extend(values(&batch));
            pos = batch.end;
        }
        assert_eq!(got, all);
        assert_eq!(pos, log.end());
    }

    #[test]
    fn reopen_continues_positions() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
        write(&log, &["a", "b"]);
        let end = log.end();
        drop(log);
        let log = Arc::new(Log::open(dir.path(), LogConfig::default(), 0).unwrap());
        // A new epoch: positions go on above everything handed out before.
        assert!(log.end() > end);
        write(&log, &["c"]);
        let batch = Reader::new(log.clone()).read(end, 10, 1 << 20).unwrap();
        assert_eq!(values(&batch), vec!["c"]);
    }
}
