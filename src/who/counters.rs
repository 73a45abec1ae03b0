//! The counters of the privacy step, looked up once (see `crate::metrics`).

use std::sync::OnceLock;

use metrics::{counter, Counter};

use crate::config::privacy::OptedOut;
use crate::privacy::OptOut;

pub(super) struct Counters {
    /// Hits answered but not recorded, per reason (`pixelpipe_http_filtered_total`).
    pub dropped_bot: Counter,
    pub dropped_prefetch: Counter,
    /// `429`s (`pixelpipe_http_rejected_total{reason="rate_limited"}`).
    pub limited: Counter,
    /// Recorded with `$is_bot` / `$is_prefetch` (`pixelpipe_http_marked_total`).
    pub marked_bot: Counter,
    pub marked_prefetch: Counter,
    opt_out: [Counter; 4],
}

impl Counters {
    /// `pixelpipe_http_opt_out_total{signal, action}`; a dropped one is also filtered.
    pub fn opt_out(&self, signal: OptOut, action: OptedOut) -> &Counter {
        let i = match signal {
            OptOut::Dnt => 0,
            OptOut::Gpc => 2,
        } + usize::from(action == OptedOut::Drop);
        &self.opt_out[i]
    }
}

static COUNTERS: OnceLock<Counters> = OnceLock::new();

pub(super) fn get() -> &'static Counters {
    COUNTERS.get_or_init(|| {
        let filtered = |reason: &'static str| counter!("pixelpipe_http_filtered_total", "reason" => reason);
        let marked = |reason: &'static str| counter!("pixelpipe_http_marked_total", "reason" => reason);
        let opt_out = |signal: &'static str, action: &'static str| {
            counter!("pixelpipe_http_opt_out_total", "signal" => signal, "action" => action)
        };
        Counters {
            dropped_bot: filtered("bot"),
            dropped_prefetch: filtered("prefetch"),
            limited: counter!("pixelpipe_http_rejected_total", "reason" => "rate_limited"),
            marked_bot: marked("bot"),
            marked_prefetch: marked("prefetch"),
            opt_out: [
                opt_out("dnt", "anonymous"),
                opt_out("dnt", "drop"),
                opt_out("gpc", "anonymous"),
                opt_out("gpc", "drop"),
            ],
        }
    })
}
