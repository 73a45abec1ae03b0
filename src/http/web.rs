//! What `serve` offers a web page besides the GIF: beacons, CORS, the tracker script,
//! click redirects. Their rules are each in their own file (beacon, cors, script,
//! redirect); this holds their settings, made once from the config, and answers the
//! requests on their paths. Every record goes through the same log as a GIF hit's, and is
//! answered only once it is written; every refusal has its status, no record, and its
//! reason in `pixelpipe_http_rejected_total`.

use std::net::SocketAddr;
use std::time::SystemTime;

use super::beacon::{self, BodyKind};
use super::cors::{self, Cors, Verdict};
use super::hit::Hit;
use super::redirect::{self, RedirectHosts};
use super::request::Request;
use super::response::{Extra, Reply};
use super::script::Script;
use super::Endpoint;
use crate::config::http::BeaconReply;
use crate::config::HttpConfig;
use crate::log::{Appender, LogError, Ticket};
use crate::who::{Facts, Verdict as Who};

pub struct Web {
    pub beacon_path: String,
    pub script_path: String,
    pub redirect_path: String,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    /// The answer to a recorded beacon: `204`, or the GIF as for a `GET`.
    pub beacon_reply: Reply,
    pub cors: Cors,
    pub redirect_hosts: RedirectHosts,
    pub script: Script,
}

impl Web {
    /// Fails with the field and why, for the lists the config's own checks let through.
    pub fn new(config: &HttpConfig) -> Result<Web, (&'static str, String)> {
        Ok(Web {
            beacon_path: config.beacon_path.clone(),
            script_path: config.script_path.clone(),
            redirect_path: config.redirect_path.clone(),
            max_body_bytes: config.max_body_bytes,
            max_batch: config.max_batch,
            beacon_reply: match config.beacon_reply {
                BeaconReply::NoContent => Reply::NoContent,
                BeaconReply::Gif => Reply::Pixel,
            },
            cors: Cors::new(
                &config.cors_origins,
                config.cors_credentials,
                config.cors_record_foreign,
            )
            .map_err(|e| ("http.cors_origins", e))?,
            redirect_hosts: RedirectHosts::new(&config.redirect_hosts)
                .map_err(|e| ("http.redirect_hosts", e))?,
            script: Script::new(&config.beacon_path, &config.path, config.script_max_age),
        })
    }
}

/// One answer: its reply, the ticket its success waits for, headers beyond the canned
/// ones, and how many records (events) it stands for.
pub struct Routed {
    pub reply: Reply,
    pub ticket: Option<Ticket>,
    pub extra: Option<Box<Extra>>,
    pub events: u64,
}

impl Routed {
    pub fn plain(reply: Reply) -> Routed {
        Routed {
            reply,
            ticket: None,
            extra: None,
            events: 0,
        }
    }

    fn with(reply: Reply, extra: Extra) -> Routed {
        Routed {
            reply,
            ticket: None,
            extra: (!extra.headers.is_empty() || !extra.body.is_empty()).then(|| Box::new(extra)),
            events: 0,
        }
    }
}

/// Counts a refusal under its reason. Refusals are rare next to hits: the counter is
/// looked up by name, not kept as a handle.
pub fn reject(reply: Reply, reason: &'static str, extra: Extra) -> Routed {
    metrics::counter!("pixelpipe_http_rejected_total", "reason" => reason).increment(1);
    Routed::with(reply, extra)
}

/// What one request carries that the web ways look at.
pub struct Incoming<'r, 'b, 'h> {
    pub req: &'r Request<'b, 'h>,
    /// The path, percent-decoded and normalised, without the query.
    pub path: &'r [u8],
    /// The request body, decoded (empty for most requests).
    pub body: &'r [u8],
    pub peer: SocketAddr,
    pub now: SystemTime,
    /// Whether the connection is HTTPS (for the collector's own origin).
    pub tls: bool,
}

impl Incoming<'_, '_, '_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    fn query(&self) -> Option<&[u8]> {
        let t = self.req.target;
        t.iter().position(|&b| b == b'?').map(|i| &t[i + 1..])
    }

    fn is_get(&self) -> bool {
        self.req.method == "GET" || self.req.method == "HEAD"
    }
}

