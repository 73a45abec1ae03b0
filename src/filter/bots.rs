//! Bots and browser prefetches: hits that are answered but are not a person's page view.
//!
//! The bot list is the `isbot` crate's: the patterns of the JavaScript `isbot` package
//! (the list Umami and many others use), compiled into one regular expression. Its
//! decision is cached with the rest of what a user agent says (see `enrich::ua`), so a
//! repeated user agent costs a lookup, not a regex run.

#[derive(Default)]
pub struct BotList {
    bots: isbot::Bots,
}

impl std::fmt::Debug for BotList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotList")
    }
}

impl BotList {
    /// Whether `user_agent` is on the list. A request without one is not judged a bot:
    /// the list names programs, and a missing header names nothing (as in `isbot`).
    pub fn is_bot(&self, user_agent: Option<&[u8]>) -> bool {
        match user_agent.map(|ua| ua.trim_ascii()) {
            None | Some(b"") => false,
            Some(ua) => self.bots.is_bot(&String::from_utf8_lossy(ua)),
        }
    }
}

/// Whether `user_agent` names an HTTP tool or client library rather than a crawler or a
/// headless browser: judged by `filter.tools` instead of `filter.bots`.
pub fn is_tool(user_agent: Option<&[u8]>) -> bool {
    const TOOLS: [&[u8]; 16] = [
        b"curl/",
        b"wget/",
        b"apachebench/",
        b"python-requests/",
        b"python-urllib/",
        b"python-httpx/",
        b"aiohttp/",
        b"go-http-client/",
        b"okhttp/",
        b"java/",
        b"apache-httpclient/",
        b"libwww-perl/",
        b"httpie/",
        b"axios/",
        b"node-fetch/",
        b"undici",
    ];
    let Some(ua) = user_agent.map(|ua| ua.trim_ascii()) else {
        return false;
    };
    TOOLS
        .iter()
        .any(|t| ua.len() >= t.len() && ua[..t.len()].eq_ignore_ascii_case(t))
}

/// `Sec-Purpose: prefetch` (Chrome, also `prefetch;prerender`), `Purpose: prefetch`
/// (older Chrome, Safari), `X-Moz: prefetch` (Firefox).
pub fn is_prefetch(headers: &[httparse::Header<'_>]) -> bool {
    headers.iter().any(|h| {
        let prefetch = || {
            h.value
                .split(|&b| b == b';')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"prefetch"))
        };
        (h.name.eq_ignore_ascii_case("sec-purpose")
            || h.name.eq_ignore_ascii_case("purpose")
            || h.name.eq_ignore_ascii_case("x-moz"))
            && prefetch()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_told_from_crawlers() {
        for ua in [
            "curl/8.5.0",
            "ApacheBench/2.3",
            "Wget/1.21.3",
            "python-requests/2.31.0",
            "Go-http-client/1.1",
        ] {
            assert!(is_tool(Some(ua.as_bytes())), "{ua}");
            assert!(BotList::default().is_bot(Some(ua.as_bytes())), "{ua}");
        }
        for ua in [
            "Googlebot-Image/1.0",
            "Mozilla/5.0 (compatible; bingbot/2.0)",
            "HeadlessChrome/120",
        ] {
            assert!(!is_tool(Some(ua.as_bytes())), "{ua}");
        }
        assert!(!is_tool(None));
    }

    #[test]
    fn prefetch_headers() {
        let h = |name, value: &'static str| {
            [httparse::Header {
                name,
                value: value.as_bytes(),
            }]
        };
        assert!(is_prefetch(&h("Sec-Purpose", "prefetch")));
        assert!(is_prefetch(&h("sec-purpose", "prefetch;prerender")));
        assert!(is_prefetch(&h("Purpose", "prefetch")));
        assert!(is_prefetch(&h("X-Moz", "prefetch")));
        assert!(!is_prefetch(&h("X-Purpose", "preview")));
        assert!(!is_prefetch(&h("Sec-Fetch-Dest", "image")));
        assert!(!is_prefetch(&[]));
    }

    #[test]
    fn the_list_decides() {
        let list = BotList::default();
        assert!(!list.is_bot(None));
        assert!(!list.is_bot(Some(b"  ")));
        assert!(list.is_bot(Some(b"Googlebot/2.1 (+http://www.google.com/bot.html)")));
        assert!(!list.is_bot(Some(
            b"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
        )));
    }
}
