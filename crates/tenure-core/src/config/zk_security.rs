//! ZooKeeper transport security (TLS) and SASL authentication settings.
//!
//! TLS keys (PEM files, read when a session is opened):
//! - `zookeeper.client.secure` (ZooKeeper's own switch, default false): TLS on;
//! - `high-availability.zookeeper.client.tls.ca-file`: the CA certificates that verify the
//!   servers (TLS is on when it is set, even without `zookeeper.client.secure`). tenure trusts
//!   this file only (no system roots): `zookeeper.client.secure: true` without it is an error;
//! - `high-availability.zookeeper.client.tls.cert-file` and `.tls.key-file`: the client
//!   certificate chain and its private key for mutual TLS (both or neither).
//!
//! SASL keys:
//! - `zookeeper.sasl.disable` (Flink's, default false): no SASL, whatever else is set;
//! - `high-availability.zookeeper.client.sasl.username` with `.sasl.password` or
//!   `.sasl.password-file` (the file's first line): DIGEST-MD5 credentials;
//! - `high-availability.zookeeper.client.sasl.jaas-file`: a JAAS login configuration (what the
//!   JVM reads from `java.security.auth.login.config`), whose section
//!   `zookeeper.sasl.login-context-name` (default `Client`) gives the DIGEST-MD5 `username` and
//!   `password` (or a Kerberos `keyTab` and `principal`);
//! - `security.kerberos.login.keytab` and `security.kerberos.login.principal` (Flink's):
//!   Kerberos (GSSAPI) credentials, used when tenure is built with the `kerberos` feature;
//! - `zookeeper.sasl.service-name` (default `zookeeper`): the servers' Kerberos service name.

use std::fmt;

use super::ha::invalid;
use super::{ConfigError, Configuration};

/// `zookeeper.client.secure`.
pub const SECURE_KEY: &str = "zookeeper.client.secure";
/// `high-availability.zookeeper.client.tls.ca-file`.
pub const TLS_CA_FILE_KEY: &str = "high-availability.zookeeper.client.tls.ca-file";
/// `high-availability.zookeeper.client.tls.cert-file`.
pub const TLS_CERT_FILE_KEY: &str = "high-availability.zookeeper.client.tls.cert-file";
/// `high-availability.zookeeper.client.tls.key-file`.
pub const TLS_KEY_FILE_KEY: &str = "high-availability.zookeeper.client.tls.key-file";
/// `zookeeper.sasl.disable`.
pub const SASL_DISABLE_KEY: &str = "zookeeper.sasl.disable";
/// `high-availability.zookeeper.client.sasl.username`.
pub const SASL_USERNAME_KEY: &str = "high-availability.zookeeper.client.sasl.username";
/// `high-availability.zookeeper.client.sasl.password`.
pub const SASL_PASSWORD_KEY: &str = "high-availability.zookeeper.client.sasl.password";
/// `high-availability.zookeeper.client.sasl.password-file`.
pub const SASL_PASSWORD_FILE_KEY: &str = "high-availability.zookeeper.client.sasl.password-file";
/// `high-availability.zookeeper.client.sasl.jaas-file`.
pub const SASL_JAAS_FILE_KEY: &str = "high-availability.zookeeper.client.sasl.jaas-file";
/// `zookeeper.sasl.service-name`.
pub const SASL_SERVICE_NAME_KEY: &str = "zookeeper.sasl.service-name";
/// `zookeeper.sasl.login-context-name`.
pub const SASL_LOGIN_CONTEXT_KEY: &str = "zookeeper.sasl.login-context-name";
/// `security.kerberos.login.keytab`.
pub const KERBEROS_KEYTAB_KEY: &str = "security.kerberos.login.keytab";
/// `security.kerberos.login.principal`.
pub const KERBEROS_PRINCIPAL_KEY: &str = "security.kerberos.login.principal";

/// TLS to the ZooKeeper servers. Files are paths to PEM files, read at connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZooKeeperTls {
    /// `zookeeper.client.secure`: TLS on (it needs [`ca_file`](Self::ca_file)).
    pub secure: bool,
    /// `high-availability.zookeeper.client.tls.ca-file`: CA certificates (PEM).
    pub ca_file: Option<String>,
    /// `high-availability.zookeeper.client.tls.cert-file`: client certificate chain (PEM).
    pub cert_file: Option<String>,
    /// `high-availability.zookeeper.client.tls.key-file`: the client certificate's key (PEM).
    pub key_file: Option<String>,
}

impl ZooKeeperTls {
    /// Whether connections use TLS: `zookeeper.client.secure` is true or a CA file is set.
    pub fn enabled(&self) -> bool {
        self.secure || self.ca_file.is_some()
    }

