//! TLS to the servers (feature `tls`): the PEM files of the settings, read at connect, become
//! the client's [`zk::TlsOptions`]; and a handshake check that names what failed.
//!
//! zookeeper-client reports a failed TLS handshake only as a lost connection and retries until
//! its deadline. Before the first session, [`check_handshake`] makes one TLS handshake with each
//! server itself (same roots, same client certificate, same host name check): if every server
//! that answered failed the handshake, the connect fails at once with [`ConnectError::Tls`]
//! saying which check failed (certificate verification, a refused client certificate), instead
//! of a timeout.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tenure_core::config::ZooKeeperTls;
use tenure_core::config::zk_security::{TLS_CA_FILE_KEY, TLS_CERT_FILE_KEY, TLS_KEY_FILE_KEY};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::settings::ConnectError;
use crate::zk;

/// The PEM material of the TLS settings, read and checked.
pub(crate) struct TlsMaterial {
    ca_pem: String,
    roots: RootCertStore,
    identity: Option<Identity>,
}

struct Identity {
    cert_pem: String,
    key_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn read(key: &'static str, path: &str) -> Result<String, ConnectError> {
    std::fs::read_to_string(path).map_err(|e| ConnectError::InvalidConfig {
        key,
        reason: format!("cannot read the PEM file {path:?}: {e}"),
    })
}

fn bad(key: &'static str, path: &str, what: impl std::fmt::Display) -> ConnectError {
    ConnectError::InvalidConfig {
        key,
        reason: format!("{path:?} is not usable: {what}"),
    }
}

fn certificates(
    key: &'static str,
    path: &str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(key, path, format!("bad PEM ({e})")))?;
    if certs.is_empty() {
        return Err(bad(key, path, "it holds no PEM CERTIFICATE"));
    }
    Ok(certs)
}

/// Installs rustls' `ring` provider as the process default unless one is installed:
/// zookeeper-client builds its TLS configuration with the process default, and its `tls`
/// feature compiles `aws-lc-rs` in beside `ring`, so neither is picked automatically.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl TlsMaterial {
    /// Reads the CA file and the client certificate and key files (errors name the key and
    /// the path). `None` when TLS is off.
    pub(crate) fn load(tls: &ZooKeeperTls) -> Result<Option<Self>, ConnectError> {
        if !tls.enabled() {
            return Ok(None);
        }
        let Some(ca_path) = &tls.ca_file else {
            return Err(ConnectError::InvalidConfig {
                key: TLS_CA_FILE_KEY,
                reason: "not set, and zookeeper.client.secure is true: tenure verifies the \
                         ZooKeeper servers against this CA file only (no system roots)"
                    .into(),
            });
        };
        let ca_pem = read(TLS_CA_FILE_KEY, ca_path)?;
        let mut roots = RootCertStore::empty();
        for cert in certificates(TLS_CA_FILE_KEY, ca_path, &ca_pem)? {
            roots
                .add(cert)
                .map_err(|e| bad(TLS_CA_FILE_KEY, ca_path, format!("bad CA certificate: {e}")))?;
        }
        let identity = match (&tls.cert_file, &tls.key_file) {
            (Some(cert_path), Some(key_path)) => {
                let cert_pem = read(TLS_CERT_FILE_KEY, cert_path)?;
                let chain = certificates(TLS_CERT_FILE_KEY, cert_path, &cert_pem)?;
                let key_pem = read(TLS_KEY_FILE_KEY, key_path)?;
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
                    bad(
                        TLS_KEY_FILE_KEY,
                        key_path,
                        format!("no PEM private key ({e})"),
                    )
                })?;
                Some(Identity {
                    cert_pem,
                    key_pem,
                    chain,
                    key,
                })
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConnectError::InvalidConfig {
                    key: TLS_KEY_FILE_KEY,
                    reason: format!("not set, and {TLS_CERT_FILE_KEY} is"),
                });
            }
            (None, Some(_)) => {
                return Err(ConnectError::InvalidConfig {
                    key: TLS_CERT_FILE_KEY,
                    reason: format!("not set, and {TLS_KEY_FILE_KEY} is"),
                });
            }
        };
        let material = Self {
            ca_pem,
            roots,
            identity,
        };
        // Builds once so a key that does not fit its certificate is reported now.
        material.client_config()?;
        Ok(Some(material))
    }

    /// The zookeeper-client options.
    pub(crate) fn options(&self) -> Result<zk::TlsOptions, ConnectError> {
        let options = zk::TlsOptions::new()
            .with_pem_ca(&self.ca_pem)
            .map_err(|e| ConnectError::InvalidConfig {
                key: TLS_CA_FILE_KEY,
                reason: e.to_string(),
            })?;
        match &self.identity {
            None => Ok(options),
            Some(id) => options
                .with_pem_identity(&id.cert_pem, &id.key_pem)
                .map_err(|e| ConnectError::InvalidConfig {
                    key: TLS_KEY_FILE_KEY,
                    reason: e.to_string(),
                }),
        }
    }

    fn client_config(&self) -> Result<Arc<ClientConfig>, ConnectError> {
        let builder =
            ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
                .with_safe_default_protocol_versions()
                .map_err(|e| ConnectError::InvalidConfig {
                    key: TLS_CA_FILE_KEY,
                    reason: e.to_string(),
                })?
                .with_root_certificates(self.roots.clone());
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| ConnectError::InvalidConfig {
                    key: TLS_KEY_FILE_KEY,
                    reason: format!("the key does not fit {TLS_CERT_FILE_KEY}: {e}"),
                })?,
        };
        Ok(Arc::new(config))
    }
}

