//! Real parts for the end-to-end tests: a `redis-server` of their own on a free loopback
//! port, `pixelpipe` started as a child process, and a raw HTTP client that shows the
//! exact bytes. Everything is stopped on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod chromium;
pub mod cluster;
pub mod consume;
pub mod corpus;
pub mod mutate;
pub mod relay;

pub const BIN: &str = env!("CARGO_BIN_EXE_pixelpipe");

/// A program the tests need, or a failure that says how to install it.
pub fn require(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("`{program}` is not installed: run `sudo apt-get install {package}` (scripts/test does it for you)");
}

/// Runs `command` to its end; fails the test, with its stderr, if it fails.
pub fn run_ok(command: &mut Command) -> std::process::Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A self-signed certificate for 127.0.0.1 and its key, made by `openssl` in `dir`:
/// `(cert.pem, key.pem)`.
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let openssl = require("openssl", "openssl");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run_ok(
        Command::new(openssl)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `check` every 20 ms until it is true or `timeout` passes (then panics with `what`).
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Redis {
    pub port: u16,
    /// With an append-only file fsynced on every write, so that a `kill -9` and restart
    /// keeps every acknowledged write.
    persistent: bool,
    /// More `redis-server` arguments (e.g. `--requirepass`).
    pub extra: Vec<String>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Redis {
    /// A fresh, empty, non-persistent `redis-server` on a free port.
    pub fn start() -> Redis {
        Redis::start_on(free_port(), false)
    }

    /// A `redis-server` that keeps its data across `restart` (AOF, `appendfsync always`).
    pub fn start_persistent() -> Redis {
        Redis::start_on(free_port(), true)
    }

    pub fn start_on(port: u16, persistent: bool) -> Redis {
        Redis::start_with(port, persistent, &[])
    }

    pub fn start_with(port: u16, persistent: bool, extra: &[&str]) -> Redis {
        let mut r = Redis {
            port,
            persistent,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let bin = require("redis-server", "redis-server");
        let child = Command::new(bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(if self.persistent {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "no"]
            })
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        let url = self.url();
        wait_until(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || {
                redis::Client::open(url.as_str())
                    .and_then(|c| c.get_connection())
                    .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                    .is_ok()
            },
        );
    }

    /// The URL to reach it, with the password if `--requirepass` was given.
    pub fn url(&self) -> String {
        let pass = self
            .extra
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| self.extra.get(i + 1));
        match pass {
            Some(p) => format!("redis://default:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connecting to the test redis")
    }

    /// The whole list, oldest first (the order `BRPOP` pops it in).
    pub fn list_oldest_first(&self, key: &str) -> Vec<String> {
        let mut v: Vec<String> = redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query(&mut self.conn())
            .expect("LRANGE");
        v.reverse();
        v
    }

    pub fn llen(&self, key: &str) -> usize {
        redis::cmd("LLEN")
            .arg(key)
            .query(&mut self.conn())
            .expect("LLEN")
    }

    /// The fields of every entry of a stream, oldest first (none if there is no stream).
    pub fn stream(&self, key: &str) -> Vec<std::collections::HashMap<String, String>> {
        let entries: Vec<(String, std::collections::HashMap<String, String>)> =
            redis::cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .query(&mut self.conn())
                .expect("XRANGE");
        entries.into_iter().map(|(_, fields)| fields).collect()
    }

    /// The records (field `r`) of a stream, oldest first.
    pub fn stream_records(&self, key: &str) -> Vec<String> {
        self.stream(key)
            .into_iter()
            .filter_map(|mut f| f.remove("r"))
            .collect()
    }

    /// Kills the server (`kill -9`). Unless persistent, its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty unless persistent).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running `pixelpipe` child process.
pub struct Pixelpipe {
    pub child: Child,
    pub admin: SocketAddr,
    pub stderr_path: PathBuf,
}

impl Pixelpipe {
    /// Starts `pixelpipe <args>` with `--admin-listen` on a free port, logging to a file
    /// in `data_dir`'s parent, and waits until `/healthz` answers.
    pub fn start(data_dir: &Path, args: &[&str]) -> Pixelpipe {
        Pixelpipe::start_with_env(data_dir, args, &[])
    }

    pub fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Pixelpipe {
        Pixelpipe::try_start_with_env(data_dir, args, env)
            .unwrap_or_else(|log| panic!("pixelpipe exited at start:\n{log}"))
    }

    /// As [`Pixelpipe::start_with_env`]; `Err` with its log when it exits at start.
    pub fn try_start_with_env(
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Pixelpipe, String> {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let stderr_path = data_dir.with_extension(format!("{}.log", admin.port()));
        let stderr = std::fs::File::create(&stderr_path).expect("log file");
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--admin-listen")
            .arg(admin.to_string())
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting pixelpipe");
        let mut p = Pixelpipe {
            child,
            admin,
            stderr_path,
        };
        let start = Instant::now();
        loop {
            if http_get(admin, "/healthz").map(|r| r.status) == Some(200) {
                break;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(format!("({status})\n{}", p.stderr()));
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!("pixelpipe did not answer /healthz:\n{}", p.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(p)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends the signal named `name` (`TERM`, `HUP`, …).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        self.signal("TERM");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if start.elapsed() > timeout {
                self.kill9();
                panic!(
                    "pixelpipe did not exit within {timeout:?} of SIGTERM:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A counter or gauge from `/metrics` (the sum over its label sets matching `labels`).
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let body = http_get(self.admin, "/metrics")
            .map(|r| r.body)
            .unwrap_or_default();
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| {
                let rest = &l[name.len()..];
                rest.starts_with(' ') || (rest.starts_with('{') && rest.contains(labels))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Pixelpipe {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The head as received: status line and headers, CRLFs included.
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends raw request bytes and reads one response (its body per Content-Length, none
/// for HEAD). `None` if the connection failed or closed without a response.
pub fn raw_request(addr: SocketAddr, request: &[u8], head_only: bool) -> Option<Response> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(request).ok()?;
    let mut reader = BufReader::new(s);
    read_response(&mut reader, head_only)
}

/// Reads one response from a connection.
pub fn read_response(reader: &mut impl BufRead, head_only: bool) -> Option<Response> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut r = Response {
        status,
        head,
        body: Vec::new(),
    };
    let len: usize = r
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if !head_only {
        r.body = vec![0; len];
        reader.read_exact(&mut r.body).ok()?;
    }
    Some(r)
}

pub fn http_get(addr: SocketAddr, target: &str) -> Option<Response> {
    let req = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    raw_request(addr, req.as_bytes(), false)
}

/// A keep-alive HTTP/1.1 client on one connection.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Option<Client> {
        let s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        Some(Client {
            reader: BufReader::new(s),
        })
    }

    pub fn get(&mut self, target: &str) -> Option<Response> {
        let req = format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n");
        self.reader.get_mut().write_all(req.as_bytes()).ok()?;
        read_response(&mut self.reader, false)
    }
}

/// Sends `GET /pixel.gif?id=N` for every N in `ids`, over `connections` keep-alive
/// connections in parallel (reconnecting after failures), and returns the ids that were
/// answered 200.
pub fn hit_ids(addr: SocketAddr, ids: std::ops::Range<u64>, connections: u64) -> Vec<u64> {
    let handles: Vec<_> = (0..connections)
        .map(|c| {
            let ids = ids.clone();
            std::thread::spawn(move || {
                let mut ok = Vec::new();
                let mut client = Client::connect(addr);
                for id in ids.filter(|id| id % connections == c) {
                    let answered = client
                        .as_mut()
                        .and_then(|cl| cl.get(&format!("/pixel.gif?id={id}")));
                    match answered {
                        Some(r) if r.status == 200 => ok.push(id),
                        Some(_) => {}
                        None => client = Client::connect(addr),
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    ok.sort_unstable();
    ok
}

/// The `id=` values of records shaped `<msec>,id=N`, in list order.
pub fn ids_of(records: &[String]) -> Vec<u64> {
    records
        .iter()
        .filter_map(|r| r.split_once(",id=")?.1.split('&').next()?.parse().ok())
        .collect()
}

/// Every expected id exactly once (no duplicate, none missing).
pub fn assert_exactly_once(records: &[String], expected: &[u64]) {
    let ids = ids_of(records);
    let mut seen = std::collections::HashSet::new();
    let dups: Vec<_> = ids.iter().filter(|id| !seen.insert(**id)).collect();
    assert!(dups.is_empty(), "duplicated ids: {dups:?}");
    let missing: Vec<_> = expected.iter().filter(|id| !seen.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} ids missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}
