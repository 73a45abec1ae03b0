//! What the privacy and enrichment step found out about one hit, for its record.

use std::net::IpAddr;
use std::sync::Arc;

use crate::enrich::{Campaign, GeoFacts, UaFacts};
use crate::privacy::VisitorId;

/// The variables a template uses that cost something to work out; the rest is skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub visitor: bool,
    pub is_bot: bool,
    pub ua: bool,
    pub geo: bool,
    pub campaign: bool,
}

/// Borrowed by the template when it renders the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The address as recorded: the client's (behind trusted proxies), anonymised.
    pub remote_addr: IpAddr,
    /// `None` when not asked for, opted out, or no salt yet.
    pub visitor: Option<VisitorId>,
    /// A new cookie to set with the answer.
    pub new_cookie: Option<VisitorId>,
    pub is_bot: bool,
    pub is_prefetch: bool,
    pub ua: Option<Arc<UaFacts>>,
    pub geo: GeoFacts,
    pub campaign: Campaign,
}

impl Facts {
    /// Only the address: what a hit knows when no step is configured.
    pub fn of(remote_addr: IpAddr) -> Facts {
        Facts {
            remote_addr,
            visitor: None,
            new_cookie: None,
            is_bot: false,
            is_prefetch: false,
            ua: None,
            geo: GeoFacts::default(),
            campaign: Campaign::default(),
        }
    }
}