    /// Checks that TLS has a CA file and that the client certificate and key come together;
    /// the error names the missing key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.secure && self.ca_file.is_none() {
            return Err(ConfigError::Missing {
                key: TLS_CA_FILE_KEY.to_owned(),
                reason: format!(
                    "{SECURE_KEY} is true; tenure verifies the ZooKeeper servers against this \
                     CA file only (no system roots)"
                ),
            });
        }
        let missing = |key: &str, other: &str| ConfigError::Missing {
            key: key.to_owned(),
            reason: format!(
                "{other} is set, and a client certificate needs both its chain and its key"
            ),
        };
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => Err(missing(TLS_KEY_FILE_KEY, TLS_CERT_FILE_KEY)),
            (None, Some(_)) => Err(missing(TLS_CERT_FILE_KEY, TLS_KEY_FILE_KEY)),
            _ => Ok(()),
        }
    }
}

/// SASL authentication to the ZooKeeper servers. Secrets are hidden in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct ZooKeeperSasl {
    /// `zookeeper.sasl.disable`: no SASL even if credentials are set.
    pub disabled: bool,
    /// `high-availability.zookeeper.client.sasl.username`.
    pub username: Option<String>,
    /// `high-availability.zookeeper.client.sasl.password`.
    pub password: Option<String>,
    /// `high-availability.zookeeper.client.sasl.password-file` (read at connect).
    pub password_file: Option<String>,
    /// `high-availability.zookeeper.client.sasl.jaas-file` (read at connect).
    pub jaas_file: Option<String>,
    /// `zookeeper.sasl.login-context-name`, default `Client`: the JAAS section read.
    pub login_context: String,
    /// `zookeeper.sasl.service-name`, default `zookeeper`.
    pub service_name: String,
    /// `security.kerberos.login.keytab`.
    pub keytab: Option<String>,
    /// `security.kerberos.login.principal`.
    pub principal: Option<String>,
}

impl Default for ZooKeeperSasl {
    fn default() -> Self {
        Self {
            disabled: false,
            username: None,
            password: None,
            password_file: None,
            jaas_file: None,
            login_context: "Client".to_owned(),
            service_name: "zookeeper".to_owned(),
            keytab: None,
            principal: None,
        }
    }
}

impl fmt::Debug for ZooKeeperSasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperSasl")
            .field("disabled", &self.disabled)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("jaas_file", &self.jaas_file)
            .field("login_context", &self.login_context)
            .field("service_name", &self.service_name)
            .field("keytab", &self.keytab)
            .field("principal", &self.principal)
            .finish()
    }
}

impl ZooKeeperSasl {
    /// Whether SASL is used: not disabled, and credentials (a username, a JAAS file or a
    /// Kerberos principal) are configured.
    pub fn active(&self) -> bool {
        !self.disabled
            && (self.username.is_some() || self.jaas_file.is_some() || self.principal.is_some())
    }

    /// Checks the combinations: a username needs exactly one of a password and a password
    /// file; a keytab needs a principal. Errors name the key to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.username.is_some() {
            match (&self.password, &self.password_file) {
                (None, None) => {
                    return Err(ConfigError::Missing {
                        key: SASL_PASSWORD_KEY.to_owned(),
                        reason: format!(
                            "{SASL_USERNAME_KEY} is set; give its password here or in \
                             {SASL_PASSWORD_FILE_KEY}"
                        ),
                    });
                }
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        SASL_PASSWORD_FILE_KEY,
                        self.password_file.as_deref().unwrap_or_default(),
                        &format!("not set together with {SASL_PASSWORD_KEY} (one password only)"),
                    ));
                }
                _ => {}
            }
        } else if self.password.is_some() || self.password_file.is_some() {
            let key = if self.password.is_some() {
                SASL_PASSWORD_KEY
            } else {
                SASL_PASSWORD_FILE_KEY
            };
            return Err(ConfigError::Missing {
                key: SASL_USERNAME_KEY.to_owned(),
                reason: format!("{key} is set without the user it belongs to"),
            });
        }
        if self.keytab.is_some() && self.principal.is_none() {
            return Err(ConfigError::Missing {
                key: KERBEROS_PRINCIPAL_KEY.to_owned(),
                reason: format!("{KERBEROS_KEYTAB_KEY} is set; Kerberos needs the principal too"),
            });
        }
        Ok(())
    }
}

impl Configuration {
    fn opt(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    fn flag(&self, key: &str) -> Result<bool, ConfigError> {
        match self.get(key).map(str::trim) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(invalid(key, v, "true or false")),
        }
    }

    fn name_or(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        match self.get(key) {
            None => Ok(default.to_owned()),
            Some(v) if v.trim().is_empty() => Err(invalid(key, v, "a non-empty name")),
            Some(v) => Ok(v.trim().to_owned()),
        }
    }
}

/// Reads and checks the TLS keys.
pub(super) fn read_tls(c: &Configuration) -> Result<ZooKeeperTls, ConfigError> {
    let tls = ZooKeeperTls {
        secure: c.flag(SECURE_KEY)?,
        ca_file: c.opt(TLS_CA_FILE_KEY),
        cert_file: c.opt(TLS_CERT_FILE_KEY),
        key_file: c.opt(TLS_KEY_FILE_KEY),
    };
    tls.validate()?;
    Ok(tls)
}

