//! This machine's name, read once where it is needed: the `${HOST}` of local syslog
//! messages that carry none, and `tail`'s default consumer name.

/// The kernel's host name (what `hostname` prints), if it has one.
pub fn name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The name up to its first dot (`web1` for `web1.example.com`), as syslog daemons put it
/// in `${HOST}`.
pub fn short_name() -> Option<String> {
    let name = name()?;
    let short = name.split('.').next().unwrap_or_default();
    (!short.is_empty()).then(|| short.to_owned())
}
