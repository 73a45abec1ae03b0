//! The live analytics: the aggregator that runs inside `serve` and `relay` (fed by the
//! shipper once Redis acknowledged a batch), and the two views of what it counts.
//!
//! - [`aggregate`]: shipped batches → counters and HyperLogLogs in Redis ([`keys`]).
//! - [`stats`]: reads those aggregates back into a [`stats::Snapshot`].
//! - [`top`], [`dashboard`]: the terminal and the browser views of a snapshot.

pub mod aggregate;
pub mod dashboard;
pub mod dimensions;
mod fields;
pub mod keys;
pub mod stats;
pub mod top;

use std::time::Duration;

use crate::config::{AnalyticsConfig, Config};
use crate::conn::{Link, Timeouts};
use crate::ship::Tap;

/// The channel from the shipper to the aggregator: the shipper's end goes to the
/// pipeline, the other to [`start`]. Neither exists when `analytics.enabled` is false.
pub fn tap(config: &AnalyticsConfig) -> (Option<Tap>, Option<Shipped>) {
    if !config.enabled {
        return (None, None);
    }
    let (tap, shipped) = tokio::sync::mpsc::channel(config.queue_batches.max(1));
    (Some(tap), Some(shipped))
}

/// Batches Redis acknowledged, as the aggregator receives them.
pub type Shipped = tokio::sync::mpsc::Receiver<std::sync::Arc<crate::log::Batch>>;

/// Starts the aggregator on the `shipped` batches and returns the dashboard's routes
/// (empty when analytics are off), and the aggregator to wait for when stopping.
///
/// Why a thread of its own: counting is most of the CPU a shipped record costs on the
/// shipper's side (parsing every query, hashing its values). On the shipper's runtime it
/// held up the next batch; beside it, a backlog drains at the speed of the shipper and
/// Redis, and the counting follows on the other core.
pub fn start(
    config: &Config,
    shipped: Option<Shipped>,
) -> std::io::Result<(axum::Router, Aggregator)> {
    let Some(shipped) = shipped else {
        return Ok((axum::Router::new(), Aggregator(None)));
    };
    let link = Link::new(
        config.redis.clone(),
        Timeouts::new(Duration::from_secs(5)),
        "aggregator",
    );
    let analytics = config.analytics.clone();
    // Detached: it ends when the shipper's end of the channel goes, after a last write,
    // and says so through `done`.
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("analytics".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(aggregate::run(link, analytics, shipped)),
                Err(e) => {
                    tracing::error!(error = %e, "analytics: cannot start; nothing is counted")
                }
            }
            let _ = done.send(());
        })?;
    // The page polls every second: answer quickly that Redis is away.
    let dashboard_timeouts = Timeouts {
        connect: Duration::from_secs(1),
        response: Some(Duration::from_secs(2)),
    };
    let state = dashboard::DashboardState::new(
        Link::new(config.redis.clone(), dashboard_timeouts, "dashboard"),
        config.analytics.clone(),
        config.http.key.clone(),
    );
    Ok((dashboard::router(state), Aggregator(Some(finished))))
}

/// How long a stopping `serve` or `relay` waits for the aggregator's last write.
const LAST_WRITE: Duration = Duration::from_secs(2);

/// The running aggregator, as its program's composition root holds it.
pub struct Aggregator(Option<tokio::sync::oneshot::Receiver<()>>);

impl Aggregator {
    /// Call once the shipper has stopped: its end of the channel is gone, so the
    /// aggregator writes what it counted since its last write (up to a second of
    /// counts) and ends. Waits for that, up to [`LAST_WRITE`].
    pub async fn finish(self) {
        let Some(finished) = self.0 else { return };
        if tokio::time::timeout(LAST_WRITE, finished).await.is_err() {
            tracing::warn!(
                "analytics: the last counts were not written within {LAST_WRITE:?}; they are skipped"
            );
        }
    }
}
