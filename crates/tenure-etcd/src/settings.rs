//! The settings of the etcd backend, from an HA configuration or built in code.

use std::time::Duration;

use tenure_core::config::etcd_security::{
    ENDPOINTS_KEY, PASSWORD_FILE_KEY, PASSWORD_KEY, TLS_CA_FILE_KEY, TLS_CERT_FILE_KEY,
    TLS_KEY_FILE_KEY, USERNAME_KEY,
};
use tenure_core::config::{ConfigError, EtcdTls, HaConfig};
use tenure_core::connect::ConnectError;
use tenure_core::connection::SuspendedPolicy;
use tenure_core::segments::PathSegments;

use crate::auth::Credentials;
use crate::keys::Keys;

/// How to reach etcd and where the cluster's keys live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdSettings {
    /// Client URLs (`high-availability.etcd.endpoints`).
    pub endpoints: Vec<String>,
    /// The TTL of the process's lease (`high-availability.etcd.lease-ttl`), whole seconds, ≥ 1 s.
    pub lease_ttl: Duration,
    /// The root of every cluster's keys (`high-availability.etcd.path.root`).
    pub root: String,
    /// The cluster id (`high-availability.cluster-id`).
    pub cluster_id: String,
    /// Whether a suspended connection (renewals failing inside the TTL) revokes leadership
    /// (`high-availability.zookeeper.client.tolerate-suspended-connections`, shared with
    /// ZooKeeper).
    pub suspended_policy: SuspendedPolicy,
    /// How long connecting (and each request) may take before it is given up.
    pub request_timeout: Duration,
    /// A client-only session ([`for_client_only`](Self::for_client_only)): no lease, no
    /// latch, every write refused.
    pub client_only: bool,
    /// TLS (`high-availability.etcd.tls.*`): CA, client certificate and key files. TLS is on
    /// when a file is set or an endpoint is `https://`.
    pub tls: EtcdTls,
    /// The etcd user and password (`high-availability.etcd.username`, `.password` or
    /// `.password-file`); `None` without authentication.
    pub credentials: Option<Credentials>,
}

impl EtcdSettings {
    /// Settings for `endpoints` with the namespace `<root>/<cluster_id>` and Flink-like
    /// defaults (15 s lease, leadership revoked while suspended, 10 s request timeout).
    pub fn new(endpoints: Vec<String>, root: &str, cluster_id: &str) -> Self {
        Self {
            endpoints,
            lease_ttl: Duration::from_secs(15),
            root: root.to_owned(),
            cluster_id: cluster_id.to_owned(),
            suspended_policy: SuspendedPolicy::RevokeOnSuspended,
            request_timeout: Duration::from_secs(10),
            client_only: false,
            tls: EtcdTls::default(),
            credentials: None,
        }
    }

    /// The same settings for a process that only reads and follows leaders (a CLI, a REST
    /// gateway; Flink's `ClientHighAvailabilityServices`): the session grants no lease, so it
    /// leaves nothing on the server, joins no latch and refuses every write with
    /// [`KvError::Unauthorized`](tenure_core::kv::KvError::Unauthorized) before sending it.
    /// Its connection state follows a cheap read of the namespace every lease TTL / 3:
    /// `Connected` while it answers, `Suspended` while it does not (there is no lease to lose).
    pub fn for_client_only(mut self) -> Self {
        self.client_only = true;
        self
    }

    /// The settings of an HA configuration (`high-availability.etcd.*`,
    /// `high-availability.cluster-id`).
    pub fn from_ha_config(config: &HaConfig) -> Result<Self, ConnectError> {
        let mut s = Self::new(
            config.etcd.endpoints.clone(),
            &config.etcd.root,
            &config.cluster_id,
        );
        s.lease_ttl = config.etcd.lease_ttl;
        s.tls = config.etcd.tls.clone();
        s.credentials = config
            .etcd
            .auth
            .credentials()
            .map_err(config_error)?
            .map(|(user, password)| Credentials::new(user, password));
        if config.zookeeper.tolerate_suspended_connections {
            s.suspended_policy = SuspendedPolicy::TolerateSuspended;
        }
        s.validate()?;
        Ok(s)
    }

    /// With a lease TTL of `ttl` (rounded up to whole seconds when used).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// With `policy` for a suspended connection.
    pub fn with_suspended_policy(mut self, policy: SuspendedPolicy) -> Self {
        self.suspended_policy = policy;
        self
    }