/// Reads and checks the SASL keys (the password stays as given: it is not trimmed).
pub(super) fn read_sasl(c: &Configuration) -> Result<ZooKeeperSasl, ConfigError> {
    let d = ZooKeeperSasl::default();
    let sasl = ZooKeeperSasl {
        disabled: c.flag(SASL_DISABLE_KEY)?,
        username: c.opt(SASL_USERNAME_KEY),
        password: c.get(SASL_PASSWORD_KEY).map(str::to_owned),
        password_file: c.opt(SASL_PASSWORD_FILE_KEY),
        jaas_file: c.opt(SASL_JAAS_FILE_KEY),
        login_context: c.name_or(SASL_LOGIN_CONTEXT_KEY, &d.login_context)?,
        service_name: c.name_or(SASL_SERVICE_NAME_KEY, &d.service_name)?,
        keytab: c.opt(KERBEROS_KEYTAB_KEY),
        principal: c.opt(KERBEROS_PRINCIPAL_KEY),
    };
    sasl.validate()?;
    Ok(sasl)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn conf(pairs: &[(&str, &str)]) -> Configuration {
        Configuration::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn tls_is_on_with_the_switch_or_a_ca_file() {
        assert!(!read_tls(&conf(&[])).unwrap().enabled());
        let err = read_tls(&conf(&[(SECURE_KEY, "true")])).unwrap_err();
        assert!(err.to_string().contains(TLS_CA_FILE_KEY), "{err}");
        let both = [(SECURE_KEY, "true"), (TLS_CA_FILE_KEY, "/ca.pem")];
        assert!(read_tls(&conf(&both)).unwrap().enabled());
        let tls = read_tls(&conf(&[(TLS_CA_FILE_KEY, " /ca.pem ")])).unwrap();
        assert!(tls.enabled());
        assert_eq!(tls.ca_file.as_deref(), Some("/ca.pem"));
        let err = read_tls(&conf(&[(SECURE_KEY, "yes")])).unwrap_err();
        assert!(err.to_string().contains(SECURE_KEY), "{err}");
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_the_error_names_it() {
        let err = read_tls(&conf(&[(TLS_CERT_FILE_KEY, "/c.pem")])).unwrap_err();
        assert!(err.to_string().contains(TLS_KEY_FILE_KEY), "{err}");
        let err = read_tls(&conf(&[(TLS_KEY_FILE_KEY, "/k.pem")])).unwrap_err();
        assert!(err.to_string().contains(TLS_CERT_FILE_KEY), "{err}");
        read_tls(&conf(&[
            (TLS_CERT_FILE_KEY, "/c"),
            (TLS_KEY_FILE_KEY, "/k"),
        ]))
        .unwrap();
    }

    #[test]
    fn sasl_credentials_combinations() {
        let s = read_sasl(&conf(&[])).unwrap();
        assert!(!s.active());
        assert_eq!(
            (s.login_context.as_str(), s.service_name.as_str()),
            ("Client", "zookeeper")
        );
        let s = read_sasl(&conf(&[(SASL_USERNAME_KEY, "u"), (SASL_PASSWORD_KEY, "p")])).unwrap();
        assert!(s.active());
        let s = read_sasl(&conf(&[
            (SASL_USERNAME_KEY, "u"),
            (SASL_PASSWORD_KEY, "p"),
            (SASL_DISABLE_KEY, "true"),
        ]))
        .unwrap();
        assert!(!s.active());
        let err = read_sasl(&conf(&[(SASL_USERNAME_KEY, "u")])).unwrap_err();
        assert!(err.to_string().contains(SASL_PASSWORD_KEY), "{err}");
        let err = read_sasl(&conf(&[(SASL_PASSWORD_KEY, "p")])).unwrap_err();
        assert!(err.to_string().contains(SASL_USERNAME_KEY), "{err}");
        let err = read_sasl(&conf(&[
            (SASL_USERNAME_KEY, "u"),
            (SASL_PASSWORD_KEY, "p"),
            (SASL_PASSWORD_FILE_KEY, "/f"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains(SASL_PASSWORD_FILE_KEY), "{err}");
        let err = read_sasl(&conf(&[(KERBEROS_KEYTAB_KEY, "/k.keytab")])).unwrap_err();
        assert!(err.to_string().contains(KERBEROS_PRINCIPAL_KEY), "{err}");
        let err = read_sasl(&conf(&[(SASL_LOGIN_CONTEXT_KEY, " ")])).unwrap_err();
        assert!(err.to_string().contains(SASL_LOGIN_CONTEXT_KEY), "{err}");
    }

    #[test]
    fn debug_hides_the_password() {
        let s = read_sasl(&conf(&[
            (SASL_USERNAME_KEY, "u"),
            (SASL_PASSWORD_KEY, "hunter2"),
        ]))
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
