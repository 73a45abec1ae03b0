//! A tiny open-loop HTTP load generator and line stamper for bench/latency.sh (std only,
//! built with `rustc -O`; wrk cannot pace).
//!
//!   paced load ADDR RATE SECS CONNS TAG [ANSWERS]
//!       Sends `GET /pixel.gif?r=TAG&i=N&t=MICROS` at a fixed RATE (requests/s) for SECS,
//!       whether or not earlier answers came back (open loop): request N is due at
//!       start + N/RATE and goes out on an idle one of CONNS keep-alive connections. t= is
//!       the wall clock (µs since the epoch) when the request is written. One thread
//!       drives all connections with `ppoll`: a thread per connection (as before) made
//!       the client itself the noisiest thing on a 2-core machine, its wake-ups queueing
//!       behind each other and the server's.
//!       Prints one summary line: sent, 200s, errors, requests sent more than 1 ms after
//!       their slot (the client fell behind), and the answer latency p50/p99/p99.9 in µs.
//!       With ANSWERS, also writes there one line per answered request, `SENT_US
//!       LATENCY_US` (wall clock when sent, µs), for per-phase figures (bench/catchup.sh).
//!   paced stamp
//!       Copies stdin to stdout, each line prefixed with the wall clock (µs) at which it
//!       was read: what `pixelpipe tail` printed, and when.

use std::io::{BufRead, BufWriter, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ppoll(2), for a wait with a sub-millisecond timeout (std has no poll; no crates here).
#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}
const POLLIN: i16 = 1;
extern "C" {
    fn ppoll(
        fds: *mut PollFd,
        nfds: u64,
        timeout: *const Timespec,
        sigmask: *const std::ffi::c_void,
    ) -> i32;
}

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
    let mut pool: Vec<Conn> = (0..conns).map(|_| Conn::default()).collect();
    let mut idle: Vec<usize> = (0..conns).rev().collect();
    let mut all = Tally {
        ok: 0,
        errors: 0,
        late: 0,
        latencies_us: Vec::with_capacity(total as usize),
        sent_us: Vec::with_capacity(total as usize),
    };
    let start = Instant::now() + Duration::from_millis(20);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let slot = |n: u64| start + interval.mul_f64(n as f64);
    let mut n = 0;
    let mut fds: Vec<PollFd> = Vec::with_capacity(conns);
    let mut req = Vec::with_capacity(256);
    // After the last request, answers still on their way get this long.
    let mut give_up: Option<Instant> = None;
    loop {
        let now = Instant::now();
        // Every request whose slot has come goes out now, on an idle connection; a slot
        // that finds none waits for the first connection an answer frees.
        while n < total && slot(n) <= now {
            let Some(i) = idle.pop() else { break };
            let c = &mut pool[i];
            if Instant::now().duration_since(slot(n)) > Duration::from_millis(1) {
                all.late += 1;
            }
            match c.send(addr, tag, n, &mut req) {
                Ok(()) => {}
                Err(_) => {
                    all.errors += 1;
                    c.stream = None;
                    idle.push(i);
                }
            }
            n += 1;
        }
        let busy = conns - idle.len();
        if n == total && busy == 0 {
            break;
        }
        if n == total {
            let end = *give_up.get_or_insert(now + Duration::from_secs(10));
            if now >= end {
                all.errors += busy as u64;
                break;
            }
        }
        // Sleep until the next slot (when a connection is free for it) or an answer.
        let wait = if n < total && !idle.is_empty() {
            slot(n).saturating_duration_since(Instant::now())
        } else {
            Duration::from_millis(100)
        };
        fds.clear();
        let mut which = Vec::with_capacity(busy);
        for (i, c) in pool.iter().enumerate() {
            if let (Some(s), Some(_)) = (&c.stream, c.sent) {
                fds.push(PollFd {
                    fd: s.as_raw_fd(),
                    events: POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        let ts = Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: wait.subsec_nanos() as i64,
        };
        // SAFETY: fds points to fds.len() initialised pollfd structs; ts outlives the call.
        let ready = unsafe { ppoll(fds.as_mut_ptr(), fds.len() as u64, &ts, std::ptr::null()) };
        if ready <= 0 {
            continue;
        }
        for (fd, &i) in fds.iter().zip(&which) {
            if fd.revents == 0 {
                continue;
            }
            let c = &mut pool[i];
            match c.receive() {
                Ok(None) => {}
                Ok(Some((status, sent, sent_us))) => {
                    if status == 200 {
                        all.ok += 1;
                        all.latencies_us
                            .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        all.sent_us.push(sent_us);
                    } else {
                        all.errors += 1;
                    }
                    idle.push(i);
                }
                Err(_) => {
                    all.errors += 1;
                    c.stream = None;
                    c.sent = None;
                    idle.push(i);
                }
            }
        }
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

/// One keep-alive connection and the request in flight on it, if any.
#[derive(Default)]
struct Conn {
    stream: Option<TcpStream>,
    /// When the request in flight was written: monotonic, and wall clock in µs.
    sent: Option<(Instant, u64)>,
    buf: Vec<u8>,
    have: usize,
}

impl Conn {
    /// Writes request `id` (connecting first when needed).
    fn send(&mut self, addr: &str, tag: &str, id: u64, req: &mut Vec<u8>) -> std::io::Result<()> {
        if self.stream.is_none() {
            let s = TcpStream::connect(addr)?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.buf = vec![0; 4096];
            self.have = 0;
        }
        let s = self.stream.as_mut().expect("connected");
        req.clear();
        let sent = Instant::now();
        let sent_us = now_us() as u64;
        write!(
            req,
            "GET /pixel.gif?r={tag}&i={id}&t={sent_us} HTTP/1.1\r\nHost: bench\r\n\r\n"
        )?;
        // A request of ~100 bytes on a connection with nothing in flight fits the socket's
        // send buffer: this does not block.
        s.write_all(req)?;
        self.sent = Some((sent, sent_us));
        Ok(())
    }

    /// Reads what is there (the socket is readable: one read does not block); the status
    /// and send times once the whole answer (head and Content-Length body) is in.
    fn receive(&mut self) -> std::io::Result<Option<(u16, Instant, u64)>> {
        let s = self.stream.as_mut().expect("a request in flight");
        if self.have == self.buf.len() {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let n = s.read(&mut self.buf[self.have..])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.have += n;
        let data = &self.buf[..self.have];
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Ok(None);
        };
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
        if self.have < end + 4 + len {
            return Ok(None);
        }
        self.have = 0;
        let (sent, sent_us) = self.sent.take().expect("a request in flight");
        Ok(Some((status, sent, sent_us)))
    }
}
