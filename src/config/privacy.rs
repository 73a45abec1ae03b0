//! `[privacy]`: IP anonymisation, the visitor id, consent signals.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Zero the host part of every address before it reaches a record.
    pub anonymize_ip: bool,
    /// Bits of an IPv4 address kept when anonymising (0–32).
    pub ipv4_prefix: Ipv4Prefix,
    /// Bits of an IPv6 address kept when anonymising (0–128).
    pub ipv6_prefix: Ipv6Prefix,
    /// Redis keys of the daily visitor salts are `{salt_key}YYYY-MM-DD`.
    pub salt_key: String,
    /// Query parameter naming the site (the tracker's `data-site`); without it, `Host`.
    pub site_param: String,
    /// Honour `DNT: 1`.
    pub honor_dnt: bool,
    /// Honour `Sec-GPC: 1`.
    pub honor_gpc: bool,
    /// What an honoured signal does: record without visitor fields, or not record.
    pub opted_out: OptedOut,
    /// Opt-in first-party cookie; when set, `$visitor` is its value instead of a hash.
    pub cookie: Option<CookieConfig>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            anonymize_ip: true,
            ipv4_prefix: Ipv4Prefix(24),
            ipv6_prefix: Ipv6Prefix(48),
            salt_key: "pixelpipe:salt:".into(),
            site_param: "site".into(),
            honor_dnt: true,
            honor_gpc: true,
            opted_out: OptedOut::Anonymous,
            cookie: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptedOut {
    /// Recorded, with `$visitor` as `-` and no cookie.
    Anonymous,
    /// Answered as usual, not recorded.
    Drop,
}

macro_rules! prefix_type {
    ($name:ident, $max:expr) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "u8", into = "u8")]
        pub struct $name(u8);

        impl $name {
            pub fn get(self) -> u8 {
                self.0
            }
        }

        impl TryFrom<u8> for $name {
            type Error = String;
            fn try_from(v: u8) -> Result<Self, String> {
                if v <= $max {
                    Ok($name(v))
                } else {
                    Err(format!("a prefix length is at most {}, not {v}", $max))
                }
            }
        }

        impl From<$name> for u8 {
            fn from(p: $name) -> u8 {
                p.0
            }
        }
    };
}

prefix_type!(Ipv4Prefix, 32);
prefix_type!(Ipv6Prefix, 128);

/// `privacy.cookie = { name, max_age, same_site, secure, domain }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookieConfig {
    pub name: CookieName,
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    pub same_site: SameSite,
    pub secure: bool,
    /// `Domain=` attribute; `None`: the collector's host only.
    pub domain: Option<String>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            name: CookieName("pp_vid".into()),
            max_age: Duration::from_secs(365 * 86_400),
            same_site: SameSite::Lax,
            secure: true,
            domain: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

/// A cookie name: an RFC 6265 token (letters, digits, `!#$%&'*+-.^_`|~`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CookieName(String);

impl CookieName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CookieName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if !s.is_empty() && s.bytes().all(token) {
            Ok(CookieName(s))
        } else {
            Err(format!(
                "`{s}` is not a cookie name (letters, digits, !#$%&'*+-.^_`|~)"
            ))
        }
    }
}

impl From<CookieName> for String {
    fn from(n: CookieName) -> String {
        n.0
    }
}

/// Request headers that carry client addresses: with anonymisation on, a template may
/// not write them (`$remote_addr` is the anonymised address).
const ADDRESS_HEADERS: [&str; 6] = [
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "cf-connecting-ip",
    "true-client-ip",
    "x-client-ip",
];

impl PrivacyConfig {
    /// With `anonymize_ip`, no raw address may reach a record through a header variable:
    /// `format_headers` are the headers `http.format` writes (`$http_…`).
    pub fn check_format<'a>(
        &self,
        format_headers: impl IntoIterator<Item = &'a str>,
        real_ip_header: &str,
    ) -> Result<(), super::ConfigError> {
        if !self.anonymize_ip {
            return Ok(());
        }
        for h in format_headers {
            if ADDRESS_HEADERS.contains(&h) || h.eq_ignore_ascii_case(real_ip_header) {
                return Err(super::ConfigError::invalid(
                    "http.format",
                    format!("$http_{} carries client addresses, which privacy.anonymize_ip keeps out of records: use $remote_addr", h.replace('-', "_")),
                ));
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), super::ConfigError> {
        if let Some(c) = &self.cookie {
            if c.same_site == SameSite::None && !c.secure {
                return Err(super::ConfigError::invalid(
                    "privacy.cookie.secure",
                    "must be true with same_site = \"None\" (browsers refuse the cookie otherwise)",
                ));
            }
            if let Some(d) = &c.domain {
                if d.is_empty()
                    || !d
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                {
                    return Err(super::ConfigError::invalid(
                        "privacy.cookie.domain",
                        "must be a host name",
                    ));
                }
            }
        }
        Ok(())
    }
}