/// What one TLS handshake gave.
enum Outcome {
    Ok,
    /// TCP did not connect (or timed out): says nothing about TLS.
    Unreachable,
    /// The handshake failed: certificates or TLS protocol.
    Failed(String),
}

async fn handshake(connector: &TlsConnector, host: &str, port: u16, timeout: Duration) -> Outcome {
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        return Outcome::Failed(format!("{host:?} is not a valid TLS server name"));
    };
    let attempt = async {
        let tcp = match TcpStream::connect((host, port)).await {
            Ok(tcp) => tcp,
            Err(_) => return Outcome::Unreachable,
        };
        match connector.connect(name, tcp).await {
            Ok(mut stream) => {
                // TLS 1.3 reports a refused client certificate after the handshake: one read
                // brings the server's alert, if any (a ZooKeeper server sends nothing first).
                use tokio::io::AsyncReadExt as _;
                let mut byte = [0u8; 1];
                match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut byte)).await
                {
                    Ok(Err(e)) if tls_error(&e).is_some() => Outcome::Failed(describe(&e)),
                    _ => Outcome::Ok,
                }
            }
            Err(e) if tls_error(&e).is_some() => Outcome::Failed(describe(&e)),
            // The server closed the connection in the handshake.
            Err(e) => Outcome::Failed(format!("the handshake was cut off: {e}")),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Outcome::Unreachable)
}

fn tls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref())
}

fn describe(e: &std::io::Error) -> String {
    match tls_error(e) {
        Some(rustls::Error::InvalidCertificate(cert)) => format!(
            "certificate verification failed: the server's certificate is not trusted by the CA \
             file ({cert:?})"
        ),
        Some(rustls::Error::AlertReceived(alert)) => format!(
            "the server refused the handshake ({alert:?}): it may require a client certificate \
             ({TLS_CERT_FILE_KEY}) it trusts"
        ),
        Some(other) => format!("TLS error: {other}"),
        None => e.to_string(),
    }
}

/// One TLS handshake with each server of `quorum`, each bounded by `timeout`. Fails with
/// [`ConnectError::Tls`] when no handshake succeeded and at least one server answered but failed
/// it; unreachable servers leave the verdict to the client's own attempts.
pub(crate) async fn check_handshake(
    material: &TlsMaterial,
    quorum: &str,
    timeout: Duration,
) -> Result<(), ConnectError> {
    let connector = TlsConnector::from(material.client_config()?);
    let mut failures = Vec::new();
    for (host, port) in crate::security::servers(quorum) {
        match handshake(&connector, &host, port, timeout).await {
            Outcome::Ok => return Ok(()),
            Outcome::Unreachable => {}
            Outcome::Failed(why) => failures.push(format!("{host}:{port}: {why}")),
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(ConnectError::Tls {
        service: "ZooKeeper",
        address: quorum.to_owned(),
        source: failures.join("; ").into(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_bad_files_name_the_key_and_path() {
        let dir = std::env::temp_dir().join(format!("tenure-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let junk = junk.to_string_lossy().into_owned();
        let cases = [
            (
                Some("/nonexistent/ca.pem".to_owned()),
                TLS_CA_FILE_KEY,
                "/nonexistent/ca.pem",
            ),
            (Some(junk.clone()), TLS_CA_FILE_KEY, junk.as_str()),
        ];
        for (ca_file, key, path) in cases {
            let tls = ZooKeeperTls {
                ca_file,
                ..ZooKeeperTls::default()
            };
            let err = TlsMaterial::load(&tls).err().unwrap().to_string();
            assert!(err.contains(key) && err.contains(path), "{err}");
        }
        let secure_only = ZooKeeperTls {
            secure: true,
            ..ZooKeeperTls::default()
        };
        let err = TlsMaterial::load(&secure_only).err().unwrap().to_string();
        assert!(err.contains(TLS_CA_FILE_KEY), "{err}");
        assert!(
            TlsMaterial::load(&ZooKeeperTls::default())
                .unwrap()
                .is_none()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
