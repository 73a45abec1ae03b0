//! Segment files: `<base offset, 20 digits>.seg` in the log folder, where the base offset
//! is the global byte position of the segment's first record. Positions only grow, across
//! segments and restarts, so "shipped up to position P" means the same thing forever.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::entry::{self, Decoded};

pub const SUFFIX: &str = ".seg";

pub fn path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SUFFIX}"))
}

/// The bases of the segments in `dir`, oldest first. Other files are ignored.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut bases = Vec::new();
    for item in fs::read_dir(dir)? {
        let name = item?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name.strip_suffix(SUFFIX).and_then(|n| n.parse().ok()) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// What recovery found in one segment.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan {
    /// Bytes of whole, checked records from the start.
    pub valid_len: u64,
    pub records: u64,
    /// Bytes after `valid_len` that were not a whole record (a torn or corrupt tail).
    pub dropped_bytes: u64,
}

/// Reads a segment through and truncates it after its last whole record, so that a torn
/// tail left by a crash is never shipped, half or whole.
pub fn recover(path: &Path) -> io::Result<Scan> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    let scan = scan(&data);
    if scan.dropped_bytes > 0 {
        file.set_len(scan.valid_len)?;
        file.sync_all()?;
    }
    Ok(scan)
}

pub fn scan(data: &[u8]) -> Scan {
    let mut pos = 0usize;
    let mut records = 0;
    while let Decoded::Entry(_, n) = entry::decode(&data[pos..]) {
        pos += n;
        records += 1;
    }
    Scan {
        valid_len: pos as u64,
        records,
        dropped_bytes: (data.len() - pos) as u64,
    }
}

pub fn create(dir: &Path, base: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(dir, base))
}

pub fn open_append(dir: &Path, base: u64) -> io::Result<File> {
    OpenOptions::new().append(true).open(path(dir, base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_base() {
        let dir = tempfile::tempdir().unwrap();
        for base in [1000u64, 5, 123_456_789_012] {
            File::create(path(dir.path(), base)).unwrap();
        }
        File::create(dir.path().join("shipped")).unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![5, 1000, 123_456_789_012]);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), 0);
        let mut data = Vec::new();
        entry::encode(&mut data, b"pixel", b"one");
        entry::encode(&mut data, b"pixel", b"two");
        let whole = data.len() as u64;
        entry::encode(&mut data, b"pixel", b"three");
        data.truncate(data.len() - 3);
        fs::write(&p, &data).unwrap();
        let scan = recover(&p).unwrap();
        assert_eq!(scan.records, 2);
        assert_eq!(scan.valid_len, whole);
        assert_eq!(fs::metadata(&p).unwrap().len(), whole);
        // A second recovery finds nothing more to do.
        assert_eq!(recover(&p).unwrap().dropped_bytes, 0);
    }
}
