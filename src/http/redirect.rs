//! Click redirects: `GET /r?u=<url>&…` records the click and answers `302 Location: <url>`
//! only for an `http(s)` URL whose host is on `http.redirect_hosts`. Never an open
//! redirect: the URL is read by the same WHATWG rules a browser follows (the `url` crate),
//! and anything a browser could read as another host than the one checked is refused.

use url::{Host, Url};

/// Longest `u` accepted (decoded). Longer is refused: no real link needs it, and a
/// `Location` that large is trouble for proxies.
pub const MAX_URL: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("no `u` parameter")]
    Missing,
    #[error("the URL is longer than {MAX_URL} bytes")]
    TooLong,
    #[error("the URL must start with http:// or https://")]
    Scheme,
    #[error("the URL holds a space, a control character or a backslash")]
    Characters,
    #[error("the URL does not parse: {0}")]
    Parse(String),
    #[error("the URL carries a user name or password")]
    UserInfo,
    #[error("host {0} is not on http.redirect_hosts")]
    Host(String),
}

/// `http.redirect_hosts`: exact hosts and `*.suffix` patterns, held in the ASCII
/// (punycode, lower-case) form the URL parser gives hosts.
#[derive(Debug, Clone, Default)]
pub struct RedirectHosts {
    exact: Vec<String>,
    /// `.example.com` for `*.example.com`: matches any subdomain, not the domain itself.
    suffixes: Vec<String>,
}

impl RedirectHosts {
    /// Fails naming the first pattern that is not a host or `*.host`.
    pub fn new(patterns: &[String]) -> Result<RedirectHosts, String> {
        let mut hosts = RedirectHosts::default();
        for p in patterns {
            let (wild, name) = match p.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None => (false, p.as_str()),
            };
            let host = match Host::parse(name) {
                Ok(Host::Domain(d)) if !d.contains('*') => d,
                Ok(Host::Ipv4(ip)) if !wild => ip.to_string(),
                Ok(Host::Ipv6(ip)) if !wild => format!("[{ip}]"),
                _ => return Err(format!("`{p}` is not a host name or *.host")),
            };
            if wild {
                hosts.suffixes.push(format!(".{host}"));
            } else {
                hosts.exact.push(host);
            }
        }
        Ok(hosts)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty()
    }

    fn allows(&self, host: &str) -> bool {
        self.exact.iter().any(|h| h == host)
            || self
                .suffixes
                .iter()
                .any(|s| host.len() > s.len() && host.ends_with(s.as_str()))
    }
}

/// The `Location` for a redirect request's query string, or why there is none.
pub fn location(query: &[u8], hosts: &RedirectHosts) -> Result<String, RedirectError> {
    let u = form_urlencoded::parse(query)
        .find(|(k, _)| k == "u")
        .map(|(_, v)| v)
        .ok_or(RedirectError::Missing)?;
    check(&u, hosts)
}

