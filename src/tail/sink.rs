//! Where `tail` puts events: standard output (the seed's text, or JSON lines), or the
//! standard input of a command (`--exec`), retried with backoff, given up on into the
//! dead-letter list, never dropped silently.

use std::io::{BufWriter, Write};
use std::time::Duration;

use super::command::{self, RunOutcome};
use super::TailError;
use crate::record::Record;

/// One event for a sink: its record and, from a stream entry, the named fields written
/// beside the record (`[ship.fields]`), shown under `"entry"` in JSON (the seed's text
/// format has no room for them).
pub trait Event {
    fn record(&self) -> &[u8];
    fn entry_fields(&self) -> &[(String, Vec<u8>)] {
        &[]
    }
}

impl Event for Vec<u8> {
    fn record(&self) -> &[u8] {
        self
    }
}

impl<E: Event> Event for &E {
    fn record(&self) -> &[u8] {
        (*self).record()
    }
    fn entry_fields(&self) -> &[(String, Vec<u8>)] {
        (*self).entry_fields()
    }
}

/// How a batch went: how many of its oldest events were handled (all of them unless
/// stopped), and which of those were given up on.
#[derive(Debug, Default)]
pub struct Outcome {
    pub handled: usize,
    pub dead: Vec<Vec<u8>>,
}

pub enum Sink {
    Print {
        out: BufWriter<std::io::Stdout>,
        json: bool,
        buf: Vec<u8>,
    },
    Exec(Exec),
}

pub struct Exec {
    pub command: String,
    /// Events per run of the command.
    pub batch: usize,
    /// Runs after the first that failed, before giving up.
    pub retries: u32,
    /// Wait before the first retry; doubles each time, at most 30 s.
    pub backoff: Duration,
    /// A run longer than this is killed and counts as a failed try.
    pub timeout: Duration,
}

impl Sink {
    pub fn print(json: bool) -> Sink {
        Sink::Print {
            out: BufWriter::with_capacity(256 * 1024, std::io::stdout()),
            json,
            buf: Vec::with_capacity(256 * 1024),
        }
    }

    /// Handles `events` (oldest first). Returns once what it reports as handled is out of
    /// our hands (written and flushed, or the command exited).
    pub fn handle<E: Event>(
        &mut self,
        events: &[E],
        malformed: &mut u64,
        stop: &dyn Fn() -> bool,
    ) -> Result<Outcome, TailError> {
        match self {
            Sink::Print { out, json, buf } => {
                for e in events {
                    let r = Record::parse(e.record());
                    if !r.well_formed {
                        note_malformed(malformed, e.record());
                    }
                    if *json {
                        buf.clear();
                        write_json(&r, e.entry_fields(), buf);
                        out.write_all(buf).map_err(TailError::Output)?;
                    } else {
                        r.write_text(out).map_err(TailError::Output)?;
                    }
                }
                out.flush().map_err(TailError::Output)?;
                Ok(Outcome {
                    handled: events.len(),
                    dead: Vec::new(),
                })
            }
            Sink::Exec(exec) => {
                let mut outcome = Outcome::default();
                for group in events.chunks(exec.batch.max(1)) {
                    let mut input = Vec::new();
                    for e in group {
                        let r = Record::parse(e.record());
                        if !r.well_formed {
                            note_malformed(malformed, e.record());
                        }
                        write_json(&r, e.entry_fields(), &mut input);
                    }
                    match exec.run_with_retries(&input, stop)? {
                        Some(true) => {}
                        Some(false) => outcome
                            .dead
                            .extend(group.iter().map(|e| e.record().to_vec())),
                        // Stopped mid-way: what is not handled stays in Redis (reliable mode).
                        None => return Ok(outcome),
                    }
                    outcome.handled += group.len();
                }
                Ok(outcome)
            }
        }
    }
}

impl Exec {
    /// `Some(true)` once a run exits 0, `Some(false)` when every try failed (or timed
    /// out), `None` when stopped before either — then the running command is stopped
    /// too, after a short grace, and its events stay for the next start.
    fn run_with_retries(
        &self,
        input: &[u8],
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<bool>, TailError> {
        let mut wait = self.backoff;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                if !command::sleep_unless_stopped(wait, stop) {
                    return Ok(None);
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            if stop() {
                return Ok(None);
            }
            let outcome =
                command::run(&self.command, input, self.timeout, stop).map_err(|source| {
                    TailError::Exec {
                        command: self.command.clone(),
                        source,
                    }
                })?;
            let failure = match outcome {
                RunOutcome::Exited(status) if status.success() => return Ok(Some(true)),
                RunOutcome::Stopped => return Ok(None),
                RunOutcome::Exited(status) => status.to_string(),
                RunOutcome::TimedOut => format!("timed out after {:?} (killed)", self.timeout),
            };
            let left = self.retries - attempt;
            if left > 0 {
                tracing::warn!(command = %self.command, failure, retries_left = left, "command failed; retrying");
            } else {
                tracing::error!(command = %self.command, failure, "command failed on every try; moving its events to the dead-letter list");
            }
        }
        Ok(Some(false))
    }
}

/// The record's JSON line, with the entry's named fields (if any) as `"entry":{…}`.
fn write_json(r: &Record, entry: &[(String, Vec<u8>)], out: &mut Vec<u8>) {
    r.write_json(out);
    if entry.is_empty() {
        return;
    }
    // Reopen the object the record closed (`}\n`) for one more member.
    out.truncate(out.len() - 2);
    out.extend_from_slice(b",\"entry\":{");
    for (i, (name, value)) in entry.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, name);
        out.push(b':');
        let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(value));
    }
    out.extend_from_slice(b"}}\n");
}

fn note_malformed(count: &mut u64, record: &[u8]) {
    if *count == 0 {
        tracing::warn!(
            record = %String::from_utf8_lossy(record),
            "malformed record (no `timestamp,` prefix); passed on as it is (counted, reported at exit)"
        );
    }
    *count += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_fields_join_the_records_json() {
        let r = Record::parse(b"1379183721.115,foo=bar");
        let mut plain = Vec::new();
        write_json(&r, &[], &mut plain);
        let mut with = Vec::new();
        let entry = [
            ("path".to_string(), b"/pixel.gif".to_vec()),
            ("ua".to_string(), b"curl \"8\"".to_vec()),
        ];
        write_json(&r, &entry, &mut with);
        let plain: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        let with: serde_json::Value = serde_json::from_slice(&with).unwrap();
        assert_eq!(with["timestamp"], plain["timestamp"]);
        assert_eq!(with["fields"], plain["fields"]);
        assert_eq!(
            with["entry"],
            serde_json::json!({"path": "/pixel.gif", "ua": "curl \"8\""})
        );
        assert!(plain.get("entry").is_none());
    }
}
