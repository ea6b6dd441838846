//! SASL credentials from the settings, resolved at connect: tenure's username and password
//! (or password file), a JAAS file's login section, or a Kerberos principal (and keytab).
//!
//! The order: with `zookeeper.sasl.disable: true` nothing; else the tenure username; else the
//! JAAS file's section `zookeeper.sasl.login-context-name` (default `Client`); else
//! `security.kerberos.login.principal`. A file that cannot be read or parsed is an error naming
//! the key and the path.

use std::fmt;

use tenure_core::config::ZooKeeperSasl;
use tenure_core::config::zk_security::{
    KERBEROS_PRINCIPAL_KEY, SASL_JAAS_FILE_KEY, SASL_LOGIN_CONTEXT_KEY, SASL_PASSWORD_FILE_KEY,
    SASL_USERNAME_KEY,
};

use crate::jaas;
use crate::settings::ConnectError;

/// Credentials to log in with.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum SaslLogin {
    /// DIGEST-MD5.
    Digest {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// GSSAPI (Kerberos).
    Kerberos {
        /// The client principal, when named.
        principal: Option<String>,
        /// A keytab to obtain the ticket from, else the ticket cache is used.
        keytab: Option<String>,
    },
}

impl fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Digest { username, .. } => f
                .debug_struct("Digest")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::Kerberos { principal, keytab } => f
                .debug_struct("Kerberos")
                .field("principal", principal)
                .field("keytab", keytab)
                .finish(),
        }
    }
}

/// The credentials and the config key that supplied them (named when the server refuses them).
pub(crate) fn resolve(
    sasl: &ZooKeeperSasl,
) -> Result<Option<(SaslLogin, &'static str)>, ConnectError> {
    if sasl.disabled {
        return Ok(None);
    }
    if let Some(username) = &sasl.username {
        let password = match (&sasl.password, &sasl.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(path)) => {
                let text = read(SASL_PASSWORD_FILE_KEY, path)?;
                text.lines().next().unwrap_or_default().to_owned()
            }
            (None, None) => {
                return Err(ConnectError::InvalidConfig {
                    key: SASL_USERNAME_KEY,
                    reason: "set without a password".into(),
                });
            }
        };
        let login = SaslLogin::Digest {
            username: username.clone(),
            password,
        };
        return Ok(Some((login, SASL_USERNAME_KEY)));
    }
    if let Some(path) = &sasl.jaas_file {
        return from_jaas(path, &sasl.login_context).map(|l| Some((l, SASL_JAAS_FILE_KEY)));
    }
    if sasl.principal.is_some() {
        let login = SaslLogin::Kerberos {
            principal: sasl.principal.clone(),
            keytab: sasl.keytab.clone(),
        };
        return Ok(Some((login, KERBEROS_PRINCIPAL_KEY)));
    }
    Ok(None)
}

fn read(key: &'static str, path: &str) -> Result<String, ConnectError> {
    std::fs::read_to_string(path).map_err(|e| ConnectError::InvalidConfig {
        key,
        reason: format!("cannot read {path:?}: {e}"),
    })
}

fn from_jaas(path: &str, context: &str) -> Result<SaslLogin, ConnectError> {
    let text = read(SASL_JAAS_FILE_KEY, path)?;
    let bad = |reason: String| ConnectError::InvalidConfig {
        key: SASL_JAAS_FILE_KEY,
        reason: format!("{path:?}: {reason}"),
    };
    let sections = jaas::parse(&text).map_err(bad)?;
    let Some(entries) = sections.get(context) else {
        let names: Vec<&str> = sections.keys().map(String::as_str).collect();
        return Err(ConnectError::InvalidConfig {
            key: SASL_LOGIN_CONTEXT_KEY,
            reason: format!(
                "{path:?} has no section {context:?} (it has: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ),
        });
    };
    for entry in entries {
        if entry.is_module("DigestLoginModule") {
            let get = |name: &str| {
                entry.options.get(name).cloned().ok_or_else(|| {
                    bad(format!(
                        "section {context:?}: DigestLoginModule has no {name}=\"...\""
                    ))
                })
            };
            return Ok(SaslLogin::Digest {
                username: get("username")?,
                password: get("password")?,
            });
        }
        if entry.is_module("Krb5LoginModule") {
            return Ok(SaslLogin::Kerberos {
                principal: entry.options.get("principal").cloned(),
                keytab: entry.options.get("keyTab").cloned(),
            });
        }
    }
    Err(bad(format!(
        "section {context:?} has no DigestLoginModule or Krb5LoginModule entry"
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("tenure-sasl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn the_order_and_the_disable_switch() {
        let jaas = temp(
            "a.jaas",
            "Client { org.apache.zookeeper.server.auth.DigestLoginModule required username=\"j\" password=\"jp\"; };\nOther { x.DigestLoginModule required username=\"o\" password=\"op\"; };",
        );
        let mut s = ZooKeeperSasl {
            jaas_file: Some(jaas.clone()),
            ..ZooKeeperSasl::default()
        };
        let (login, key) = resolve(&s).unwrap().unwrap();
        assert_eq!(key, SASL_JAAS_FILE_KEY);
        assert_eq!(
            login,
            SaslLogin::Digest {
                username: "j".into(),
                password: "jp".into()
            }
        );
        s.login_context = "Other".into();
        let (login, _) = resolve(&s).unwrap().unwrap();
        assert!(matches!(login, SaslLogin::Digest { username, .. } if username == "o"));
        s.login_context = "Missing".into();
        let err = resolve(&s).unwrap_err().to_string();
        assert!(
            err.contains(SASL_LOGIN_CONTEXT_KEY) && err.contains("Client, Other"),
            "{err}"
        );
        s.username = Some("u".into());
        s.password_file = Some(temp("pw", "filepw\nignored\n"));
        let (login, key) = resolve(&s).unwrap().unwrap();
        assert_eq!(key, SASL_USERNAME_KEY);
        assert!(matches!(login, SaslLogin::Digest { password, .. } if password == "filepw"));
        s.disabled = true;
        assert!(resolve(&s).unwrap().is_none());
    }

    #[test]
    fn unreadable_and_malformed_files_name_the_key_and_path() {
        let s = ZooKeeperSasl {
            jaas_file: Some("/nonexistent/x.jaas".into()),
            ..ZooKeeperSasl::default()
        };
        let err = resolve(&s).unwrap_err().to_string();
        assert!(
            err.contains(SASL_JAAS_FILE_KEY) && err.contains("/nonexistent/x.jaas"),
            "{err}"
        );
        let bad = temp(
            "bad.jaas",
            "Client {\n x.DigestLoginModule required username=\"u\";\n};",
        );
        let s = ZooKeeperSasl {
            jaas_file: Some(bad.clone()),
            ..ZooKeeperSasl::default()
        };
        let err = resolve(&s).unwrap_err().to_string();
        assert!(err.contains(&bad) && err.contains("password"), "{err}");
        let s = ZooKeeperSasl {
            username: Some("u".into()),
            password_file: Some("/nonexistent/pw".into()),
            ..ZooKeeperSasl::default()
        };
        let err = resolve(&s).unwrap_err().to_string();
        assert!(err.contains(SASL_PASSWORD_FILE_KEY), "{err}");
    }

    #[test]
    fn debug_hides_the_password() {
        let login = SaslLogin::Digest {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{login:?}").contains("hunter2"));
    }
}
