//! What the shipper keeps on disk next to the log: this log's identity, and a cache of the
//! shipped position. The authoritative position lives in Redis, written in the same
//! atomic step as the records; the file only lets a restart resume without asking Redis,
//! and protects against a Redis that restarted empty.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A random id made the first time a data folder is used. It names this log's position
/// in Redis, so that several collectors behind a load balancer never share one.
pub fn instance_id(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join("instance-id");
    match fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) | Err(_) => {
            fs::create_dir_all(data_dir)?;
            let id = format!("{:016x}", fastrand::u64(..));
            write_atomically(&path, id.as_bytes())?;
            Ok(id)
        }
    }
}

pub struct PositionFile {
    path: PathBuf,
}

impl PositionFile {
    pub fn new(data_dir: &Path) -> PositionFile {
        PositionFile {
            path: data_dir.join("shipped"),
        }
    }

    /// The cached position, 0 when there is none or it is unreadable (Redis then decides).
    pub fn load(&self) -> u64 {
        fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn store(&self, pos: u64) -> io::Result<()> {
        write_atomically(&self.path, format!("{pos}\n").as_bytes())
    }
}

/// Write to a temporary file, then rename over: a reader sees the old or the new content,
/// never half of one.
fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_stable_and_position_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let id = instance_id(dir.path()).unwrap();
        assert_eq!(id.len(), 16);
        assert_eq!(instance_id(dir.path()).unwrap(), id);
        let pos = PositionFile::new(dir.path());
        assert_eq!(pos.load(), 0);
        pos.store(12345).unwrap();
        assert_eq!(pos.load(), 12345);
    }
}
