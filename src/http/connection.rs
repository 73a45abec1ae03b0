//! One client connection: read, answer every complete request in the buffer (pipelining),
//! and only once their records are in the local log, write all the answers at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::request::{self, Parsed, Request};
use super::response::{self, Reply};
use super::Endpoint;
use crate::log::{Appender, LogError, Ticket};
use crate::metrics::metrics;
use crate::template::http::Hit;

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    appender: Appender,
    mut shutdown: watch::Receiver<bool>,
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
    };
    // Made once per connection, not per wait: registering with the shared shutdown
    // signal on every keep-alive round trip costs more than the rest of the wait.
    let stop = super::stopped(&mut shutdown);
    tokio::pin!(stop);
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
        if !conn.read_more(&mut stop).await {
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

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    appender: Appender,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
    /// Answers to write, all at once.
    out: Vec<u8>,
    /// Scratch space for rendering one record.
    record: Vec<u8>,
    /// Each answer, whether it has a body, and for hits the ticket its 200 waits for.
    answers: Vec<(Reply, bool, Option<Ticket>)>,
    /// When the first byte of the request being read arrived: the header timeout runs
    /// from there, so a client trickling a byte at a time cannot hold the connection.
    request_started: Option<Instant>,
    /// Whether the request being read was sent its `100 Continue` already.
    continued: bool,
}

impl Connection {
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
                        self.answers.push((Reply::Continue, false, None));
                    }
                    self.continued = false;
                    if !req.keep_alive {
                        end = End::Close;
                    }
                    let head = req.method == "HEAD";
                    let (reply, ticket) = route(
                        &req,
                        self.peer,
                        now,
                        &self.endpoint,
                        &self.appender,
                        &mut self.record,
                    );
                    self.answers.push((reply, !head, ticket));
                }
                Parsed::Partial { expect_continue } => {
                    // The client waits for this before it sends the body: it goes out now,
                    // after the answers to the requests before it.
                    if expect_continue && !self.continued {
                        self.continued = true;
                        self.answers.push((Reply::Continue, false, None));
                    }
                    break;
                }
                Parsed::Invalid(reply) => {
                    count_rejected(reply);
                    self.answers.push((reply, true, None));
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
        for (reply, with_body, ticket) in self.answers.drain(..) {
            let reply = match ticket {
                Some(t) => match t.wait().await {
                    Ok(()) => {
                        hits += 1;
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
            reply.write(&mut self.out, end == End::KeepAlive, with_body, now);
        }
        metrics().hits.increment(hits);
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
    async fn read_more(&mut self, stop: &mut (impl Future<Output = ()> + Unpin)) -> bool {
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
        match self.stream.try_read_buf(&mut self.buf) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        if !in_request {
            return self.wait_idle(timeout, stop).await;
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

impl Connection {
    /// An idle keep-alive connection may wait long: it holds no buffers meanwhile
    /// (thousands of idle connections would pin ~8 KiB each) and takes them again once
    /// the socket is readable. Returns false when the connection is done.
    async fn wait_idle(
        &mut self,
        timeout: Duration,
        stop: &mut (impl Future<Output = ()> + Unpin),
    ) -> bool {
        (self.buf, self.out, self.record, self.answers) = Default::default();
        tokio::select! {
            ready = tokio::time::timeout(timeout, self.stream.readable()) => {
                if !matches!(ready, Ok(Ok(()))) {
                    return false;
                }
            }
            _ = stop => return false,
        }
        self.buf.reserve(4096);
        self.out.reserve(1024);
        self.record.reserve(256);
        match self.stream.try_read_buf(&mut self.buf) {
            Ok(0) => false,
            Ok(_) => true,
            // Readiness can be spurious: the caller comes back here to wait again.
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }
}

/// After answering a bad request, reads and discards what the client is still sending
/// (for a moment, up to a bound) before closing: closing with unread data makes the
/// kernel send a reset, which can destroy the answer before the client has read it.
async fn linger(stream: &mut TcpStream, buf: &mut Vec<u8>) {
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

/// Decides the answer to one request; for a pixel hit, renders and appends its record.
fn route(
    req: &Request<'_, '_>,
    peer: SocketAddr,
    now: SystemTime,
    endpoint: &Endpoint,
    appender: &Appender,
    record: &mut Vec<u8>,
) -> (Reply, Option<Ticket>) {
    // The path decoded and normalised (`/pixel%2Egif`, `//pixel.gif`), as nginx matches it.
    if *req.path != *endpoint.path.as_bytes() {
        metrics().rejected_not_found.increment(1);
        return (Reply::NotFound, None);
    }
    if req.method != "GET" && req.method != "HEAD" {
        metrics().rejected_method.increment(1);
        return (Reply::MethodNotAllowed, None);
    }
    let hit = Hit {
        time: now,
        method: req.method,
        target: req.target,
        remote_addr: peer.ip(),
        headers: req.headers,
    };
    record.clear();
    endpoint.template.render(&hit, record);
    match appender.append(&endpoint.key, record) {
        Ok(ticket) => (Reply::Pixel, Some(ticket)),
        Err(LogError::Full { .. }) => {
            metrics().rejected_log_full.increment(1);
            (Reply::ServiceUnavailable, None)
        }
        Err(_) => {
            metrics().rejected_log_error.increment(1);
            (Reply::ServiceUnavailable, None)
        }
    }
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
