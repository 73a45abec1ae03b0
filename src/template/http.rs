//! nginx `log_format`-style templates for HTTP hits: `$msec,$args` and friends.
//!
//! A template reads a hit through [`HitFields`], which the HTTP source implements: this
//! module knows the variables, not the transport. As in nginx, a variable with no value
//! (no query string, a missing header) renders as `-`, and values are escaped (see
//! [`super::escape_into`]).
//!
//! Adding a variable: a [`Var`] variant, its name in [`parse_var`], and one arm in
//! [`Var::render`] that reads it from the hit.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::SystemTime;

use chrono::{DateTime, Local};

use crate::log::entry::Framer;
use crate::record;
use crate::who::{Facts, Needs};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unknown variable `${0}` (known: $msec, $args, $remote_addr, $request_id, $time_iso8601, $time_local, $request_uri, $uri, $request_method, $body, $http_<header>, $visitor, $is_bot, $is_prefetch, $ua_browser, $ua_browser_version, $ua_os, $ua_device, $geo_country, $geo_city, $referrer_host, $utm_source, $utm_medium, $utm_campaign)")]
    UnknownVariable(String),
    #[error("`$` at byte {0} is not followed by a variable name")]
    EmptyName(usize),
    #[error("unclosed `${{` at byte {0}")]
    Unclosed(usize),
}

/// What a template reads from a hit. Borrowed from the request buffer: nothing is copied
/// unless the template asks for it.
pub trait HitFields {
    /// When the hit arrived.
    fn time(&self) -> SystemTime;
    fn method(&self) -> &str;
    /// The request target as received, e.g. `/pixel.gif?foo=bar`, without a fragment.
    fn target(&self) -> &[u8];
    /// The target with its fragment, if one was sent: `$request_uri`.
    fn request_uri(&self) -> &[u8];
    /// The path as nginx's `$uri` holds it: percent-decoded and normalised (`//`
    /// merged, `.` and `..` resolved), no query.
    fn uri(&self) -> &[u8];
    fn remote_addr(&self) -> IpAddr;
    /// The value of the request header `name` (lower case, e.g. `user-agent`), if sent.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// The request body, for a beacon (`None`: `$body` is `-`).
    fn body(&self) -> Option<&[u8]>;
    /// What the privacy step found out (`$visitor`, `$ua_*`, `$geo_*`, …).
    fn facts(&self) -> &Facts;
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Msec,
    Args,
    RemoteAddr,
    RequestId,
    TimeIso8601,
    TimeLocal,
    RequestUri,
    Uri,
    RequestMethod,
    /// The request body as received (a beacon's).
    Body,
    /// `$http_user_agent` → the `user-agent` header.
    Header(String),
    /// Worked out by the privacy step (`crate::who`), only when the template uses them.
    Who(WhoVar),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhoVar {
    Visitor,
    IsBot,
    IsPrefetch,
    UaBrowser,
    UaBrowserVersion,
    UaOs,
    UaDevice,
    GeoCountry,
    GeoCity,
    ReferrerHost,
    UtmSource,
    UtmMedium,
    UtmCampaign,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(Vec<u8>),
    Var { var: Var, delim: Option<u8> },
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    needs_local_time: bool,
    needs: Needs,
    /// `[ship.fields]`: rendered with the record, framed after it (see
    /// [`crate::log::entry`]); empty for a plain record.
    fields: Vec<(String, Template)>,
}

pub fn compile(source: &str) -> Result<Template, TemplateError> {
    let bytes = source.as_bytes();
    let mut parts = Vec::new();
    let mut literal = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            literal.push(bytes[i]);
            i += 1;
            continue;
        }
        let start = i;
        let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
            let end = source[i + 2..]
                .find('}')
                .ok_or(TemplateError::Unclosed(start))?;
            (&source[i + 2..i + 2 + end], i + 3 + end)
        } else {
            let len = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            (&source[i + 1..i + 1 + len], i + 1 + len)
        };
        if name.is_empty() {
            return Err(TemplateError::EmptyName(start));
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(Part::Var {
            var: parse_var(name)?,
            delim: None,
        });
        i = next;
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    // A variable's delimiter is the literal after it; known only once all parts exist.
    for j in 0..parts.len() {
        let next = match parts.get(j + 1) {
            Some(Part::Literal(l)) => Some(l.clone()),
            _ => None,
        };
        if let Part::Var { delim, .. } = &mut parts[j] {
            *delim = super::delimiter_after(next.as_deref());
        }
    }
    let needs_local_time = parts.iter().any(|p| {
        matches!(
            p,
            Part::Var {
                var: Var::TimeIso8601 | Var::TimeLocal,
                ..
            }
        )
    });
    let mut needs = Needs::default();
    for p in &parts {
        if let Part::Var {
            var: Var::Who(w), ..
        } = p
        {
            match w {
                WhoVar::Visitor => needs.visitor = true,
                WhoVar::IsBot => needs.is_bot = true,
                WhoVar::IsPrefetch => {}
                WhoVar::UaBrowser | WhoVar::UaBrowserVersion | WhoVar::UaOs | WhoVar::UaDevice => {
                    needs.ua = true
                }
                WhoVar::GeoCountry | WhoVar::GeoCity => needs.geo = true,
                WhoVar::ReferrerHost
                | WhoVar::UtmSource
                | WhoVar::UtmMedium
                | WhoVar::UtmCampaign => needs.campaign = true,
            }
        }
    }
    Ok(Template {
        parts,
        needs_local_time,
        needs,
        fields: Vec::new(),
    })
}