    /// With TLS settings `tls` (PEM file paths).
    pub fn with_tls(mut self, tls: EtcdTls) -> Self {
        self.tls = tls;
        self
    }

    /// Authenticating as `username` with `password`.
    pub fn with_user(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::new(username, password));
        self
    }

    /// With a request (and connect) timeout of `timeout`.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The lease TTL in whole seconds (at least 1).
    pub fn lease_ttl_secs(&self) -> i64 {
        let secs = self.lease_ttl.as_secs() + u64::from(self.lease_ttl.subsec_nanos() > 0);
        i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
    }

    /// Checks the settings; the error names the config key that is wrong.
    pub fn validate(&self) -> Result<(), ConnectError> {
        self.keys().map(|_| ())
    }

    /// The keys of the namespace these settings name.
    pub fn keys(&self) -> Result<Keys, ConnectError> {
        if self.endpoints.is_empty() {
            return Err(ConnectError::InvalidConfig {
                key: "high-availability.etcd.endpoints",
                reason: "no endpoint given; etcd HA needs at least one URL such as \
                         http://127.0.0.1:2379"
                    .into(),
            });
        }
        self.tls.validate().map_err(config_error)?;
        self.tls
            .check_endpoints(&self.endpoints)
            .map_err(config_error)?;
        let root = PathSegments::parse_allow_root(&self.root).map_err(|e| {
            ConnectError::InvalidConfig {
                key: "high-availability.etcd.path.root",
                reason: format!("{:?}: {e}", self.root),
            }
        })?;
        let cluster =
            PathSegments::parse(&self.cluster_id).map_err(|e| ConnectError::InvalidConfig {
                key: "high-availability.cluster-id",
                reason: format!("{:?}: {e}", self.cluster_id),
            })?;
        Ok(Keys::new(&root, &cluster))
    }
}

/// A configuration error of the security keys as a [`ConnectError`] naming the same key.
fn config_error(e: ConfigError) -> ConnectError {
    let named = match &e {
        ConfigError::InvalidValue { key, .. } | ConfigError::Missing { key, .. } => key.as_str(),
        _ => "",
    };
    let key = [
        ENDPOINTS_KEY,
        TLS_CA_FILE_KEY,
        TLS_CERT_FILE_KEY,
        TLS_KEY_FILE_KEY,
        USERNAME_KEY,
        PASSWORD_KEY,
        PASSWORD_FILE_KEY,
    ]
    .into_iter()
    .find(|k| *k == named)
    .unwrap_or(USERNAME_KEY);
    ConnectError::InvalidConfig {
        key,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_key() {
        let s = EtcdSettings::new(Vec::new(), "/flink", "c");
        let e = s.validate().expect_err("no endpoints");
        assert!(
            e.to_string().contains("high-availability.etcd.endpoints"),
            "{e}"
        );
        let s = EtcdSettings::new(vec!["http://x".into()], "/flink", "a/../b");
        let e = s.validate().expect_err("bad cluster id");
        assert!(
            e.to_string().contains("high-availability.cluster-id"),
            "{e}"
        );
    }

    #[test]
    fn security_settings_are_checked_and_the_password_hidden() {
        let s = EtcdSettings::new(vec!["http://x:2379".into()], "/flink", "c").with_tls(EtcdTls {
            ca_file: Some("/ca.pem".into()),
            ..EtcdTls::default()
        });
        let e = s.validate().expect_err("plaintext endpoint with a CA file");
        assert!(e.to_string().contains("http://x:2379"), "{e}");
        let s = EtcdSettings::new(vec!["https://x:2379".into()], "/flink", "c").with_tls(EtcdTls {
            cert_file: Some("/c.pem".into()),
            ..EtcdTls::default()
        });
        let e = s.validate().expect_err("certificate without key");
        assert!(e.to_string().contains(TLS_KEY_FILE_KEY), "{e}");
        let s = EtcdSettings::new(vec!["http://x".into()], "/flink", "c").with_user("u", "hunter2");
        s.validate().expect("valid");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn the_ttl_is_whole_seconds_rounded_up() {
        let s = EtcdSettings::new(vec!["http://x".into()], "/flink", "c");
        assert_eq!(
            s.with_lease_ttl(Duration::from_millis(2500))
                .lease_ttl_secs(),
            3
        );
        let s = EtcdSettings::new(vec!["http://x".into()], "/flink", "c");
        assert_eq!(s.with_lease_ttl(Duration::ZERO).lease_ttl_secs(), 1);
    }
}
