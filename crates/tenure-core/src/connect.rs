//! Why a backend session could not be opened: one error for every backend.
//!
//! Each variant says which setting or which server is at fault and keeps the backend's own error
//! as its [`source`](std::error::Error::source), so callers can both show one line and walk the
//! chain down to the client library's error.
//!
//! ```
//! use std::error::Error;
//! use tenure_core::connect::ConnectError;
//!
//! let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
//! let e = ConnectError::Unreachable {
//!     service: "ZooKeeper",
//!     address: "zk1:2181".into(),
//!     attempts: 4,
//!     limit: None,
//!     source: Box::new(cause),
//! };
//! assert_eq!(e.to_string(), "cannot connect to ZooKeeper at zk1:2181 after 4 attempt(s): connection refused");
//! assert!(e.source().unwrap().downcast_ref::<std::io::Error>().is_some());
//! ```

use crate::kv::KvError;

/// A backend client's own error, kept as the source of a [`ConnectError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a backend could not be set up or connected.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A setting is invalid; `key` is the (Flink) config key.
    #[error("invalid value for {key}: {reason}")]
    InvalidConfig {
        /// The config key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No client configuration was found (Kubernetes: no kubeconfig, not in a cluster).
    #[error("no {service} client configuration: {}{source}", origin_prefix(.origin))]
    NoClientConfig {
        /// The service (`Kubernetes`).
        service: &'static str,
        /// Where the configuration was looked for, when it was named explicitly
        /// (`kubernetes.config.file "<path>"`).
        origin: Option<String>,
        /// The client's report.
        source: BoxError,
    },
    /// The server refused the credentials `setting` configures.
    #[error("{service} at {address} refused the credentials of {setting}: {source}")]
    AuthFailed {
        /// The service (`ZooKeeper`).
        service: &'static str,
        /// The servers tried.
        address: String,
        /// The config key of the credentials.
        setting: &'static str,
        /// The client's report.
        source: BoxError,
    },
    /// The TLS handshake failed: the server's certificate did not verify against the configured
    /// CA, or the server refused the client's certificate (or asked for one none was set).
    #[error("TLS with {service} at {address} failed: {source}")]
    Tls {
        /// The service (`ZooKeeper`).
        service: &'static str,
        /// The servers tried.
        address: String,
        /// The TLS library's report (which check failed, with the server).
        source: BoxError,
    },
    /// No session could be established within the attempts (and time) allowed.
    #[error(
        "cannot connect to {service} at {address} after {attempts} attempt(s): {source}{}",
        limit_suffix(.limit)
    )]
    Unreachable {
        /// The service (`ZooKeeper`, `the Kubernetes API server`).
        service: &'static str,
        /// The servers tried.
        address: String,
        /// How many attempts were made.
        attempts: u32,
        /// What ended the attempts, when it was not the attempt count (a timeout).
        limit: Option<String>,
        /// The last attempt's failure.
        source: BoxError,
    },
}

fn origin_prefix(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map_or_else(String::new, |o| format!("{o}: "))
}

fn limit_suffix(limit: &Option<String>) -> String {
    limit
        .as_ref()
        .map_or_else(String::new, |l| format!(" ({l})"))
}

impl ConnectError {
    /// Whether the configuration is at fault (fix the settings), rather than the servers.
    pub fn is_config(&self) -> bool {
        matches!(self, ConnectError::InvalidConfig { .. })
    }
}

/// A connect failure met where a KV error is expected (a new session opened inside an
/// operation): refused credentials stay an authorization failure, anything else is a backend
/// failure.
impl From<ConnectError> for KvError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::AuthFailed { .. } => KvError::Unauthorized {
                key: "/".into(),
                reason: e.to_string(),
            },
            e => KvError::Backend(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;
    use std::io;

    use super::*;

    fn cause(text: &str) -> BoxError {
        Box::new(io::Error::other(text.to_owned()))
    }

    #[test]
    fn messages_name_the_setting_or_the_servers_and_keep_the_source() {
        let e = ConnectError::AuthFailed {
            service: "ZooKeeper",
            address: "zk1:2181".into(),
            setting: "high-availability.zookeeper.client.digest",
            source: cause("AuthFailed"),
        };
        assert_eq!(
            e.to_string(),
            "ZooKeeper at zk1:2181 refused the credentials of \
             high-availability.zookeeper.client.digest: AuthFailed"
        );
        assert_eq!(e.source().unwrap().to_string(), "AuthFailed");
        assert!(matches!(
            KvError::from(e),
            KvError::Unauthorized { ref key, .. } if key == "/"
        ));

        let e = ConnectError::Unreachable {
            service: "ZooKeeper",
            address: "zk1:2181".into(),
            attempts: 2,
            limit: Some("the first connect gives up after 15s".into()),
            source: cause("timed out"),
        };
        assert_eq!(
            e.to_string(),
            "cannot connect to ZooKeeper at zk1:2181 after 2 attempt(s): timed out \
             (the first connect gives up after 15s)"
        );
        assert!(e.source().unwrap().downcast_ref::<io::Error>().is_some());
        assert!(matches!(KvError::from(e), KvError::Backend(_)));

        let e = ConnectError::NoClientConfig {
            service: "Kubernetes",
            origin: Some("kubernetes.config.file \"/x\"".into()),
            source: cause("no such file"),
        };
        assert_eq!(
            e.to_string(),
            "no Kubernetes client configuration: kubernetes.config.file \"/x\": no such file"
        );
        let e = ConnectError::InvalidConfig {
            key: "high-availability.zookeeper.quorum",
            reason: "not set".into(),
        };
        assert!(e.is_config() && e.source().is_none());
    }
}