/// Answers a request on one of the web paths; `None` when its path is none of them.
pub fn route(
    inc: &Incoming<'_, '_, '_>,
    endpoint: &Endpoint,
    appender: &Appender,
    record: &mut Vec<u8>,
) -> Option<Routed> {
    let web = &endpoint.web;
    let path = inc.path;
    if path == web.script_path.as_bytes() {
        if !inc.is_get() {
            return Some(not_allowed(b"Allow: GET, HEAD\r\n"));
        }
        let (reply, extra) = web
            .script
            .answer(inc.header("accept-encoding"), inc.header("if-none-match"));
        return Some(Routed::with(reply, extra));
    }
    if path == web.redirect_path.as_bytes() && !web.redirect_path.is_empty() {
        if !inc.is_get() {
            return Some(not_allowed(b"Allow: GET, HEAD\r\n"));
        }
        let location = match redirect::location(inc.query().unwrap_or(b""), &web.redirect_hosts) {
            Ok(l) => l,
            Err(_) => {
                return Some(reject(
                    Reply::BadRequest,
                    "redirect_refused",
                    Extra::default(),
                ))
            }
        };
        let mut extra = Extra::default();
        extra.headers.extend_from_slice(b"Location: ");
        extra.headers.extend_from_slice(location.as_bytes());
        extra
            .headers
            .extend_from_slice(b"\r\nCache-Control: no-store\r\n");
        return Some(record_one(
            inc,
            endpoint,
            appender,
            record,
            Reply::Found,
            extra,
        ));
    }
    if path != endpoint.path.as_bytes() && path != web.beacon_path.as_bytes() {
        return None;
    }
    // The pixel and beacon paths: CORS applies.
    // Most hits carry no Origin (an <img>), and with no list there is nothing to check.
    let verdict = match web.cors.enabled().then(|| inc.header("origin")).flatten() {
        Some(o) => web.cors.check(Some(o), inc.header("host"), inc.tls),
        None => Verdict::None,
    };
    let mut extra = Extra::default();
    if web.cors.enabled() {
        extra.headers.extend_from_slice(cors::VARY);
    }
    if inc.req.method == "OPTIONS" {
        return Some(match verdict {
            Verdict::Allowed(origin) => {
                web.cors.write_preflight(origin, &mut extra.headers);
                Routed::with(Reply::NoContent, extra)
            }
            Verdict::Foreign => reject(Reply::Forbidden, "cors_origin", extra),
            Verdict::None if inc.header("origin").is_some() => {
                reject(Reply::Forbidden, "cors_origin", extra)
            }
            Verdict::None => {
                extra.headers.extend_from_slice(ALLOW_HIT);
                Routed::with(Reply::NoContent, extra)
            }
        });
    }
    let is_post = inc.req.method == "POST";
    if !inc.is_get() && !is_post {
        return Some(not_allowed(ALLOW_HIT));
    }
    match verdict {
        Verdict::Allowed(origin) => web.cors.write_headers(origin, &mut extra.headers),
        Verdict::Foreign if !web.cors.record_foreign => {
            return Some(reject(Reply::Forbidden, "cors_origin", extra));
        }
        Verdict::Foreign | Verdict::None => {}
    }
    if !is_post {
        return Some(record_one(
            inc,
            endpoint,
            appender,
            record,
            Reply::Pixel,
            extra,
        ));
    }
    Some(beacon(inc, endpoint, appender, record, extra))
}

const ALLOW_HIT: &[u8] = b"Allow: GET, HEAD, POST, OPTIONS\r\n";

fn not_allowed(allow: &[u8]) -> Routed {
    reject(
        Reply::MethodNotAllowed,
        "method_not_allowed",
        Extra {
            headers: allow.to_vec(),
            body: Default::default(),
        },
    )
}

