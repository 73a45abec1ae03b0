//! Real senders for the relay tests: `pixelpipe relay` itself, util-linux `logger`, and
//! Debian's nginx logging to syslog, each on free ports and in temp folders.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, require, run_ok, wait_until, Pixelpipe, Redis};

/// A loopback UDP port nobody uses right now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// `pixelpipe relay` with its own data folder, unix socket, UDP and TCP ports.
pub struct Relay {
    pub process: Pixelpipe,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub udp: u16,
    pub tcp: u16,
    pub other_file: PathBuf,
}

impl Relay {
    /// The command-line shape: all three sources and `--other-file`, plus `extra` args.
    pub fn start(redis: &Redis, extra: &[&str]) -> Relay {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("log.sock");
        let other_file = dir.path().join("messages");
        let (udp, tcp) = (free_udp_port(), free_port());
        let process = launch(dir.path(), &socket, udp, tcp, &other_file, redis, extra);
        Relay {
            process,
            dir,
            socket,
            udp,
            tcp,
            other_file,
        }
    }

    /// Starts it again on the same data folder, socket and ports (after a `kill -9`).
    pub fn restart(&mut self, redis: &Redis, extra: &[&str]) {
        self.process.kill9();
        self.process = launch(
            self.dir.path(),
            &self.socket,
            self.udp,
            self.tcp,
            &self.other_file,
            redis,
            extra,
        );
    }

    pub fn tcp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.tcp)
    }

    /// The file route's lines.
    pub fn other_lines(&self) -> Vec<String> {
        lines(&self.other_file)
    }

    /// A relay counter summed over its sources.
    pub fn counter(&self, name: &str) -> f64 {
        self.process.metric(name, "")
    }
}

