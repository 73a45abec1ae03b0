//! HTTPS for the pixel: the rustls acceptor of `http.tls`, re-read on `SIGHUP`.
//!
//! A reload builds a whole new server configuration from the files and swaps it in only
//! if that worked: a bad certificate at reload keeps the old one (and says why), and
//! connections already open keep the session they have. New handshakes get the new one.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{connection, Endpoint};
use crate::config::relay::TlsFiles;
use crate::log::Appender;
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

/// A connection's byte stream: plain TCP or TLS over it.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Whether the client reached us over HTTPS.
    const TLS: bool;
    /// Reads what is already there without waiting (`WouldBlock` if nothing is), so that
    /// a pipelined or fast client costs no timer and no wake-up.
    fn read_ready(&mut self, buf: &mut Vec<u8>) -> io::Result<usize>;
}

impl Transport for TcpStream {
    const TLS: bool = false;
    fn read_ready(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        self.try_read_buf(buf)
    }
}

impl Transport for TlsStream<TcpStream> {
    const TLS: bool = true;
    fn read_ready(&mut self, _: &mut Vec<u8>) -> io::Result<usize> {
        // Decrypted bytes are only had by polling the TLS session: take the waiting path.
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// Accepts on the HTTPS listener; never resolves when there is none.
pub async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// The handshake (within the header timeout), then HTTP as on a plain connection. A
/// failed handshake (not TLS, no common cipher, too slow) is counted and closed.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    endpoint: Arc<Endpoint>,
    appender: Appender,
    shutdown: CancellationToken,
) {
    let handshake = tokio::time::timeout(endpoint.header_timeout, acceptor.accept(stream)).await;
    match handshake {
        Ok(Ok(tls)) => connection::serve(tls, peer, endpoint, appender, shutdown).await,
        _ => metrics::counter!("pixelpipe_http_rejected_total", "reason" => "tls_handshake")
            .increment(1),
    }
}