fn check(u: &str, hosts: &RedirectHosts) -> Result<String, RedirectError> {
    if u.len() > MAX_URL {
        return Err(RedirectError::TooLong);
    }
    // A browser strips tabs and newlines and reads `\` as `/`: refuse them rather than
    // reason about what they become.
    if u.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err(RedirectError::Characters);
    }
    // `https:evil.com` and `//evil.com` parse (relative to nothing, or as scheme-relative)
    // to another host than a naive reader sees: only the full form is accepted.
    let lower = u.get(..8).unwrap_or(u).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(RedirectError::Scheme);
    }
    let url = Url::parse(u).map_err(|e| RedirectError::Parse(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RedirectError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectError::UserInfo);
    }
    // The parsed host: percent-decoded, IDNA-mapped to punycode, lower-cased.
    let host = match url.host() {
        Some(Host::Domain(d)) => d.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        None => return Err(RedirectError::Parse("no host".into())),
    };
    if !hosts.allows(&host) {
        return Err(RedirectError::Host(host));
    }
    // The serialised URL: what the browser will request, with nothing that could break
    // the header (the serialiser percent-encodes it).
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> RedirectHosts {
        RedirectHosts::new(&[
            "good.com".into(),
            "*.shop.example".into(),
            "bücher.de".into(),
            "10.0.0.1".into(),
        ])
        .unwrap()
    }

    fn loc(u: &str) -> Result<String, RedirectError> {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("u", u)
            .append_pair("c", "1")
            .finish();
        location(q.as_bytes(), &hosts())
    }

    #[test]
    fn allowed_hosts_redirect() {
        assert_eq!(
            loc("https://good.com/a?b=c#d").unwrap(),
            "https://good.com/a?b=c#d"
        );
        assert_eq!(loc("HTTP://GOOD.COM").unwrap(), "http://good.com/");
        assert_eq!(
            loc("https://good.com:8443/x").unwrap(),
            "https://good.com:8443/x"
        );
        assert_eq!(
            loc("https://a.shop.example/").unwrap(),
            "https://a.shop.example/"
        );
        assert_eq!(
            loc("https://a.b.shop.example/").unwrap(),
            "https://a.b.shop.example/"
        );
        assert_eq!(loc("http://10.0.0.1/").unwrap(), "http://10.0.0.1/");
        // IDN: the Unicode and punycode spellings are one host.
        assert_eq!(
            loc("https://bücher.de/").unwrap(),
            "https://xn--bcher-kva.de/"
        );
        assert_eq!(
            loc("https://xn--bcher-kva.de/").unwrap(),
            "https://xn--bcher-kva.de/"
        );
        // Full-width letters are mapped to ASCII, by the browser as here: the same host.
        assert_eq!(loc("https://ＧＯＯＤ.com/").unwrap(), "https://good.com/");
        // Other spellings of a listed address are that address (as for a browser).
        assert_eq!(loc("http://0x0a.0.0.1/").unwrap(), "http://10.0.0.1/");
        // A path that looks like a host is a path.
        assert_eq!(
            loc("https://good.com//evil.com/").unwrap(),
            "https://good.com//evil.com/"
        );
    }

    #[test]
    fn never_an_open_redirect() {
        use RedirectError::*;
        type Expect = fn(&RedirectError) -> bool;
        let cases: &[(&str, Expect)] = &[
            ("https://evil.com/", |e| matches!(e, Host(_))),
            ("//evil.com", |e| *e == Scheme),
            ("///evil.com", |e| *e == Scheme),
            ("https:evil.com", |e| *e == Scheme),
            ("https:/evil.com", |e| *e == Scheme),
            ("https:/\\evil.com", |e| *e == Characters),
            ("\\\\evil.com", |e| *e == Characters),
            ("/\\evil.com", |e| *e == Characters),
            ("https:\\\\evil.com", |e| *e == Characters),
            ("https://good.com\\@evil.com", |e| *e == Characters),
            ("https://good.com@evil.com", |e| *e == UserInfo),
            ("https://evil.com@good.com", |e| *e == UserInfo),
            ("https://good.com:pw@evil.com", |e| *e == UserInfo),
            ("https://good.com%40evil.com", |e| matches!(e, Parse(_))),
            (
                "https://evil%2Ecom/",
                |e| matches!(e, Host(h) if h == "evil.com"),
            ),
            ("https://good.com%2F.evil.com/", |e| matches!(e, Parse(_))),
            ("https://good.com.evil.com/", |e| matches!(e, Host(_))),
            ("https://evilgood.com/", |e| matches!(e, Host(_))),
            ("https://shop.example/", |e| matches!(e, Host(_))),
            ("https://good.com./", |e| matches!(e, Host(_))),
            // Cyrillic "о" in gооd.com: another host, in punycode.
            (
                "https://g\u{43e}\u{43e}d.com/",
                |e| matches!(e, Host(h) if h.starts_with("xn--")),
            ),
            (" https://good.com/", |e| *e == Characters),
            ("https://good.com/\n", |e| *e == Characters),
            ("ht\ttps://good.com/", |e| *e == Characters),
            ("javascript:alert(1)//https://good.com/", |e| *e == Scheme),
            ("data:text/html,x", |e| *e == Scheme),
            ("ftp://good.com/", |e| *e == Scheme),
            (
                "http://0x0b.0.0.1/",
                |e| matches!(e, Host(h) if h == "11.0.0.1"),
            ),
            ("http://[::1]/", |e| matches!(e, Host(_))),
            ("", |e| *e == Scheme),
        ];
        for (u, expected) in cases {
            let got = loc(u);
            assert!(matches!(&got, Err(e) if expected(e)), "{u:?} gave {got:?}");
        }
    }

    #[test]
    fn percent_encoded_in_the_query_is_decoded_once() {
        // `u` arrives percent-encoded in the query; decoded once it is the URL checked.
        let q = b"u=https%3A%2F%2Fevil.com%2F";
        assert!(matches!(location(q, &hosts()), Err(RedirectError::Host(_))));
        let q = b"u=https%3A%2F%2Fgood.com%2F%3Fx%3D1";
        assert_eq!(location(q, &hosts()).unwrap(), "https://good.com/?x=1");
        // Double-encoded: the host is `good.com%2540evil.com` after one decode: not a host.
        let q = b"u=https%3A%2F%2Fgood.com%2540evil.com%2F";
        assert!(location(q, &hosts()).is_err());
        assert_eq!(location(b"x=1", &hosts()), Err(RedirectError::Missing));
    }

    #[test]
    fn a_ten_kib_url_is_refused() {
        let long = format!("https://good.com/{}", "a".repeat(10 * 1024));
        assert_eq!(loc(&long), Err(RedirectError::TooLong));
    }

    #[test]
    fn patterns_are_checked() {
        assert!(RedirectHosts::new(&["*.*.com".into()]).is_err());
        assert!(RedirectHosts::new(&["a b".into()]).is_err());
        assert!(RedirectHosts::new(&["*.10.0.0.1".into()]).is_err());
        assert!(RedirectHosts::new(&["https://good.com".into()]).is_err());
        assert!(RedirectHosts::new(&[]).unwrap().is_empty());
    }
}
