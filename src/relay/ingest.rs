//! What happens to one received message, on the thread of the source that read it:
//! parse, route, render, then append to the local log (Redis routes) or to a batch of
//! file lines (file routes, written once per batch with [`Ingest::end_batch`]).

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Local};

use super::key::{KeyRejection, LastAccepted};
use super::metrics::SourceMetrics;
use super::received::Received;
use super::route::{Destination, Route, Router};
use crate::log::entry::Framer;
use crate::log::{Appender, LogError, Ticket};
use crate::syslog::parse;

pub struct Ingest {
    router: Arc<Router>,
    appender: Appender,
    pub metrics: SourceMetrics,
    local_host: Arc<[u8]>,
    /// Whether RFC 3164 headers carry a host name (see [`parse`]).
    expect_host: bool,
    /// Reused render buffers: no allocation per message once warm.
    key: Vec<u8>,
    value: Vec<u8>,
    accepted_key: LastAccepted,
    /// Pending lines per route (empty for Redis routes).
    file_lines: Vec<Vec<u8>>,
    /// The receive time of the current batch (cheaper than a clock read per message).
    now: DateTime<Local>,
    /// The busy counters, added to the metrics once per batch rather than per message.
    tally: Tally,
}

#[derive(Default)]
struct Tally {
    received: u64,
    parsed: u64,
    malformed: u64,
    to_redis: u64,
    to_file: u64,
    unrouted: u64,
}

/// Appends the file route's line for `record` to `lines`: one message, one line, whatever
/// its text holds.
fn write_line(route: &Route, record: &Received<'_>, lines: &mut Vec<u8>) {
    let Destination::File { template, .. } = &route.destination else {
        return;
    };
    let start = lines.len();
    template.render(record, lines);
    for b in &mut lines[start..] {
        if *b == b'\n' {
            *b = b' ';
        }
    }
    lines.push(b'\n');
}

fn count_refused(m: &SourceMetrics, why: KeyRejection) {
    match why {
        KeyRejection::Empty => m.refused_key_empty.increment(1),
        KeyRejection::Pattern => m.refused_key_pattern.increment(1),
        KeyRejection::Reserved => m.refused_key_reserved.increment(1),
    }
}

impl Ingest {
    /// Must be called inside the tokio runtime of the source's thread: the appender's
    /// group-commit flusher runs there.
    pub fn new(
        router: Arc<Router>,
        appender: Appender,
        metrics: SourceMetrics,
        local_host: Arc<[u8]>,
        expect_host: bool,
    ) -> Ingest {
        let routes = router.routes.len();
        Ingest {
            router,
            appender,
            metrics,
            local_host,
            expect_host,
            key: Vec::with_capacity(256),
            value: Vec::with_capacity(4096),
            accepted_key: LastAccepted::default(),
            file_lines: vec![Vec::new(); routes],
            now: Local::now(),
            tally: Tally::default(),
        }
    }

    pub fn appender(&self) -> &Appender {
        &self.appender
    }

    /// Starts a batch of messages read at the same moment.
    pub fn begin_batch(&mut self) {
        self.now = Local::now();
    }

    /// Handles one message (framing already removed). Returns the ticket of its last
    /// record in the local log, if a Redis route took it.
    pub fn message(&mut self, raw: &[u8], peer: Option<IpAddr>) -> Option<Ticket> {
        let m = &self.metrics;
        let tally = &mut self.tally;
        tally.received += 1;
        let message = parse(raw, self.now, self.expect_host);
        if message.malformed {
            tally.malformed += 1;
        } else {
            tally.parsed += 1;
        }
        let record = Received {
            message: &message,
            received: self.now,
            peer,
            local_host: &self.local_host,
        };
        let mut ticket = None;
        let (key, value, file_lines) = (&mut self.key, &mut self.value, &mut self.file_lines);
        let accepted_key = &mut self.accepted_key;
        let appender = &self.appender;
        let router = &self.router;
        let matched = router.each_match(&message, |i, route| match &route.destination {
            Destination::Redis {
                key: k,
                value: v,
                guarded,
            } => {
                key.clear();
                k.render(&record, key);
                if *guarded {
                    if let Err(why) = router.keys.check_remembered(key, accepted_key) {
                        // Not a key this sender may write to: the file route takes it.
                        count_refused(m, why);
                        if let Some(f) = router.refused_key_route {
                            write_line(&router.routes[f], &record, &mut file_lines[f]);
                            tally.to_file += 1;
                        }
                        return;
                    }
                }
                value.clear();
                if router.fields.is_empty() {
                    v.render(&record, value);
                } else {
                    let mut framer = Framer::start(value);
                    v.render(&record, value);
                    for (name, field) in &router.fields {
                        framer.field(value, name.as_bytes());
                        field.render(&record, value);
                    }
                    framer.finish(value);
                }
                match appender.append(key, value) {
                    Ok(t) => {
                        tally.to_redis += 1;
                        ticket = Some(t);
                    }
                    Err(LogError::Full { .. }) => m.dropped_log_full.increment(1),
                    Err(_) => m.dropped_too_large.increment(1),
                }
            }
            Destination::File { .. } => {
                write_line(route, &record, &mut file_lines[i]);
                tally.to_file += 1;
            }
        });
        if matched == 0 {
            tally.unrouted += 1;
        }
        ticket
    }

    /// Ends a batch: writes the pending file lines (one `write` per file route) and
    /// adds up the counters.
    pub fn end_batch(&mut self) {
        let (t, m) = (std::mem::take(&mut self.tally), &self.metrics);
        for (counter, n) in [
            (&m.received, t.received),
            (&m.parsed, t.parsed),
            (&m.malformed, t.malformed),
            (&m.to_redis, t.to_redis),
            (&m.to_file, t.to_file),
            (&m.unrouted, t.unrouted),
        ] {
            if n > 0 {
                counter.increment(n);
            }
        }
        for (i, route) in self.router.routes.iter().enumerate() {
            let lines = &mut self.file_lines[i];
            if lines.is_empty() {
                continue;
            }
            if let Destination::File { sink, .. } = &route.destination {
                // Handed to the file's writer thread (the buffer goes with it), so that a
                // stuck file never stalls this source; a full queue drops the batch.
                let n = lines.iter().filter(|&&b| b == b'\n').count();
                if !sink.write(lines, &self.metrics.file_errors) {
                    self.metrics.file_errors.increment(n as u64);
                }
            }
            lines.clear();
        }
    }
}
