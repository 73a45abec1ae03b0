//! Who a hit came from: the real address behind trusted proxies, and its anonymised form.

pub mod anonymize;
pub mod proxies;

pub use crate::config::cidr::Cidr;
pub use anonymize::Anonymizer;
pub use proxies::TrustedProxies;
