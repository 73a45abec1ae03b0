//! Who sent a hit, with privacy: the one step every way in (GIF, beacon, redirect) calls
//! per hit before its record is rendered. It finds the client's address behind trusted
//! proxies, applies the rate limit, drops or marks bots and prefetches, honours consent
//! signals, and works out the visitor id, the anonymised address and the enrichment
//! variables — only those the template uses.

mod counters;
pub mod facts;
mod setup;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::client::{Anonymizer, Cidr, TrustedProxies};
use crate::config::enrich::EnrichConfig;
use crate::config::filter::{FilterAction, FilterConfig};
use crate::config::limits::LimitsConfig;
use crate::config::privacy::{OptedOut, PrivacyConfig};
use crate::enrich::{CampaignParams, GeoDb, UaCache};
use crate::filter::{is_prefetch, BotList, RateLimiter};
use crate::privacy::{salt, visitor, SaltBook, Signals, VisitorCookie};

pub use facts::{Facts, Needs};
pub use setup::{setup, SetupError};

/// The configuration [`Who`] is made from.
pub struct WhoConfig<'a> {
    pub trusted_proxies: &'a [Cidr],
    pub real_ip_header: &'a str,
    pub privacy: &'a PrivacyConfig,
    pub filter: &'a FilterConfig,
    pub limits: &'a LimitsConfig,
    pub enrich: &'a EnrichConfig,
}

/// Why a hit is answered but not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Bot,
    Prefetch,
    OptedOut,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per hit, on the stack: boxing would allocate
pub enum Verdict {
    /// Record the hit with these facts.
    Record(Facts),
    /// Answer it as a hit, write no record.
    Skip(Skip),
    /// Over its rate: `429` with `Retry-After` of this many seconds, no record.
    Limited(u64),
}

pub struct Who {
    proxies: TrustedProxies,
    anonymizer: Anonymizer,
    /// Today's salts, for the cookieless `$visitor`.
    salts: Option<Arc<SaltBook>>,
    site_param: String,
    cookie: Option<VisitorCookie>,
    signals: Signals,
    opted_out: OptedOut,
    bots: FilterAction,
    tools: FilterAction,
    prefetch: FilterAction,
    ua: Option<UaCache>,
    rate: Option<RateLimiter>,
    geo: Option<Arc<GeoDb>>,
    campaign: Option<CampaignParams>,
    needs: Needs,
}

impl Who {
    /// `salts`: the book a [`crate::privacy::SaltKeeper`] fills (needed for a cookieless
    /// `$visitor`, see [`Who::needs_salts`]); `geo`: the database `enrich.geoip_db` names.
    pub fn new(
        config: WhoConfig<'_>,
        needs: Needs,
        salts: Option<Arc<SaltBook>>,
        geo: Option<Arc<GeoDb>>,
    ) -> Who {
        let privacy = config.privacy;
        let anonymizer = if privacy.anonymize_ip {
            Anonymizer::new(privacy.ipv4_prefix.get(), privacy.ipv6_prefix.get())
        } else {
            Anonymizer::OFF
        };
        let filter = config.filter;
        let judge_bots = filter.bots != FilterAction::Keep || filter.tools != FilterAction::Keep;
        let ua = (judge_bots || needs.ua || needs.is_bot).then(|| {
            let bots = (judge_bots || needs.is_bot).then(BotList::default);
            UaCache::new(bots, needs.ua, config.enrich.ua_cache_entries)
        });
        Who {
            proxies: TrustedProxies::new(config.trusted_proxies.to_vec(), config.real_ip_header),
            anonymizer,
            salts,
            site_param: privacy.site_param.clone(),
            cookie: privacy.cookie.as_ref().map(VisitorCookie::new),
            signals: Signals {
                honor_dnt: privacy.honor_dnt,
                honor_gpc: privacy.honor_gpc,
            },
            opted_out: privacy.opted_out,
            bots: filter.bots,
            tools: filter.tools,
            prefetch: filter.prefetch,
            ua,
            rate: config
                .limits
                .per_ip
                .as_ref()
                .map(|l| RateLimiter::new(l.rate, l.burst, l.max_addresses)),
            geo: geo.filter(|_| needs.geo),
            campaign: needs.campaign.then(|| CampaignParams {
                referrer: config.enrich.referrer_param.clone(),
                url: config.enrich.url_param.clone(),
            }),
            needs,
        }
    }

