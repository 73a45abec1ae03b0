//! Helpers for the consume tests: `pixelpipe tail` runs, pushing records the way the
//! shipper does (LPUSH, oldest first), and `pixelpipe serve` with analytics.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use super::{free_port, run_ok, wait_until, Pixelpipe, Redis, BIN};

/// LPUSHes `records` in order, so that BRPOP pops them in this order.
pub fn push(redis: &Redis, key: &str, records: &[String]) {
    let mut conn = redis.conn();
    for chunk in records.chunks(1000) {
        let _: () = redis::cmd("LPUSH")
            .arg(key)
            .arg(chunk)
            .query(&mut conn)
            .expect("LPUSH");
    }
}

/// Runs `pixelpipe --redis … tail <args>` to completion.
pub fn tail(redis: &Redis, args: &[&str]) -> Output {
    tail_with_env(redis, args, &[])
}

/// [`tail`] with settings in the environment.
pub fn tail_with_env(redis: &Redis, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_ok(
        Command::new(BIN)
            .arg("--redis")
            .arg(redis.url())
            .arg("tail")
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied()),
    )
}

/// A `pixelpipe tail` left running, its stdout and stderr in files.
pub struct Tail {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Tail {
    pub fn start(redis_url: &str, dir: &Path, name: &str, args: &[&str]) -> Tail {
        Tail::start_with_env(redis_url, dir, name, args, &[])
    }

    pub fn start_with_env(
        redis_url: &str,
        dir: &Path,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Tail {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let child = Command::new(BIN)
            .arg("--redis")
            .arg(redis_url)
            .arg("tail")
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("starting pixelpipe tail");
        Tail {
            child,
            stdout,
            stderr,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.stdout)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status (tail finishes its batch and exits 0).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let mut status = None;
        wait_until(
            "tail to exit after SIGTERM",
            Duration::from_secs(10),
            || {
                status = self.child.try_wait().ok().flatten();
                status.is_some()
            },
        );
        status.expect("exited")
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The analytics configuration the end-to-end tests use.
pub const ANALYTICS_TOML: &str = r#"
[analytics]
enabled = true
params = ["utm_source", "variant"]
visitor = "uid"
ab_param = "variant"
goal = "event=signup"
"#;

/// `pixelpipe serve` on free ports with [`ANALYTICS_TOML`] and `extra` serve flags;
/// returns it and its pixel address.
pub fn serve_with_analytics(
    redis: &Redis,
    dir: &Path,
    extra: &[&str],
) -> (Pixelpipe, std::net::SocketAddr) {
    let config = dir.join("pixelpipe.toml");
    std::fs::write(&config, ANALYTICS_TOML).expect("config file");
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (config, redis, listen_arg) = (
        config.display().to_string(),
        redis.url(),
        listen.to_string(),
    );
    let mut args = vec![
        "--config",
        &config,
        "--redis",
        &redis,
        "serve",
        "--listen",
        &listen_arg,
    ];
    args.extend_from_slice(extra);
    (Pixelpipe::start(&dir.join("data"), &args), listen)
}

/// Sends one pixel hit with `query`; panics unless it is answered 200.
pub fn hit(listen: std::net::SocketAddr, query: &str) {
    let r = super::http_get(listen, &format!("/pixel.gif?{query}")).expect("pixel response");
    assert_eq!(r.status, 200, "pixel hit ?{query}");
}

/// The A/B test traffic of the end-to-end tests: visitors `uid` 0..visitors, variant by
/// parity, every `goal_every`-th hit a signup, sources cycling through three names
/// (one needing percent-encoding).
pub fn traffic(n: usize, visitors: usize, goal_every: usize) -> Vec<String> {
    let sources = ["google", "news%20letter", "direct"];
    (0..n)
        .map(|i| {
            let uid = (i * 7919) % visitors;
            let variant = if uid.is_multiple_of(2) { "A" } else { "B" };
            let mut q = format!("utm_source={}&variant={variant}&uid=u{uid}", sources[i % 3]);
            if i.is_multiple_of(goal_every) {
                q.push_str("&event=signup");
            }
            q
        })
        .collect()
}

/// What the analytics must report for `queries`, counted independently of pixelpipe.
pub struct Expected<'q> {
    /// Hits per `utm_source`, decoded as the aggregator decodes it.
    pub sources: std::collections::HashMap<&'q str, u64>,
    /// Hits and signups per `variant`.
    pub hits: std::collections::HashMap<&'q str, u64>,
    pub goals: std::collections::HashMap<&'q str, u64>,
    /// Distinct `uid`s.
    pub uids: std::collections::HashSet<&'q str>,
}

pub fn expected(queries: &[String]) -> Expected<'_> {
    let mut e = Expected {
        sources: Default::default(),
        hits: Default::default(),
        goals: Default::default(),
        uids: Default::default(),
    };
    for q in queries {
        let get = |name: &str| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .expect("every test query carries utm_source, variant and uid")
        };
        let source = match get("utm_source") {
            "news%20letter" => "news letter",
            s => s,
        };
        *e.sources.entry(source).or_default() += 1;
        *e.hits.entry(get("variant")).or_default() += 1;
        if q.contains("event=signup") {
            *e.goals.entry(get("variant")).or_default() += 1;
        }
        e.uids.insert(get("uid"));
    }
    e
}
