//! A tiny fault-injecting Redis on loopback, for the faults a real `redis-server` cannot
//! produce on demand: an error answer to one batch (`EXECABORT`, `OOM`, `WRONGTYPE`), a
//! reply lost after the batch was applied, a batch that never gets an answer, a shipped
//! position ahead of the local log.
//!
//! It speaks just enough RESP2 for the shipper: `GET` of the position key, a batch's
//! `MULTI`/`LPUSH`…/`EVAL` check/`EXEC` (emulated here, with the same arguments and
//! answers as `src/ship/list_check.lua`), the ship script by `EVALSHA` (emulated with
//! `src/ship/ship.lua`'s), and `LLEN` for the test to look. A fault applies to one
//! batch: one `EXEC`, or one ship script. Everything else is answered `+OK` (connection
//! set-up: `CLIENT SETINFO`, `SELECT`, `AUTH`).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake does with one batch (an `EXEC` or a ship-script call).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this error (RESP `-…`) and apply nothing.
    Error(String),
    /// Apply the batch, then close the connection without answering: a lost reply.
    ApplyThenDrop,
    /// Apply the batch and never answer (the client's timeout must fire).
    ApplyThenHang,
    /// Close the connection without applying or answering.
    Drop,
}

#[derive(Default)]
pub struct State {
    pub position: u64,
    pub lists: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    /// Faults for the next ship-script calls, in order; once empty, calls succeed.
    pub faults: VecDeque<Fault>,
    /// Every batch received (faulted or not).
    pub calls: usize,
    /// Connections that read a shipped position: the shipper's (the analytics connect
    /// too).
    pub connections: usize,
}

pub struct FakeRedis {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeRedis {
    pub fn start(position: u64, faults: Vec<Fault>) -> FakeRedis {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Redis");
        FakeRedis::on(listener, position, faults)
    }

    /// On a given listener (e.g. bound to a port chosen earlier).
    pub fn on(listener: TcpListener, position: u64, faults: Vec<Fault>) -> FakeRedis {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            position,
            faults: faults.into(),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, s));
            }
        });
        FakeRedis { addr, state, stop }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// The list, oldest first.
    pub fn list_oldest_first(&self, key: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.lists
            .get(key.as_bytes())
            .map(|v| {
                v.iter()
                    .rev()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn llen(&self, key: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .lists
            .get(key.as_bytes())
            .map_or(0, Vec::len)
    }

    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }
}

impl Drop for FakeRedis {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn read_command(r: &mut impl BufRead) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let n: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line).ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut buf = vec![0; len + 2];
        r.read_exact(&mut buf).ok()?;
        buf.truncate(len);
        args.push(buf);
    }
    Some(args)
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

fn serve(conn: TcpStream, state: Arc<Mutex<State>>) {
    let mut writer = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    // The commands of an open MULTI.
    let mut queued: Option<Vec<Vec<Vec<u8>>>> = None;
    while let Some(args) = read_command(&mut reader) {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        let mut out = Vec::new();
        match name.as_str() {
            "EXEC" => {
                let commands = queued.take().unwrap_or_default();
                match batch(&state, || {
                    transaction(&commands, &mut state.lock().unwrap())
                }) {
                    Some(answer) => out = answer,
                    None => return,
                }
            }
            _ if queued.is_some() => {
                queued.as_mut().unwrap().push(args);
                out.extend_from_slice(b"+QUEUED\r\n");
            }
            "MULTI" => {
                queued = Some(Vec::new());
                out.extend_from_slice(b"+OK\r\n");
            }
            "GET" => {
                let pos = {
                    let mut s = state.lock().unwrap();
                    if args[1].starts_with(b"pixelpipe:shipped:") {
                        s.connections += 1;
                    }
                    s.position
                };
                if pos == 0 {
                    out.extend_from_slice(b"$-1\r\n");
                } else {
                    bulk(&mut out, pos.to_string().as_bytes());
                }
            }
            "PING" => out.extend_from_slice(b"+PONG\r\n"),
            "LLEN" => {
                let s = state.lock().unwrap();
                let n = s.lists.get(&args[1]).map_or(0, Vec::len);
                out.extend_from_slice(format!(":{n}\r\n").as_bytes());
            }
            "EVALSHA" | "EVAL" => {
                let answer = || {
                    let answer = ship(&args, &mut state.lock().unwrap());
                    let mut out = format!("*{}\r\n", answer.len()).into_bytes();
                    for a in answer {
                        bulk(&mut out, a.as_bytes());
                    }
                    out
                };
                match batch(&state, answer) {
                    Some(answer) => out = answer,
                    None => return,
                }
            }
            _ => out.extend_from_slice(b"+OK\r\n"),
        }
        if writer.write_all(&out).is_err() {
            return;
        }
    }
}

