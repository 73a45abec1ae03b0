//! `[enrich]`: user agent, GeoIP, referrer and campaign variables.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// A MaxMind-format database (GeoLite2-City, DB-IP Lite…) for `$geo_country`,
    /// `$geo_city`; reloaded on SIGHUP.
    pub geoip_db: Option<PathBuf>,
    /// Distinct user agents whose parse is kept (per worker thread group).
    pub ua_cache_entries: usize,
    /// Query parameter carrying the page's referrer (`document.referrer`); without it,
    /// the `Referer` header.
    pub referrer_param: String,
    /// Query parameter carrying the page URL, where `utm_*` are looked for when the hit's
    /// own query has none; without it, the `Referer` header.
    pub url_param: String,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            geoip_db: None,
            ua_cache_entries: 10_000,
            referrer_param: "ref".into(),
            url_param: "url".into(),
        }
    }
}
