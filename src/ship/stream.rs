//! The Redis Stream sink (`ship.sink = "stream"`): each record is one `XADD` entry with
//! the record in the field `r`, then its named fields (`[ship.fields]`, rendered at the
//! hit and kept with the record in the local log, see [`crate::log::entry`]), trimmed by `ship.stream_retention` (`MAXLEN ~ N`, or
//! `MINID ~` of entries older than an age). Consumers read it with consumer groups
//! (`pixelpipe tail --stream --group G`), so several of them share the work and each
//! entry is acknowledged (`XACK`) once handled.
//!
//! **Why a retried batch is never added twice.** There were two ways:
//!
//! 1. Explicit entry ids derived from the log position (`XADD pixel <pos>-0 …`): Redis
//!    refuses an id not above the stream's last one, so a repeat is refused. But ids
//!    must grow across *all* writers of a stream, and several collectors (each with its
//!    own log and positions) write to one stream; their positions are unrelated, so one
//!    collector's ids would be refused because another's were higher. It would also tie
//!    the entry ids, which consumers see, to one collector's disk offsets.
//! 2. The batch and the new shipped position written in one atomic step, with Redis
//!    generating the ids (`*`) — what the list sink does. A lost reply, a reconnect or a
//!    restart is followed by reading the position back, and a batch whose position is
//!    already there is not sent again.
//!
//! We take 2, as a Lua script ([`super::script`]) rather than `MULTI`/`EXEC`, because the
//! script also *checks* the position before adding anything: the cluster client retries
//! a command on its own after a timeout or a redirection, and such a retry of an applied
//! batch must be a no-op, not a second copy. The atomic step and the check together make
//! it exactly once whoever retries.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::StreamRetention;

/// The trim arguments of `XADD` for a batch shipped now: `("", "")` for none. Trimming
/// is approximate (`~`): Redis trims whole macro-nodes, which is much cheaper, and keeps
/// at least what was asked for.
pub fn xadd_trim(retention: StreamRetention) -> (&'static str, String) {
    match retention {
        StreamRetention::Unbounded => ("", String::new()),
        StreamRetention::MaxLen(n) => ("MAXLEN", n.to_string()),
        StreamRetention::MaxAge(age) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            ("MINID", now.saturating_sub(age).as_millis().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_becomes_xadd_trim_arguments() {
        use std::time::Duration;
        assert_eq!(xadd_trim(StreamRetention::Unbounded), ("", String::new()));
        assert_eq!(
            xadd_trim(StreamRetention::MaxLen(1000)),
            ("MAXLEN", "1000".into())
        );
        let (kind, min) = xadd_trim(StreamRetention::MaxAge(Duration::from_secs(3600)));
        assert_eq!(kind, "MINID");
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let min: u128 = min.parse().unwrap();
        assert!(now_ms - min >= 3_600_000 && now_ms - min < 3_700_000);
    }
}
