//! One client connection: read, answer every complete request in the buffer (pipelining),
//! and only once their records are in the local log, write all the answers at once.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::request::{self, Parsed};
use super::response::{self, Reply};
use super::tls::Transport;
use super::web::{self, Incoming, Routed};
use super::Endpoint;
use crate::log::Appender;
use crate::metrics::metrics;

/// Serves one connection, plain (`TcpStream`) or HTTPS (see `tls.rs`).
pub async fn serve<S: Transport>(
    stream: S,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    appender: Appender,
    shutdown: CancellationToken,
) {
    let mut conn = Connection {
        stream,
        peer,
        endpoint,
        appender,
        buf: Vec::with_capacity(4096),
        out: Vec::with_capacity(4096),
        record: Vec::with_capacity(256),
        answers: Vec::new(),
        request_started: None,
        continued: false,
        rounds: 0,
    };
    // Made once per connection, not per wait: registering with the shared shutdown
    // signal on every keep-alive round trip costs more than the rest of the wait.
    let stop = shutdown.cancelled();
    tokio::pin!(stop);
    let idle = tokio::time::sleep(IDLE_GRACE);
    tokio::pin!(idle);
    loop {
        // One clock reading per batch of requests: their records' time and the answers' Date.
        let now = SystemTime::now();
        let end = conn.answer_buffered(now);
        if !conn.answers.is_empty() && conn.write_answers(end, now).await.is_err() {
            return;
        }
        match end {
            End::KeepAlive => {}
            End::Close => {
                let _ = conn.stream.shutdown().await;
                return;
            }
            End::Invalid => {
                let _ = conn.stream.shutdown().await;
                linger(&mut conn.stream, &mut conn.buf).await;
                return;
            }
        }
        if !conn.read_more(&mut stop, idle.as_mut()).await {
            return;
        }
    }
}

/// How the requests answered so far leave the connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    KeepAlive,
    /// The client asked to close (or HTTP/1.0 without keep-alive).
    Close,
    /// A malformed request: close, after draining what the client still sends.
    Invalid,
}

struct Connection<S> {
    stream: S,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    appender: Appender,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
    /// Answers to write, all at once.
    out: Vec<u8>,
    /// Scratch space for rendering one record.
    record: Vec<u8>,
    /// Each answer and whether it has a body; for records, the ticket its success waits
    /// for.
    answers: Vec<(Routed, bool)>,
    /// When the first byte of the request being read arrived: the header timeout runs
    /// from there, so a client trickling a byte at a time cannot hold the connection.
    request_started: Option<Instant>,
    /// Whether the request being read was sent its `100 Continue` already.
    continued: bool,
    /// How many times answers were written: a connection that came back after its first
    /// answer is one that keeps its buffers through [`IDLE_GRACE`].
    rounds: u32,
}

impl<S: Transport> Connection<S> {
    /// Parses and routes every complete request already buffered (pipelining), appending
    /// the hits' records; their answers wait in `answers`.
    fn answer_buffered(&mut self, now: SystemTime) -> End {
        let mut start = 0;
        let mut end = End::KeepAlive;
        while end == End::KeepAlive {
            let mut headers = request::headers();
            match request::parse(&self.buf[start..], &mut headers, self.endpoint.limits) {
                Parsed::Request(req, len) => {
                    start += len;
                    if req.expect_continue && !self.continued {
                        self.answers.push((Routed::plain(Reply::Continue), false));
                    }
                    self.continued = false;
                    if !req.keep_alive {
                        end = End::Close;
                    }
                    let head = req.method == "HEAD";
                    let inc = Incoming {
                        req: &req,
                        path: &req.path,
                        body: &req.body,
                        peer: self.peer,
                        now,
                        tls: S::TLS,
                    };
                    let routed = route(&inc, &self.endpoint, &self.appender, &mut self.record);
                    self.answers.push((routed, !head));
                }
                Parsed::Partial { expect_continue } => {
                    // The client waits for this before it sends the body: it goes out now,
                    // after the answers to the requests before it.
                    if expect_continue && !self.continued {
                        self.continued = true;
                        self.answers.push((Routed::plain(Reply::Continue), false));
                    }
                    break;
                }
                Parsed::Invalid(reply) => {
                    count_rejected(reply);
                    self.answers.push((Routed::plain(reply), true));
                    end = End::Invalid;
                }
            }
        }
        if start > 0 {
            self.buf.drain(..start);
            self.request_started = None;
        }
        end
    }

