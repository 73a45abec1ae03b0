//! Key injection: a sender names the Redis key (`${PROGRAM}`), so the relay must refuse
//! pixelpipe's own namespaces and names no program has, whatever the sender writes.

#[allow(unused_imports)]
mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::relay::Relay;
use common::{wait_until, Redis};

#[test]
fn senders_cannot_write_into_pixelpipes_keys() {
    let redis = Redis::start();
    let relay = Relay::start(&redis, &[]);
    let attacks: &[&[u8]] = &[
        // RFC 5424 app-names may hold colons: the consumer's lists and the shipper's position.
        b"<158>1 2026-11-27T20:23:37Z web1 pixel:dead - - - replayed as dead letters",
        b"<158>1 2026-11-27T20:23:37Z web1 pixel:processing:w1 - - - replayed as events",
        b"<158>1 2026-11-27T20:23:37Z web1 pixelpipe:shipped:abc - - - stalls the shipper",
        b"<158>1 2026-11-27T20:23:37Z web1 pixelpipe:stats:pixel:sec:1 - - - breaks the dashboard",
        // Names no program has, and no name at all.
        b"<158>1 2026-11-27T20:23:37Z web1 p\xc3\xa9xel - - - not a program name",
        b"<158>1 2026-11-27T20:23:37Z web1 - - - - no app-name",
        b"<158>Nov 27 20:23:37 web1 : an empty tag",
    ];
    let fine: &[&[u8]] = &[
        b"<158>Nov 27 20:23:37 web1 pixel: 1379183721.115,a=1",
        b"<158>1 2026-11-27T20:23:37Z web1 pixel 42 - - 1379183721.116,a=2",
    ];
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for m in attacks.iter().chain(fine) {
        sender.send_to(m, ("127.0.0.1", relay.udp)).unwrap();
    }
    wait_until("the two records", Duration::from_secs(20), || {
        redis.llen("pixel") >= 2
    });
    wait_until(
        "the refused messages in the file",
        Duration::from_secs(20),
        || relay.other_lines().len() >= attacks.len(),
    );
    let mut conn = redis.conn();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    keys.retain(|k| !k.starts_with("pixelpipe:shipped:") && !k.starts_with("pixelpipe:stats:"));
    assert_eq!(keys, vec!["pixel".to_string()], "only the program's list");
    assert_eq!(
        redis.list_oldest_first("pixel"),
        vec!["1379183721.115,a=1", "1379183721.116,a=2"]
    );
    // Every refused message is in the file route, and counted with its reason.
    let lines = relay.other_lines();
    for m in attacks {
        let text = String::from_utf8_lossy(m);
        let tail = text
            .rsplit(" - ")
            .next()
            .unwrap()
            .rsplit(": ")
            .next()
            .unwrap();
        assert!(
            lines.iter().any(|l| l.ends_with(tail)),
            "{text:?} is not in the file: {lines:#?}"
        );
    }
    let refused = |reason: &str| {
        relay.process.metric(
            "pixelpipe_relay_refused_keys_total",
            &format!("reason=\"{reason}\""),
        )
    };
    assert_eq!(refused("reserved_key"), 4.0);
    assert_eq!(refused("key_pattern"), 1.0);
    assert_eq!(refused("empty_key"), 2.0);
    // The shipper's own position is untouched by the sender.
    let shipped: Vec<String> = redis::cmd("KEYS")
        .arg("pixelpipe:shipped:*")
        .query(&mut conn)
        .unwrap();
    for k in shipped {
        let kind: String = redis::cmd("TYPE").arg(&k).query(&mut conn).unwrap();
        assert_ne!(kind, "list", "{k} was written as a list");
    }
}
