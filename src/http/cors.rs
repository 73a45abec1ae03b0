//! CORS for the pixel and beacon paths: which page origins may read our answers (and
//! send beacons a browser preflights), from the allow-list `http.cors_origins`.
//!
//! With an empty list (the default) there is no CORS at all: no CORS header, every request
//! recorded, as for the plain GIF. With a list, a request whose `Origin` is not on it
//! (and is not the collector's own) is "foreign": it gets no CORS header (so the browser
//! hides the answer from the page) and is recorded only if `http.cors_record_foreign`.

use url::Url;

#[derive(Debug, Clone, Default)]
pub struct Cors {
    /// Exact origins, as browsers serialise them (`https://shop.example:8443`).
    origins: Vec<String>,
    /// `*` was listed: any origin, answered `Access-Control-Allow-Origin: *`.
    any: bool,
    credentials: bool,
    pub record_foreign: bool,
}

/// How a request's `Origin` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// No CORS in play: no `Origin`, CORS not configured, or the collector's own origin.
    None,
    /// On the list: answer with these headers (from [`Cors::write_headers`]).
    Allowed(&'a [u8]),
    /// Not on the list.
    Foreign,
}

impl Cors {
    /// Fails naming the first entry that is neither `*` nor an origin.
    pub fn new(
        origins: &[String],
        credentials: bool,
        record_foreign: bool,
    ) -> Result<Cors, String> {
        let mut cors = Cors {
            credentials,
            record_foreign,
            ..Cors::default()
        };
        for o in origins {
            if o == "*" {
                cors.any = true;
                continue;
            }
            let bad = || format!("`{o}` is not `*` nor an origin like https://shop.example");
            let url = Url::parse(o).map_err(|_| bad())?;
            let origin = url.origin().ascii_serialization();
            if !matches!(url.scheme(), "http" | "https")
                || url.path() != "/"
                || url.query().is_some()
                || !url.username().is_empty()
                || origin.is_empty()
            {
                return Err(bad());
            }
            cors.origins.push(origin);
        }
        Ok(cors)
    }

    pub fn enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// The verdict for a request's `Origin` header; `host` and `tls` tell the collector's
    /// own origin (a same-origin request needs no CORS).
    pub fn check<'o>(
        &self,
        origin: Option<&'o [u8]>,
        host: Option<&[u8]>,
        tls: bool,
    ) -> Verdict<'o> {
        let Some(origin) = origin else {
            return Verdict::None;
        };
        if !self.enabled() {
            return Verdict::None;
        }
        if let Some(host) = host {
            let scheme: &[u8] = if tls { b"https://" } else { b"http://" };
            if origin.len() == scheme.len() + host.len()
                && origin[..scheme.len()].eq_ignore_ascii_case(scheme)
                && origin[scheme.len()..].eq_ignore_ascii_case(host)
            {
                return Verdict::None;
            }
        }
        if self
            .origins
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
            || self.any
        {
            Verdict::Allowed(origin)
        } else {
            Verdict::Foreign
        }
    }

    /// The CORS headers of an answer to an allowed origin. `Allow-Credentials` only for an
    /// origin that is listed by name: never together with `*`.
    pub fn write_headers(&self, origin: &[u8], out: &mut Vec<u8>) {
        let listed = self
            .origins
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin));
        out.extend_from_slice(b"Access-Control-Allow-Origin: ");
        if listed {
            out.extend_from_slice(origin);
            out.extend_from_slice(b"\r\n");
            if self.credentials {
                out.extend_from_slice(b"Access-Control-Allow-Credentials: true\r\n");
            }
        } else {
            out.extend_from_slice(b"*\r\n");
        }
    }

    /// The extra headers of a preflight's answer to an allowed origin.
    pub fn write_preflight(&self, origin: &[u8], out: &mut Vec<u8>) {
        self.write_headers(origin, out);
        out.extend_from_slice(
            b"Access-Control-Allow-Methods: GET, HEAD, POST\r\n\
              Access-Control-Allow-Headers: Content-Type\r\n\
              Access-Control-Max-Age: 86400\r\n",
        );
    }
}

/// Every answer on a CORS path varies with `Origin`: a cache must not give one origin's
/// answer to another.
pub const VARY: &[u8] = b"Vary: Origin\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(list: &[&str], credentials: bool) -> Cors {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        Cors::new(&list, credentials, false).unwrap()
    }

    fn headers(c: &Cors, origin: &str) -> String {
        let mut out = Vec::new();
        c.write_headers(origin.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn listed_origins_are_echoed() {
        let c = cors(&["https://shop.example", "http://127.0.0.1:8000/"], true);
        let o = b"https://shop.example".as_slice();
        assert_eq!(
            c.check(Some(o), Some(b"collector"), true),
            Verdict::Allowed(o)
        );
        assert_eq!(
            headers(&c, "https://shop.example"),
            "Access-Control-Allow-Origin: https://shop.example\r\n\
             Access-Control-Allow-Credentials: true\r\n"
        );
        assert!(matches!(
            c.check(Some(b"http://127.0.0.1:8000"), None, false),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn other_origins_are_foreign() {
        let c = cors(&["https://shop.example"], false);
        for o in [
            "https://evil.example",
            "http://shop.example",
            "https://shop.example:444",
            "https://shop.example.evil",
            "null",
        ] {
            assert_eq!(
                c.check(Some(o.as_bytes()), None, true),
                Verdict::Foreign,
                "{o}"
            );
        }
    }

    #[test]
    fn star_never_goes_with_credentials() {
        let c = cors(&["*"], true);
        assert!(matches!(
            c.check(Some(b"https://any.example"), None, true),
            Verdict::Allowed(_)
        ));
        assert_eq!(
            headers(&c, "https://any.example"),
            "Access-Control-Allow-Origin: *\r\n"
        );
        // Listed by name as well: echoed, with credentials.
        let c = cors(&["*", "https://shop.example"], true);
        assert!(headers(&c, "https://shop.example").contains("Credentials: true"));
    }

    #[test]
    fn no_origin_no_list_or_same_origin_is_no_cors() {
        let c = cors(&["https://shop.example"], false);
        assert_eq!(c.check(None, Some(b"c.example"), true), Verdict::None);
        assert_eq!(
            c.check(
                Some(b"https://c.example:8443"),
                Some(b"c.example:8443"),
                true
            ),
            Verdict::None
        );
        assert_eq!(
            c.check(
                Some(b"http://c.example:8443"),
                Some(b"c.example:8443"),
                true
            ),
            Verdict::Foreign
        );
        let off = cors(&[], false);
        assert!(!off.enabled());
        assert_eq!(off.check(Some(b"https://x"), None, true), Verdict::None);
    }

    #[test]
    fn entries_must_be_origins() {
        for bad in [
            "shop.example",
            "https://shop.example/path",
            "https://shop.example/?q",
            "ftp://shop.example",
            "https://u@shop.example",
            "*.example",
        ] {
            assert!(Cors::new(&[bad.into()], false, false).is_err(), "{bad}");
        }
        // Case and a trailing slash are normalised away.
        let c = cors(&["HTTPS://Shop.Example/"], false);
        assert!(matches!(
            c.check(Some(b"https://shop.example"), None, true),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn preflight_names_methods_and_content_type() {
        let c = cors(&["https://shop.example"], false);
        let mut out = Vec::new();
        c.write_preflight(b"https://shop.example", &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("Access-Control-Allow-Methods: GET, HEAD, POST\r\n"));
        assert!(s.contains("Access-Control-Allow-Headers: Content-Type\r\n"));
        assert!(!s.contains("Credentials"));
    }
}
