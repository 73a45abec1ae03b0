//! `pixelpipe serve` side by side with Debian's nginx serving the recipe's pixel
//! (`empty_gif` at `/pixel.gif`, every other path 404), both with their default limits.
//! Every request of the public corpora in `tests/corpus/http/` is sent, on a connection of
//! its own, to each; the statuses answered and the records written (`$args $uri
//! $request_uri` of each hit: the query, the decoded and normalised path, the target as
//! sent, fragment included) must be the same, except for the known differences listed below, each with its reason.
//! A listed case that stops differing fails too: the list (and the README's
//! compatibility section, which repeats it) must stay true.

#[allow(unused_imports)]
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::corpus::{http_cases, HttpCase};
use common::relay::{lines, Nginx};
use common::{wait_until, Pixelpipe, Redis};

/// nginx answers a request whose body it does not need as soon as its head is in, and
/// discards the body as it comes; pixelpipe answers once the body is in (a beacon may
/// carry data in it), and refuses a malformed one. Same answers for well-formed requests;
/// these cases send an incomplete or malformed body and close.
const BODY_FIRST: &str = "pixelpipe reads the whole body before answering";

/// A `POST` to the pixel is a beacon (issue 11): recorded and answered 204; nginx's
/// `empty_gif` answers it 405.
const BEACON: &str = "a POST to the pixel is a beacon: recorded, 204";

/// Cases where pixelpipe answers differently from nginx on purpose, and why.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    ("invalid.md: Headers separated by LF", BODY_FIRST),
    ("invalid.md: Empty headers separated by LF", BODY_FIRST),
    (
        "lenient-header-value-relaxed.md: LF in header value should be rejected even with relaxed flag",
        BODY_FIRST,
    ),
    ("transfer-encoding.md: No semicolon before chunk extensions", BODY_FIRST),
    ("transfer-encoding.md: Chunk data not terminated by CRLF", BODY_FIRST),
    ("transfer-encoding.md: Chunk data not terminated by CRLF (lenient)", BODY_FIRST),
    ("issue 10: incomplete body", BODY_FIRST),
    ("RFC 9110 10.1.1: Expect 100-continue with a body", BEACON),
    ("issue 10: POST to the pixel", BEACON),
    (
        "sample.md: No HTTP version",
        "HTTP/0.9 requests are refused (400); nginx answers them with a bare body",
    ),
];

/// What one server did with one case.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    /// The status of each response, in order (`100` for an interim response).
    statuses: Vec<u16>,
    /// The records of the case's hits, in order.
    records: Vec<String>,
}

