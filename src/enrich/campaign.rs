//! `$referrer_host` and `$utm_source`, `$utm_medium`, `$utm_campaign`: where a visit came
//! from, worked out at collection so campaigns are counted without parsing downstream.

use std::borrow::Cow;

/// The campaign fields of one hit (`None` renders `-`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Campaign {
    pub referrer_host: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
}

/// The names of the query parameters a tracker sends the page's referrer and URL in.
#[derive(Debug, Clone)]
pub struct CampaignParams {
    pub referrer: String,
    pub url: String,
}

impl CampaignParams {
    /// `query`: the hit's query string; `referer`: its `Referer` header (for a pixel in a
    /// page, the page's URL; for a click redirect, the page the link was on).
    pub fn campaign(&self, query: Option<&[u8]>, referer: Option<&[u8]>) -> Campaign {
        let query = query.unwrap_or_default();
        let param = |name: &str| -> Option<Cow<'_, str>> {
            form_urlencoded::parse(query)
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .filter(|v| !v.is_empty())
        };
        let referer = referer.map(String::from_utf8_lossy);
        let referrer_url = param(&self.referrer).or_else(|| referer.clone());
        let page_url = param(&self.url).or(referer);
        let page = page_url.as_deref().and_then(|u| url::Url::parse(u).ok());
        let utm = |name: &str| {
            param(name).map(Cow::into_owned).or_else(|| {
                page.as_ref()?
                    .query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
                    .filter(|v| !v.is_empty())
            })
        };
        Campaign {
            referrer_host: referrer_url.as_deref().and_then(host_of),
            utm_source: utm("utm_source"),
            utm_medium: utm("utm_medium"),
            utm_campaign: utm("utm_campaign"),
        }
    }
}

/// `https://www.Example.com:8443/x` → `www.example.com`.
fn host_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.host_str().map(|h| h.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> CampaignParams {
        CampaignParams {
            referrer: "ref".into(),
            url: "url".into(),
        }
    }

    #[test]
    fn from_the_query() {
        let c = params().campaign(
            Some(b"e=view&ref=https%3A%2F%2Fnews.ycombinator.com%2Fitem%3Fid%3D1&utm_source=hn&utm_campaign=spring%20sale"),
            Some(b"https://example.com/post?utm_source=ignored&utm_medium=social"),
        );
        assert_eq!(c.referrer_host.as_deref(), Some("news.ycombinator.com"));
        assert_eq!(c.utm_source.as_deref(), Some("hn"));
        assert_eq!(c.utm_campaign.as_deref(), Some("spring sale"));
        // Not in the query: from the page URL (here the Referer).
        assert_eq!(c.utm_medium.as_deref(), Some("social"));
    }

    #[test]
    fn from_the_page_url_param_and_header() {
        let c = params().campaign(
            Some(
                b"url=https%3A%2F%2Fexample.com%2F%3Futm_source%3Dnewsletter%26utm_medium%3Demail",
            ),
            Some(b"https://WWW.Google.com:443/search?q=x"),
        );
        assert_eq!(c.referrer_host.as_deref(), Some("www.google.com"));
        assert_eq!(c.utm_source.as_deref(), Some("newsletter"));
        assert_eq!(c.utm_medium.as_deref(), Some("email"));
        assert_eq!(c.utm_campaign, None);
    }

    #[test]
    fn nothing_and_garbage() {
        assert_eq!(params().campaign(None, None), Campaign::default());
        let c = params().campaign(
            Some(b"ref=javascript:alert(1)&utm_source="),
            Some(b"\xff\xfe"),
        );
        assert_eq!(c, Campaign::default());
    }
}
