//! A real Redis Cluster for the tests: `redis-server --cluster-enabled yes` processes on
//! free loopback ports in a temporary folder, joined by `redis-cli --cluster create …
//! --cluster-replicas 1 --cluster-yes`. Masters can be killed (`kill -9`), failovers
//! waited for, slots moved with `redis-cli --cluster reshard`. Everything stops on drop.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{require, run_ok, wait_until};

/// One `redis-server` of the cluster.
pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

/// Starts (or restarts, with its `nodes.conf`: it rejoins) the node on `port` in `dir`.
fn spawn_node(port: u16, dir: &std::path::Path) -> Child {
    let node_dir = dir.join(port.to_string());
    std::fs::create_dir_all(&node_dir).unwrap();
    Command::new(require("redis-server", "redis-server"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", "nodes.conf"])
        // Quick failure detection: a failover in about two seconds.
        .args(["--cluster-node-timeout", "1000"])
        // The other masters keep serving while one is down.
        .args(["--cluster-require-full-coverage", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&node_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting redis-server")
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

/// Two free ports: `p` for clients and `p + 10000` for the cluster bus (Redis's rule).
fn free_cluster_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let p = l.local_addr().unwrap().port();
        if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

impl Cluster {
    /// `masters` masters with `replicas` replicas each, every slot assigned, every replica
    /// in sync.
    pub fn start(masters: usize, replicas: usize) -> Cluster {
        require("redis-server", "redis-server");
        let cli = require("redis-cli", "redis-tools");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let port = free_cluster_port();
            let child = spawn_node(port, dir.path());
            nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        for n in &nodes {
            let url = format!("redis://127.0.0.1:{}", n.port);
            wait_until(
                "a cluster node to answer PING",
                Duration::from_secs(10),
                || {
                    redis::Client::open(url.as_str())
                        .and_then(|c| c.get_connection())
                        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                        .is_ok()
                },
            );
        }
        let mut create = Command::new(&cli);
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        run_ok(&mut create);
        let cluster = Cluster { nodes, dir };
        cluster.wait_healthy();
        cluster
    }

    /// The URL pixelpipe takes: every live node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    fn node_conn(port: u16) -> redis::RedisResult<redis::Connection> {
        let c = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let conn = c.get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(conn)
    }

    /// `INFO replication` of a node as `field:value` lines.
    fn info(port: u16, section: &str) -> String {
        Cluster::node_conn(port)
            .and_then(|mut c| redis::cmd("INFO").arg(section).query::<String>(&mut c))
            .unwrap_or_default()
    }

    pub fn is_master(&self, port: u16) -> bool {
        Cluster::info(port, "replication").contains("role:master")
    }

    /// Every live node says `cluster_state:ok` and every master has its replicas online.
    pub fn wait_healthy(&self) {
        wait_until(
            "the cluster to be healthy with replicas in sync",
            Duration::from_secs(30),
            || {
                self.live_ports().iter().all(|&p| {
                    let state = Cluster::node_conn(p)
                        .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                        .unwrap_or_default();
                    let repl = Cluster::info(p, "replication");
                    state.contains("cluster_state:ok")
                        && (!repl.contains("role:master")
                            || repl.contains("connected_slaves:0")
                            || repl.contains("state=online"))
                        && (!repl.contains("role:slave") || repl.contains("master_link_status:up"))
                })
            },
        );
    }

    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// The port of the master serving `key`'s slot now.
    pub fn master_of(&self, key: &str) -> u16 {
        self.find_master_of(key)
            .unwrap_or_else(|| panic!("no master serves the slot of {key}"))
    }

    fn find_master_of(&self, key: &str) -> Option<u16> {
        let slot: u16 = {
            let mut c = Cluster::node_conn(self.live_ports()[0]).ok()?;
            redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query(&mut c)
                .ok()?
        };
        for p in self.live_ports() {
            if !self.is_master(p) {
                continue;
            }
            let Ok(mut c) = Cluster::node_conn(p) else {
                continue;
            };
            let mine: Vec<u16> = redis::cmd("CLUSTER")
                .arg("MYID")
                .query::<String>(&mut c)
                .ok()
                .and_then(|id| {
                    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut c).ok()?;
                    let line = nodes.lines().find(|l| l.starts_with(&id))?.to_owned();
                    Some(slots_of_line(&line))
                })
                .unwrap_or_default();
            if mine.contains(&slot) {
                return Some(p);
            }
        }
        None
    }

    /// `kill -9` of one node; returns its port.
    pub fn kill9(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster");
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a killed node again; it rejoins the cluster (a dead master comes back as a
    /// replica of the one that took its place). Waits until the cluster is healthy.
    pub fn restart(&mut self, port: u16) {
        let dir = self.dir.path().to_owned();
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster");
        assert!(node.child.is_none(), "restart a killed node");
        node.child = Some(spawn_node(port, &dir));
        self.wait_healthy();
    }

    /// Waits until a live master serves `key`'s slot again (a replica took over from the
    /// killed one) and the cluster is `ok` from every live node.
    pub fn wait_failover(&self, key: &str) {
        wait_until(
            "a replica to take over the killed master's slots",
            Duration::from_secs(30),
            || {
                self.find_master_of(key).is_some()
                    && self.live_ports().iter().all(|&p| {
                        Cluster::node_conn(p)
                            .and_then(|mut c| {
                                redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c)
                            })
                            .map(|s| s.contains("cluster_state:ok"))
                            .unwrap_or(false)
                    })
            },
        );
    }

    /// Moves `slots` slots from the master at `from` to the master at `to` with
    /// `redis-cli --cluster reshard` (keys migrated with MIGRATE while clients write).
    pub fn reshard(&self, from: u16, to: u16, slots: u32) {
        let id = |p: u16| -> String {
            let mut c = Cluster::node_conn(p).expect("a live node");
            redis::cmd("CLUSTER")
                .arg("MYID")
                .query(&mut c)
                .expect("MYID")
        };
        run_ok(
            Command::new(require("redis-cli", "redis-tools"))
                .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
                .args(["--cluster-from", &id(from)])
                .args(["--cluster-to", &id(to)])
                .args(["--cluster-slots", &slots.to_string()])
                .args(["--cluster-pipeline", "100"])
                .arg("--cluster-yes")
                .stdout(Stdio::null()),
        );
    }

    /// A cluster client for the test's own checks.
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        let nodes: Vec<String> = self
            .live_ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect();
        redis::cluster::ClusterClient::new(nodes)
            .and_then(|c| c.get_connection())
            .expect("connecting to the test cluster")
    }
}

/// The slots listed at the end of a `CLUSTER NODES` line (`0-5460 7000 …`).
fn slots_of_line(line: &str) -> Vec<u16> {
    let mut slots = Vec::new();
    for part in line.split(' ').skip(8) {
        if part.starts_with('[') {
            continue; // a slot being imported or migrated
        }
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    slots.extend(a..=b);
                }
            }
            None => {
                if let Ok(s) = part.parse() {
                    slots.push(s);
                }
            }
        }
    }
    slots
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
