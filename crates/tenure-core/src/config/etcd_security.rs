//! etcd transport security (TLS) and username/password authentication settings.
//!
//! TLS keys (PEM files, read when a session is opened):
//! - `high-availability.etcd.tls.ca-file`: the CA certificates that verify the servers. Without
//!   it, `https://` endpoints are verified against the system's roots;
//! - `high-availability.etcd.tls.cert-file` and `.tls.key-file`: the client certificate chain
//!   and its private key for mutual TLS (both or neither).
//!
//! Any TLS key makes every endpoint TLS: each must then be `https://` (or have no scheme); an
//! `http://` endpoint beside a TLS key, or beside an `https://` endpoint, is an error naming it.
//!
//! Authentication keys:
//! - `high-availability.etcd.username`: the etcd user;
//! - `high-availability.etcd.password`, or `high-availability.etcd.password-file` (the file's
//!   content without one trailing newline): its password, exactly one of the two, and only
//!   with a username.

use std::fmt;

use super::ha::invalid;
use super::{ConfigError, Configuration};

/// `high-availability.etcd.tls.ca-file`.
pub const TLS_CA_FILE_KEY: &str = "high-availability.etcd.tls.ca-file";
/// `high-availability.etcd.tls.cert-file`.
pub const TLS_CERT_FILE_KEY: &str = "high-availability.etcd.tls.cert-file";
/// `high-availability.etcd.tls.key-file`.
pub const TLS_KEY_FILE_KEY: &str = "high-availability.etcd.tls.key-file";
/// `high-availability.etcd.username`.
pub const USERNAME_KEY: &str = "high-availability.etcd.username";
/// `high-availability.etcd.password`.
pub const PASSWORD_KEY: &str = "high-availability.etcd.password";
/// `high-availability.etcd.password-file`.
pub const PASSWORD_FILE_KEY: &str = "high-availability.etcd.password-file";
/// `high-availability.etcd.endpoints` (named by the endpoint checks).
pub const ENDPOINTS_KEY: &str = "high-availability.etcd.endpoints";

/// TLS to the etcd servers. Files are paths to PEM files, read at connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// `high-availability.etcd.tls.ca-file`: CA certificates (PEM); `None` ⇒ system roots.
    pub ca_file: Option<String>,
    /// `high-availability.etcd.tls.cert-file`: client certificate chain (PEM).
    pub cert_file: Option<String>,
    /// `high-availability.etcd.tls.key-file`: the client certificate's private key (PEM).
    pub key_file: Option<String>,
}

impl EtcdTls {
    /// Whether any TLS key is set.
    pub fn is_configured(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }

    /// Whether connections use TLS: a TLS key is set or an endpoint is `https://`.
    pub fn enabled_for(&self, endpoints: &[String]) -> bool {
        self.is_configured() || endpoints.iter().any(|e| is_https(e))
    }

    /// Checks that the client certificate and key come together; the error names both keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let missing = |key: &str, other: &str| ConfigError::Missing {
            key: key.to_owned(),
            reason: format!(
                "{other} is set; a client certificate needs both {TLS_CERT_FILE_KEY} and \
                 {TLS_KEY_FILE_KEY}"
            ),
        };
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => Err(missing(TLS_KEY_FILE_KEY, TLS_CERT_FILE_KEY)),
            (None, Some(_)) => Err(missing(TLS_CERT_FILE_KEY, TLS_KEY_FILE_KEY)),
            _ => Ok(()),
        }
    }

    /// Checks the endpoints against the TLS settings: with TLS on (a TLS key or an `https://`
    /// endpoint), an `http://` endpoint is an error naming it.
    pub fn check_endpoints(&self, endpoints: &[String]) -> Result<(), ConfigError> {
        if !self.enabled_for(endpoints) {
            return Ok(());
        }
        let Some(plain) = endpoints.iter().find(|e| is_http(e)) else {
            return Ok(());
        };
        let why = if self.is_configured() {
            let key = [&self.ca_file, &self.cert_file, &self.key_file]
                .iter()
                .zip([TLS_CA_FILE_KEY, TLS_CERT_FILE_KEY, TLS_KEY_FILE_KEY])
                .find_map(|(v, k)| v.as_ref().map(|_| k))
                .unwrap_or(TLS_CA_FILE_KEY);
            format!(
                "https:// endpoints only: {key} is set, and the plaintext endpoint {plain} would not use it"
            )
        } else {
            format!(
                "all endpoints https:// or all http://: {plain} is plaintext beside https:// \
                 endpoints"
            )
        };
        Err(invalid(ENDPOINTS_KEY, &endpoints.join(","), &why))
    }
}

/// Whether `endpoint` is an `https://` URL.
pub fn is_https(endpoint: &str) -> bool {
    scheme_is(endpoint, "https://")
}

