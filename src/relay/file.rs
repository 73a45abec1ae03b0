//! The plain-file destination (the original's `/var/log/messages`): lines appended with
//! `O_APPEND` by a writer thread of its own, one `write` per batch of messages.
//!
//! Why a thread: a file can block (a full or slow disk, a FIFO nobody reads, NFS). The
//! sources hand their batches over through a bounded queue and go on with the Redis
//! routes; when the queue is full (the file has been stuck for a while) a batch is
//! dropped and counted rather than stalling every source.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use metrics::Counter;

use crate::state_log::StateLog;

/// Batches waiting for the writer thread, per file.
const QUEUE_BATCHES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {path} for appending: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the writer thread of {path}: {source}")]
    Thread {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A batch of lines and the counter of the source they came from, for write errors.
struct Job {
    lines: Vec<u8>,
    errors: Counter,
}

pub struct FileSink {
    path: PathBuf,
    queue: Mutex<Option<SyncSender<Job>>>,
    reopen: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl FileSink {
    pub fn open(path: &Path) -> Result<FileSink, FileError> {
        let file = open_append(path)?;
        let (queue, jobs) = mpsc::sync_channel(QUEUE_BATCHES);
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            path: path.to_owned(),
            file,
            reopen: reopen.clone(),
            failing: StateLog::new(),
        };
        let thread = std::thread::Builder::new()
            .name("relay-file".into())
            .spawn(move || writer.run(jobs))
            .map_err(|source| FileError::Thread {
                path: path.to_owned(),
                source,
            })?;
        Ok(FileSink {
            path: path.to_owned(),
            queue: Mutex::new(Some(queue)),
            reopen,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Opens the path anew and writes there from now on (the relay does this on SIGHUP,
    /// as syslog daemons do for `logrotate`). If it cannot be opened, the old file is kept.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands whole lines to the writer thread (taking the buffer). False when the queue
    /// is full: the file has been stuck for a while and this batch is dropped.
    pub fn write(&self, lines: &mut Vec<u8>, errors: &Counter) -> bool {
        if lines.is_empty() {
            return true;
        }
        let job = Job {
            lines: std::mem::take(lines),
            errors: errors.clone(),
        };
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        match queue.as_ref().map(|q| q.try_send(job)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => false,
        }
    }

    /// Writes what is queued, then stops the writer thread.
    pub fn close(&self) {
        drop(self.queue.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        self.close();
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    reopen: Arc<AtomicBool>,
    /// Whether the last write failed: errors are logged when they start and stop, not
    /// once per batch.
    failing: StateLog<bool>,
}

impl Writer {
    fn run(mut self, jobs: Receiver<Job>) {
        loop {
            // Wake now and then to honour a reopen even when no lines come.
            let job = match jobs.recv_timeout(Duration::from_millis(500)) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if self.reopen.swap(false, Ordering::AcqRel) {
                self.reopen_file();
            }
            if let Some(job) = job {
                self.write(&job);
            }
        }
    }

    fn reopen_file(&mut self) {
        match open_append(&self.path) {
            Ok(file) => {
                self.file = file;
                tracing::info!(file = %self.path.display(), "reopened");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen; still writing the file open before")
            }
        }
    }

    fn write(&mut self, job: &Job) {
        match self.file.write_all(&job.lines) {
            Ok(()) => {
                if self.failing.change(false) == Some(Some(true)) {
                    tracing::info!(file = %self.path.display(), "writing the file works again");
                }
            }
            Err(e) => {
                let n = job.lines.iter().filter(|&&b| b == b'\n').count();
                job.errors.increment(n as u64);
                if self.failing.change(true).is_some() {
                    tracing::error!(file = %self.path.display(), error = %e, "cannot write the file; its messages are lost until it works again");
                }
            }
        }
    }
}

fn open_append(path: &Path) -> Result<File, FileError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| FileError::Open {
            path: path.to_owned(),
            source,
        })
}
