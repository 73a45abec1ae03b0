//! `pixelpipe relay` behind Debian's nginx, the original pipeline's sender. A test binary
//! of its own, so that it does not share the two cores with the other relay tests: the
//! unix datagram queue is 10 deep and nginx drops what does not fit.

#[allow(unused_imports)]
mod common;

use std::time::Duration;

use common::relay::{lines, Nginx, Relay};
use common::{wait_until, Redis};

/// The bar: nginx writing `access_log syslog:server=unix:PATH,…,nohostname` under
/// `ab -c 10 -n 10000`, every event reaches Redis byte for byte as nginx wrote it to its
/// own file log, in order. With and without `nohostname`, over the unix socket and UDP.
///
/// nginx drops a line when the socket queue is full (`net.unix.max_dgram_qlen`, 10 unless
/// the host raised it). The relay's socket queues 512 whatever the host's setting (see
/// `src/relay/unix_queue.rs`), and a real-time thread drains it: nginx must report no
/// line it could not send.
#[test]
fn nginx_lines_all_reach_redis_in_order() {
    let redis = Redis::start();
    let relay = Relay::start(&redis, &[]);
    let unix = format!("unix:{}", relay.socket.display());
    let udp = format!("127.0.0.1:{}", relay.udp);
    let location = |name: &str, server: &str, options: &str| {
        format!(
            "    location = /{name}.gif {{\n\
                   access_log syslog:server={server},facility=local3,tag={name}{options} pixel;\n\
                   access_log {{dir}}/{name}.log pixel;\n      empty_gif;\n    }}\n"
        )
    };
    let queue = relay.counter("pixelpipe_relay_unix_queue_len");
    assert!(
        queue >= 512.0,
        "the socket queues {queue} datagrams, not 512"
    );
    let nginx = Nginx::start(
        &[
            location("pixel", &unix, ",nohostname"),
            location("unixhost", &unix, ""),
            location("udp", &udp, ""),
            location("udpnohost", &udp, ",nohostname"),
        ]
        .concat(),
    );
    nginx.ab(10, 10_000, "/pixel.gif?foo=bar&baz=1");
    nginx.ab(10, 1_000, "/unixhost.gif?h=1");
    nginx.ab(10, 1_000, "/udp.gif?via=udp&x=%22y%22");
    nginx.ab(10, 1_000, "/udpnohost.gif?via=udp");
    let failed = nginx.failed_syslog_sends();
    assert_eq!(
        failed, 0,
        "nginx could not send {failed} of 13,000 lines (socket queue full)"
    );
    for (key, count) in [
        ("pixel", 10_000),
        ("unixhost", 1_000),
        ("udp", 1_000),
        ("udpnohost", 1_000),
    ] {
        let expected = lines(&nginx.path(&format!("{key}.log")));
        assert_eq!(expected.len(), count);
        wait_until(
            &format!("{} records in Redis list {key}", expected.len()),
            Duration::from_secs(30),
            || redis.llen(key) >= expected.len(),
        );
        assert_eq!(redis.list_oldest_first(key), expected, "list {key}");
    }
}
