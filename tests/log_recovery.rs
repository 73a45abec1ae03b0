//! The local log after a crash, as a property: whatever prefix of the last write reached
//! the disk, and whatever garbage follows it, recovery keeps exactly the whole records,
//! the reader ships exactly those (never half of one), and new records follow them.

use std::sync::Arc;

use pixelpipe::config::LogConfig;
use pixelpipe::log::{entry, segment, Log, Reader};
use proptest::prelude::*;

fn read_all(log: &Arc<Log>, from: u64) -> Vec<Vec<u8>> {
    let mut reader = Reader::new(log.clone());
    let mut pos = from;
    let mut out = Vec::new();
    loop {
        let batch = reader.read(pos, 7, 300).unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch.entries().map(|e| e.value.to_vec()));
        pos = batch.end;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_torn_tail_is_cut_and_never_shipped(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 1..40),
        cut_back in 0usize..80,
        garbage in proptest::collection::vec(any::<u8>(), 0..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 4096, max_bytes: 1 << 20, ..LogConfig::default() };
        // Lay the records down as a crash would leave them: whole records, then a torn
        // one (a prefix), then whatever garbage the disk had there.
        let mut data = Vec::new();
        let mut ends = Vec::new();
        for v in &values {
            entry::encode(&mut data, b"pixel", v);
            ends.push(data.len());
        }
        let cut = data.len().saturating_sub(cut_back);
        data.truncate(cut);
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        data.extend_from_slice(&garbage);
        std::fs::write(segment::path(dir.path(), 0), &data).unwrap();

        let log = Arc::new(Log::open(dir.path(), config.clone(), 0).unwrap());
        let got = read_all(&log, 0);
        // Garbage may by chance decode as a record only if it carries a valid checksum:
        // then it is a whole record and counts as one. Everything before it is exact.
        prop_assert!(got.len() >= whole);
        prop_assert_eq!(&got[..whole], &values[..whole]);

        // New records land after what was kept, and survive a reopen.
        let end_before = log.end();
        let mut buf = Vec::new();
        entry::encode(&mut buf, b"pixel", b"after-crash");
        log.write(&buf, 1).unwrap();
        drop(log);
        let log = Arc::new(Log::open(dir.path(), config, 0).unwrap());
        let again = read_all(&log, end_before);
        prop_assert_eq!(again, vec![b"after-crash".to_vec()]);
    }
}

#[test]
fn a_flipped_byte_in_the_middle_stops_recovery_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Vec::new();
    for i in 0..10 {
        entry::encode(&mut data, b"k", format!("record-{i}").as_bytes());
    }
    let one = data.len() / 10;
    data[one * 4 + 12] ^= 0xff; // inside record 4
    std::fs::write(segment::path(dir.path(), 0), &data).unwrap();
    let log = Arc::new(Log::open(dir.path(), LogConfig::default(), 0).unwrap());
    let got = read_all(&log, 0);
    assert_eq!(got.len(), 4);
    assert_eq!(log.end(), (one * 4) as u64);
}
