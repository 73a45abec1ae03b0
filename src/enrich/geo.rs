//! `$geo_country` and `$geo_city` from a MaxMind-format database (GeoLite2-City, DB-IP
//! Lite…), which users download themselves. Reloaded on SIGHUP; a database that cannot
//! be read leaves the variables at `-` (or keeps the previous one, on reload).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use maxminddb::{path, Reader};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoFacts {
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: Option<Box<str>>,
    /// The English name, e.g. `Berlin`.
    pub city: Option<Box<str>>,
}

#[derive(Debug, thiserror::Error)]
#[error("GeoIP database {path}: {source}")]
pub struct GeoError {
    path: PathBuf,
    source: maxminddb::MaxMindDbError,
}

pub struct GeoDb {
    path: PathBuf,
    reader: RwLock<Option<Arc<Reader<Vec<u8>>>>>,
}

impl GeoDb {
    /// Opens `path`; when it cannot be read, says so once and answers `-` until a
    /// reload succeeds.
    pub fn open(path: &Path) -> GeoDb {
        let db = GeoDb {
            path: path.to_owned(),
            reader: RwLock::new(None),
        };
        if let Err(e) = db.reload() {
            tracing::warn!(error = %e, "no GeoIP database: $geo_country and $geo_city are `-`");
        }
        db
    }

    /// Reads the file again (SIGHUP). On failure the database in use stays.
    pub fn reload(&self) -> Result<(), GeoError> {
        let reader = Reader::open_readfile(&self.path).map_err(|source| GeoError {
            path: self.path.clone(),
            source,
        })?;
        *self.reader.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(reader));
        Ok(())
    }

    pub fn is_loaded(&self) -> bool {
        self.reader
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    pub fn lookup(&self, ip: IpAddr) -> GeoFacts {
        let Some(reader) = self
            .reader
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return GeoFacts::default();
        };
        let Ok(found) = reader.lookup(ip.to_canonical()) else {
            return GeoFacts::default();
        };
        // Two paths, not the whole record: a GeoLite2-City record also holds names in
        // eight languages, subdivisions, coordinates… which would all be decoded.
        let text = |path: &[maxminddb::PathElement<'_>]| {
            found
                .decode_path::<&str>(path)
                .ok()
                .flatten()
                .map(Box::<str>::from)
        };
        GeoFacts {
            country: text(&path!["country", "iso_code"]),
            city: text(&path!["city", "names", "en"]),
        }
    }
}
