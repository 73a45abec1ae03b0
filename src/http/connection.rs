//! One client connection: read, answer every complete request in the buffer (pipelining),
//! and only once their records are in the local log, write all the answers at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::request::{self, Parsed, Request};
use super::response::Reply;
use super::Endpoint;
use crate::log::{Appender, LogError, Ticket};
use crate::metrics::metrics;
use crate::template::http::Hit;

pub async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    appender: Appender,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut record: Vec<u8> = Vec::with_capacity(256);
    // Each answer and, for hits, the ticket its 200 waits for.
    let mut answers: Vec<(Reply, bool, Option<Ticket>)> = Vec::new();
    // When the first byte of the request being read arrived: the header timeout runs from
    // there, so a client trickling a byte at a time cannot hold the connection forever.
    let mut request_started: Option<Instant> = None;
    // Made once per connection, not per wait: registering with the shared shutdown
    // signal on every keep-alive round trip costs more than the rest of the wait.
    let stop = super::stopped(&mut shutdown);
    tokio::pin!(stop);
    loop {
        // Answer every complete request already buffered.
        // One clock reading per batch of requests: their records' time and the answers' Date.
        let now = SystemTime::now();
        let mut start = 0;
        let mut close = false;
        let mut invalid = false;
        while !close {
            let mut headers = request::headers();
            match request::parse(&buf[start..], &mut headers, endpoint.limits) {
                Parsed::Request(req, len) => {
                    start += len;
                    close = !req.keep_alive;
                    let head = req.method == "HEAD";
                    let (reply, ticket) = route(&req, peer, now, &endpoint, &appender, &mut record);
                    answers.push((reply, !head, ticket));
                }
                Parsed::Partial => break,
                Parsed::Invalid(reply) => {
                    count_rejected(reply);
                    answers.push((reply, true, None));
                    close = true;
                    invalid = true;
                }
            }
        }
        if start > 0 {
            buf.drain(..start);
            request_started = None;
        }
        if !answers.is_empty() {
            let mut hits = 0;
            for (reply, with_body, ticket) in answers.drain(..) {
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
                reply.write(&mut out, !close, with_body, now);
            }
            metrics().hits.increment(hits);
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close {
            let _ = stream.shutdown().await;
            if invalid {
                linger(&mut stream, &mut buf).await;
            }
            return;
        }
        // Wait for more: a started request has `header_timeout` to complete; an idle
        // keep-alive connection is closed after `idle_timeout`, or at shutdown.
        let in_request = !buf.is_empty();
        let timeout = if in_request {
            let started = *request_started.get_or_insert_with(Instant::now);
            endpoint.header_timeout.saturating_sub(started.elapsed())
        } else {
            request_started = None;
            endpoint.idle_timeout
        };
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        // The next request is often there already (pipelining, fast clients): then no
        // timer and no wake-up are needed.
        match stream.try_read_buf(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
        tokio::select! {
            read = tokio::time::timeout(timeout, stream.read_buf(&mut buf)) => match read {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {}
                Err(_elapsed) => {
                    if in_request {
                        metrics().rejected_timeout.increment(1);
                        out.clear();
                        Reply::RequestTimeout.write(&mut out, false, true, SystemTime::now());
                        let _ = stream.write_all(&out).await;
                    }
                    return;
                }
            },
            _ = &mut stop, if !in_request => return,
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
    let path = match req.target.iter().position(|&b| b == b'?') {
        Some(i) => &req.target[..i],
        None => req.target,
    };
    if path != endpoint.path.as_bytes() {
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
        _ => m.rejected_bad_request.increment(1),
    }
}
