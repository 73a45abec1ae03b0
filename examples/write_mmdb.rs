//! Writes a small GeoIP2-City-shaped MaxMind DB for the benchmarks (bench/serve.sh):
//! 20,000 IPv4 /24 networks and loopback, so a lookup walks a realistic depth.
//!
//!     cargo run --release --example write_mmdb -- OUT.mmdb

#[path = "../tests/common/mmdb.rs"]
#[allow(dead_code)]
mod mmdb;

fn main() {
    let out = std::env::args().nth(1).expect("usage: write_mmdb OUT.mmdb");
    let mut w = mmdb::MmdbWriter::new();
    let countries = [
        ("DE", "Germany", "Berlin"),
        ("FR", "France", "Paris"),
        ("JP", "Japan", "Tokyo"),
    ];
    for i in 0..20_000u32 {
        let (iso, country, city) = countries[i as usize % countries.len()];
        // Spread over the address space: i * 2^16 + 1 as the /24's top bits.
        let net = std::net::Ipv4Addr::from((i.wrapping_mul(0x0003_0001) << 8) | 0x0100_0000);
        w.insert(net.into(), 24, &mmdb::city(iso, country, city));
    }
    w.insert(
        "127.0.0.0".parse().unwrap(),
        8,
        &mmdb::city("ZZ", "Loopback", "Localhost"),
    );
    std::fs::write(&out, w.to_bytes()).expect("writing the database");
}
