//! One pixel hit as its record template sees it: the parsed request, when it arrived and
//! who sent it. The template reads it through [`HitFields`]; it never sees `httparse`.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::template::http::HitFields;
use crate::who::Facts;

/// Borrowed from the request buffer: nothing is copied unless the template asks for it.
pub struct Hit<'a> {
    pub time: SystemTime,
    pub method: &'a str,
    /// The request target as received, e.g. `/pixel.gif?foo=bar`.
    pub target: &'a [u8],
    /// The target with its fragment, if one was sent (`$request_uri`).
    pub request_uri: &'a [u8],
    /// Its path, percent-decoded and normalised (`$uri`).
    pub path: &'a [u8],
    /// The client's address as recorded: behind trusted proxies, anonymised.
    pub remote_addr: IpAddr,
    pub headers: &'a [httparse::Header<'a>],
    /// The request body, for a beacon (`None`: `$body` is `-`).
    pub body: Option<&'a [u8]>,
    /// What the privacy step found out (`$visitor`, `$ua_*`, `$geo_*`, …).
    pub facts: &'a Facts,
}

impl HitFields for Hit<'_> {
    fn time(&self) -> SystemTime {
        self.time
    }

    fn method(&self) -> &str {
        self.method
    }

    fn target(&self) -> &[u8] {
        self.target
    }

    fn request_uri(&self) -> &[u8] {
        self.request_uri
    }

    fn uri(&self) -> &[u8] {
        self.path
    }

    fn remote_addr(&self) -> IpAddr {
        self.remote_addr
    }

    fn body(&self) -> Option<&[u8]> {
        self.body
    }

    fn facts(&self) -> &Facts {
        self.facts
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}