#[test]
fn corpora_answered_as_nginx_answers_them() {
    let cases: Vec<HttpCase> = ["http/llhttp-request.http", "http/rfc9112-and-issue-10.http"]
        .iter()
        .flat_map(|f| http_cases(f))
        .collect();
    assert!(cases.len() > 200, "only {} cases read", cases.len());

    let nginx = Nginx::start_with(
        "  log_format diff \"$status $args $uri $request_uri\";",
        "    location = /pixel.gif {\n      empty_gif;\n      access_log {dir}/hits.log diff;\n    }\n\
             location / {\n      return 404;\n    }\n",
    );
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", common::free_port());
    let pixelpipe = Pixelpipe::start(
        &dir.path().join("data"),
        &[
            "--redis",
            &redis.url(),
            "serve",
            "--listen",
            &listen,
            "--format",
            "$args $uri $request_uri",
        ],
    );
    let nginx_addr: SocketAddr = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let pixelpipe_addr: SocketAddr = listen.parse().unwrap();

    // Both servers at once, each case after the other on each (records keep case order).
    let (theirs, ours) = std::thread::scope(|s| {
        let n = s.spawn(|| statuses_of(nginx_addr, &cases));
        let p = s.spawn(|| statuses_of(pixelpipe_addr, &cases));
        (n.join().unwrap(), p.join().unwrap())
    });

    // nginx logs every request that reached the location: its hits are the 200s.
    let nginx_log = nginx.path("hits.log");
    let hits = |statuses: &[Vec<u16>]| statuses.iter().flatten().filter(|&&s| is_hit(s)).count();
    wait_until("nginx's log", Duration::from_secs(10), || {
        lines(&nginx_log)
            .iter()
            .filter(|l| l.starts_with("200 "))
            .count()
            >= hits(&theirs)
    });
    let nginx_records: Vec<String> = lines(&nginx_log)
        .into_iter()
        .filter_map(|l| l.strip_prefix("200 ").map(String::from))
        .collect();
    wait_until(
        "pixelpipe's records in Redis",
        Duration::from_secs(10),
        || redis.llen("pixel") >= hits(&ours),
    );
    let pixelpipe_records = redis.list_oldest_first("pixel");
    assert_eq!(
        nginx_records.len(),
        hits(&theirs),
        "nginx: one record per 200"
    );
    assert_eq!(
        pixelpipe_records.len(),
        hits(&ours),
        "pixelpipe: one record per 200 or 204"
    );

    let theirs = outcomes(theirs, nginx_records);
    let ours = outcomes(ours, pixelpipe_records);
    let mut unexpected = Vec::new();
    let mut stale = Vec::new();
    let mut differing = 0;
    for ((case, nginx), pixelpipe) in cases.iter().zip(&theirs).zip(&ours) {
        let known = KNOWN_DIFFERENCES.iter().any(|(name, _)| *name == case.name);
        if nginx != pixelpipe {
            differing += 1;
            if !known {
                unexpected.push(format!(
                    "{}\n    nginx:     {nginx:?}\n    pixelpipe: {pixelpipe:?}\n    sent: {:?}",
                    case.name,
                    String::from_utf8_lossy(&case.bytes[..case.bytes.len().min(300)])
                ));
            }
        } else if known {
            stale.push(case.name.clone());
        }
    }
    for (name, _) in KNOWN_DIFFERENCES {
        assert!(
            cases.iter().any(|c| c.name == *name),
            "known difference {name:?} names no case"
        );
    }
    eprintln!(
        "{} cases, {differing} differ ({} known)",
        cases.len(),
        KNOWN_DIFFERENCES.len()
    );
    assert!(
        unexpected.is_empty(),
        "{} of {} cases answered differently from nginx:\n{}",
        unexpected.len(),
        cases.len(),
        unexpected.join("\n")
    );
    assert!(
        stale.is_empty(),
        "listed as known differences, but now the same as nginx: {stale:?}"
    );
    drop(pixelpipe);
}

/// Sends each case on a connection of its own, half-closes it, and reads what comes back
/// until the server closes: the statuses of the responses.
fn statuses_of(addr: SocketAddr, cases: &[HttpCase]) -> Vec<Vec<u16>> {
    cases
        .iter()
        .map(|case| {
            let mut s = TcpStream::connect(addr).expect("connecting");
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            // A server may close before reading everything: not an error here.
            let _ = s.write_all(&case.bytes);
            let _ = s.shutdown(Shutdown::Write);
            let mut got = Vec::new();
            let start = Instant::now();
            let mut buf = [0u8; 65536];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    // A reset after the answers (unread data): what was read counts.
                    Err(_) => break,
                }
                if start.elapsed() > Duration::from_secs(5) {
                    break;
                }
            }
            statuses(&got)
        })
        .collect()
}

/// The status of each response in a stream of responses. A body is skipped by its
/// `Content-Length`, unless what follows the head is already the next response (the
/// answer to a HEAD).
fn statuses(mut stream: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    while let Some(end) = find(stream, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&stream[..end]).into_owned();
        let Some(status) = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
        else {
            break;
        };
        out.push(status);
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        stream = &stream[end + 4..];
        if !stream.starts_with(b"HTTP/") {
            stream = &stream[length.min(stream.len())..];
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether an answer stands for a record: a 200, or the 204 of a beacon (pixelpipe).
fn is_hit(status: u16) -> bool {
    status == 200 || status == 204
}

/// Pairs each case's statuses with its records (one per hit, in order).
fn outcomes(statuses: Vec<Vec<u16>>, records: Vec<String>) -> Vec<Outcome> {
    let mut records = records.into_iter();
    statuses
        .into_iter()
        .map(|statuses| {
            let hits = statuses.iter().filter(|&&s| is_hit(s)).count();
            Outcome {
                records: records.by_ref().take(hits).collect(),
                statuses,
            }
        })
        .collect()
}
