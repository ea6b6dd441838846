//! TLS to etcd: the PEM files of the settings become etcd-client's [`TlsOptions`], and a
//! handshake check before the first connect names what failed.
//!
//! etcd-client (tonic) reports a failed TLS handshake nowhere: its channel retries in the
//! background and requests wait until their deadline. So before connecting, [`check`] makes one
//! handshake with each endpoint itself, with the same roots, client certificate and server
//! name, each bounded by the timeout: if no endpoint succeeded and one failed the handshake,
//! the connect fails at once with [`ConnectError::Tls`] saying which check failed. A plaintext
//! (`http://`) endpoint is probed with a TLS hello: a server answering it with a certificate
//! speaks TLS, and a plaintext client would wait on it in vain.
//!
//! The ZooKeeper backend has the same check (`tenure-zookeeper`'s `tls` module) over a
//! different client; sharing it would tie this crate to that one, so the small handshake is
//! written here for etcd's URLs.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Certificate, Identity, TlsOptions};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tenure_core::config::EtcdTls;
use tenure_core::config::etcd_security::{
    TLS_CA_FILE_KEY, TLS_CERT_FILE_KEY, TLS_KEY_FILE_KEY, is_http, is_https,
};
use tenure_core::connect::ConnectError;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The TLS material of the settings, read and checked.
pub(crate) struct TlsMaterial {
    /// etcd-client's options (tonic's client TLS configuration).
    pub options: TlsOptions,
    /// The same roots and identity for the handshake check.
    config: Arc<ClientConfig>,
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

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, ConnectError> {
    ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::InvalidConfig {
            key: TLS_CA_FILE_KEY,
            reason: e.to_string(),
        })
}

/// The system's trust roots (what `https://` endpoints without a CA file are verified with).
fn system_roots() -> Result<RootCertStore, ConnectError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(ConnectError::InvalidConfig {
            key: TLS_CA_FILE_KEY,
            reason: format!(
                "not set, and no system CA certificates were found to verify the https:// \
                 endpoints ({} error(s) loading them); set it to the etcd servers' CA",
                found.errors.len()
            ),
        });
    }
    Ok(roots)
}

impl TlsMaterial {
    /// Reads the CA file (or the system roots without one) and the client certificate and key
    /// (errors name the key and the path). `None` when no endpoint uses TLS.
    pub(crate) fn load(tls: &EtcdTls, endpoints: &[String]) -> Result<Option<Self>, ConnectError> {
        if !tls.enabled_for(endpoints) {
            return Ok(None);
        }
        let mut options = TlsOptions::new();
        let roots = match &tls.ca_file {
            Some(path) => {
                let pem = read(TLS_CA_FILE_KEY, path)?;
                let mut roots = RootCertStore::empty();
                for cert in certificates(TLS_CA_FILE_KEY, path, &pem)? {
                    roots.add(cert).map_err(|e| {
                        bad(TLS_CA_FILE_KEY, path, format!("bad CA certificate: {e}"))
                    })?;
                }
                options = options.ca_certificate(Certificate::from_pem(pem));
                roots
            }
            None => {
                options = options.with_native_roots();
                system_roots()?
            }
        };
        let builder = builder()?.with_root_certificates(roots);
        let config = match (&tls.cert_file, &tls.key_file) {
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
                let config = builder.with_client_auth_cert(chain, key).map_err(|e| {
                    ConnectError::InvalidConfig {
                        key: TLS_KEY_FILE_KEY,
                        reason: format!("the key does not fit {TLS_CERT_FILE_KEY}: {e}"),
                    }
                })?;
                options = options.identity(Identity::from_pem(cert_pem, key_pem));
                config
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConnectError::InvalidConfig {
                    key: TLS_CERT_FILE_KEY,
                    reason: format!(
                        "a client certificate needs both {TLS_CERT_FILE_KEY} and \
                         {TLS_KEY_FILE_KEY}"
                    ),
                });
            }
        };
        Ok(Some(Self {
            options,
            config: Arc::new(with_h2(config)),
        }))
    }
}

/// gRPC's ALPN, as tonic offers it.
fn with_h2(mut config: ClientConfig) -> ClientConfig {
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

/// Host and port of an endpoint URL (`https://host:port`, `http://[::1]:2379`, `host:port`;
/// default port 2379).
pub(crate) fn host_port(endpoint: &str) -> Option<(String, u16)> {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 2379,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// What one endpoint's check gave.
enum Outcome {
    Ok,
    /// TCP did not connect (or timed out): says nothing about TLS.
    Unreachable,
    /// The handshake failed, or a plaintext endpoint speaks TLS.
    Failed(String),
}

fn tls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref())
}

fn describe(e: &std::io::Error) -> String {
    match tls_error(e) {
        Some(rustls::Error::InvalidCertificate(cert)) => format!(
            "certificate verification failed: the server's certificate is not trusted by \
             {TLS_CA_FILE_KEY} (or the system roots without it) ({cert:?})"
        ),
        Some(rustls::Error::AlertReceived(alert)) => format!(
            "the server refused the handshake ({alert:?}): it may require a client certificate \
             ({TLS_CERT_FILE_KEY}) it trusts"
        ),
        Some(other) => format!("TLS error: {other}"),
        None => e.to_string(),
    }
}

