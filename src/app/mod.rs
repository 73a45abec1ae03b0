//! One composition root per long-running program. Each builds its pipeline the same way:
//! the log-and-ship [`pipeline`](crate::pipeline), then the [`admin`](crate::admin)
//! listener, then the [`analytics`](crate::analytics), then its sources — and takes them
//! down in the reverse order when the shutdown signal comes. One `CancellationToken`
//! stops the sources and the admin listener; the pipeline then drains what was logged.
//!
//! Only here do sources meet the shipper and the analytics: a source (`http`, `relay`)
//! imports neither.

pub mod relay;
pub mod serve;

use std::io;

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_signal() -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
