//! Plain `tail` (a list: pop, `--reliable`, `--no-remove`) over every shard of the key
//! (`ship.shards = N`: `pixel:{0}` … `pixel:{N-1}`, or `pixel` itself with one shard on
//! one server).
//!
//! One reader thread per shard, each with its own connection and blocking on its own key,
//! so every shard is waited on at once: on a cluster the shards sit in different slots,
//! where no single `BRPOP` can wait on all of them. Readers hand their batches to the
//! calling thread, which owns the sink, and wait for the outcome before they acknowledge
//! the batch (on the shard's connection, in its slot) and fetch the next: each shard is
//! handled in order, one batch in flight per shard. `--count` is a [`Budget`] the readers
//! share, so no reader fetches beyond it. A single shard is read on the calling thread,
//! its batches handed straight to the sink (the hand-over between threads cost the
//! unsharded consumer about 15 % of its throughput, on a loaded 2-core machine).

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio_util::sync::CancellationToken;

use super::budget::Budget;
use super::endpoint::Endpoint;
use super::sink::{Outcome, Sink};
use super::source::{Mode, Source};
use super::{Summary, TailError};

/// One shard's keys.
#[derive(Debug, Clone)]
pub struct Shard {
    pub key: String,
    pub mode: Mode,
    /// Where events given up on go; in the shard's slot (one transaction with the trim).
    pub dead_letter: String,
}

/// From a reader to the sink's thread.
enum Message {
    /// Events of one shard, oldest first; the outcome goes back on `done`.
    Batch {
        events: Vec<Vec<u8>>,
        done: Sender<Outcome>,
    },
    Failed(TailError),
}

/// What every reader shares.
#[derive(Clone)]
struct Shared {
    endpoint: Endpoint,
    budget: Arc<Budget>,
    fetch: usize,
    stop: CancellationToken,
}

/// Reads `shards` into `sink` until stopped, or until `count` events were handled, or
/// (peek mode) until every shard was read to its end.
pub fn run(
    endpoint: Endpoint,
    shards: Vec<Shard>,
    sink: &mut Sink,
    count: Option<u64>,
    fetch: usize,
    stop: &CancellationToken,
) -> Result<Summary, TailError> {
    let shared = Shared {
        endpoint,
        budget: Arc::new(Budget::new(count)),
        fetch,
        stop: stop.clone(),
    };
    let mut summary = Summary::default();
    if let [shard] = &shards[..] {
        // One shard: read it on this thread, handing batches straight to the sink (no
        // thread, no hand-over: the seed's consumer as it always was).
        let stopped = || stop.is_cancelled();
        read(0, shard, &shared, &mut |events| {
            hand(sink, &events, &mut summary, &stopped).map(Some)
        })?;
        return Ok(summary);
    }
    let (to_sink, batches) = mpsc::channel();
    let mut readers = Vec::with_capacity(shards.len());
    let mut spawned = Ok(());
    for (who, shard) in shards.into_iter().enumerate() {
        let (shared, to_sink) = (shared.clone(), to_sink.clone());
        match std::thread::Builder::new()
            .name(format!("tail-{}", shard.key))
            .spawn(move || read_on_thread(who, shard, shared, to_sink))
        {
            Ok(handle) => readers.push(handle),
            Err(e) => {
                spawned = Err(TailError::Output(e));
                break;
            }
        }
    }
    // The channel ends once every reader has ended.
    drop(to_sink);
    let result = spawned.and_then(|()| handle_batches(&batches, sink, &mut summary, stop));
    if result.is_err() {
        // The readers end within a blocking read; a batch in flight is not acknowledged.
        stop.cancel();
    }
    drop(batches);
    join(readers);
    result.map(|()| summary)
}

/// Hands every batch to the sink, in the order the readers sent them.
fn handle_batches(
    batches: &Receiver<Message>,
    sink: &mut Sink,
    summary: &mut Summary,
    stop: &CancellationToken,
) -> Result<(), TailError> {
    let stopped = || stop.is_cancelled();
    for message in batches {
        let (events, done) = match message {
            Message::Batch { events, done } => (events, done),
            Message::Failed(e) => return Err(e),
        };
        let outcome = hand(sink, &events, summary, &stopped)?;
        // A reader that is gone (stopped) has nothing to acknowledge.
        let _ = done.send(outcome);
    }
    Ok(())
}

/// One batch to the sink, counted.
fn hand(
    sink: &mut Sink,
    events: &[Vec<u8>],
    summary: &mut Summary,
    stopped: &dyn Fn() -> bool,
) -> Result<Outcome, TailError> {
    let outcome = sink.handle(events, &mut summary.malformed, stopped)?;
    summary.events += outcome.handled as u64;
    summary.dead += outcome.dead.len() as u64;
    Ok(outcome)
}

fn join(readers: Vec<JoinHandle<()>>) {
    for r in readers {
        if r.join().is_err() {
            tracing::error!("a shard reader panicked");
        }
    }
}

/// A reader on a thread of its own: its batches go to the sink's thread, and an error
/// too.
fn read_on_thread(who: usize, shard: Shard, shared: Shared, to_sink: Sender<Message>) {
    let (done, outcomes) = mpsc::channel();
    let result = read(who, &shard, &shared, &mut |events| {
        let sent = to_sink.send(Message::Batch {
            events,
            done: done.clone(),
        });
        // No outcome: the sink's thread is gone (it failed); nothing was handled.
        Ok(sent.ok().and_then(|()| outcomes.recv().ok()))
    });
    if let Err(e) = result {
        let _ = to_sink.send(Message::Failed(e));
    }
}

/// Where a reader's batches go: the outcome once handled, `None` when they cannot be.
type Deliver<'a> = dyn FnMut(Vec<Vec<u8>>) -> Result<Option<Outcome>, TailError> + 'a;

/// One shard's reader: fetch (within the budget), deliver, acknowledge what was
/// handled, again — until stopped, the budget is spent, or (peek) the list's end.
fn read(
    who: usize,
    shard: &Shard,
    shared: &Shared,
    deliver: &mut Deliver<'_>,
) -> Result<(), TailError> {
    let stop = shared.stop.clone();
    let stopped = move || stop.is_cancelled();
    let mut source = Source::new(
        shared.endpoint.clone(),
        shard.key.clone(),
        shard.mode.clone(),
        Box::new(stopped.clone()),
    );
    let budget = &shared.budget;
    loop {
        let Some(mut share) = budget.reserve(who, shared.fetch, &stopped) else {
            return Ok(());
        };
        let mut got = source.fetch(share, false)?;
        if got.as_ref().is_some_and(Vec::is_empty) {
            // Nothing waiting: block for one event, holding a share of one only, so
            // that the other shards can still fetch up to the count meanwhile.
            budget.settle(share, 0);
            let Some(one) = budget.reserve(who, 1, &stopped) else {
                return Ok(());
            };
            share = one;
            got = source.fetch(share, true)?;
        }
        let events = match got {
            Some(events) if !events.is_empty() => events,
            Some(_) => {
                budget.settle(share, 0);
                continue;
            }
            None => {
                budget.settle(share, 0);
                return Ok(());
            }
        };
        let fetched = events.len();
        let outcome = match deliver(events) {
            Ok(Some(outcome)) => outcome,
            other => {
                budget.settle(share, 0);
                return other.map(|_| ());
            }
        };
        let acked = source.ack(outcome.handled, &outcome.dead, &shard.dead_letter);
        budget.settle(share, outcome.handled);
        acked?;
        if outcome.handled < fetched {
            // The sink stopped mid-batch: the rest stays (reliable mode) for the next start.
            return Ok(());
        }
    }
}
