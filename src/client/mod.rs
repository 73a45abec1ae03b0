//! Who a hit came from: the real address behind trusted proxies, and its anonymised form.

pub mod anonymize;
pub mod cidr;
pub mod proxies;

pub use anonymize::Anonymizer;
pub use cidr::Cidr;
pub use proxies::TrustedProxies;
