//! Titles for the ranked dimensions: a parameter named after a privacy-step variable
//! (`ua_browser=$ua_browser` in the record) is shown as "top browsers", and so on.

/// The heading of a top table for the query parameter `param`.
pub fn title(param: &str) -> &str {
    match param {
        "ua_browser" => "browsers",
        "ua_browser_version" => "browser versions",
        "ua_os" => "operating systems",
        "ua_device" => "devices",
        "geo_country" => "countries",
        "geo_city" => "cities",
        "referrer_host" => "referrer hosts",
        "utm_source" => "campaign sources",
        "utm_medium" => "campaign media",
        "utm_campaign" => "campaigns",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_and_other() {
        assert_eq!(super::title("ua_browser"), "browsers");
        assert_eq!(super::title("geo_country"), "countries");
        assert_eq!(super::title("variant"), "variant");
    }
}