fn parse_var(name: &str) -> Result<Var, TemplateError> {
    Ok(match name {
        "msec" => Var::Msec,
        "args" | "query_string" => Var::Args,
        "remote_addr" => Var::RemoteAddr,
        "request_id" => Var::RequestId,
        "time_iso8601" => Var::TimeIso8601,
        "time_local" => Var::TimeLocal,
        "request_uri" => Var::RequestUri,
        "uri" => Var::Uri,
        "request_method" => Var::RequestMethod,
        "body" | "request_body" => Var::Body,
        "visitor" => Var::Who(WhoVar::Visitor),
        "is_bot" => Var::Who(WhoVar::IsBot),
        "is_prefetch" => Var::Who(WhoVar::IsPrefetch),
        "ua_browser" => Var::Who(WhoVar::UaBrowser),
        "ua_browser_version" => Var::Who(WhoVar::UaBrowserVersion),
        "ua_os" => Var::Who(WhoVar::UaOs),
        "ua_device" => Var::Who(WhoVar::UaDevice),
        "geo_country" => Var::Who(WhoVar::GeoCountry),
        "geo_city" => Var::Who(WhoVar::GeoCity),
        "referrer_host" => Var::Who(WhoVar::ReferrerHost),
        "utm_source" => Var::Who(WhoVar::UtmSource),
        "utm_medium" => Var::Who(WhoVar::UtmMedium),
        "utm_campaign" => Var::Who(WhoVar::UtmCampaign),
        _ => match name.strip_prefix("http_") {
            Some(h) if !h.is_empty() => Var::Header(h.replace('_', "-")),
            _ => return Err(TemplateError::UnknownVariable(name.to_owned())),
        },
    })
}

impl Template {
    /// Adds the named fields `name → template` to render with each record. Fails with
    /// the name of the field whose template does not compile.
    pub fn with_fields<'a>(
        mut self,
        fields: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Template, (String, TemplateError)> {
        for (name, source) in fields {
            let field = compile(source).map_err(|e| (name.clone(), e))?;
            let (a, b) = (self.needs, field.needs);
            self.needs = Needs {
                visitor: a.visitor || b.visitor,
                is_bot: a.is_bot || b.is_bot,
                ua: a.ua || b.ua,
                geo: a.geo || b.geo,
                campaign: a.campaign || b.campaign,
            };
            self.fields.push((name.clone(), field));
        }
        Ok(self)
    }

    /// The privacy-step variables this template (and its fields) use.
    pub fn needs(&self) -> Needs {
        self.needs
    }

    /// The request headers the template (and its fields) write (`$http_<name>`), lower
    /// case.
    pub fn headers(&self) -> impl Iterator<Item = &str> {
        let fields = self.fields.iter().flat_map(|(_, f)| f.parts.iter());
        self.parts.iter().chain(fields).filter_map(|p| match p {
            Part::Var {
                var: Var::Header(h),
                ..
            } => Some(h.as_str()),
            _ => None,
        })
    }

    /// Renders the record for `hit`, appending to `out`: with fields, the record framed
    /// with them, as the log takes it.
    pub fn render(&self, hit: &impl HitFields, out: &mut Vec<u8>) {
        if self.fields.is_empty() {
            return self.render_record(hit, out);
        }
        let mut framer = Framer::start(out);
        self.render_record(hit, out);
        for (name, field) in &self.fields {
            framer.field(out, name.as_bytes());
            field.render_record(hit, out);
        }
        framer.finish(out);
    }

