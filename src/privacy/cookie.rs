//! The opt-in first-party cookie: its value is the visitor id, set on the first hit.

use crate::config::privacy::{CookieConfig, SameSite};

use super::visitor::VisitorId;

#[derive(Debug, Clone)]
pub struct VisitorCookie {
    name: String,
    /// `; Max-Age=…; Path=/; …` rendered once.
    attributes: String,
}

impl VisitorCookie {
    pub fn new(config: &CookieConfig) -> Self {
        let mut attributes = format!("; Max-Age={}; Path=/; HttpOnly", config.max_age.as_secs());
        attributes.push_str(match config.same_site {
            SameSite::Strict => "; SameSite=Strict",
            SameSite::Lax => "; SameSite=Lax",
            SameSite::None => "; SameSite=None",
        });
        if config.secure {
            attributes.push_str("; Secure");
        }
        if let Some(d) = &config.domain {
            attributes.push_str("; Domain=");
            attributes.push_str(d);
        }
        VisitorCookie {
            name: config.name.as_str().to_owned(),
            attributes,
        }
    }

    /// The visitor id the request's `Cookie` header carries, if well-formed.
    pub fn read(&self, headers: &[httparse::Header<'_>]) -> Option<VisitorId> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
            .flat_map(|h| h.value.split(|&b| b == b';'))
            .find_map(|pair| {
                let pair = pair.trim_ascii();
                let eq = pair.iter().position(|&b| b == b'=')?;
                (pair[..eq].trim_ascii() == self.name.as_bytes())
                    .then(|| VisitorId::from_cookie(pair[eq + 1..].trim_ascii()))
                    .flatten()
            })
    }

    /// `Set-Cookie: name=id; …\r\n`.
    pub fn write_header(&self, id: &VisitorId, out: &mut Vec<u8>) {
        out.extend_from_slice(b"Set-Cookie: ");
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(self.attributes.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reads_and_writes() {
        let config = CookieConfig {
            name: "vid".to_owned().try_into().unwrap(),
            max_age: Duration::from_secs(86_400),
            same_site: SameSite::None,
            secure: true,
            domain: Some("example.com".into()),
        };
        let c = VisitorCookie::new(&config);
        let id = VisitorId::random().unwrap();
        let mut out = Vec::new();
        c.write_header(&id, &mut out);
        let line = String::from_utf8(out).unwrap();
        let value = std::str::from_utf8(id.as_bytes()).unwrap();
        assert_eq!(
            line,
            format!("Set-Cookie: vid={value}; Max-Age=86400; Path=/; HttpOnly; SameSite=None; Secure; Domain=example.com\r\n")
        );
        let cookie = format!("other=1; vid={value}; x=2");
        let headers = [httparse::Header {
            name: "Cookie",
            value: cookie.as_bytes(),
        }];
        assert_eq!(c.read(&headers), Some(id));
        let bad = [httparse::Header {
            name: "Cookie",
            value: b"vid=../etc; avid=0123456789abcdef0123456789abcdef",
        }];
        assert_eq!(c.read(&bad), None);
    }
}
