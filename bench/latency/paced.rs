//! A tiny open-loop HTTP load generator and line stamper for bench/latency.sh (std only,
//! built with `rustc -O`; wrk cannot pace).
//!
//!   paced load ADDR RATE SECS CONNS TAG [ANSWERS]
//!       Sends `GET /pixel.gif?r=TAG&i=N&t=MICROS` at a fixed RATE (requests/s) for SECS,
//!       whether or not earlier answers came back (open loop): a pacer thread schedules
//!       request N at start + N/RATE and the first idle one of CONNS keep-alive connections
//!       sends it. t= is the wall clock (µs since the epoch) when the request is written.
//!       Prints one summary line: sent, 200s, errors, requests sent more than 1 ms after
//!       their slot (the client fell behind), and the answer latency p50/p99/p99.9 in µs.
//!       With ANSWERS, also writes there one line per answered request, `SENT_US
//!       LATENCY_US` (wall clock when sent, µs), for per-phase figures (bench/catchup.sh).
//!   paced stamp
//!       Copies stdin to stdout, each line prefixed with the wall clock (µs) at which it
//!       was read: what `pixelpipe tail` printed, and when.

use std::io::{BufRead, BufWriter, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("load") if args.len() == 7 || args.len() == 8 => load(
            &args[2],
            args[3].parse().expect("RATE"),
            args[4].parse().expect("SECS"),
            args[5].parse().expect("CONNS"),
            &args[6],
            args.get(7).map(String::as_str),
        ),
        Some("stamp") => stamp(),
        _ => {
            eprintln!("usage: paced load ADDR RATE SECS CONNS TAG [ANSWERS] | paced stamp");
            std::process::exit(2);
        }
    }
}

fn stamp() {
    let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin());
    let mut out = BufWriter::new(std::io::stdout());
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let t = now_us();
        write!(out, "{t} ").unwrap();
        out.write_all(&line).unwrap();
        // Flush only when nothing more is waiting, so stamping keeps up at high rates.
        if input.buffer().is_empty() {
            out.flush().unwrap();
        }
    }
    let _ = out.flush();
}

struct Tally {
    ok: u64,
    errors: u64,
    late: u64,
    latencies_us: Vec<u32>,
    /// Wall clock (µs) at which each answered request was sent, in `latencies_us`' order.
    sent_us: Vec<u64>,
}

fn load(addr: &str, rate: f64, secs: f64, conns: usize, tag: &str, answers: Option<&str>) {
    let total = (rate * secs) as u64;
    let (tx, rx) = mpsc::channel::<Instant>();
    let rx = Arc::new(Mutex::new(rx));
    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let rx = rx.clone();
            let addr = addr.to_owned();
            let tag = tag.to_owned();
            let next_id = next_id.clone();
            std::thread::spawn(move || worker(&addr, &tag, &rx, &next_id))
        })
        .collect();
    let start = Instant::now() + Duration::from_millis(20);
    let interval = Duration::from_secs_f64(1.0 / rate);
    for n in 0..total {
        let slot = start + interval.mul_f64(n as f64);
        let now = Instant::now();
        if slot > now + Duration::from_micros(20) {
            std::thread::sleep(slot - now);
        }
        tx.send(slot).unwrap();
    }
    drop(tx);
    let mut all = Tally {
        ok: 0,
        errors: 0,
        late: 0,
        latencies_us: Vec::new(),
        sent_us: Vec::new(),
    };
    for w in workers {
        let t = w.join().unwrap();
        all.ok += t.ok;
        all.errors += t.errors;
        all.late += t.late;
        all.latencies_us.extend(t.latencies_us);
        all.sent_us.extend(t.sent_us);
    }
    if let Some(path) = answers {
        let mut out = BufWriter::new(std::fs::File::create(path).expect("ANSWERS file"));
        for (sent, latency) in all.sent_us.iter().zip(&all.latencies_us) {
            writeln!(out, "{sent} {latency}").unwrap();
        }
        out.flush().unwrap();
    }
    all.latencies_us.sort_unstable();
    let q = |p: f64| {
        let v = &all.latencies_us;
        if v.is_empty() {
            return 0;
        }
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    println!(
        "sent={total} ok={} errors={} late_1ms={} answer_p50_us={} answer_p99_us={} answer_p999_us={}",
        all.ok,
        all.errors,
        all.late,
        q(0.5),
        q(0.99),
        q(0.999)
    );
}

fn worker(
    addr: &str,
    tag: &str,
    rx: &Mutex<mpsc::Receiver<Instant>>,
    next_id: &std::sync::atomic::AtomicU64,
) -> Tally {
    let mut t = Tally {
        ok: 0,
        errors: 0,
        late: 0,
        latencies_us: Vec::new(),
        sent_us: Vec::new(),
    };
    let mut conn: Option<TcpStream> = None;
    let mut req = Vec::with_capacity(256);
    let mut buf = vec![0u8; 4096];
    loop {
        let slot = match rx.lock().unwrap().recv() {
            Ok(s) => s,
            Err(_) => return t,
        };
        let id = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if conn.is_none() {
            match TcpStream::connect(addr) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    conn = Some(s);
                }
                Err(_) => {
                    t.errors += 1;
                    continue;
                }
            }
        }
        let s = conn.as_mut().unwrap();
        let sent = Instant::now();
        if sent.duration_since(slot) > Duration::from_millis(1) {
            t.late += 1;
        }
        req.clear();
        let sent_us = now_us();
        write!(
            req,
            "GET /pixel.gif?r={tag}&i={id}&t={sent_us} HTTP/1.1\r\nHost: bench\r\n\r\n"
        )
        .unwrap();
        match s.write_all(&req).and_then(|()| read_answer(s, &mut buf)) {
            Ok(200) => {
                t.ok += 1;
                t.latencies_us
                    .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                t.sent_us.push(sent_us as u64);
            }
            Ok(_) => t.errors += 1,
            Err(_) => {
                t.errors += 1;
                conn = None;
            }
        }
    }
}

/// Reads one answer (head and Content-Length body); returns its status code.
fn read_answer(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<u16> {
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
        let data = &buf[..have];
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&data[..end]).unwrap_or("");
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let want = end + 4 + len;
            while have < want {
                let n = s.read(&mut buf[have..])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                have += n;
            }
            return Ok(status);
        }
        if have == buf.len() {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}
