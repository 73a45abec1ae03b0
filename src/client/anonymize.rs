//! IP anonymisation: the host part of an address is zeroed before it reaches a record,
//! as Matomo and Google Analytics do (IPv4 to a /24, IPv6 to a /48 by default).

use std::net::IpAddr;

use crate::config::cidr::{mask_v4, mask_v6};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anonymizer {
    /// `None`: addresses are kept whole.
    prefixes: Option<(u8, u8)>,
}

impl Anonymizer {
    pub const OFF: Anonymizer = Anonymizer { prefixes: None };

    /// Keeps the first `v4` bits of an IPv4 address and `v6` bits of an IPv6 one.
    pub fn new(v4: u8, v6: u8) -> Self {
        Anonymizer {
            prefixes: Some((v4.min(32), v6.min(128))),
        }
    }

    pub fn is_on(&self) -> bool {
        self.prefixes.is_some()
    }

    pub fn apply(&self, ip: IpAddr) -> IpAddr {
        let Some((v4, v6)) = self.prefixes else {
            return ip;
        };
        match ip.to_canonical() {
            IpAddr::V4(a) => IpAddr::V4(mask_v4(a.into(), v4).into()),
            IpAddr::V6(a) => IpAddr::V6(mask_v6(a.into(), v6).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(a: Anonymizer, s: &str) -> String {
        a.apply(s.parse().unwrap()).to_string()
    }

    #[test]
    fn defaults_cut_to_24_and_48() {
        let a = Anonymizer::new(24, 48);
        assert_eq!(anon(a, "203.0.113.197"), "203.0.113.0");
        assert_eq!(
            anon(a, "2001:db8:85a3:8d3:1319:8a2e:370:7348"),
            "2001:db8:85a3::"
        );
        assert_eq!(anon(a, "::ffff:198.51.100.42"), "198.51.100.0");
    }

    #[test]
    fn other_prefixes_and_off() {
        assert_eq!(anon(Anonymizer::new(16, 32), "203.0.113.197"), "203.0.0.0");
        assert_eq!(anon(Anonymizer::new(0, 0), "2001:db8::1"), "::");
        assert_eq!(
            anon(Anonymizer::new(32, 128), "203.0.113.197"),
            "203.0.113.197"
        );
        assert_eq!(anon(Anonymizer::OFF, "203.0.113.197"), "203.0.113.197");
    }
}
