mod common;
use common::cluster::Cluster;
#[test]
fn harness() {
    let t = std::time::Instant::now();
    let mut c = Cluster::start(3, 1);
    eprintln!("started in {:?} url {}", t.elapsed(), c.url());
    let m = c.master_of("pixel:{2}");
    let to = c.live_ports().into_iter().find(|&p| p != m && c.is_master(p)).unwrap();
    let t = std::time::Instant::now();
    c.reshard(m, to, 300);
    eprintln!("resharded in {:?}; now {}", t.elapsed(), c.master_of("pixel:{2}"));
    let v = c.master_of("pixel:{1}");
    let t = std::time::Instant::now();
    c.kill9(v);
    c.wait_failover("pixel:{1}");
    eprintln!("failover in {:?}; now {}", t.elapsed(), c.master_of("pixel:{1}"));
}
