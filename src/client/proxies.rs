//! The client's real address behind reverse proxies, as nginx's realip module finds it
//! with `real_ip_recursive on`: the proxy headers count only when the peer is trusted,
//! and the right-most address that is not a trusted proxy wins.

use std::net::IpAddr;

use crate::config::cidr::{canonical, Cidr};

/// `http.trusted_proxies` and `http.real_ip_header`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<Cidr>,
    header: RealIpHeader,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RealIpHeader {
    /// `X-Forwarded-For`, `X-Real-IP` or any header holding a comma-separated address list.
    List(String),
    /// RFC 7239 `Forwarded: for=…;proto=…, for=…`.
    Forwarded,
}

impl Default for RealIpHeader {
    fn default() -> Self {
        RealIpHeader::List("x-forwarded-for".into())
    }
}

impl TrustedProxies {
    pub fn new(nets: Vec<Cidr>, header: &str) -> Self {
        let header = if header.eq_ignore_ascii_case("forwarded") {
            RealIpHeader::Forwarded
        } else {
            RealIpHeader::List(header.to_ascii_lowercase())
        };
        TrustedProxies { nets, header }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The address the hit came from. A header sent by an untrusted peer changes nothing;
    /// an entry that is not an address (`unknown`, an obfuscated `_id`, garbage) stops the
    /// walk at the last trusted address, as in nginx.
    pub fn client_addr(&self, peer: IpAddr, headers: &[httparse::Header<'_>]) -> IpAddr {
        let peer = canonical(peer);
        if self.nets.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let name = match &self.header {
            RealIpHeader::List(n) => n.as_str(),
            RealIpHeader::Forwarded => "forwarded",
        };
        let mut addr = peer;
        // Several headers of one name are one list, in order: walk them from the last.
        for h in headers
            .iter()
            .rev()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
        {
            for entry in h.value.rsplit(|&b| b == b',') {
                let entry = entry.trim_ascii();
                if entry.is_empty() {
                    continue;
                }
                let parsed = match self.header {
                    RealIpHeader::List(_) => parse_addr_port(entry),
                    RealIpHeader::Forwarded => forwarded_for(entry),
                };
                let Some(ip) = parsed else { return addr };
                addr = canonical(ip);
                if !self.trusts(addr) {
                    return addr;
                }
            }
        }
        addr
    }
}

/// `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_addr_port(s: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(s).ok()?;
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, _port) = rest.split_once(']')?;
        return ip.parse().ok();
    }
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    // One colon: an IPv4 address with a port.
    let (ip, port) = s.split_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The `for=` of one `Forwarded` element: `for=192.0.2.60;proto=http`, `for="[::1]:80"`.
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    let value = element.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        pair[..eq]
            .eq_ignore_ascii_case(b"for")
            .then(|| pair[eq + 1..].trim_ascii())
    })?;
    let value = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    parse_addr_port(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(nets: &[&str], header: &str) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect(), header)
    }

    fn addr(p: &TrustedProxies, peer: &str, headers: &[(&str, &str)]) -> String {
        let headers: Vec<httparse::Header<'_>> = headers
            .iter()
            .map(|(n, v)| httparse::Header {
                name: n,
                value: v.as_bytes(),
            })
            .collect();
        p.client_addr(peer.parse().unwrap(), &headers).to_string()
    }

    #[test]
    fn untrusted_peer_header_changes_nothing() {
        let none = proxies(&[], "X-Forwarded-For");
        assert_eq!(
            addr(&none, "203.0.113.9", &[("X-Forwarded-For", "1.2.3.4")]),
            "203.0.113.9"
        );
        let some = proxies(&["10.0.0.0/8"], "X-Forwarded-For");
        assert_eq!(
            addr(&some, "203.0.113.9", &[("X-Forwarded-For", "1.2.3.4")]),
            "203.0.113.9"
        );
    }

    #[test]
    fn right_most_untrusted_wins() {
        let p = proxies(&["10.0.0.0/8", "192.168.0.0/16"], "X-Forwarded-For");
        // The client put a fake first entry; the proxies appended the real one.
        let h = [("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.2")];
        assert_eq!(addr(&p, "10.0.0.1", &h), "198.51.100.7");
        // Two headers are one list.
        let h = [
            ("X-Forwarded-For", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7, 192.168.1.1"),
        ];
        assert_eq!(addr(&p, "10.0.0.1", &h), "198.51.100.7");
        // All trusted: the left-most.
        assert_eq!(
            addr(&p, "10.0.0.1", &[("X-Forwarded-For", "10.9.9.9, 10.0.0.2")]),
            "10.9.9.9"
        );
        // Garbage stops the walk at the last trusted address.
        assert_eq!(
            addr(&p, "10.0.0.1", &[("X-Forwarded-For", "unknown, 10.0.0.2")]),
            "10.0.0.2"
        );
        // No header: the peer.
        assert_eq!(addr(&p, "10.0.0.1", &[]), "10.0.0.1");
        // Ports, brackets, mapped addresses.
        assert_eq!(
            addr(
                &p,
                "::ffff:10.0.0.1",
                &[("X-Forwarded-For", "198.51.100.7:443")]
            ),
            "198.51.100.7"
        );
        assert_eq!(
            addr(&p, "10.0.0.1", &[("X-Forwarded-For", "[2001:db8::1]:80")]),
            "2001:db8::1"
        );
        assert_eq!(
            addr(&p, "10.0.0.1", &[("X-Forwarded-For", "2001:db8::2")]),
            "2001:db8::2"
        );
    }

    #[test]
    fn only_the_configured_header_counts() {
        let p = proxies(&["10.0.0.0/8"], "X-Forwarded-For");
        assert_eq!(
            addr(&p, "10.0.0.1", &[("Forwarded", "for=1.2.3.4")]),
            "10.0.0.1"
        );
        let p = proxies(&["10.0.0.0/8"], "Forwarded");
        assert_eq!(
            addr(&p, "10.0.0.1", &[("X-Forwarded-For", "1.2.3.4")]),
            "10.0.0.1"
        );
    }

    #[test]
    fn rfc7239_forwarded() {
        let p = proxies(&["10.0.0.0/8"], "Forwarded");
        // RFC 7239 §4 examples.
        let h = [("Forwarded", "for=192.0.2.43, for=\"[2001:db8:cafe::17]\"")];
        assert_eq!(addr(&p, "10.0.0.1", &h), "2001:db8:cafe::17");
        let h = [("Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")];
        assert_eq!(addr(&p, "10.0.0.1", &h), "192.0.2.60");
        let h = [("Forwarded", "For=\"192.0.2.43:47011\", for=10.1.1.1")];
        assert_eq!(addr(&p, "10.0.0.1", &h), "192.0.2.43");
        // Obfuscated identifiers are not addresses.
        let h = [("Forwarded", "for=_hidden, for=10.1.1.1")];
        assert_eq!(addr(&p, "10.0.0.1", &h), "10.1.1.1");
        let h = [("Forwarded", "proto=https")];
        assert_eq!(addr(&p, "10.0.0.1", &h), "10.0.0.1");
    }
}
