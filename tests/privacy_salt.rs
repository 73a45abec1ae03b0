//! The daily visitor salt against a real Redis: collectors agree on one salt per day,
//! it expires within 26 hours, a collector that cannot reach Redis uses its own and
//! adopts the shared one once Redis answers, and yesterday's is forgotten at midnight.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{free_port, Redis};
use pixelpipe::privacy::salt::{day_name, day_of};
use pixelpipe::privacy::{SaltBook, SaltKeeper};

const PREFIX: &str = "test:salt:";

fn keeper(url: &str) -> (Arc<SaltBook>, SaltKeeper) {
    let book = Arc::new(SaltBook::default());
    let target = url.parse().unwrap();
    let keeper = SaltKeeper::new(book.clone(), target, PREFIX.into(), Duration::from_secs(2));
    (book, keeper)
}

/// Midnight UTC of today, plus `secs`.
fn today_at(secs: u64) -> SystemTime {
    let day = day_of(SystemTime::now());
    UNIX_EPOCH + Duration::from_secs(day * 86_400 + secs)
}

fn ttl(redis: &Redis, day: u64) -> i64 {
    redis::cmd("TTL")
        .arg(format!("{PREFIX}{}", day_name(day)))
        .query(&mut redis.conn())
        .unwrap()
}

#[tokio::test]
async fn collectors_agree_and_salts_expire() {
    let redis = Redis::start();
    let (book1, k1) = keeper(&redis.url());
    let (book2, k2) = keeper(&redis.url());
    let noon = today_at(12 * 3600);
    let today = day_of(noon);
    let wait = k1.tick(noon).await;
    k2.tick(noon).await;
    let salt = book1.get(today).expect("today's salt");
    assert_eq!(book2.get(today), Some(salt), "two collectors, one salt");
    // Nothing to do until tomorrow's salt is fetched at 23:00.
    assert_eq!(wait, Duration::from_secs(11 * 3600));
    let t = ttl(&redis, today);
    assert!(t > 0 && t <= 26 * 3600, "TTL {t}");
    assert_eq!(book1.get(today + 1), None);

    // From 23:00, tomorrow's salt is agreed too, and differs.
    let late = today_at(23 * 3600 + 1800);
    k1.tick(late).await;
    k2.tick(late).await;
    let tomorrow = book1.get(today + 1).expect("tomorrow's salt");
    assert_eq!(book2.get(today + 1), Some(tomorrow));
    assert_ne!(tomorrow, salt);
    let t = ttl(&redis, today + 1);
    assert!(t > 0 && t <= 26 * 3600, "TTL {t}");

    // After midnight, yesterday's salt is gone from memory.
    k1.tick(today_at(86_400 + 5)).await;
    assert_eq!(book1.get(today), None);
    assert_eq!(book1.get(today + 1), Some(tomorrow));
}

#[tokio::test]
async fn without_redis_a_local_salt_until_redis_answers() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let (book, lonely) = keeper(&url);
    let noon = today_at(12 * 3600);
    let today = day_of(noon);
    let wait = lonely.tick(noon).await;
    let local = book.get(today).expect("a local salt while Redis is down");
    assert!(wait <= Duration::from_secs(10), "retries soon: {wait:?}");

    // Redis comes up and another collector gets there first: its salt wins.
    let redis = Redis::start_on(port, false);
    let (other_book, other) = keeper(&redis.url());
    other.tick(noon).await;
    let shared = other_book.get(today).unwrap();
    assert_ne!(shared, local);
    let wait = lonely.tick(noon).await;
    assert_eq!(book.get(today), Some(shared), "adopted the shared salt");
    assert!(wait > Duration::from_secs(10));
}
