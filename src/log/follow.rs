//! Reading the log as it grows, for `pixelpipe log --follow`: one segment open at a
//! time, read from where the last read stopped, so each poll costs what was written
//! since, not the whole segment.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::entry::{self, Decoded};
use super::segment;

pub struct Follower {
    dir: PathBuf,
    /// The segment being read (its base, the open file). Kept open: a segment deleted
    /// after shipping can still be read to its end through it.
    current: Option<(u64, File)>,
    /// The base of the last segment opened: the next one is after it.
    last_base: Option<u64>,
    /// Bytes read but not yet printed: the start of a record still being written.
    pending: Vec<u8>,
}

impl Follower {
    pub fn new(dir: &Path) -> Follower {
        Follower {
            dir: dir.to_owned(),
            current: None,
            last_base: None,
            pending: Vec::new(),
        }
    }

    /// Prints every whole record written since the last call (`value` or
    /// `key<TAB>value`, one a line). Returns the bytes read from disk.
    pub fn poll(&mut self, out: &mut impl Write, with_key: bool) -> io::Result<u64> {
        let mut read = 0;
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(read);
            }
            let (base, file) = self.current.as_mut().expect("opened above");
            let base = *base;
            read += file.read_to_end(&mut self.pending)? as u64;
            self.print_whole(out, with_key)?;
            // A later segment means this one is finished (the writer rolled over).
            if !self.later_segment_exists(base)? {
                return Ok(read);
            }
            // Read once more: records written just before the roll.
            let (_, file) = self.current.as_mut().expect("still open");
            read += file.read_to_end(&mut self.pending)? as u64;
            self.print_whole(out, with_key)?;
            self.pending.clear();
            self.current = None;
        }
    }

    fn print_whole(&mut self, out: &mut impl Write, with_key: bool) -> io::Result<()> {
        let mut at = 0;
        while let Decoded::Entry(e, n) = entry::decode(&self.pending[at..]) {
            if with_key {
                out.write_all(e.key)?;
                out.write_all(b"\t")?;
            }
            out.write_all(e.value)?;
            out.write_all(b"\n")?;
            at += n;
        }
        self.pending.drain(..at);
        Ok(())
    }

    /// Opens the first segment after the current one; false when there is none yet.
    fn open_next(&mut self) -> io::Result<bool> {
        let after = self.last_base;
        for base in self.bases()? {
            if after.is_some_and(|a| base <= a) {
                continue;
            }
            match File::open(segment::path(&self.dir, base)) {
                Ok(f) => {
                    self.current = Some((base, f));
                    self.last_base = Some(base);
                    return Ok(true);
                }
                // Deleted after shipping since we listed it: the next one.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    fn later_segment_exists(&self, base: u64) -> io::Result<bool> {
        Ok(self.bases()?.into_iter().any(|b| b > base))
    }

    fn bases(&self) -> io::Result<Vec<u64>> {
        segment::list(&self.dir).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(e.kind(), format!("no local log at {}", self.dir.display()))
            } else {
                e
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn append(dir: &Path, base: u64, values: &[&str]) -> u64 {
        let mut data = Vec::new();
        for v in values {
            entry::encode(&mut data, b"pixel", v.as_bytes());
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment::path(dir, base))
            .unwrap();
        f.write_all(&data).unwrap();
        data.len() as u64
    }

    fn poll(f: &mut Follower) -> (String, u64) {
        let mut out = Vec::new();
        let n = f.poll(&mut out, false).unwrap();
        (String::from_utf8(out).unwrap(), n)
    }

    #[test]
    fn reads_only_what_is_new_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let first = append(dir.path(), 0, &["a", "b"]);
        let mut f = Follower::new(dir.path());
        assert_eq!(poll(&mut f), ("a\nb\n".into(), first));
        // Nothing new: nothing read, not the segment again.
        assert_eq!(poll(&mut f), (String::new(), 0));
        let more = append(dir.path(), 0, &["c"]);
        assert_eq!(poll(&mut f), ("c\n".into(), more));
        // A record half written is printed once it is whole.
        let mut half = Vec::new();
        entry::encode(&mut half, b"pixel", b"d");
        let (head, tail) = half.split_at(5);
        let mut seg = OpenOptions::new()
            .append(true)
            .open(segment::path(dir.path(), 0))
            .unwrap();
        seg.write_all(head).unwrap();
        assert_eq!(poll(&mut f).0, "");
        seg.write_all(tail).unwrap();
        assert_eq!(poll(&mut f).0, "d\n");
        // Rolled over, and the old segment deleted (shipped): the new one is followed.
        let next = append(dir.path(), 1 << 30, &["e"]);
        std::fs::remove_file(segment::path(dir.path(), 0)).unwrap();
        assert_eq!(poll(&mut f), ("e\n".into(), next));
        assert_eq!(poll(&mut f), (String::new(), 0));
    }
}
