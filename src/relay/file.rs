//! The plain-file destination (the original's `/var/log/messages`): lines appended with
//! `O_APPEND`, one `write` per batch of messages, shared by every source thread.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::state_log::StateLog;

#[derive(Debug, thiserror::Error)]
#[error("cannot open {path} for appending: {source}")]
pub struct FileError {
    path: PathBuf,
    source: std::io::Error,
}

pub struct FileSink {
    path: PathBuf,
    file: Mutex<Open>,
}

struct Open {
    file: File,
    /// Whether the last write failed: errors are logged when they start and stop, not
    /// once per batch.
    failing: StateLog<bool>,
}

impl FileSink {
    pub fn open(path: &Path) -> Result<FileSink, FileError> {
        let file = open_append(path)?;
        Ok(FileSink {
            path: path.to_owned(),
            file: Mutex::new(Open {
                file,
                failing: StateLog::new(),
            }),
        })
    }

    /// Opens the path anew and writes there from now on (the relay does this on SIGHUP,
    /// as syslog daemons do for `logrotate`). If it cannot be opened, the old file is kept.
    pub fn reopen(&self) {
        match open_append(&self.path) {
            Ok(file) => {
                self.file.lock().unwrap_or_else(|e| e.into_inner()).file = file;
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
        let mut open = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let result = open.file.write_all(lines);
        match (open.failing.change(result.is_err()), &result) {
            (Some(_), Err(e)) => {
                tracing::error!(file = %self.path.display(), error = %e, "cannot write the file; its messages are lost until it works again");
            }
            (Some(Some(true)), Ok(())) => {
                tracing::info!(file = %self.path.display(), "writing the file works again");
            }
            _ => {}
        }
        result.is_ok()
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
