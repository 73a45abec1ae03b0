//! The compiled routes: filters evaluated per message, templates compiled once.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::file::FileSink;
use super::key::KeyGuard;
use crate::config::relay::{DestinationConfig, Filter, Routes};
use crate::syslog::Message;
use crate::template::syslog::{compile, Template, TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// `field` is the configuration's, e.g. `relay.routes[0].destination.redis.key`.
    #[error("`{field}`: {source}")]
    Template {
        field: String,
        source: TemplateError,
    },
    #[error("route {index}: {source}")]
    File {
        index: usize,
        source: super::file::FileError,
    },
    #[error("relay.key_pattern: {0}")]
    KeyPattern(String),
}

/// A filter with its lists turned into bitmasks where it is cheap to.
#[derive(Debug, Clone)]
struct CompiledFilter {
    /// Bit `n` set: facility `n` passes. `None`: no condition.
    facilities: Option<u32>,
    severities: Option<u8>,
    programs: Option<Vec<Vec<u8>>>,
    not: Option<Box<CompiledFilter>>,
}

impl CompiledFilter {
    fn new(f: &Filter) -> CompiledFilter {
        CompiledFilter {
            facilities: f
                .facility
                .as_ref()
                .map(|l| l.iter().fold(0u32, |m, f| m | 1 << (*f as u32))),
            severities: f
                .severity
                .as_ref()
                .map(|l| l.iter().fold(0u8, |m, s| m | 1 << (*s as u8))),
            programs: f
                .program
                .as_ref()
                .map(|l| l.iter().map(|p| p.as_bytes().to_vec()).collect()),
            not: f.not.as_ref().map(|n| Box::new(CompiledFilter::new(n))),
        }
    }

    fn matches(&self, m: &Message<'_>) -> bool {
        self.facilities
            .is_none_or(|mask| mask & (1 << m.facility) != 0)
            && self
                .severities
                .is_none_or(|mask| mask & (1 << m.severity) != 0)
            && self
                .programs
                .as_ref()
                .is_none_or(|l| l.iter().any(|p| p == m.program))
            && self.not.as_ref().is_none_or(|n| !n.matches(m))
    }
}

pub enum Destination {
    Redis {
        key: Template,
        value: Template,
        /// The key is rendered from message fields: it must pass the [`KeyGuard`].
        guarded: bool,
    },
    File {
        sink: Arc<FileSink>,
        template: Template,
    },
}

pub struct Route {
    filter: CompiledFilter,
    pub destination: Destination,
    is_final: bool,
}

pub struct Router {
    pub routes: Vec<Route>,
    /// Every file destination once, for reopening after log rotation.
    files: Vec<Arc<FileSink>>,
    pub keys: KeyGuard,
    /// Where a message whose key is refused goes instead: the first file route (the
    /// original routes' `other_file`).
    pub refused_key_route: Option<usize>,
    /// `[ship.fields]`, in name order: rendered from each message next to a Redis
    /// route's value, for the stream sink.
    pub fields: Vec<(String, Template)>,
}

impl Router {
    /// Adds the named stream fields (`[ship.fields]`), compiled in syslog templates'
    /// language; an error names the field.
    pub fn with_fields(mut self, fields: &BTreeMap<String, String>) -> Result<Router, RouteError> {
        for (name, source) in fields {
            let template = compile(source).map_err(|source| RouteError::Template {
                field: format!("ship.fields.{name}"),
                source,
            })?;
            self.fields.push((name.clone(), template));
        }
        Ok(self)
    }

    /// Compiles the routes (the only place their templates are compiled) and opens
    /// their files (a file shared by several routes is opened once).
    pub fn new(config: &Routes, keys: KeyGuard) -> Result<Router, RouteError> {
        let configs = match config {
            Routes::Own(routes) => routes.clone(),
            Routes::Original(original) => original.routes(),
        };
        let mut files: Vec<Arc<FileSink>> = Vec::new();
        let mut routes = Vec::new();
        for (index, c) in configs.iter().enumerate() {
            let tpl = |part: &'static str, source: &str| {
                compile(source).map_err(|source| RouteError::Template {
                    field: field_name(config, index, part),
                    source,
                })
            };
            let destination = match &c.destination {
                DestinationConfig::Redis { key, value } => {
                    let key = tpl("redis.key", key)?;
                    Destination::Redis {
                        guarded: !key.is_constant(),
                        key,
                        value: tpl("redis.value", value)?,
                    }
                }
                DestinationConfig::File { path, template } => {
                    let sink = match files.iter().find(|f| f.path() == path) {
                        Some(f) => f.clone(),
                        None => {
                            let f = Arc::new(
                                FileSink::open(path)
                                    .map_err(|source| RouteError::File { index, source })?,
                            );
                            files.push(f.clone());
                            f
                        }
                    };
                    Destination::File {
                        sink,
                        template: tpl("file.template", template)?,
                    }
                }
            };
            routes.push(Route {
                filter: CompiledFilter::new(&c.filter),
                destination,
                is_final: c.is_final,
            });
        }
        let refused_key_route = routes
            .iter()
            .position(|r| matches!(r.destination, Destination::File { .. }));
        Ok(Router {
            routes,
            files,
            keys,
            refused_key_route,
            fields: Vec::new(),
        })
    }

    /// Reopens every file destination by its path (after `logrotate` moved it away).
    pub fn reopen_files(&self) {
        for f in &self.files {
            f.reopen();
        }
    }

    /// Calls `deliver` with the index of every route `m` takes, in order.
    pub fn each_match(&self, m: &Message<'_>, mut deliver: impl FnMut(usize, &Route)) -> usize {
        let mut matched = 0;
        for (i, route) in self.routes.iter().enumerate() {
            if route.filter.matches(m) {
                matched += 1;
                deliver(i, route);
                if route.is_final {
                    break;
                }
            }
        }
        matched
    }
}

