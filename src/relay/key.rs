//! Which Redis keys a message may choose. The original route pushes to `${PROGRAM}`, a
//! name the sender picks: without a check, any sender could write into pixelpipe's own
//! keys — a consumer's `{key}:processing:{name}` list (replayed as real events), the
//! dead-letter list `{key}:dead`, the analytics keys, or the shipped position
//! `pixelpipe:shipped:<id>` (which would stall a collector's shipper for good).
//!
//! A key rendered from message fields must match `relay.key_pattern` (by default the
//! names programs have) and may never be in pixelpipe's own namespaces, whatever the
//! pattern says. An empty key is never a key.

use regex::bytes::Regex;

pub use crate::config::relay::DEFAULT_KEY_PATTERN;

/// Why a key was refused (the `reason` label of its counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    Empty,
    /// Does not match `relay.key_pattern`.
    Pattern,
    /// In one of pixelpipe's own namespaces.
    Reserved,
}

impl KeyRejection {
    pub fn reason(self) -> &'static str {
        match self {
            KeyRejection::Empty => "empty_key",
            KeyRejection::Pattern => "key_pattern",
            KeyRejection::Reserved => "reserved_key",
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeyGuard {
    pattern: Regex,
    /// The analytics keys' prefix (`analytics.prefix`).
    analytics_prefix: Vec<u8>,
}

impl KeyGuard {
    pub fn new(pattern: &str, analytics_prefix: &str) -> Result<KeyGuard, regex::Error> {
        Ok(KeyGuard {
            pattern: Regex::new(pattern)?,
            analytics_prefix: analytics_prefix.as_bytes().to_vec(),
        })
    }

    pub fn check(&self, key: &[u8]) -> Result<(), KeyRejection> {
        if key.is_empty() {
            return Err(KeyRejection::Empty);
        }
        if is_reserved(key, &self.analytics_prefix) {
            return Err(KeyRejection::Reserved);
        }
        if !self.pattern.is_match(key) {
            return Err(KeyRejection::Pattern);
        }
        Ok(())
    }
}

/// The last key a source's guard accepted: a sender mostly pushes to one key, and
/// comparing it costs less than matching the pattern again for every message.
#[derive(Debug, Default)]
pub struct LastAccepted(Vec<u8>);

impl KeyGuard {
    /// [`KeyGuard::check`], skipped when `key` is the one `last` accepted.
    pub fn check_remembered(
        &self,
        key: &[u8],
        last: &mut LastAccepted,
    ) -> Result<(), KeyRejection> {
        // `last` starts empty, and the empty key is never accepted.
        if !key.is_empty() && last.0 == key {
            return Ok(());
        }
        self.check(key)?;
        last.0.clear();
        last.0.extend_from_slice(key);
        Ok(())
    }
}

/// pixelpipe's own keys: everything under `pixelpipe:` (shipped positions, the default
/// analytics prefix), the analytics prefix in use, and the lists `tail` derives from a
/// list's name (`{key}:processing:{consumer}`, `{key}:dead`).
fn is_reserved(key: &[u8], analytics_prefix: &[u8]) -> bool {
    key.starts_with(b"pixelpipe:")
        || (!analytics_prefix.is_empty() && key.starts_with(analytics_prefix))
        || key.windows(12).any(|w| w == b":processing:")
        || key.ends_with(b":processing")
        || key.ends_with(b":dead")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(pattern: &str) -> KeyGuard {
        KeyGuard::new(pattern, "stats:").unwrap()
    }

    #[test]
    fn default_pattern_takes_program_names() {
        let g = guard(DEFAULT_KEY_PATTERN);
        for ok in ["pixel", "nginx", "CROND", "my_app-2.1"] {
            assert_eq!(g.check(ok.as_bytes()), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", KeyRejection::Empty),
            ("pix el", KeyRejection::Pattern),
            ("a/b", KeyRejection::Pattern),
            ("p\u{e9}xel", KeyRejection::Pattern),
            (&"a".repeat(65), KeyRejection::Pattern),
            ("pixel:x", KeyRejection::Pattern),
        ] {
            assert_eq!(g.check(bad.as_bytes()), Err(why), "{bad}");
        }
    }

    #[test]
    fn own_namespaces_whatever_the_pattern() {
        let g = guard(".*");
        for bad in [
            "pixelpipe:shipped:abc",
            "pixelpipe:stats:pixel:sec:1",
            "stats:pixel:sec:1",
            "pixel:dead",
            "pixel:processing:w1",
            "pixel:processing",
        ] {
            assert_eq!(
                g.check(bad.as_bytes()),
                Err(KeyRejection::Reserved),
                "{bad}"
            );
        }
        assert_eq!(g.check(b"pixel:events"), Ok(()));
        assert_eq!(g.check(b""), Err(KeyRejection::Empty));
    }

    #[test]
    fn a_remembered_key_is_only_the_last_accepted_one() {
        let g = guard(DEFAULT_KEY_PATTERN);
        let mut last = LastAccepted::default();
        assert_eq!(g.check_remembered(b"", &mut last), Err(KeyRejection::Empty));
        assert_eq!(g.check_remembered(b"pixel", &mut last), Ok(()));
        assert_eq!(g.check_remembered(b"pixel", &mut last), Ok(()));
        assert_eq!(
            g.check_remembered(b"pixel:dead", &mut last),
            Err(KeyRejection::Reserved)
        );
        assert_eq!(g.check_remembered(b"pixe", &mut last), Ok(()));
        assert_eq!(g.check_remembered(b"", &mut last), Err(KeyRejection::Empty));
        assert_eq!(
            g.check_remembered(b"pix el", &mut last),
            Err(KeyRejection::Pattern)
        );
    }
}