    fn render_record(&self, hit: &impl HitFields, out: &mut Vec<u8>) {
        // Converted once per record, and only when a variable needs it.
        let local: Option<DateTime<Local>> = self.needs_local_time.then(|| hit.time().into());
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.extend_from_slice(l),
                Part::Var { var, delim } => var.render(hit, local, *delim, out),
            }
        }
    }
}

impl Var {
    /// Appends this variable's value for `hit`. Values a client chose go through
    /// [`escaped`]; values the server made (numbers, times, addresses) need no escaping.
    fn render(
        &self,
        hit: &impl HitFields,
        local: Option<DateTime<Local>>,
        delim: Option<u8>,
        out: &mut Vec<u8>,
    ) {
        match self {
            Var::Msec => record::write_msec(out, hit.time()),
            Var::RemoteAddr => write_display(out, hit.remote_addr()),
            Var::RequestId => write_hex(out, fastrand::u128(..)),
            Var::TimeIso8601 => write_time(out, hit, local, "%Y-%m-%dT%H:%M:%S%:z"),
            Var::TimeLocal => write_time(out, hit, local, "%d/%b/%Y:%H:%M:%S %z"),
            Var::Args => escaped(out, args(hit.target()), delim),
            Var::RequestUri => escaped(out, Some(hit.request_uri()), delim),
            Var::Uri => escaped(out, Some(hit.uri()), delim),
            Var::RequestMethod => escaped(out, Some(hit.method().as_bytes()), delim),
            Var::Body => escaped(out, hit.body(), delim),
            Var::Header(name) => escaped(out, hit.header(name), delim),
            Var::Who(w) => escaped(out, who_value(hit.facts(), *w), delim),
        }
    }
}

/// A value from the request, escaped; `-` when there is none, as in nginx.
fn escaped(out: &mut Vec<u8>, value: Option<&[u8]>, delim: Option<u8>) {
    match value {
        Some(v) => super::escape_into(out, v, delim),
        None => out.push(b'-'),
    }
}

/// The query: `$args`. `None` when there is no `?` at all, as nginx's `$args` is then
/// not found, and when the query is empty (`/pixel.gif?`), which nginx logs as `-` too.
fn args(target: &[u8]) -> Option<&[u8]> {
    let i = target.iter().position(|&b| b == b'?')?;
    Some(&target[i + 1..]).filter(|a| !a.is_empty())
}

fn write_display(out: &mut Vec<u8>, value: impl std::fmt::Display) {
    let mut s = String::with_capacity(40);
    let _ = write!(s, "{value}");
    out.extend_from_slice(s.as_bytes());
}

fn write_time(
    out: &mut Vec<u8>,
    hit: &impl HitFields,
    local: Option<DateTime<Local>>,
    format: &str,
) {
    // `needs_local_time` guarantees `local` is set for the time variables.
    let t = local.unwrap_or_else(|| hit.time().into());
    write_display(out, t.format(format));
}

fn text(s: Option<&str>) -> Option<&[u8]> {
    s.map(str::as_bytes)
}

fn who_value(f: &Facts, var: WhoVar) -> Option<&[u8]> {
    let flag = |on: bool| Some(if on { b"1".as_slice() } else { b"0".as_slice() });
    let ua = f.ua.as_deref();
    match var {
        WhoVar::Visitor => f.visitor.as_ref().map(|v| v.as_bytes()),
        WhoVar::IsBot => flag(f.is_bot),
        WhoVar::IsPrefetch => flag(f.is_prefetch),
        WhoVar::UaBrowser => text(ua.and_then(|u| u.browser.as_deref())),
        WhoVar::UaBrowserVersion => text(ua.and_then(|u| u.browser_version.as_deref())),
        WhoVar::UaOs => text(ua.and_then(|u| u.os.as_deref())),
        WhoVar::UaDevice => text(ua.and_then(|u| u.device.as_deref())),
        WhoVar::GeoCountry => text(f.geo.country.as_deref()),
        WhoVar::GeoCity => text(f.geo.city.as_deref()),
        WhoVar::ReferrerHost => text(f.campaign.referrer_host.as_deref()),
        WhoVar::UtmSource => text(f.campaign.utm_source.as_deref()),
        WhoVar::UtmMedium => text(f.campaign.utm_medium.as_deref()),
        WhoVar::UtmCampaign => text(f.campaign.utm_campaign.as_deref()),
    }
}

