//! One client connection: read, answer every complete request in the buffer (pipelining),
//! and only once their records are in the local log, write all the answers at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::request::{self, Parsed, Request};
use super::response::Reply;
use super::tls::Transport;
use super::web::{self, Incoming, Routed};
use super::Endpoint;
use crate::log::Appender;
use crate::metrics::metrics;

pub async fn serve<S: Transport>(
    mut stream: S,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    appender: Appender,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut record: Vec<u8> = Vec::with_capacity(256);
    // Each answer, whether it has a body (not for HEAD), and, for records, the ticket
    // its success waits for.
    let mut answers: Vec<(Routed, bool)> = Vec::new();
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
                    let body = body_of(&req, &buf[start..start + len]);
                    start += len;
                    close = !req.keep_alive;
                    let head = req.method == "HEAD";
                    let inc = Incoming {
                        req: &req,
                        path: path_of(req.target),
                        body,
                        peer,
                        now,
                        tls: S::TLS,
                    };
                    let routed = route(&inc, &endpoint, &appender, &mut record);
                    answers.push((routed, !head));
                }
                Parsed::Partial => break,
                Parsed::Invalid(reply) => {
                    count_rejected(reply);
                    answers.push((Routed::plain(reply), true));
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
            for (i, (routed, with_body)) in answers.drain(..).enumerate() {
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
                        Err(e) => {
                            if i == 0 {
                                tracing::error!(error = %e, "answering 503: the record could not be logged");
                            }
                            metrics().rejected_log_error.increment(1);
                            Reply::ServiceUnavailable
                        }
                    },
                    None => reply,
                };
                // A 503 stands alone: no CORS or Location for what was not recorded.
                let extra = extra.filter(|_| reply != Reply::ServiceUnavailable);
                reply.write_with(&mut out, !close, with_body, now, extra.as_deref());
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
        match stream.read_ready(&mut buf) {
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

fn path_of(target: &[u8]) -> &[u8] {
    match target.iter().position(|&b| b == b'?') {
        Some(i) => &target[..i],
        None => target,
    }
}

/// The body of a request whose whole bytes (head and `Content-Length` body) are `raw`.
fn body_of<'b>(req: &Request<'b, '_>, raw: &'b [u8]) -> &'b [u8] {
    let len = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(0)
        .min(raw.len());
    &raw[raw.len() - len..]
}

fn count_rejected(reply: Reply) {
    let m = metrics();
    match reply {
        Reply::UriTooLong => m.rejected_uri_too_long.increment(1),
        Reply::HeaderTooLarge => m.rejected_header_too_large.increment(1),
        // A Content-Length over the parser's bound: the beacons' reason for it.
        Reply::PayloadTooLarge => {
            metrics::counter!("pixelpipe_http_rejected_total", "reason" => "payload_too_large")
                .increment(1)
        }
        _ => m.rejected_bad_request.increment(1),
    }
}
