//! The plain-file destination (the original's `/var/log/messages`): lines appended with
//! `O_APPEND`, one `write` per batch of messages, shared by every source thread.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("cannot open {path} for appending: {source}")]
pub struct FileError {
    path: PathBuf,
    source: std::io::Error,
}

pub struct FileSink {
    path: PathBuf,
    file: Mutex<File>,
    /// Whether the last write failed: errors are logged when they start and stop, not
    /// once per batch.
    failing: AtomicBool,
}

impl FileSink {
    pub fn open(path: &Path) -> Result<FileSink, FileError> {
        let file = open_append(path)?;
        Ok(FileSink {
            path: path.to_owned(),
            file: Mutex::new(file),
            failing: AtomicBool::new(false),
        })
    }

    /// Opens the path anew and writes there from now on (the relay does this on SIGHUP,
    /// as syslog daemons do for `logrotate`). If it cannot be opened, the old file is kept.
    pub fn reopen(&self) {
        match open_append(&self.path) {
            Ok(file) => {
                *self.file.lock().unwrap_or_else(|e| e.into_inner()) = file;
                tracing::info!(file = %self.path.display(), "reopened");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen; still writing the file open before")
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends whole lines. On failure the batch is lost (a plain file offers no more),
    /// which is logged and counted.
    pub fn write(&self, lines: &[u8]) -> bool {
        if lines.is_empty() {
            return true;
        }
        let result = self
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(lines);
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(file = %self.path.display(), "writing the file works again");
                }
                true
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(file = %self.path.display(), error = %e, "cannot write the file; its messages are lost until it works again");
                }
                false
            }
        }
    }
}

fn open_append(path: &Path) -> Result<File, FileError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| FileError {
            path: path.to_owned(),
            source,
        })
}