fn write_hex(out: &mut Vec<u8>, id: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..32).rev() {
        out.push(HEX[((id >> (i * 4)) & 15) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// A hit as a test writes it: headers are (name, value) pairs.
    struct Hit<'a> {
        time: SystemTime,
        target: &'a [u8],
        headers: &'a [(&'a str, &'a [u8])],
        body: Option<&'a [u8]>,
        facts: &'a Facts,
    }

    static NO_FACTS: std::sync::LazyLock<Facts> =
        std::sync::LazyLock::new(|| Facts::of("127.0.0.1".parse().unwrap()));

    impl HitFields for Hit<'_> {
        fn time(&self) -> SystemTime {
            self.time
        }
        fn method(&self) -> &str {
            "GET"
        }
        fn target(&self) -> &[u8] {
            self.target
        }
        fn request_uri(&self) -> &[u8] {
            self.target
        }
        fn uri(&self) -> &[u8] {
            // The tests' targets are normalised already.
            self.target.split(|&b| b == b'?').next().unwrap_or_default()
        }
        fn remote_addr(&self) -> IpAddr {
            "127.0.0.1".parse().unwrap()
        }
        fn body(&self) -> Option<&[u8]> {
            self.body
        }
        fn facts(&self) -> &Facts {
            self.facts
        }
        fn header(&self, name: &str) -> Option<&[u8]> {
            let found = self
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name));
            found.map(|(_, v)| *v)
        }
    }

    fn hit<'a>(target: &'a [u8], headers: &'a [(&'a str, &'a [u8])]) -> Hit<'a> {
        Hit {
            time: UNIX_EPOCH + Duration::from_millis(1_379_183_721_115),
            target,
            headers,
            body: None,
            facts: &NO_FACTS,
        }
    }

    fn render(tpl: &str, h: &Hit<'_>) -> String {
        let mut out = Vec::new();
        compile(tpl).unwrap().render(h, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_are_framed_after_the_record_and_name_a_bad_template() {
        let fields: std::collections::BTreeMap<String, String> = [
            ("path".to_owned(), "$uri".to_owned()),
            ("ua".to_owned(), "${http_user_agent}".to_owned()),
        ]
        .into();
        let tpl = compile("$msec,$args")
            .unwrap()
            .with_fields(&fields)
            .unwrap();
        assert_eq!(tpl.headers().collect::<Vec<_>>(), ["user-agent"]);
        let headers: [(&str, &[u8]); 1] = [("User-Agent", b"curl/8")];
        let mut value = Vec::new();
        tpl.render(&hit(b"/p.gif?a=1", &headers), &mut value);
        let mut entry = Vec::new();
        crate::log::entry::encode_framed(&mut entry, b"pixel", &value);
        let crate::log::entry::Decoded::Entry(e, _) = crate::log::entry::decode(&entry) else {
            panic!("not an entry")
        };
        assert_eq!(e.value, b"1379183721.115,a=1");
        let got: Vec<_> = e.fields.iter().collect();
        assert_eq!(
            got,
            [(&b"path"[..], &b"/p.gif"[..]), (&b"ua"[..], &b"curl/8"[..])]
        );
        let bad: std::collections::BTreeMap<String, String> =
            [("ip".to_owned(), "$nope".to_owned())].into();
        let (name, e) = compile("$msec").unwrap().with_fields(&bad).unwrap_err();
        assert_eq!(
            (name.as_str(), e),
            ("ip", TemplateError::UnknownVariable("nope".into()))
        );
    }

    #[test]
    fn the_original_record() {
        let h = hit(b"/pixel.gif?foo=bar&baz=1", &[]);
        assert_eq!(render("$msec,$args", &h), "1379183721.115,foo=bar&baz=1");
    }

    #[test]
    fn msec_keeps_three_digits() {
        let mut h = hit(b"/p?a", &[]);
        h.time = UNIX_EPOCH + Duration::from_millis(1_000_007);
        assert_eq!(render("$msec", &h), "1000.007");
        h.time = UNIX_EPOCH;
        assert_eq!(render("$msec", &h), "0.000");
    }

    #[test]
    fn missing_values_are_dashes() {
        let h = hit(b"/pixel.gif", &[]);
        assert_eq!(render("$args|$http_user_agent", &h), "-|-");
        // An empty query is an empty value: nginx logs `-` for it too.
        let h = hit(b"/pixel.gif?", &[]);
        assert_eq!(render("$args", &h), "-");
    }

    #[test]
    fn headers_and_braces() {
        let headers: [(&str, &[u8]); 2] =
            [("User-Agent", b"curl/8 \"x\""), ("Referer", b"http://a/b")];
        let h = hit(b"/p?x=1", &headers);
        assert_eq!(
            render(
                "${http_user_agent} $http_referer $remote_addr $request_method $uri",
                &h
            ),
            // The space after the user agent is its delimiter: escaped inside it.
            "curl/8\\x20\\x22x\\x22 http://a/b 127.0.0.1 GET /p"
        );
    }

    #[test]
    fn body_as_received_or_a_dash() {
        let mut h = hit(b"/e?a=1", &[]);
        assert_eq!(render("$args|$body", &h), "a=1|-");
        h.body = Some(b"{\"k\":\"v|w\"}\n");
        assert_eq!(
            render("$args|$body", &h),
            "a=1|{\\x22k\\x22:\\x22v|w\\x22}\\x0A"
        );
        assert_eq!(
            render("$body|$args", &h),
            "{\\x22k\\x22:\\x22v\\x7Cw\\x22}\\x0A|a=1"
        );
    }

    #[test]
    fn request_id_is_32_hex() {
        let h = hit(b"/p", &[]);
        let id = render("$request_id", &h);
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, render("$request_id", &h));
    }

    #[test]
    fn times() {
        let h = hit(b"/p", &[]);
        let iso = render("$time_iso8601", &h);
        assert!(iso.starts_with("2013-09-1"), "{iso}");
        assert_eq!(iso.len(), 25, "{iso}");
        let local = render("$time_local", &h);
        assert_eq!(local.len(), 26, "{local}");
        assert!(local.contains("/Sep/2013:"), "{local}");
    }

    #[test]
    fn delimiter_inside_a_value_is_escaped() {
        let h = hit(b"/p?a,b", &[]);
        assert_eq!(render("$args,$msec", &h), "a\\x2Cb,1379183721.115");
        assert_eq!(render("$msec,$args", &h), "1379183721.115,a,b");
    }

    #[test]
    fn who_variables_and_their_needs() {
        use crate::enrich::{Campaign, GeoFacts, UaFacts};
        let tpl = compile("$msec,$args&v=$visitor&b=$ua_browser&c=$geo_country&r=$referrer_host&s=$utm_source&bot=$is_bot").unwrap();
        assert_eq!(
            tpl.needs(),
            Needs {
                visitor: true,
                is_bot: true,
                ua: true,
                geo: true,
                campaign: true
            }
        );
        assert_eq!(compile("$msec,$args").unwrap().needs(), Needs::default());
        let mut facts = Facts::of("203.0.113.0".parse().unwrap());
        facts.visitor = crate::privacy::VisitorId::from_cookie(&[b'a'; 32]);
        facts.ua = Some(std::sync::Arc::new(UaFacts {
            browser: Some("Firefox".into()),
            ..UaFacts::default()
        }));
        facts.geo = GeoFacts {
            country: Some("DE".into()),
            city: None,
        };
        facts.campaign = Campaign {
            referrer_host: Some("news.example".into()),
            utm_source: Some("a&b".into()),
            ..Campaign::default()
        };
        let mut h = hit(b"/p?x=1", &[]);
        h.facts = &facts;
        let mut out = Vec::new();
        tpl.render(&h, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "1379183721.115,x=1&v={}&b=Firefox&c=DE&r=news.example&s=a\\x26b&bot=0",
                "a".repeat(32)
            )
        );
        let h = hit(b"/p", &[]);
        assert_eq!(
            render("$visitor|$ua_os|$geo_city|$utm_medium", &h),
            "-|-|-|-"
        );
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            compile("$msec,$nope").unwrap_err(),
            TemplateError::UnknownVariable("nope".into())
        );
        assert!(compile("${msec").is_err());
        assert!(compile("a $ b").is_err());
        assert!(compile("literal only").is_ok());
    }

    proptest::proptest! {
        /// Whatever the query and headers, a record renders without panicking, holds no
        /// control byte or newline (so it is always one line), and the seed's consumer
        /// split (`split(",", 1)`) gives back the timestamp.
        #[test]
        fn any_input_renders_one_safe_line(
            target in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            ua in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
        ) {
            let headers = [("user-agent", ua.as_slice())];
            let h = hit(&target, &headers);
            let mut out = Vec::new();
            compile("$msec,$args $http_user_agent,$request_uri").unwrap().render(&h, &mut out);
            proptest::prop_assert!(out.iter().all(|&b| (0x20..0x7f).contains(&b)));
            let s = String::from_utf8(out).unwrap();
            let (ts, _) = s.split_once(',').unwrap();
            proptest::prop_assert_eq!(ts, "1379183721.115");
        }
    }
}
