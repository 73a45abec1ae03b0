//! Where Redis is: one server or a cluster, parsed once from the configured URL.
//!
//! - `redis://[user:pass@]host:port[/db]`, `rediss://…` (TLS; `#insecure` skips certificate
//!   checks) — one server, as the `redis` crate reads it.
//! - `redis+cluster://[user:pass@]host:port[,host:port…]`, `rediss+cluster://…` — a Redis
//!   Cluster, given by one or more seed nodes; the crate's cluster client discovers the
//!   rest and follows `MOVED`/`ASK` redirections.
//!
//! Parsing here, once, means every part of the program (shipper, analytics, dashboard,
//! `top`, `tail`) agrees on what a URL means, and a bad URL is a start-up error.

use std::fmt;
use std::str::FromStr;

use redis::{ConnectionInfo, IntoConnectionInfo};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error(
        "unsupported scheme `{0}`: use redis://, rediss://, redis+cluster:// or rediss+cluster://"
    )]
    Scheme(String),
    #[error("a cluster URL needs at least one host:port")]
    NoNodes,
    #[error("cluster node `{0}` is not host:port")]
    BadNode(String),
    #[error("a cluster has no databases: drop `/{0}` (cluster nodes only have database 0)")]
    ClusterDb(String),
    #[error("{0}")]
    Url(String),
}

/// A parsed Redis URL. `Display` shows it with any password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (and its replicas behind it, which pixelpipe does not talk to).
    Single { url: String },
    /// A Redis Cluster: the URL as written, and the seed nodes, each as a single-server
    /// URL carrying the shared credentials and TLS settings.
    Cluster { url: String, nodes: Vec<String> },
}

impl RedisTarget {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster { .. })
    }

    /// The connection details of the server, or of each seed node.
    pub fn connection_infos(&self) -> Result<Vec<ConnectionInfo>, redis::RedisError> {
        match self {
            RedisTarget::Single { url } => Ok(vec![url.as_str().into_connection_info()?]),
            RedisTarget::Cluster { nodes, .. } => nodes
                .iter()
                .map(|n| n.as_str().into_connection_info())
                .collect(),
        }
    }

    /// The URL as it was written (password included): what the config file holds.
    pub fn to_url(&self) -> String {
        match self {
            RedisTarget::Single { url } => url.clone(),
            RedisTarget::Cluster { url, .. } => url.clone(),
        }
    }

    /// The seed nodes' URLs (one for a single server).
    pub fn nodes(&self) -> Vec<&str> {
        match self {
            RedisTarget::Single { url } => vec![url.as_str()],
            RedisTarget::Cluster { nodes, .. } => nodes.iter().map(String::as_str).collect(),
        }
    }
}

impl FromStr for RedisTarget {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, TargetError> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| TargetError::Url(format!("`{}` is not a URL", redacted(s))))?;
        match scheme {
            "redis" | "rediss" => {
                // The crate is the authority on what it can connect to.
                s.into_connection_info()
                    .map_err(|e| TargetError::Url(e.to_string()))?;
                Ok(RedisTarget::Single { url: s.to_owned() })
            }
            "redis+cluster" | "rediss+cluster" => {
                let single_scheme = scheme.trim_end_matches("+cluster");
                let nodes = parse_cluster(single_scheme, rest)?;
                Ok(RedisTarget::Cluster {
                    url: s.to_owned(),
                    nodes,
                })
            }
            other => Err(TargetError::Scheme(other.to_owned())),
        }
    }
}

/// `[user:pass@]h1:p1,h2:p2[/][#fragment]` → one `scheme://[user:pass@]h:p[#fragment]`
/// URL per node.
fn parse_cluster(scheme: &str, rest: &str) -> Result<Vec<String>, TargetError> {
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    if !path.is_empty() && path != "0" {
        return Err(TargetError::ClusterDb(path.to_owned()));
    }
    // The password may hold `@` or `,`: the hosts follow the last `@`.
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut nodes = Vec::new();
    for host in hosts.split(',').map(str::trim) {
        if host.is_empty() {
            continue;
        }
        let has_port = host
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !has_port {
            return Err(TargetError::BadNode(host.to_owned()));
        }
        let mut url = format!("{scheme}://");
        if let Some(u) = userinfo {
            url.push_str(u);
            url.push('@');
        }
        url.push_str(host);
        if let Some(f) = fragment {
            url.push_str("/#");
            url.push_str(f);
        }
        url.as_str()
            .into_connection_info()
            .map_err(|e| TargetError::Url(format!("node `{host}`: {e}")))?;
        nodes.push(url);
    }
    if nodes.is_empty() {
        return Err(TargetError::NoNodes);
    }
    Ok(nodes)
}

