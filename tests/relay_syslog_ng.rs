//! `pixelpipe relay` side by side with Debian's syslog-ng running the original recipe's
//! configuration: the same datagrams to each one's unix socket, and the same bytes must
//! come out, in each one's Redis and, for the other messages, in each one's file.

#[allow(unused_imports)]
mod common;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::relay::{lines, logger, Relay, SyslogNg};
use common::{wait_until, Pixelpipe, Redis};

const WAIT: Duration = Duration::from_secs(30);

/// What local programs write to `/dev/log` (no host name): nginx with `nohostname` as the
/// recipe has it, glibc's `TAG[PID]:`, a space-padded day, bytes that other formats
/// escape, trailing blanks and newline, no space after the colon, an empty message.
const LOCAL3: &[&[u8]] = &[
    b"<158>Nov 27 20:23:37 pixel: 1379183721.115,foo=bar&baz=1",
    b"<158>Nov  7 01:02:03 pixel[123]: 1379183721.117,x=1",
    b"<158>Nov 27 20:23:37 pixel: 1.4,q=\"a\\b\" \xc3\xa9,pct=%41%20  ",
    b"<158>Nov 27 20:23:37 pixel: 1.5,trailing=newline\n",
    b"<158>Nov 27 20:23:37 other-tag: another key",
    b"<159>Nov 27 20:23:37 pixel:no space after the colon",
    b"<158>Nov 27 20:23:37 pixel: ",
];
const OTHERS: &[&[u8]] = &[
    b"<13>Nov 27 20:23:37 app[42]: user.notice to the file",
    b"<30>Nov 27 20:23:37 daemon: daemon.info",
    b"this is not syslog",
];
/// With a host name, as nginx writes without `nohostname`. syslog-ng reads no host name
/// on a local socket, so `web1` becomes the program (the Redis key); the relay reads
/// these as nginx means them by default, and as syslog-ng does with
/// `parse_hostname = false`.
const WITH_HOST: &[&[u8]] = &[
    b"<158>Nov 27 20:23:37 web1 pixel: 1379183721.116,foo=bar&baz=2",
    b"<158>Nov 27 20:23:37 web1 pixel[9]:1.7,x=2",
    b"<13>Nov 27 20:23:37 web1 app[42]: with a host, to the file",
];

/// The recipe's nginx configuration (`nohostname`), `logger`, and the other forms local
/// programs send: the relay as it runs by default writes what syslog-ng writes.
#[test]
fn same_bytes_as_the_recipes_syslog_ng() {
    let (redis_relay, redis_sng) = (Redis::start(), Redis::start());
    let relay = Relay::start(&redis_relay, &[]);
    let sng = SyslogNg::start(&redis_sng);
    for socket in [&relay.socket, &sng.socket] {
        send(socket, &[LOCAL3, OTHERS].concat());
    }
    let compared = Compared::collect(
        [
            (&redis_relay, &relay.other_file),
            (&redis_sng, &sng.messages),
        ],
        LOCAL3.len() + 1,
        OTHERS.len(),
    );
    compared.assert_same();
    assert_eq!(
        compared.redis[0]["pixel"][0],
        b"1379183721.115,foo=bar&baz=1"
    );
}

/// With `parse_hostname = false` on the unix socket, the relay reads every message as
/// syslog-ng reads a local socket, host names included.
#[test]
fn without_hostnames_every_record_is_syslog_ngs() {
    let (redis_relay, redis_sng) = (Redis::start(), Redis::start());
    let dir = tempfile::tempdir().unwrap();
    let (socket, other_file) = (dir.path().join("log.sock"), dir.path().join("messages"));
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[relay]\nother_file = {other_file:?}\n\n\
             [[relay.sources]]\ntype = \"unix\"\npath = {socket:?}\nparse_hostname = false\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let _relay = Pixelpipe::start(
        &dir.path().join("data"),
        &["--config", &config, "--redis", &redis_relay.url(), "relay"],
    );
    let sng = SyslogNg::start(&redis_sng);
    let all = [LOCAL3, OTHERS, WITH_HOST].concat();
    for to in [&socket, &sng.socket] {
        send(to, &all);
    }
    let compared = Compared::collect(
        [(&redis_relay, &other_file), (&redis_sng, &sng.messages)],
        LOCAL3.len() + 1 + 2,
        OTHERS.len() + 1,
    );
    compared.assert_same();
    assert_eq!(
        compared.redis[0]["web1"][0],
        b"pixel: 1379183721.116,foo=bar&baz=2"
    );
}

/// Sends `messages` to the unix socket at `to`, then a line from util-linux `logger`.
fn send(to: &PathBuf, messages: &[&[u8]]) {
    let sender = UnixDatagram::unbound().unwrap();
    for m in messages {
        sender.send_to(m, to).unwrap();
    }
    let to = to.display().to_string();
    logger(&["-u", &to, "-p", "local3.info", "-t", "pixel", "from logger"]);
}

/// What the relay (first) and syslog-ng (second) wrote: every Redis list, the file.
struct Compared {
    redis: [BTreeMap<String, Vec<Vec<u8>>>; 2],
    files: [Vec<String>; 2],
}

impl Compared {
    /// Waits for `records` in each Redis and `lines` in each file, then reads them.
    fn collect(outputs: [(&Redis, &PathBuf); 2], records: usize, lines_: usize) -> Compared {
        for (who, (redis, file)) in ["relay", "syslog-ng"].iter().zip(outputs) {
            wait_until(&format!("{records} records in {who}'s Redis"), WAIT, || {
                all_lists(redis).values().map(Vec::len).sum::<usize>() >= records
            });
            wait_until(&format!("{lines_} lines in {who}'s file"), WAIT, || {
                lines(file).len() >= lines_
            });
        }
        Compared {
            redis: outputs.map(|(redis, _)| all_lists(redis)),
            files: outputs.map(|(_, file)| file_lines(file)),
        }
    }

    fn assert_same(&self) {
        let [ours, theirs] = &self.redis;
        assert_eq!(ours, theirs, "Redis: relay (left), syslog-ng (right)");
        assert_eq!(
            self.files[0], self.files[1],
            "file: relay (left), syslog-ng (right)"
        );
    }
}

/// Every list in `redis` but pixelpipe's own keys, oldest first, by key.
fn all_lists(redis: &Redis) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut conn = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    keys.into_iter()
        .filter(|k| !k.starts_with("pixelpipe:"))
        .map(|k| {
            let mut list: Vec<Vec<u8>> = redis::cmd("LRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap();
            list.reverse();
            (k, list)
        })
        .collect()
}

/// The file's lines. The unparseable message is dated when it was received, which may
/// be a second apart for the two: its date is left out.
fn file_lines(path: &Path) -> Vec<String> {
    lines(path)
        .into_iter()
        .map(|l| match l.strip_suffix(" this is not syslog") {
            // `Nov 27 23:04:33 host`: the date is 15 characters.
            Some(head) => format!(
                "<received>{} this is not syslog",
                head.get(15..).unwrap_or(head)
            ),
            None => l,
        })
        .collect()
}
