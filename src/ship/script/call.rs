//! One call of the ship script (`ship.lua`), the same for both sinks: a batch grouped by
//! key into the script's keys and arguments, and what its answer means.

use redis::Value;

use crate::config::StreamRetention;
use crate::log::entry::Fields;
use crate::log::Batch;
use crate::ship::sink::{dead_letter_key, RefusedPolicy, Shipped, SinkError};

/// What the script writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// `LPUSH` on a list, as the seed's syslog-ng did.
    List,
    /// `XADD` on a stream: the record in the field `r`, then its named fields.
    Stream(StreamRetention),
}

/// A record and its named fields.
type Record<'b> = (&'b [u8], Fields<'b>);

/// A batch as the script takes it: grouped by key, each key's records in log order.
pub struct ShipCall<'b> {
    /// The key in Redis (shard included) and its records with their fields.
    groups: Vec<(Vec<u8>, Vec<Record<'b>>)>,
    start: u64,
    end: u64,
    write: Write,
    policy: RefusedPolicy,
}

impl<'b> ShipCall<'b> {
    /// `data_key` names a record key in Redis (a shard's, on a cluster).
    pub fn new(
        batch: &'b Batch,
        write: Write,
        policy: RefusedPolicy,
        data_key: impl Fn(&[u8]) -> Vec<u8>,
    ) -> ShipCall<'b> {
        let mut groups: Vec<(&[u8], Vec<Record<'_>>)> = Vec::new();
        for e in batch.entries() {
            match groups.iter_mut().find(|(k, _)| *k == e.key) {
                Some((_, records)) => records.push((e.value, e.fields)),
                None => groups.push((e.key, vec![(e.value, e.fields)])),
            }
        }
        ShipCall {
            groups: groups
                .into_iter()
                .map(|(key, records)| (data_key(key), records))
                .collect(),
            start: batch.start,
            end: batch.end,
            write,
            policy,
        }
    }

    /// The batch's keys, each with its records in log order.
    pub fn groups(&self) -> impl Iterator<Item = (&[u8], impl ExactSizeIterator<Item = &[u8]>)> {
        self.groups
            .iter()
            .map(|(key, records)| (key.as_slice(), records.iter().map(|(r, _)| *r)))
    }

    /// The batch's first position and its end.
    pub fn span(&self) -> (u64, u64) {
        (self.start, self.end)
    }

    /// The keys after the position key: the batch's, then (dead-lettering) their
    /// dead-letter keys — `{key}:dead`, in the key's slot when the key is a shard's.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self.groups.iter().map(|(k, _)| k.clone()).collect();
        if self.policy == RefusedPolicy::DeadLetter {
            keys.extend(self.groups.iter().map(|(k, _)| dead_letter_key(k)));
        }
        keys
    }

    /// Hands each argument, in order, to `arg`.
    pub fn args(&self, mut arg: impl FnMut(&[u8])) {
        let (kind, trim_kind, trim_value) = match self.write {
            Write::List => ("list", "", String::new()),
            Write::Stream(retention) => {
                let (k, v) = super::super::stream::xadd_trim(retention);
                ("stream", k, v)
            }
        };
        let policy = match self.policy {
            RefusedPolicy::Hold => "hold",
            RefusedPolicy::DeadLetter => "dead",
        };
        for a in [
            self.start.to_string().as_str(),
            &self.end.to_string(),
            kind,
            trim_kind,
            &trim_value,
            &self.groups.len().to_string(),
            policy,
        ] {
            arg(a.as_bytes());
        }
        for (_, records) in &self.groups {
            arg(records.len().to_string().as_bytes());
        }
        for (_, records) in &self.groups {
            for (record, fields) in records {
                if self.write == Write::List {
                    arg(record);
                    continue;
                }
                arg(fields.len().to_string().as_bytes());
                arg(record);
                for (name, value) in fields.iter() {
                    arg(name);
                    arg(value);
                }
            }
        }
    }

    /// What the script's answer means for the shipper.
    pub fn answer(&self, answer: &[Value]) -> Result<Shipped, SinkError> {
        let bad = || {
            SinkError::Broken(format!(
                "unexpected answer from the ship script: {answer:?}"
            ))
        };
        let status = text(answer.first()).ok_or_else(bad)?;
        let rest = answer.get(2..).unwrap_or_default();
        match status.as_str() {
            "ok" => {
                let dead_lettered = rest
                    .iter()
                    .filter_map(|v| text(Some(v)))
                    .map(|key| {
                        let n = self
                            .groups
                            .iter()
                            .find(|(k, _)| *k == key.as_bytes())
                            .map_or(0, |(_, records)| records.len() as u64);
                        (key, n)
                    })
                    .collect();
                Ok(Shipped::Applied { dead_lettered })
            }
            "dup" | "ahead" => Ok(Shipped::Resume {
                position: text(answer.get(1))
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?,
            }),
            "refused" => {
                let keys: Vec<String> = rest
                    .chunks(2)
                    .map(|kt| {
                        format!(
                            "`{}` holds a {}",
                            text(kt.first()).unwrap_or_default(),
                            text(kt.get(1)).unwrap_or_default()
                        )
                    })
                    .collect();
                let kind = match self.write {
                    Write::List => "list",
                    Write::Stream(_) => "stream",
                };
                Err(SinkError::Refused(format!(
                    "WRONGTYPE: {}, not a {kind}",
                    keys.join("; ")
                )))
            }
            _ => Err(bad()),
        }
    }
}

pub fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}
