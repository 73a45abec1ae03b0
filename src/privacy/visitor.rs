//! `$visitor`: an id that is the same for one browser on one site for one day and cannot
//! be turned back into an address: SipHash-2-4, keyed with the day's salt, of the full
//! address, the user agent and the site (as Plausible counts uniques).

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// A visitor id as it appears in a record: hex digits, 16 (hashed) or 32 (cookie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitorId {
    hex: [u8; 32],
    len: u8,
}

impl VisitorId {
    pub fn as_bytes(&self) -> &[u8] {
        &self.hex[..usize::from(self.len)]
    }

    /// From a cookie's value: exactly 32 lower-case hex digits, else `None`.
    pub fn from_cookie(value: &[u8]) -> Option<VisitorId> {
        if value.len() != 32 || !value.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut hex = [0u8; 32];
        hex.copy_from_slice(value);
        Some(VisitorId { hex, len: 32 })
    }

    /// 128 random bits, for a new cookie.
    pub fn random() -> Option<VisitorId> {
        let mut bits = [0u8; 16];
        getrandom::fill(&mut bits).ok()?;
        Some(Self::from_u128(u128::from_be_bytes(bits)))
    }

    fn from_u128(v: u128) -> VisitorId {
        let mut hex = [0u8; 32];
        write_hex(&mut hex, v);
        VisitorId { hex, len: 32 }
    }
}

fn write_hex(out: &mut [u8], v: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = out.len();
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((v >> ((n - 1 - i) * 4)) & 15) as usize];
    }
}

/// The cookieless id of (address, user agent, site) under `salt`.
pub fn hashed(salt: &[u8; 16], addr: IpAddr, user_agent: &[u8], site: &[u8]) -> VisitorId {
    let mut h = SipHasher24::new_with_key(salt);
    // Lengths first, so that no two different triples feed the same bytes.
    let octets = match addr.to_canonical() {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    h.write(&octets);
    h.write_u64(user_agent.len() as u64);
    h.write(user_agent);
    h.write_u64(site.len() as u64);
    h.write(site);
    let mut hex = [0u8; 32];
    write_hex(&mut hex[..16], u128::from(h.finish()));
    VisitorId { hex, len: 16 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(salt: u8, addr: &str, ua: &str, site: &str) -> String {
        let v = hashed(
            &[salt; 16],
            addr.parse().unwrap(),
            ua.as_bytes(),
            site.as_bytes(),
        );
        String::from_utf8(v.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn same_inputs_same_id_any_change_another() {
        let a = id(1, "203.0.113.9", "Firefox", "example.com");
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, id(1, "203.0.113.9", "Firefox", "example.com"));
        assert_eq!(a, id(1, "::ffff:203.0.113.9", "Firefox", "example.com"));
        assert_ne!(
            a,
            id(2, "203.0.113.9", "Firefox", "example.com"),
            "another day"
        );
        assert_ne!(
            a,
            id(1, "203.0.113.10", "Firefox", "example.com"),
            "the full address counts"
        );
        assert_ne!(a, id(1, "203.0.113.9", "Chrome", "example.com"));
        assert_ne!(a, id(1, "203.0.113.9", "Firefox", "example.org"));
        // The length prefixes keep the boundary between the parts.
        assert_ne!(id(1, "::1", "ab", "c"), id(1, "::1", "a", "bc"));
    }

    #[test]
    fn siphash_test_vector() {
        // The reference vector of the SipHash paper: key 00..0f, message 00..0e.
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let mut h = SipHasher24::new_with_key(&key);
        h.write(&(0u8..15).collect::<Vec<_>>());
        assert_eq!(h.finish(), 0xa129ca6149be45e5);
    }

    #[test]
    fn cookie_values() {
        let v = VisitorId::random().unwrap();
        assert_eq!(v.as_bytes().len(), 32);
        assert_eq!(VisitorId::from_cookie(v.as_bytes()), Some(v));
        assert_ne!(VisitorId::random(), Some(v));
        assert_eq!(VisitorId::from_cookie(b"xyz"), None);
        assert_eq!(VisitorId::from_cookie(&[b'A'; 32]), None);
        assert_eq!(
            VisitorId::from_cookie(&[b'a'; 32]).unwrap().as_bytes(),
            &[b'a'; 32]
        );
    }
}