/// Whether `endpoint` is an `http://` URL.
pub fn is_http(endpoint: &str) -> bool {
    scheme_is(endpoint, "http://")
}

fn scheme_is(endpoint: &str, scheme: &str) -> bool {
    endpoint
        .get(..scheme.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

/// Username/password authentication to etcd. The password is hidden in `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EtcdAuth {
    /// `high-availability.etcd.username`.
    pub username: Option<String>,
    /// `high-availability.etcd.password`.
    pub password: Option<String>,
    /// `high-availability.etcd.password-file` (read at connect).
    pub password_file: Option<String>,
}

impl fmt::Debug for EtcdAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

impl EtcdAuth {
    /// Checks the combinations: a username needs exactly one of a password and a password
    /// file; a password needs a username. Errors name the key to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.username, &self.password, &self.password_file) {
            (Some(_), None, None) => Err(ConfigError::Missing {
                key: PASSWORD_KEY.to_owned(),
                reason: format!(
                    "{USERNAME_KEY} is set; give its password here or in {PASSWORD_FILE_KEY}"
                ),
            }),
            (_, Some(_), Some(file)) => Err(invalid(
                PASSWORD_FILE_KEY,
                file,
                &format!("not set together with {PASSWORD_KEY} (one password only)"),
            )),
            (None, Some(_), None) | (None, None, Some(_)) => {
                let key = if self.password.is_some() {
                    PASSWORD_KEY
                } else {
                    PASSWORD_FILE_KEY
                };
                Err(ConfigError::Missing {
                    key: USERNAME_KEY.to_owned(),
                    reason: format!("{key} is set without the user it belongs to"),
                })
            }
            _ => Ok(()),
        }
    }

    /// The username and its password (the password file read now, without one trailing
    /// newline), or `None` without a username. Errors name the key to fix.
    pub fn credentials(&self) -> Result<Option<(String, String)>, ConfigError> {
        self.validate()?;
        let Some(user) = &self.username else {
            return Ok(None);
        };
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(path)) => {
                let mut text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        PASSWORD_FILE_KEY,
                        path,
                        &format!("a readable file holding the password ({e})"),
                    )
                })?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
            (None, None) => {
                return Err(ConfigError::Missing {
                    key: PASSWORD_KEY.to_owned(),
                    reason: format!("{USERNAME_KEY} is set without a password"),
                });
            }
        };
        Ok(Some((user.clone(), password)))
    }
}