fn launch(
    dir: &Path,
    socket: &Path,
    udp: u16,
    tcp: u16,
    other: &Path,
    redis: &Redis,
    extra: &[&str],
) -> Pixelpipe {
    let mut args: Vec<String> = vec![
        "--redis".into(),
        redis.url(),
        "relay".into(),
        "--unix".into(),
        socket.display().to_string(),
        "--udp".into(),
        format!("127.0.0.1:{udp}"),
        "--tcp".into(),
        format!("127.0.0.1:{tcp}"),
        "--other-file".into(),
        other.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Pixelpipe::start(&dir.join("data"), &args)
}

/// Runs util-linux `logger` with `args`; fails the test if it fails.
pub fn logger(args: &[&str]) {
    run_ok(Command::new(require("logger", "bsdutils")).args(args));
}

/// Debian's syslog-ng with the original recipe's configuration, its unix socket in a
/// temp folder: `local3` → the RESP `LPUSH ${PROGRAM} ${MESSAGE}` template over `tcp()`
/// to `redis`, everything else → a file in syslog-ng's default format.
pub struct SyslogNg {
    child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub messages: PathBuf,
}

/// Debian's syslog-ng: the installed one, or the package unpacked into
/// `target/syslog-ng` by `scripts/test` where rsyslog is installed (the two packages
/// conflict, so both cannot be installed at once).
pub fn syslog_ng_command() -> Command {
    if let Some(bin) = ["/usr/sbin/syslog-ng", "/usr/bin/syslog-ng"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
    {
        return Command::new(bin);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/syslog-ng");
    let bin = root.join("usr/sbin/syslog-ng");
    assert!(
        bin.exists(),
        "`syslog-ng` is not installed: run `sudo apt-get install syslog-ng-core`, or where \
         rsyslog is installed (the packages conflict) `scripts/test`, which unpacks it into \
         target/syslog-ng"
    );
    let mut command = Command::new(bin);
    command
        .env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"))
        .arg(format!(
            "--module-path={}",
            root.join("usr/lib/syslog-ng/3.38").display()
        ));
    command
}

impl SyslogNg {
    pub fn start(redis: &Redis) -> SyslogNg {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("log.sock");
        let messages = dir.path().join("messages");
        // The recipe's configuration, but for the paths and port, and `close-on-input(no)`:
        // by default syslog-ng drops the connection at Redis's first reply and waits a
        // minute before the next. That changes what arrives, not its bytes.
        let conf = format!(
            r#"@version: 3.38
options {{ stats-freq(0); }};
source s_local {{ unix-dgram("{socket}"); }};
template t_redis_lpush {{
  template("*3\r\n$$5\r\nLPUSH\r\n$$$(length ${{PROGRAM}})\r\n${{PROGRAM}}\r\n$$$(length ${{MESSAGE}})\r\n${{MESSAGE}}\r\n");
}};
destination d_redis_tcp {{ tcp("127.0.0.1" port({port}) template(t_redis_lpush) close-on-input(no)); }};
destination d_local {{ file("{messages}"); }};
filter f_redis {{ facility(local3); }};
filter f_local {{ not filter(f_redis); }};
log {{ source(s_local); filter(f_redis); destination(d_redis_tcp); }};
log {{ source(s_local); filter(f_local); destination(d_local); }};
"#,
            socket = socket.display(),
            messages = messages.display(),
            port = redis.port,
        );
        let d = dir.path();
        std::fs::write(d.join("syslog-ng.conf"), conf).expect("writing syslog-ng.conf");
        let child = syslog_ng_command()
            .args(["-F", "--no-caps", "-f"])
            .arg(d.join("syslog-ng.conf"))
            .arg("-R")
            .arg(d.join("persist"))
            .arg("-c")
            .arg(d.join("ctl"))
            .arg("-p")
            .arg(d.join("pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("stderr")).expect("stderr file"))
            .spawn()
            .expect("starting syslog-ng");
        let mut s = SyslogNg {
            child,
            dir,
            socket,
            messages,
        };
        wait_until("syslog-ng's socket", Duration::from_secs(10), || {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("syslog-ng exited ({status}):\n{}", s.stderr());
            }
            s.socket.exists()
        });
        s
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's nginx, master and one worker (so log lines keep their order), in a temp prefix.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Nginx {
    /// `locations` goes inside the `server` block; `{dir}` in it is replaced by the prefix.
    pub fn start(locations: &str) -> Nginx {
        Nginx::start_with("", locations)
    }

    /// As `start`, with `http` added at the `http` level (log formats, maps).
    pub fn start_with(http: &str, locations: &str) -> Nginx {
        let bin = require("nginx", "nginx");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let d = dir.path().display().to_string();
        let conf = format!(
            "user root;\nworker_processes 1;\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log stderr warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  log_format pixel \"$msec,$args\";\n  access_log off;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n{http}\n\
               server {{\n    listen 127.0.0.1:{port};\n{}\n  }}\n}}\n",
            locations.replace("{dir}", &d),
            http = http.replace("{dir}", &d),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("writing nginx.conf");
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg("stderr")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr file"))
            .spawn()
            .expect("starting nginx");
        let mut n = Nginx { child, port, dir };
        wait_until(
            "nginx to accept connections",
            Duration::from_secs(10),
            || {
                if let Ok(Some(status)) = n.child.try_wait() {
                    panic!("nginx exited ({status}):\n{}", n.stderr());
                }
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            },
        );
        n
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Lines nginx reports it could not send to syslog (the socket queue was full).
    pub fn failed_syslog_sends(&self) -> usize {
        self.stderr().matches("send() to syslog failed").count()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ab -c concurrency -n requests` against `target`; fails the test if ab fails.
    pub fn ab(&self, concurrency: usize, requests: usize, target: &str) {
        let bin = require("ab", "apache2-utils");
        let url = format!("http://127.0.0.1:{}{target}", self.port);
        let out = run_ok(Command::new(bin).args([
            "-q",
            "-c",
            &concurrency.to_string(),
            "-n",
            &requests.to_string(),
            &url,
        ]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("Complete requests:      {requests}"))
                && text.contains("Failed requests:        0"),
            "ab did not complete every request:\n{text}"
        );
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master stops its workers on SIGTERM; wait for it so no worker outlives the test.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of a file, for comparing with what reached Redis.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}
