//! TLS and SASL for opening sessions, prepared once per backend from the settings: files are
//! read (and checked) when the backend connects, and every session it opens uses them.

use std::sync::Arc;
use std::time::Duration;

#[cfg(not(feature = "tls"))]
use tenure_core::config::zk_security::{SECURE_KEY, TLS_CA_FILE_KEY};

use crate::sasl::{self, SaslLogin};
use crate::settings::{ConnectError, ZooKeeperSettings};
use crate::zk;

#[cfg(feature = "tls")]
use crate::tls::TlsMaterial;

/// The security of a backend's sessions.
#[derive(Clone, Default)]
pub(crate) struct Security {
    #[cfg(feature = "tls")]
    tls: Option<Arc<TlsMaterial>>,
    sasl: Option<Arc<(SaslLogin, &'static str)>>,
    /// `zookeeper.sasl.service-name`: the servers' Kerberos service.
    service_name: String,
}

impl Security {
    /// Reads the TLS and SASL files of `settings` and checks that this build supports what
    /// they ask for; errors name the key (and the path).
    pub(crate) async fn prepare(settings: &ZooKeeperSettings) -> Result<Self, ConnectError> {
        #[cfg(not(feature = "tls"))]
        if settings.tls.enabled() {
            return Err(ConnectError::InvalidConfig {
                key: if settings.tls.secure {
                    SECURE_KEY
                } else {
                    TLS_CA_FILE_KEY
                },
                reason: "TLS is asked for, and this build of tenure has no TLS support \
                         (build tenure-zookeeper with the feature `tls`)"
                    .into(),
            });
        }
        let sasl = sasl::resolve(&settings.sasl)?;
        if let Some((login, key)) = &sasl {
            check_sasl_support(login, key)?;
            #[cfg(feature = "kerberos")]
            if let SaslLogin::Kerberos {
                principal: Some(principal),
                keytab: Some(keytab),
            } = login
            {
                kinit(principal, keytab).await?;
            }
        }
        Ok(Self {
            #[cfg(feature = "tls")]
            tls: TlsMaterial::load(&settings.tls)?.map(Arc::new),
            sasl: sasl.map(Arc::new),
            service_name: settings.sasl.service_name.clone(),
        })
    }

    /// The config key of the SASL credentials, named when the server refuses them.
    pub(crate) fn credentials_key(&self, settings: &ZooKeeperSettings) -> &'static str {
        match &self.sasl {
            Some(login) => login.1,
            None => crate::client_options::credentials_key(settings),
        }
    }

    /// Whether sessions use TLS.
    pub(crate) fn tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// One TLS handshake with the servers, to fail at once with the reason when the
    /// certificates do not fit (see [`crate::tls`]). Nothing without TLS.
    pub(crate) async fn check(&self, quorum: &str, timeout: Duration) -> Result<(), ConnectError> {
        #[cfg(feature = "tls")]
        if let Some(material) = &self.tls {
            return crate::tls::check_handshake(material, quorum, timeout).await;
        }
        let _ = (quorum, timeout);
        Ok(())
    }

    /// Applies TLS and SASL to a connector.
    pub(crate) fn apply(&self, connector: zk::Connector) -> Result<zk::Connector, ConnectError> {
        #[allow(unused_mut)]
        let mut connector = connector;
        #[cfg(feature = "tls")]
        if let Some(material) = &self.tls {
            crate::tls::install_crypto_provider();
            connector = connector.with_tls(material.options()?);
        }
        if let Some(login) = &self.sasl {
            connector = with_sasl(connector, &login.0, &self.service_name);
        }
        Ok(connector)
    }
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Security");
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls.is_some());
        d.field("sasl", &self.sasl.as_ref().map(|l| &l.0))
            .field("service_name", &self.service_name)
            .finish()
    }
}