/// A `POST`: its body's events, each rendered as if it were `GET <path>?<query>` (the
/// URL's own query first), appended together: all are written or none is.
fn beacon(
    inc: &Incoming<'_, '_, '_>,
    endpoint: &Endpoint,
    appender: &Appender,
    record: &mut Vec<u8>,
    mut extra: Extra,
) -> Routed {
    let web = &endpoint.web;
    if inc.body.len() > web.max_body_bytes {
        return reject(Reply::PayloadTooLarge, "payload_too_large", extra);
    }
    let Some(kind) = BodyKind::from_content_type(inc.header("content-type")) else {
        return reject(Reply::UnsupportedMediaType, "unsupported_media_type", extra);
    };
    let events = match beacon::events(kind, inc.body, web.max_batch) {
        Ok(e) => e,
        Err(e) => {
            let reply = match e {
                beacon::BeaconError::TooManyEvents { .. } => Reply::PayloadTooLarge,
                beacon::BeaconError::UnsupportedType => Reply::UnsupportedMediaType,
                _ => Reply::BadRequest,
            };
            return reject(reply, e.reason(), extra);
        }
    };
    let query = inc.query().filter(|q| !q.is_empty());
    // One privacy decision for the request (one sender, one set of headers), made on the
    // URL's query, else the first event's: where the tracker's site and campaign are.
    let facts = match judge(
        inc,
        query.or(events.first().map(|e| e.as_slice())),
        endpoint,
        web.beacon_reply,
        &mut extra,
    ) {
        Ok(facts) => facts,
        Err(answer) => return answer,
    };
    let mut records = Vec::with_capacity(events.len());
    let mut target = Vec::with_capacity(256);
    for event in &events {
        target.clear();
        target.extend_from_slice(inc.path);
        target.push(b'?');
        if let Some(q) = query {
            target.extend_from_slice(q);
            if !event.is_empty() {
                target.push(b'&');
            }
        }
        target.extend_from_slice(event);
        record.clear();
        endpoint
            .template
            .render(&hit(inc, &target, &target, Some(inc.body), &facts), record);
        records.push(record.clone());
    }
    match appender.append_all(&endpoint.key, &records) {
        Ok(ticket) => Routed {
            reply: web.beacon_reply,
            ticket: Some(ticket),
            extra: Some(Box::new(extra)),
            events: records.len() as u64,
        },
        Err(e) => log_refused(e),
    }
}

/// A beacon's event is recorded as a hit on `path?query&event`: that is its `target` and
/// its `request_uri`; a GIF hit's are the request's own.
fn hit<'a>(
    inc: &'a Incoming<'_, '_, '_>,
    target: &'a [u8],
    request_uri: &'a [u8],
    body: Option<&'a [u8]>,
    facts: &'a Facts,
) -> Hit<'a> {
    Hit {
        time: inc.now,
        method: inc.req.method,
        target,
        request_uri,
        path: inc.path,
        remote_addr: facts.remote_addr,
        headers: inc.req.headers,
        body,
        facts,
    }
}

/// The privacy step (`crate::who`) for a request about to be recorded: its facts (and a
/// new visitor cookie in `extra`), or the answer it gets without a record — a bot or a
/// prefetch gets `reply` as usual, a client over its rate limit a 429.
fn judge(
    inc: &Incoming<'_, '_, '_>,
    query: Option<&[u8]>,
    endpoint: &Endpoint,
    reply: Reply,
    extra: &mut Extra,
) -> Result<Facts, Routed> {
    match endpoint
        .who
        .judge(inc.peer.ip(), query, inc.req.headers, inc.now)
    {
        Who::Record(facts) => {
            if let (Some(id), Some(cookie)) = (facts.new_cookie, endpoint.who.cookie()) {
                cookie.write_header(&id, &mut extra.headers);
            }
            Ok(facts)
        }
        Who::Skip(_) => Err(Routed::with(reply, std::mem::take(extra))),
        Who::Limited(secs) => Err(Routed::plain(Reply::TooManyRequests(
            u32::try_from(secs).unwrap_or(u32::MAX),
        ))),
    }
}

/// Records one hit (a GIF or a click) and answers `reply` once it is written.
fn record_one(
    inc: &Incoming<'_, '_, '_>,
    endpoint: &Endpoint,
    appender: &Appender,
    record: &mut Vec<u8>,
    reply: Reply,
    mut extra: Extra,
) -> Routed {
    let facts = match judge(inc, inc.query(), endpoint, reply, &mut extra) {
        Ok(facts) => facts,
        Err(answer) => return answer,
    };
    record.clear();
    endpoint.template.render(
        &hit(inc, inc.req.target, inc.req.request_uri, None, &facts),
        record,
    );
    match appender.append(&endpoint.key, record) {
        Ok(ticket) => Routed {
            reply,
            ticket: Some(ticket),
            extra: (!extra.headers.is_empty()).then(|| Box::new(extra)),
            events: 1,
        },
        Err(e) => log_refused(e),
    }
}

/// The log would not take the record(s): 503, counted as the GIF path counts it.
pub fn log_refused(e: LogError) -> Routed {
    let m = crate::metrics::metrics();
    match e {
        LogError::Full { .. } => m.rejected_log_full.increment(1),
        _ => m.rejected_log_error.increment(1),
    }
    Routed::plain(Reply::ServiceUnavailable)
}
