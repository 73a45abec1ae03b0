//! Variables worked out from a hit: user agent, country and city, referrer and campaign.

pub mod campaign;
pub mod geo;
pub mod ua;

pub use campaign::{Campaign, CampaignParams};
pub use geo::{GeoDb, GeoFacts};
pub use ua::{UaCache, UaFacts};