fn opt(c: &Configuration, key: &str) -> Option<String> {
    c.get(key)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Reads and checks the TLS keys against `endpoints`.
pub(super) fn read_tls(c: &Configuration, endpoints: &[String]) -> Result<EtcdTls, ConfigError> {
    let tls = EtcdTls {
        ca_file: opt(c, TLS_CA_FILE_KEY),
        cert_file: opt(c, TLS_CERT_FILE_KEY),
        key_file: opt(c, TLS_KEY_FILE_KEY),
    };
    tls.validate()?;
    tls.check_endpoints(endpoints)?;
    Ok(tls)
}

/// Reads and checks the authentication keys (the password stays as given: it is not trimmed).
pub(super) fn read_auth(c: &Configuration) -> Result<EtcdAuth, ConfigError> {
    let auth = EtcdAuth {
        username: opt(c, USERNAME_KEY),
        password: c.get(PASSWORD_KEY).map(str::to_owned),
        password_file: opt(c, PASSWORD_FILE_KEY),
    };
    auth.validate()?;
    Ok(auth)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn conf(pairs: &[(&str, &str)]) -> Configuration {
        Configuration::from_pairs(pairs.iter().copied())
    }

    fn eps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_the_error_names_both() {
        let https = eps(&["https://e:2379"]);
        let err = read_tls(&conf(&[(TLS_CERT_FILE_KEY, "/c.pem")]), &https).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(TLS_KEY_FILE_KEY) && text.contains(TLS_CERT_FILE_KEY),
            "{text}"
        );
        let err = read_tls(&conf(&[(TLS_KEY_FILE_KEY, "/k.pem")]), &https).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(TLS_KEY_FILE_KEY) && text.contains(TLS_CERT_FILE_KEY),
            "{text}"
        );
        let tls = read_tls(
            &conf(&[(TLS_CERT_FILE_KEY, " /c "), (TLS_KEY_FILE_KEY, "/k")]),
            &https,
        )
        .unwrap();
        assert_eq!(tls.cert_file.as_deref(), Some("/c"));
        assert!(tls.is_configured() && tls.ca_file.is_none());
    }

    #[test]
    fn plaintext_endpoints_with_tls_keys_are_named() {
        let err = read_tls(
            &conf(&[(TLS_CA_FILE_KEY, "/ca.pem")]),
            &eps(&["https://a:2379", "http://b:2379"]),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("http://b:2379") && text.contains(TLS_CA_FILE_KEY),
            "{text}"
        );
        assert!(text.contains(ENDPOINTS_KEY), "{text}");
        // Mixed schemes without TLS keys: named too.
        let err = read_tls(&conf(&[]), &eps(&["https://a:2379", "HTTP://b:2379"])).unwrap_err();
        assert!(err.to_string().contains("HTTP://b:2379"), "{err}");
        // Plaintext alone, TLS alone, schemeless beside TLS keys: fine.
        assert!(
            !read_tls(&conf(&[]), &eps(&["http://a:2379"]))
                .unwrap()
                .enabled_for(&eps(&["http://a:2379"]))
        );
        let tls = read_tls(&conf(&[]), &eps(&["https://a:2379"])).unwrap();
        assert!(tls.enabled_for(&eps(&["https://a:2379"])) && !tls.is_configured());
        read_tls(&conf(&[(TLS_CA_FILE_KEY, "/ca")]), &eps(&["a:2379"])).unwrap();
    }

    #[test]
    fn credentials_combinations_name_the_key_to_fix() {
        let a = read_auth(&conf(&[])).unwrap();
        assert_eq!(a.credentials().unwrap(), None);
        let a = read_auth(&conf(&[(USERNAME_KEY, "u"), (PASSWORD_KEY, " p ")])).unwrap();
        assert_eq!(a.credentials().unwrap(), Some(("u".into(), " p ".into())));
        let err = read_auth(&conf(&[(USERNAME_KEY, "u")])).unwrap_err();
        assert!(err.to_string().contains(PASSWORD_KEY), "{err}");
        let err = read_auth(&conf(&[(PASSWORD_KEY, "p")])).unwrap_err();
        assert!(err.to_string().contains(USERNAME_KEY), "{err}");
        let err = read_auth(&conf(&[(PASSWORD_FILE_KEY, "/pw")])).unwrap_err();
        assert!(err.to_string().contains(USERNAME_KEY), "{err}");
        let err = read_auth(&conf(&[
            (USERNAME_KEY, "u"),
            (PASSWORD_KEY, "p"),
            (PASSWORD_FILE_KEY, "/pw"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(PASSWORD_FILE_KEY) && text.contains(PASSWORD_KEY),
            "{text}"
        );
    }

    #[test]
    fn the_password_file_loses_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        let path_text = path.to_string_lossy().into_owned();
        let auth = |content: &str| {
            std::fs::write(&path, content).unwrap();
            read_auth(&conf(&[
                (USERNAME_KEY, "u"),
                (PASSWORD_FILE_KEY, &path_text),
            ]))
            .unwrap()
            .credentials()
            .unwrap()
            .unwrap()
            .1
        };
        assert_eq!(auth("s3cret\n"), "s3cret");
        assert_eq!(auth("s3cret\r\n"), "s3cret");
        assert_eq!(auth("s3cret\n\n"), "s3cret\n");
        assert_eq!(auth(" s3cret"), " s3cret");
        let missing = EtcdAuth {
            username: Some("u".into()),
            password_file: Some("/nonexistent/pw".into()),
            ..EtcdAuth::default()
        };
        let err = missing.credentials().unwrap_err().to_string();
        assert!(
            err.contains(PASSWORD_FILE_KEY) && err.contains("/nonexistent/pw"),
            "{err}"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let a = read_auth(&conf(&[(USERNAME_KEY, "u"), (PASSWORD_KEY, "hunter2")])).unwrap();
        let text = format!("{a:?}");
        assert!(
            !text.contains("hunter2") && text.contains("<redacted>"),
            "{text}"
        );
    }

    #[test]
    fn the_ha_config_reads_them_and_hides_the_password() {
        let c = conf(&[
            ("high-availability.type", "etcd"),
            (ENDPOINTS_KEY, "https://a:2379, https://b:2379"),
            (TLS_CA_FILE_KEY, "/ca.pem"),
            (USERNAME_KEY, "flink"),
            (PASSWORD_KEY, "hunter2"),
        ]);
        let ha = crate::config::HaConfig::from_configuration(&c).unwrap();
        assert_eq!(ha.etcd.tls.ca_file.as_deref(), Some("/ca.pem"));
        assert_eq!(ha.etcd.auth.username.as_deref(), Some("flink"));
        assert!(!format!("{ha:?}").contains("hunter2"));
        let bad = conf(&[
            (ENDPOINTS_KEY, "http://a:2379"),
            (TLS_CA_FILE_KEY, "/ca.pem"),
        ]);
        let err = crate::config::HaConfig::from_configuration(&bad).unwrap_err();
        assert!(err.to_string().contains("http://a:2379"), "{err}");
    }
}