/// `url` with its password (if any) replaced by `***`.
fn redacted(url: &str) -> String {
    // `user:pass@` sits between `://` and the last `@` before the path.
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{hosts}{tail}")
        }
        None => url.to_owned(),
    }
}

impl fmt::Display for RedisTarget {
    /// The URL with the password replaced: for messages and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redacted(&self.to_url()))
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisTarget({self})")
    }
}

impl TryFrom<String> for RedisTarget {
    type Error = TargetError;
    fn try_from(s: String) -> Result<Self, TargetError> {
        s.parse()
    }
}

impl From<RedisTarget> for String {
    fn from(t: RedisTarget) -> String {
        t.to_url()
    }
}

impl serde::Serialize for RedisTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_url())
    }
}

impl<'de> serde::Deserialize<'de> for RedisTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RedisTarget, TargetError> {
        s.parse()
    }

    #[test]
    fn single_server_urls_are_the_crates() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://127.0.0.1",
            "redis://user:secret@host:7000/3",
            "rediss://host:6380/#insecure",
        ] {
            assert_eq!(parse(url).unwrap(), RedisTarget::Single { url: url.into() });
            assert_eq!(parse(url).unwrap().to_url(), url);
        }
        assert!(!parse("redis://h:1").unwrap().is_cluster());
    }

    #[test]
    fn cluster_urls_become_one_node_url_each() {
        let t = parse("redis+cluster://a:7000,b:7001,c:7002").unwrap();
        assert_eq!(
            t.nodes(),
            ["redis://a:7000", "redis://b:7001", "redis://c:7002"]
        );
        assert!(t.is_cluster());
        assert_eq!(t.to_url(), "redis+cluster://a:7000,b:7001,c:7002");
        assert_eq!(
            parse("redis+cluster://a:7000, b:7001").unwrap().nodes(),
            ["redis://a:7000", "redis://b:7001"]
        );
        assert_eq!(t.connection_infos().unwrap().len(), 3);

        let tls = parse("rediss+cluster://default:p@ss,w@a:7000,b:7001/#insecure").unwrap();
        assert_eq!(
            tls.nodes(),
            [
                "rediss://default:p@ss,w@a:7000/#insecure",
                "rediss://default:p@ss,w@b:7001/#insecure"
            ]
        );
        assert_eq!(
            tls.to_url(),
            "rediss+cluster://default:p@ss,w@a:7000,b:7001/#insecure"
        );
        // Round trip through the config's string form.
        assert_eq!(parse(&tls.to_url()).unwrap(), tls);
        assert_eq!(
            parse("redis+cluster://[::1]:7000").unwrap().nodes(),
            ["redis://[::1]:7000"]
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert_eq!(parse("http://h:1"), Err(TargetError::Scheme("http".into())));
        assert_eq!(parse("redis+cluster://"), Err(TargetError::NoNodes));
        assert_eq!(
            parse("redis+cluster://a:7000,b"),
            Err(TargetError::BadNode("b".into()))
        );
        assert_eq!(
            parse("redis+cluster://a:7000,b:x"),
            Err(TargetError::BadNode("b:x".into()))
        );
        assert_eq!(
            parse("redis+cluster://a:7000/2"),
            Err(TargetError::ClusterDb("2".into()))
        );
        assert!(matches!(parse("localhost:6379"), Err(TargetError::Url(_))));
        assert!(matches!(parse("redis://h:99999"), Err(TargetError::Url(_))));
    }

    #[test]
    fn display_hides_the_password() {
        assert_eq!(
            parse("redis://u:secret@h:1/2").unwrap().to_string(),
            "redis://u:***@h:1/2"
        );
        assert_eq!(
            parse("rediss+cluster://u:p@a:1,b:2").unwrap().to_string(),
            "rediss+cluster://u:***@a:1,b:2"
        );
        assert_eq!(parse("redis://h:1").unwrap().to_string(), "redis://h:1");
        assert!(!format!("{:?}", parse("redis://:pw@h:1").unwrap()).contains("pw"));
    }

    #[test]
    fn config_strings_deserialize_and_errors_reach_serde() {
        #[derive(serde::Deserialize)]
        struct C {
            redis: RedisTarget,
        }
        let c: C = serde_json::from_str(r#"{"redis":"redis+cluster://h:1"}"#).unwrap();
        assert!(c.redis.is_cluster());
        let e = serde_json::from_str::<C>(r#"{"redis":"mysql://h"}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("unsupported scheme"));
    }
}