    /// True when `$visitor` is a salted hash: the composition root then runs a
    /// [`crate::privacy::SaltKeeper`] for the book it passes in.
    pub fn needs_salts(privacy: &PrivacyConfig, needs: Needs) -> bool {
        needs.visitor && privacy.cookie.is_none()
    }

    pub fn cookie(&self) -> Option<&VisitorCookie> {
        self.cookie.as_ref()
    }

    /// Decides what becomes of one hit. `query` is its query string (for a beacon, the
    /// body rendered as one), where the tracker's `site`, `ref`, `url` and `utm_*` are.
    pub fn judge(
        &self,
        peer: IpAddr,
        query: Option<&[u8]>,
        headers: &[httparse::Header<'_>],
        time: SystemTime,
    ) -> Verdict {
        let counters = counters::get();
        let client = self.proxies.client_addr(peer, headers);
        if let Some(rate) = &self.rate {
            if let Err(wait) = rate.check(client, Instant::now()) {
                counters.limited.increment(1);
                return Verdict::Limited(crate::filter::rate::retry_after_secs(wait));
            }
        }
        let prefetch = self.prefetch != FilterAction::Keep && is_prefetch(headers);
        if prefetch && self.prefetch == FilterAction::Drop {
            counters.dropped_prefetch.increment(1);
            return Verdict::Skip(Skip::Prefetch);
        }
        let user_agent = header(headers, "user-agent");
        let ua = self.ua.as_ref().map(|c| c.facts(user_agent));
        let bot = ua.as_ref().is_some_and(|u| u.is_bot);
        // HTTP tools are on the bot list too; they have a policy of their own.
        let action = if bot && crate::filter::bots::is_tool(user_agent) {
            self.tools
        } else {
            self.bots
        };
        if bot && action == FilterAction::Drop {
            counters.dropped_bot.increment(1);
            return Verdict::Skip(Skip::Bot);
        }
        let opt_out = self.signals.opt_out(headers);
        if let Some(signal) = opt_out {
            counters.opt_out(signal, self.opted_out).increment(1);
            if self.opted_out == OptedOut::Drop {
                return Verdict::Skip(Skip::OptedOut);
            }
        }
        if bot && action == FilterAction::Mark {
            counters.marked_bot.increment(1);
        }
        if prefetch {
            counters.marked_prefetch.increment(1);
        }
        let mut facts = Facts::of(self.anonymizer.apply(client));
        facts.is_bot = bot && action == FilterAction::Mark;
        facts.is_prefetch = prefetch;
        if opt_out.is_none() {
            if let Some(cookie) = &self.cookie {
                facts.visitor = cookie.read(headers);
                if facts.visitor.is_none() {
                    facts.visitor = crate::privacy::VisitorId::random();
                    facts.new_cookie = facts.visitor;
                }
            } else if self.needs.visitor {
                facts.visitor = self.salts.as_ref().and_then(|book| {
                    let salt = book.get(salt::day_of(time))?;
                    let site = self.site(query, headers);
                    Some(visitor::hashed(
                        &salt,
                        client,
                        user_agent.unwrap_or_default(),
                        &site,
                    ))
                });
            }
        }
        if self.needs.ua {
            facts.ua = ua;
        }
        if let Some(geo) = &self.geo {
            // The real address: a /24 would often name the wrong city.
            facts.geo = geo.lookup(client);
        }
        if let Some(c) = &self.campaign {
            facts.campaign = c.campaign(query, header(headers, "referer"));
        }
        Verdict::Record(facts)
    }

    /// The tracker's `site` parameter, else the `Host` header.
    fn site<'a>(
        &self,
        query: Option<&'a [u8]>,
        headers: &'a [httparse::Header<'a>],
    ) -> std::borrow::Cow<'a, [u8]> {
        if !self.site_param.is_empty() {
            if let Some(v) = form_urlencoded::parse(query.unwrap_or_default())
                .find(|(k, _)| *k == self.site_param)
                .map(|(_, v)| v)
            {
                return std::borrow::Cow::Owned(v.into_owned().into_bytes());
            }
        }
        std::borrow::Cow::Borrowed(header(headers, "host").unwrap_or_default())
    }
}

fn header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}
