//! HTTPS for the metrics endpoint (`--metrics-tls-cert`, `--metrics-tls-key`): rustls on the
//! build's one crypto provider (ring), TLS 1.2 and 1.3, no client certificates.
//!
//! Handshakes run in their own tasks, so a client that connects and never finishes its
//! handshake holds up nobody; its connection is [`IdleLimited`] like every other and ends after
//! the idle limit. Only connections whose handshake succeeded reach the HTTP server.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::exit::CliError;
use crate::idle_stream::IdleLimited;

/// How many finished handshakes may wait for the HTTP server to take them.
const HANDSHAKEN_BACKLOG: usize = 64;

/// The server configuration of the PEM certificate chain in `cert` and private key in `key`.
/// A file that cannot be read or holds no certificate or key, or a key that does not fit the
/// certificate, is a usage error naming the file(s).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, CliError> {
    let usage = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        CliError::Usage(format!("metrics TLS {what} {}: {e}", path.display()))
    };
    let cert_pem = std::fs::read(cert).map_err(|e| usage("certificate", cert, &e))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage("certificate", cert, &e))?;
    if chain.is_empty() {
        return Err(usage("certificate", cert, &"no PEM CERTIFICATE in it"));
    }
    let key_pem = std::fs::read(key).map_err(|e| usage("key", key, &e))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| usage("key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Other(format!("metrics TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            CliError::Usage(format!(
                "metrics TLS certificate {} with key {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener whose connections are TLS sessions over [`IdleLimited`] TCP streams.
#[derive(Debug)]
pub struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<IdleLimited<TcpStream>>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `inner` (in a task of its own), shakes hands with `config` and hands on the
    /// connections that succeeded; every connection ends after `limit` without traffic.
    pub fn new(
        mut inner: TcpListener,
        limit: Duration,
        config: Arc<ServerConfig>,
    ) -> io::Result<Self> {
        let local = inner.local_addr()?;
        let (tx, handshaken) = mpsc::channel(HANDSHAKEN_BACKLOG);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            while !tx.is_closed() {
                let (stream, addr) = axum::serve::Listener::accept(&mut inner).await;
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match acceptor.accept(IdleLimited::new(stream, limit)).await {
                        Ok(tls) => {
                            // Fails only when the server stopped; the connection goes with it.
                            let _ = tx.send((tls, addr)).await;
                        }
                        Err(e) => {
                            tracing::debug!(%addr, error = %e, "metrics TLS handshake failed");
                        }
                    }
                });
            }
        });
        Ok(Self { handshaken, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<IdleLimited<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(conn) => conn,
            // The accepting task ended (it does not while the runtime runs): no more clients.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