fn check_sasl_support(login: &SaslLogin, key: &'static str) -> Result<(), ConnectError> {
    let missing = |feature: &str| ConnectError::InvalidConfig {
        key,
        reason: format!(
            "SASL {} is asked for, and this build of tenure does not support it (build \
             tenure-zookeeper with the feature `{feature}`)",
            match login {
                SaslLogin::Digest { .. } => "DIGEST-MD5",
                SaslLogin::Kerberos { .. } => "GSSAPI (Kerberos)",
            }
        ),
    };
    match login {
        SaslLogin::Digest { .. } if !cfg!(feature = "sasl-digest-md5") => {
            Err(missing("sasl-digest-md5"))
        }
        SaslLogin::Kerberos { .. } if !cfg!(feature = "kerberos") => Err(missing("kerberos")),
        _ => Ok(()),
    }
}

#[allow(unused_variables, unused_mut)]
fn with_sasl(connector: zk::Connector, login: &SaslLogin, service_name: &str) -> zk::Connector {
    let mut connector = connector;
    match login {
        SaslLogin::Digest { username, password } => {
            #[cfg(feature = "sasl-digest-md5")]
            {
                connector = connector.with_sasl(zk::SaslOptions::digest_md5(
                    username.clone(),
                    password.clone(),
                ));
            }
        }
        SaslLogin::Kerberos { .. } => {
            #[cfg(feature = "kerberos")]
            {
                connector = connector
                    .with_sasl(zk::SaslOptions::gssapi().with_username(service_name.to_owned()));
            }
        }
    }
    connector
}

/// Obtains a Kerberos ticket for `principal` from `keytab` into the default ticket cache with
/// MIT's `kinit` (the GSSAPI client uses the ticket cache).
#[cfg(feature = "kerberos")]
async fn kinit(principal: &str, keytab: &str) -> Result<(), ConnectError> {
    use tenure_core::config::zk_security::KERBEROS_KEYTAB_KEY;
    let out = tokio::process::Command::new("kinit")
        .args(["-k", "-t", keytab, principal])
        .output()
        .await
        .map_err(|e| ConnectError::InvalidConfig {
            key: KERBEROS_KEYTAB_KEY,
            reason: format!("cannot run kinit (MIT Kerberos client tools) for {keytab:?}: {e}"),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(ConnectError::InvalidConfig {
        key: KERBEROS_KEYTAB_KEY,
        reason: format!(
            "kinit -k -t {keytab:?} {principal:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// `host:port` pairs of `host:port,host:port[/chroot]` (brackets of IPv6 hosts removed).
pub(crate) fn servers(quorum: &str) -> Vec<(String, u16)> {
    let hosts = quorum.split('/').next().unwrap_or_default();
    hosts
        .split(',')
        .filter_map(|s| {
            let default = tenure_core::config::DEFAULT_ZOOKEEPER_PORT;
            let (host, port) = match s.rsplit_once(':') {
                _ if s.ends_with(']') => (s, default),
                Some((h, p)) => (h, p.parse().ok()?),
                None => (s, default),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            (!host.is_empty()).then(|| (host.to_owned(), port))
        })
        .collect()
}

/// Whether some server of `quorum` accepts a TCP connection within `timeout`.
pub(crate) async fn accepts_tcp(quorum: &str, timeout: Duration) -> bool {
    for (host, port) in servers(quorum) {
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        if let Ok(Ok(_)) = tokio::time::timeout(timeout, connect).await {
            return true;
        }
    }
    false
}

/// Added to a failed plaintext connect when the servers accept TCP connections.
pub(crate) const PLAINTEXT_HINT: &str = "the servers accept TCP connections but no session was \
    established: if they accept TLS only, set zookeeper.client.secure: true and \
    high-availability.zookeeper.client.tls.ca-file";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn servers_of_a_quorum() {
        assert_eq!(
            servers("a:1,[::1]:2,c/chroot"),
            vec![
                ("a".to_owned(), 1),
                ("::1".to_owned(), 2),
                ("c".to_owned(), 2181)
            ]
        );
    }
}