/// The configuration field that holds template `part` of route `index`.
fn field_name(config: &Routes, index: usize, part: &str) -> String {
    match config {
        Routes::Own(_) => format!("relay.routes[{index}].destination.{part}"),
        Routes::Original(_) => match part {
            "redis.key" => "relay.redis_key".into(),
            "redis.value" => "relay.redis_value".into(),
            _ => "relay.other_template".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::relay::{Facility, OriginalRoutes, RouteConfig, Severity};
    use crate::config::RelayConfig;
    use crate::relay::key::DEFAULT_KEY_PATTERN;

    fn keys() -> KeyGuard {
        KeyGuard::new(DEFAULT_KEY_PATTERN, "pixelpipe:stats:").unwrap()
    }

    fn msg(facility: u8, severity: u8, program: &'static [u8]) -> Message<'static> {
        Message {
            facility,
            severity,
            timestamp: None,
            host: None,
            program,
            pid: b"",
            msgid: b"",
            header: b"",
            message: b"m",
            rfc5424: false,
            malformed: false,
        }
    }

    fn routes_taken(router: &Router, m: &Message<'_>) -> Vec<usize> {
        let mut v = Vec::new();
        router.each_match(m, |i, _| v.push(i));
        v
    }

    #[test]
    fn original_routes() {
        let dir = tempfile::tempdir().unwrap();
        let c = RelayConfig {
            routes: Routes::Original(OriginalRoutes {
                other_file: Some(dir.path().join("messages")),
                ..OriginalRoutes::default()
            }),
            ..RelayConfig::default()
        };
        let r = Router::new(&c.routes, keys()).unwrap();
        assert_eq!(routes_taken(&r, &msg(19, 6, b"pixel")), vec![0]);
        assert_eq!(routes_taken(&r, &msg(1, 5, b"root")), vec![1]);
    }

    #[test]
    fn filters_combine() {
        let f = Filter {
            facility: Some(vec![Facility::Local3, Facility::User]),
            severity: None,
            program: None,
            not: Some(Box::new(Filter {
                severity: Some(vec![Severity::Debug]),
                program: Some(vec!["noisy".into()]),
                ..Filter::default()
            })),
        };
        let f = CompiledFilter::new(&f);
        assert!(f.matches(&msg(19, 7, b"pixel")));
        assert!(f.matches(&msg(1, 6, b"noisy")));
        assert!(!f.matches(&msg(1, 7, b"noisy")));
        assert!(!f.matches(&msg(2, 6, b"pixel")));
        assert!(CompiledFilter::new(&Filter::default()).matches(&msg(0, 0, b"")));
    }

    #[test]
    fn final_stops() {
        let routes = vec![
            RouteConfig {
                filter: Filter::default(),
                destination: DestinationConfig::Redis {
                    key: "a".into(),
                    value: "b".into(),
                },
                is_final: true,
            },
            RouteConfig {
                filter: Filter::default(),
                destination: DestinationConfig::Redis {
                    key: "c".into(),
                    value: "d".into(),
                },
                is_final: false,
            },
        ];
        let r = Router::new(&Routes::Own(routes), keys()).unwrap();
        assert_eq!(routes_taken(&r, &msg(1, 1, b"")), vec![0]);
    }

    /// Templates are compiled here, once: their errors name the configuration field.
    #[test]
    fn template_errors_name_the_field() {
        let own = |key: &str| {
            Routes::Own(vec![RouteConfig {
                filter: Filter::default(),
                destination: DestinationConfig::Redis {
                    key: key.into(),
                    value: "x".into(),
                },
                is_final: false,
            }])
        };
        let e = Router::new(&own("${NOPE}"), keys())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("[0].destination.redis.key") && e.contains("NOPE"),
            "{e}"
        );
        let original = Routes::Original(OriginalRoutes {
            redis_value: "$(upper x)".into(),
            ..OriginalRoutes::default()
        });
        let e = Router::new(&original, keys()).err().unwrap().to_string();
        assert!(e.contains("relay.redis_value"), "{e}");
    }
}