/// One batch, with the next fault if any: the answer to send, or None to close the
/// connection. `apply` applies it and renders the answer.
fn batch(state: &Mutex<State>, apply: impl FnOnce() -> Vec<u8>) -> Option<Vec<u8>> {
    let fault = {
        let mut s = state.lock().unwrap();
        s.calls += 1;
        s.faults.pop_front()
    };
    match fault {
        Some(Fault::Error(e)) => Some(format!("-{e}\r\n").into_bytes()),
        Some(Fault::Drop) => None,
        Some(Fault::ApplyThenDrop) => {
            apply();
            None
        }
        Some(Fault::ApplyThenHang) => {
            apply();
            std::thread::sleep(Duration::from_secs(3600));
            None
        }
        None => Some(apply()),
    }
}

/// A batch's transaction (see `src/ship/list_check.lua`): `LPUSH key value…` per list,
/// then the check `EVAL script numkeys position-key list… start end count…`. The pushes
/// stay only when the check finds the position at the batch's start or before it.
/// Answers `EXEC`'s array.
fn transaction(commands: &[Vec<Vec<u8>>], s: &mut State) -> Vec<u8> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (check, pushes) = commands.split_last().expect("a check after the pushes");
    let numkeys: usize = text(&check[2]).parse().unwrap();
    let argv = &check[3 + numkeys..];
    let start: u64 = text(&argv[0]).parse().unwrap();
    let new: u64 = text(&argv[1]).parse().unwrap();
    let status = if s.position >= new {
        "dup"
    } else if s.position > start {
        "ahead"
    } else {
        "ok"
    };
    let mut out = format!("*{}\r\n", commands.len()).into_bytes();
    for push in pushes {
        let list = s.lists.entry(push[1].clone()).or_default();
        let mut len = list.len() + push.len() - 2;
        if status == "ok" {
            for value in &push[2..] {
                // LPUSH: newest at the head.
                list.insert(0, value.clone());
            }
            len = list.len();
        }
        out.extend_from_slice(format!(":{len}\r\n").as_bytes());
    }
    if status == "ok" {
        s.position = new;
    }
    out.extend_from_slice(b"*2\r\n");
    bulk(&mut out, status.as_bytes());
    bulk(&mut out, s.position.to_string().as_bytes());
    out
}

/// The ship script's semantics for lists (see `src/ship/ship.lua`): arguments
/// `sha numkeys position-key list… [dead-letter…] start end "list" "" "" n policy count…
/// value…`.
fn ship(args: &[Vec<u8>], s: &mut State) -> Vec<String> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let numkeys: usize = text(&args[2]).parse().unwrap();
    let keys = &args[3..3 + numkeys];
    let argv = &args[3 + numkeys..];
    let start: u64 = text(&argv[0]).parse().unwrap();
    let new: u64 = text(&argv[1]).parse().unwrap();
    let n: usize = text(&argv[5]).parse().unwrap();
    if s.position >= new {
        return vec!["dup".into(), s.position.to_string()];
    }
    if s.position > start {
        return vec!["ahead".into(), s.position.to_string()];
    }
    let counts: Vec<usize> = argv[7..7 + n]
        .iter()
        .map(|c| text(c).parse().unwrap())
        .collect();
    let mut values = argv[7 + n..].iter();
    for (i, count) in counts.into_iter().enumerate() {
        let list = s.lists.entry(keys[1 + i].clone()).or_default();
        for _ in 0..count {
            // LPUSH: newest at the head.
            list.insert(0, values.next().unwrap().clone());
        }
    }
    s.position = new;
    vec!["ok".into(), new.to_string()]
}
