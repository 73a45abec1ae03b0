//! What a user agent says: browser, version, OS, device class (woothee's parse) and
//! whether it is a bot — worked out once per distinct user agent and cached.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::filter::BotList;

/// Facts about one user agent. `None`: unknown (rendered `-`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UaFacts {
    pub is_bot: bool,
    pub browser: Option<Box<str>>,
    pub browser_version: Option<Box<str>>,
    pub os: Option<Box<str>>,
    /// woothee's category: `pc`, `smartphone`, `mobilephone`, `appliance`, `crawler`, `misc`.
    pub device: Option<Box<str>>,
}

const SHARDS: usize = 8;

/// One shard: user agent → its facts, least recently used out.
type Shard = Mutex<LruCache<Box<[u8]>, Arc<UaFacts>>>;

/// A bounded cache of [`UaFacts`], shared by the workers (sharded to keep locks short).
pub struct UaCache {
    bots: Option<BotList>,
    parse: bool,
    parser: woothee::parser::Parser,
    shards: Vec<Shard>,
}

impl UaCache {
    /// `bots`: decide `is_bot` (else it stays false); `parse`: fill the browser fields.
    pub fn new(bots: Option<BotList>, parse: bool, entries: usize) -> Self {
        let per_shard =
            NonZeroUsize::new(entries.div_ceil(SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        UaCache {
            bots,
            parse,
            parser: woothee::parser::Parser::new(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
        }
    }

    /// The facts of `ua` (`None`: no `User-Agent` header).
    pub fn facts(&self, ua: Option<&[u8]>) -> Arc<UaFacts> {
        let key = ua.unwrap_or_default();
        // A cheap spread over the shards; the cache itself hashes properly.
        let shard = (key.len() + key.get(key.len() / 2).map_or(0, |&b| usize::from(b))) % SHARDS;
        let mut cache = self.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = cache.get(key) {
            return f.clone();
        }
        let facts = Arc::new(self.work_out(ua));
        cache.put(key.into(), facts.clone());
        facts
    }

    fn work_out(&self, ua: Option<&[u8]>) -> UaFacts {
        let mut facts = UaFacts {
            is_bot: self.bots.as_ref().is_some_and(|b| b.is_bot(ua)),
            ..UaFacts::default()
        };
        if !self.parse {
            return facts;
        }
        let text = String::from_utf8_lossy(ua.unwrap_or_default());
        if let Some(r) = self.parser.parse(&text) {
            let known =
                |s: &str| (s != woothee::woothee::VALUE_UNKNOWN && !s.is_empty()).then(|| s.into());
            facts.browser = known(r.name);
            facts.browser_version = known(r.version);
            facts.os = known(r.os);
            facts.device = known(r.category);
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_caches() {
        let cache = UaCache::new(Some(BotList::default()), true, 100);
        let ua: &[u8] = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        let f = cache.facts(Some(ua));
        assert!(!f.is_bot);
        assert_eq!(f.browser.as_deref(), Some("Chrome"));
        assert_eq!(f.browser_version.as_deref(), Some("131.0.0.0"));
        assert_eq!(f.os.as_deref(), Some("Windows 10"));
        assert_eq!(f.device.as_deref(), Some("pc"));
        // The second time is the same allocation: a lookup, not a parse.
        assert!(Arc::ptr_eq(&f, &cache.facts(Some(ua))));
        let none = cache.facts(None);
        assert!(!none.is_bot);
        assert_eq!(none.browser, None);
    }

    #[test]
    fn bounded() {
        let cache = UaCache::new(None, false, 16);
        for i in 0..1000 {
            cache.facts(Some(format!("agent {i}").as_bytes()));
        }
        let held: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= 16, "{held}");
    }
}

#[cfg(test)]
mod corpus {
    use super::*;

    /// The real crawler, tool and browser user agents of `tests/data/user_agents.tsv`.
    #[test]
    fn real_user_agents() {
        let cache = UaCache::new(Some(BotList::default()), true, 100);
        let mut wrong = Vec::new();
        for line in include_str!("../../tests/data/user_agents.tsv").lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let ua = *cols.last().unwrap();
            let f = cache.facts(Some(ua.as_bytes()));
            let got = match cols[0] {
                "bot" => (f.is_bot, String::new()),
                _ => (
                    !f.is_bot,
                    format!(
                        "{}\t{}\t{}",
                        f.browser.as_deref().unwrap_or("-"),
                        f.os.as_deref().unwrap_or("-"),
                        f.device.as_deref().unwrap_or("-")
                    ),
                ),
            };
            let want = if cols[0] == "bot" {
                String::new()
            } else {
                cols[1..4].join("\t")
            };
            if !got.0 || got.1 != want {
                wrong.push(format!(
                    "{ua}: is_bot={} got `{}` want `{want}`",
                    f.is_bot, got.1
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
