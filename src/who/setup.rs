//! Makes the [`Who`] of `serve` from the configuration, with the tasks behind it: the
//! salt keeper (cookieless `$visitor`) and the GeoIP reload on SIGHUP.

use std::sync::Arc;

use super::{Needs, Who, WhoConfig};
use crate::config::Config;
use crate::enrich::GeoDb;
use crate::privacy::{SaltBook, SaltKeeper};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("bad redis URL: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot watch for SIGHUP: {0}")]
    Signal(std::io::Error),
}

/// Call inside the control runtime: the tasks run there until `shutdown`.
/// `needs`: what the record template asks of the privacy step (`Template::needs`).
pub fn setup(
    config: &Config,
    needs: Needs,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<Who, SetupError> {
    let salts = if Who::needs_salts(&config.privacy, needs) {
        let book = Arc::new(SaltBook::default());
        let keeper = SaltKeeper::new(
            book.clone(),
            config.redis.clone(),
            config.privacy.salt_key.clone(),
            config.ship.redis_timeout,
        );
        tokio::spawn(keeper.run(shutdown.clone()));
        Some(book)
    } else {
        None
    };
    let geo = match &config.enrich.geoip_db {
        Some(path) => {
            let db = Arc::new(GeoDb::open(path));
            reload_on_sighup(db.clone(), shutdown)?;
            Some(db)
        }
        None => {
            if needs.geo {
                tracing::warn!("enrich.geoip_db is not set: $geo_country and $geo_city are `-`");
            }
            None
        }
    };
    let who = Who::new(
        WhoConfig {
            trusted_proxies: &config.http.trusted_proxies,
            real_ip_header: &config.http.real_ip_header,
            privacy: &config.privacy,
            filter: &config.filter,
            limits: &config.limits,
            enrich: &config.enrich,
        },
        needs,
        salts,
        geo,
    );
    Ok(who)
}

fn reload_on_sighup(
    db: Arc<GeoDb>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), SetupError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).map_err(SetupError::Signal)?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    // Reading a large database takes a moment: off the control runtime.
                    let db = db.clone();
                    match tokio::task::spawn_blocking(move || db.reload()).await {
                        Ok(Ok(())) => tracing::info!("GeoIP database reloaded"),
                        Ok(Err(e)) => tracing::warn!(error = %e, "GeoIP reload failed: keeping the database in use"),
                        Err(_) => {}
                    }
                }
                _ = shutdown.cancelled() => return,
            }
        }
    });
    Ok(())
}
