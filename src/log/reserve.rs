//! Positions are never reused, even when a power loss takes the log's tail.
//!
//! The danger: with `fsync = interval` or `never`, Redis can hold records — and a shipped
//! position — that the disk lost. If the log then handed out those positions again, the
//! shipper would take the new records for shipped ones and they would never arrive.
//!
//! Two ways out were possible: ship only what is durable (costs the fsync interval in
//! latency, and with `fsync = never` nothing ever is), or make every position unique
//! whatever the disk forgets. This is the second: a *reservation*. The file
//! `positions` in the log folder holds a bound, made durable (`fsync` of the file and of
//! the folder) before any position at or past the old bound is handed out. So whatever
//! a crash leaves of the segments, every position ever handed out is below the bound on
//! disk, and the next open starts its first segment at that bound: a new position epoch
//! per open. Redis's position can then never be ahead of a record written after the open.
//!
//! The bound moves in steps of [`STEP`] bytes, raised ahead of need by the sync thread
//! (see `sync.rs`), so the writers almost never wait for it; a restart skips at most one
//! step of positions (there are 2^64 of them).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How far the bound moves at a time.
pub const STEP: u64 = 64 << 20;

const NAME: &str = "positions";

pub struct Reservation {
    path: PathBuf,
    /// Positions below this may be handed out; the file on disk says at least this much.
    upto: u64,
}

impl Reservation {
    /// Reads the bound in `dir`; 0 when there is none yet (a new log, or one written by an
    /// older version: nothing is known beyond its segments then).
    pub fn load(dir: &Path) -> io::Result<Reservation> {
        let path = dir.join(NAME);
        let upto = match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a position: {s:?}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Reservation { path, upto })
    }

    pub fn upto(&self) -> u64 {
        self.upto
    }

    /// Makes `to` the durable bound (no-op if it already is higher).
    pub fn raise(&mut self, to: u64) -> io::Result<()> {
        if to <= self.upto {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(format!("{to}\n").as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        // The rename is durable only once the folder is.
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.upto = to;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_bound_survives_and_never_goes_down() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Reservation::load(dir.path()).unwrap();
        assert_eq!(r.upto(), 0);
        r.raise(STEP).unwrap();
        r.raise(5).unwrap();
        assert_eq!(Reservation::load(dir.path()).unwrap().upto(), STEP);
        fs::write(dir.path().join(NAME), "garbage").unwrap();
        assert!(Reservation::load(dir.path()).is_err());
    }
}
