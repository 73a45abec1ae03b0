//! Where the aggregates live in Redis. One place, so that the writer ([`super::aggregate`])
//! and the readers ([`super::stats`]) cannot disagree.
//!
//! Every key starts with `{prefix}{list key}:`; buckets are named by the epoch second
//! they start at (UTC minutes and days), so keys read like what they hold:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `…:total` | string | events ever counted |
//! | `…:malformed` | string | records whose timestamp could not be read |
//! | `…:s:{minute}` | hash | second → events in that second |
//! | `…:m:{day}` | hash | minute → events in that minute |
//! | `…:v:{param}:{minute}` | hash | value of `param` → events in that minute |
//! | `…:u:m:{minute}` / `…:u:d:{day}` | HyperLogLog | visitors in that minute / day |
//! | `…:ab:hits:{minute}` / `…:ab:goals:{minute}` | hash | variant → events / goal events |

pub const MINUTE: i64 = 60;
pub const DAY: i64 = 86_400;

pub fn minute_of(second: i64) -> i64 {
    second - second.rem_euclid(MINUTE)
}

pub fn day_of(second: i64) -> i64 {
    second - second.rem_euclid(DAY)
}

#[derive(Debug, Clone)]
pub struct Keys {
    base: String,
}

impl Keys {
    pub fn new(prefix: &str, list: &str) -> Keys {
        Keys {
            base: format!("{prefix}{list}:"),
        }
    }

    pub fn total(&self) -> String {
        format!("{}total", self.base)
    }

    pub fn malformed(&self) -> String {
        format!("{}malformed", self.base)
    }

    pub fn seconds(&self, minute: i64) -> String {
        format!("{}s:{minute}", self.base)
    }

    pub fn minutes(&self, day: i64) -> String {
        format!("{}m:{day}", self.base)
    }

    pub fn values(&self, param: &str, minute: i64) -> String {
        format!("{}v:{param}:{minute}", self.base)
    }

    pub fn uniques_minute(&self, minute: i64) -> String {
        format!("{}u:m:{minute}", self.base)
    }

    pub fn uniques_day(&self, day: i64) -> String {
        format!("{}u:d:{day}", self.base)
    }

    pub fn ab_hits(&self, minute: i64) -> String {
        format!("{}ab:hits:{minute}", self.base)
    }

    pub fn ab_goals(&self, minute: i64) -> String {
        format!("{}ab:goals:{minute}", self.base)
    }
}