    /// Waits until the hits' records are in the local log (a 503 for those that could
    /// not be), then writes every answer with one write.
    async fn write_answers(&mut self, end: End, now: SystemTime) -> std::io::Result<()> {
        let mut hits = 0;
        for (routed, with_body) in self.answers.drain(..) {
            let Routed {
                reply,
                ticket,
                extra,
                events,
            } = routed;
            let reply = match ticket {
                Some(t) => match t.wait().await {
                    Ok(()) => {
                        hits += events;
                        reply
                    }
                    // Said by the log once per change of state, not per group.
                    Err(_) => {
                        metrics().rejected_log_error.increment(1);
                        Reply::ServiceUnavailable
                    }
                },
                None => reply,
            };
            if reply == Reply::Continue {
                self.out.extend_from_slice(response::CONTINUE);
                continue;
            }
            // A 503 stands alone: no CORS or Location for what was not recorded.
            let extra = extra.filter(|_| reply != Reply::ServiceUnavailable);
            let keep_alive = end == End::KeepAlive;
            reply.write_with(&mut self.out, keep_alive, with_body, now, extra.as_deref());
        }
        metrics().hits.increment(hits);
        self.rounds = self.rounds.saturating_add(1);
        let written = self.send_out().await;
        self.out.clear();
        written
    }

    /// Writes `out` within `send_timeout` (nginx's `send_timeout`): a client that stops
    /// reading cannot hold its connection, and its slot, forever.
    async fn send_out(&mut self) -> std::io::Result<()> {
        match tokio::time::timeout(self.endpoint.send_timeout, self.stream.write_all(&self.out))
            .await
        {
            Ok(written) => written,
            Err(_elapsed) => {
                metrics().rejected_send_timeout.increment(1);
                Err(std::io::ErrorKind::TimedOut.into())
            }
        }
    }

    /// Reads more of the next request: a started request has `header_timeout` to
    /// complete (then 408); an idle keep-alive connection is closed after `idle_timeout`,
    /// or at shutdown. Returns false when the connection is done.
    async fn read_more(
        &mut self,
        stop: &mut (impl Future<Output = ()> + Unpin),
        idle: Pin<&mut Sleep>,
    ) -> bool {
        let in_request = !self.buf.is_empty();
        let timeout = if in_request {
            let started = *self.request_started.get_or_insert_with(Instant::now);
            self.endpoint
                .header_timeout
                .saturating_sub(started.elapsed())
        } else {
            self.request_started = None;
            self.endpoint.idle_timeout
        };
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        // The next request is often there already (pipelining, fast clients): then no
        // timer and no wake-up are needed.
        match self.stream.read_ready(&mut self.buf) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        if !in_request {
            return self.wait_idle(timeout, stop, idle).await;
        }
        tokio::select! {
            read = tokio::time::timeout(timeout, self.stream.read_buf(&mut self.buf)) => match read {
                Ok(Ok(0)) | Ok(Err(_)) => false,
                Ok(Ok(_)) => true,
                Err(_elapsed) => {
                    if in_request {
                        metrics().rejected_timeout.increment(1);
                        self.out.clear();
                        Reply::RequestTimeout.write(&mut self.out, false, true, SystemTime::now());
                        let _ = self.send_out().await;
                    }
                    false
                }
            },
            _ = stop, if !in_request => false,
        }
    }
}

