//! HTTPS for the pixel: the rustls acceptor of `http.tls`, re-read on `SIGHUP`.
//!
//! A reload builds a whole new server configuration from the files and swaps it in only
//! if that worked: a bad certificate at reload keeps the old one (and says why), and
//! connections already open keep the session they have. New handshakes get the new one.

use std::sync::{Arc, RwLock};

use tokio_rustls::TlsAcceptor;

use crate::relay::config::TlsFiles;
pub use crate::relay::tls::TlsError;

pub struct ReloadableTls {
    files: TlsFiles,
    current: RwLock<TlsAcceptor>,
}

impl ReloadableTls {
    /// Reads the files: a bad one is a start-up error naming it.
    pub fn load(files: &TlsFiles) -> Result<Arc<ReloadableTls>, TlsError> {
        let acceptor = crate::relay::tls::acceptor(files)?;
        Ok(Arc::new(ReloadableTls {
            files: files.clone(),
            current: RwLock::new(acceptor),
        }))
    }

    /// The acceptor for the next handshake (an `Arc` clone).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the files again; on an error the acceptor in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = crate::relay::tls::acceptor(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}
