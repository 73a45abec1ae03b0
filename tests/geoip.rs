//! `$geo_country` / `$geo_city` lookups on a MaxMind DB file this test writes itself
//! (tests/common/mmdb.rs), read by the `maxminddb` crate as GeoLite2 files are.

#[path = "common/mmdb.rs"]
mod mmdb;

use std::net::IpAddr;

use mmdb::{city, MmdbWriter};
use pixelpipe::enrich::GeoDb;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn write_db(path: &std::path::Path, germany_city: &str) {
    let mut w = MmdbWriter::new();
    w.insert(ip("203.0.113.0"), 24, &city("DE", "Germany", germany_city));
    w.insert(ip("203.0.113.128"), 25, &city("FR", "France", "Paris"));
    w.insert(ip("198.51.100.0"), 24, &city("JP", "Japan", ""));
    w.insert(
        ip("2001:db8::"),
        32,
        &city("NL", "Netherlands", "Amsterdam"),
    );
    std::fs::write(path, w.to_bytes()).unwrap();
}

#[test]
fn the_written_database_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("city.mmdb");
    write_db(&path, "Berlin");
    let reader = maxminddb::Reader::open_readfile(&path).unwrap();
    reader.verify().expect("a valid MaxMind DB");
    assert_eq!(reader.metadata().database_type, "GeoIP2-City");
}

#[test]
fn lookups_reload_and_absence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("city.mmdb");
    write_db(&path, "Berlin");
    let db = GeoDb::open(&path);
    assert!(db.is_loaded());
    let geo = |s: &str| {
        let g = db.lookup(ip(s));
        (
            g.country.as_deref().unwrap_or("-").to_owned(),
            g.city.as_deref().unwrap_or("-").to_owned(),
        )
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(geo("203.0.113.7"), pair("DE", "Berlin"));
    assert_eq!(geo("::ffff:203.0.113.7"), pair("DE", "Berlin"));
    assert_eq!(geo("203.0.113.200"), pair("FR", "Paris"));
    assert_eq!(geo("198.51.100.1"), pair("JP", "-"));
    assert_eq!(geo("2001:db8:1::5"), pair("NL", "Amsterdam"));
    assert_eq!(geo("192.0.2.1"), pair("-", "-"));
    assert_eq!(geo("2001:db9::1"), pair("-", "-"));

    // A new file, then a reload (what SIGHUP does).
    write_db(&path, "Hamburg");
    assert_eq!(geo("203.0.113.7"), pair("DE", "Berlin"));
    db.reload().unwrap();
    assert_eq!(geo("203.0.113.7"), pair("DE", "Hamburg"));
    // A broken file on reload: the database in use stays.
    std::fs::write(&path, b"not a database").unwrap();
    assert!(db.reload().is_err());
    assert_eq!(geo("203.0.113.7"), pair("DE", "Hamburg"));

    let absent = GeoDb::open(&dir.path().join("absent.mmdb"));
    assert!(!absent.is_loaded());
    assert_eq!(absent.lookup(ip("203.0.113.7")), Default::default());
}