impl<S: Transport> Connection<S> {
    /// An idle keep-alive connection may wait long: after [`IDLE_GRACE`] it holds no
    /// buffers (thousands of idle connections would pin ~8 KiB each) and takes them again
    /// when the client sends (the first read takes a small buffer, the next ones a full
    /// one). A busy client's next request comes within the grace, and finds its buffers
    /// still there: no allocation and no extra read per request. Only a connection that
    /// came back after its first answer gets the grace: one that sent a single hit (most
    /// of a burst of visitors) gives its buffers back at once, so a burst of thousands
    /// does not hold thousands of buffers for the grace, a peak that glibc would keep as
    /// resident memory while they stay open. Returns false when the connection is done.
    ///
    /// `idle` is the connection's one timer, armed lazily: a fresh timer per wait costs
    /// the runtime a wake-up write (an `eventfd` syscall) every few requests, so the timer
    /// keeps the deadline it has, and is only pushed on when it fires early (at most
    /// once per grace, however many requests came meanwhile).
    async fn wait_idle(
        &mut self,
        timeout: Duration,
        stop: &mut (impl Future<Output = ()> + Unpin),
        mut idle: Pin<&mut Sleep>,
    ) -> bool {
        let since = tokio::time::Instant::now();
        if self.rounds > 1 {
            let grace_end = since + IDLE_GRACE.min(timeout);
            // Still set for the end of a long wait before (rare): bring it forward.
            if idle.deadline() > grace_end {
                idle.as_mut().reset(grace_end);
            }
            loop {
                tokio::select! {
                    read = self.stream.read_buf(&mut self.buf) => return matches!(read, Ok(n) if n > 0),
                    () = idle.as_mut() => {
                        if tokio::time::Instant::now() >= grace_end {
                            break;
                        }
                        idle.as_mut().reset(grace_end);
                    }
                    _ = &mut *stop => return false,
                }
            }
        }
        (self.buf, self.out, self.record, self.answers) = Default::default();
        idle.as_mut().reset(since + timeout);
        tokio::select! {
            read = self.stream.read_buf(&mut self.buf) => matches!(read, Ok(n) if n > 0),
            () = idle => false,
            _ = stop => false,
        }
    }
}

/// How long an idle keep-alive connection keeps its buffers before giving them back.
const IDLE_GRACE: Duration = Duration::from_millis(500);

/// After answering a bad request, reads and discards what the client is still sending
/// (for a moment, up to a bound) before closing: closing with unread data makes the
/// kernel send a reset, which can destroy the answer before the client has read it.
async fn linger<S: Transport>(stream: &mut S, buf: &mut Vec<u8>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut discarded = 0;
    while discarded < 256 * 1024 {
        buf.clear();
        match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => return,
        }
    }
}

/// Decides the answer to one request; for a hit, renders and appends its record(s).
fn route(
    inc: &Incoming<'_, '_, '_>,
    endpoint: &Endpoint,
    appender: &Appender,
    record: &mut Vec<u8>,
) -> Routed {
    // The pixel, beacon, script and redirect paths (web.rs); every other path is a 404.
    web::route(inc, endpoint, appender, record).unwrap_or_else(|| {
        metrics().rejected_not_found.increment(1);
        Routed::plain(Reply::NotFound)
    })
}

fn count_rejected(reply: Reply) {
    let m = metrics();
    match reply {
        Reply::UriTooLong => m.rejected_uri_too_long.increment(1),
        Reply::HeaderTooLarge => m.rejected_header_too_large.increment(1),
        Reply::PayloadTooLarge => m.rejected_payload_too_large.increment(1),
        Reply::NotImplemented => m.rejected_not_implemented.increment(1),
        Reply::VersionNotSupported => m.rejected_version.increment(1),
        Reply::MethodNotAllowed => m.rejected_method.increment(1),
        _ => m.rejected_bad_request.increment(1),
    }
}
