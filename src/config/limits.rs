//! `[limits]`: the per-address rate limit.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// `{ rate, burst }`: a token bucket per client address; none by default.
    pub per_ip: Option<PerIpLimit>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerIpLimit {
    /// Hits per second an address may keep sending.
    pub rate: f64,
    /// Hits an address may send at once.
    pub burst: u32,
    /// Addresses tracked at once (memory: about 40 bytes each); past it, the least
    /// recently limited make room.
    pub max_addresses: usize,
}

impl Default for PerIpLimit {
    fn default() -> Self {
        PerIpLimit {
            rate: 10.0,
            burst: 20,
            max_addresses: 65_536,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        if let Some(l) = &self.per_ip {
            if !(l.rate.is_finite() && l.rate > 0.0) {
                return Err(super::ConfigError::invalid(
                    "limits.per_ip.rate",
                    "must be > 0",
                ));
            }
            if l.burst == 0 {
                return Err(super::ConfigError::invalid(
                    "limits.per_ip.burst",
                    "must be > 0",
                ));
            }
            if l.max_addresses < 2 {
                return Err(super::ConfigError::invalid(
                    "limits.per_ip.max_addresses",
                    "must be at least 2",
                ));
            }
        }
        Ok(())
    }
}