/// HTTP/2's client preface and an empty SETTINGS frame: a gRPC server answers with SETTINGS.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// One TLS handshake with a TLS endpoint. TLS 1.3 reports a refused client certificate only
/// after the handshake: the HTTP/2 preface is sent and the first answer read, which is either
/// the server's SETTINGS or its alert.
async fn handshake(config: &Arc<ClientConfig>, host: &str, port: u16) -> Outcome {
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        return Outcome::Failed(format!("{host:?} is not a valid TLS server name"));
    };
    let Ok(tcp) = TcpStream::connect((host, port)).await else {
        return Outcome::Unreachable;
    };
    let mut stream = match TlsConnector::from(config.clone()).connect(name, tcp).await {
        Ok(stream) => stream,
        Err(e) if tls_error(&e).is_some() => return Outcome::Failed(describe(&e)),
        Err(e) => return Outcome::Failed(format!("the handshake was cut off: {e}")),
    };
    if let Err(e) = stream.write_all(H2_PREFACE).await {
        return Outcome::Failed(describe(&e));
    }
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte)).await {
        Ok(Err(e)) if tls_error(&e).is_some() => Outcome::Failed(describe(&e)),
        _ => Outcome::Ok,
    }
}

/// A TLS hello to a plaintext endpoint: a certificate in the answer means it speaks TLS.
async fn probe_plaintext(host: &str, port: u16) -> Outcome {
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        return Outcome::Ok;
    };
    let Ok(tcp) = TcpStream::connect((host, port)).await else {
        return Outcome::Unreachable;
    };
    let Ok(b) = builder() else {
        return Outcome::Ok;
    };
    // No roots: any certificate fails verification, which proves the server sent one.
    let config = b
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    match TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    {
        Err(e) if matches!(tls_error(&e), Some(rustls::Error::InvalidCertificate(_))) => {
            Outcome::Failed(format!(
                "the endpoint speaks TLS but is configured as plaintext http://; use an \
                 https:// endpoint (and {TLS_CA_FILE_KEY})"
            ))
        }
        _ => Outcome::Ok,
    }
}

/// Checks every endpoint at once, each bounded by `timeout`. Fails with [`ConnectError::Tls`]
/// when no endpoint passed and at least one failed (naming each with its reason); unreachable
/// endpoints leave the verdict to the client.
pub(crate) async fn check(
    material: Option<&TlsMaterial>,
    endpoints: &[String],
    timeout: Duration,
) -> Result<(), ConnectError> {
    let checks = endpoints.iter().map(|endpoint| async move {
        let Some((host, port)) = host_port(endpoint) else {
            return (endpoint, Outcome::Unreachable);
        };
        let tls = material.filter(|_| !is_http(endpoint));
        let attempt = async {
            match tls {
                Some(m) => handshake(&m.config, &host, port).await,
                None if is_https(endpoint) => Outcome::Ok,
                None => probe_plaintext(&host, port).await,
            }
        };
        let outcome = tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or(Outcome::Unreachable);
        (endpoint, outcome)
    });
    let outcomes = futures::future::join_all(checks).await;
    let mut failures = Vec::new();
    for (endpoint, outcome) in outcomes {
        match outcome {
            Outcome::Ok => return Ok(()),
            Outcome::Unreachable => {}
            Outcome::Failed(why) => failures.push(format!("{endpoint}: {why}")),
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(ConnectError::Tls {
        service: "etcd",
        address: endpoints.join(","),
        source: failures.join("; ").into(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_their_host_and_port() {
        let hp = |e: &str| host_port(e);
        assert_eq!(
            hp("https://127.0.0.1:2380"),
            Some(("127.0.0.1".into(), 2380))
        );
        assert_eq!(
            hp("http://etcd.example/"),
            Some(("etcd.example".into(), 2379))
        );
        assert_eq!(hp("[::1]:23"), Some(("::1".into(), 23)));
        assert_eq!(hp("localhost:99"), Some(("localhost".into(), 99)));
        assert_eq!(hp("https://:1"), None);
        assert_eq!(hp("https://h:notaport"), None);
    }

    #[test]
    fn missing_and_bad_files_name_the_key_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let junk = junk.to_string_lossy().into_owned();
        let https = vec!["https://127.0.0.1:2379".to_owned()];
        for path in ["/nonexistent/ca.pem", junk.as_str()] {
            let tls = EtcdTls {
                ca_file: Some(path.to_owned()),
                ..EtcdTls::default()
            };
            let err = TlsMaterial::load(&tls, &https).err().unwrap().to_string();
            assert!(err.contains(TLS_CA_FILE_KEY) && err.contains(path), "{err}");
        }
        let plain = vec!["http://127.0.0.1:2379".to_owned()];
        assert!(
            TlsMaterial::load(&EtcdTls::default(), &plain)
                .unwrap()
                .is_none()
        );
    }
}
