//! The ZooKeeper client settings, from Flink's `high-availability.zookeeper.*` keys.

use std::fmt;
use std::time::Duration;

use tenure_core::config::zk_security::{TLS_CERT_FILE_KEY, TLS_KEY_FILE_KEY};
use tenure_core::config::{
    HaConfig, ZooKeeperAcl, ZooKeeperAuth, ZooKeeperConfig, ZooKeeperSasl, ZooKeeperTls,
};
pub use tenure_core::connect::ConnectError;
use tenure_core::connection::SuspendedPolicy;
use tenure_core::retry::RetryPolicy;

use crate::paths::generate_zookeeper_path;

/// The config key of the quorum, named in errors.
pub const QUORUM_KEY: &str = "high-availability.zookeeper.quorum";

/// Everything needed to open ZooKeeper sessions for one cluster id.
#[derive(Clone, PartialEq, Eq)]
pub struct ZooKeeperSettings {
    /// `host:port,host:port[/chroot]`, whitespace removed.
    pub quorum: String,
    /// The cluster namespace, `<path.root>/<cluster-id>` as Flink's `generateZookeeperPath`
    /// builds it (`/flink/default`).
    pub namespace: String,
    /// The session timeout asked for (the server may negotiate it into its min/max bounds).
    pub session_timeout: Duration,
    /// How long one attempt to establish a session may take (Curator's connection timeout).
    /// A connection that stops answering is given up after 2/5 of the session timeout, the
    /// client's own rule, which plays the part of Curator's SUSPENDED detection.
    pub connection_timeout: Duration,
    /// Base sleep between connection attempts (doubled after each failed attempt, at most
    /// [`max_retry_wait`](Self::max_retry_wait)); also paces the attempts to open a new session
    /// after one expired.
    pub retry_wait: Duration,
    /// The longest sleep between connection attempts
    /// (`high-availability.zookeeper.client.max-retry-wait`, default 60 s).
    pub max_retry_wait: Duration,
    /// Connection attempts after the first one before [`ZooKeeperBackend::connect`] gives up.
    ///
    /// [`ZooKeeperBackend::connect`]: crate::ZooKeeperBackend::connect
    pub max_retry_attempts: u32,
    /// ACL of the znodes created.
    pub acl: ZooKeeperAcl,
    /// `user:password` for ZooKeeper digest authentication.
    pub digest_auth: Option<String>,
    /// Whether a suspended connection revokes leadership.
    pub suspended_policy: SuspendedPolicy,
    /// The znode below the namespace holding the layout's `jobgraphs/...` keys
    /// (`high-availability.zookeeper.path.jobgraphs`, one segment, default `jobgraphs`).
    pub job_graphs_dir: String,
    /// `high-availability.zookeeper.client.authorization`: `addAuth` entries of every session
    /// (after the digest of [`digest_auth`](Self::digest_auth), if any).
    pub authorization: Vec<ZooKeeperAuth>,
    /// `high-availability.zookeeper.client.max-close-wait`: how long
    /// [`close`](crate::ZooKeeperBackend) waits for the session to report closed.
    pub max_close_wait: Duration,
    /// `high-availability.zookeeper.client.simulated-session-expiration-percent` (1 to 100): a
    /// session disconnected for this share of its negotiated timeout is declared lost, and a
    /// new one is opened (Curator's simulated expiration).
    pub simulated_expiration_percent: u8,
    /// `high-availability.zookeeper.client.ensemble-tracker`: after a session opens, read the
    /// ensemble's client addresses from `/zookeeper/config` and open later sessions there
    /// (see [`crate::ensemble`]); false: always the configured quorum.
    pub ensemble_tracker: bool,
    /// TLS to the servers (PEM files, read at connect; needs the feature `tls`).
    pub tls: ZooKeeperTls,
    /// SASL authentication (credentials or files, read at connect).
    pub sasl: ZooKeeperSasl,
}

impl fmt::Debug for ZooKeeperSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperSettings")
            .field("quorum", &self.quorum)
            .field("namespace", &self.namespace)
            .field("session_timeout", &self.session_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("retry_wait", &self.retry_wait)
            .field("max_retry_wait", &self.max_retry_wait)
            .field("max_retry_attempts", &self.max_retry_attempts)
            .field("acl", &self.acl)
            .field(
                "digest_auth",
                &self.digest_auth.as_ref().map(|_| "<redacted>"),
            )
            .field("suspended_policy", &self.suspended_policy)
            .field("job_graphs_dir", &self.job_graphs_dir)
            .field("authorization", &self.authorization)
            .field("max_close_wait", &self.max_close_wait)
            .field(
                "simulated_expiration_percent",
                &self.simulated_expiration_percent,
            )
            .field("ensemble_tracker", &self.ensemble_tracker)
            .field("tls", &self.tls)
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl ZooKeeperSettings {
    /// Settings with Flink's defaults for `quorum` and the namespace `<root>/<cluster_id>`.
    pub fn new(quorum: impl Into<String>, root: &str, cluster_id: &str) -> Self {
        let d = ZooKeeperConfig::default();
        Self {
            quorum: quorum.into(),
            namespace: generate_zookeeper_path(&[root, cluster_id]),
            session_timeout: d.session_timeout,
            connection_timeout: d.connection_timeout,
            retry_wait: d.retry_wait,
            max_retry_wait: d.max_retry_wait,
            max_retry_attempts: d.max_retry_attempts,
            acl: d.acl,
            digest_auth: d.digest_auth,
            suspended_policy: SuspendedPolicy::RevokeOnSuspended,
            job_graphs_dir: d.job_graphs_path,
            authorization: d.authorization,
            max_close_wait: d.max_close_wait,
            simulated_expiration_percent: d.simulated_session_expiration_percent,
            ensemble_tracker: d.ensemble_tracker,
            tls: d.tls,
            sasl: d.sasl,
        }
    }

    /// Settings from the ZooKeeper keys and the cluster id (`high-availability.cluster-id`).
    pub fn from_config(zk: &ZooKeeperConfig, cluster_id: &str) -> Result<Self, ConnectError> {
        let quorum = zk
            .quorum
            .clone()
            .ok_or_else(|| ConnectError::InvalidConfig {
                key: QUORUM_KEY,
                reason: "not set; ZooKeeper HA needs the servers as host:port,host:port".into(),
            })?;
        let settings = Self {
            quorum,
            namespace: generate_zookeeper_path(&[&zk.root, cluster_id]),
            session_timeout: zk.session_timeout,
            connection_timeout: zk.connection_timeout,
            retry_wait: zk.retry_wait,
            max_retry_wait: zk.max_retry_wait,
            max_retry_attempts: zk.max_retry_attempts,
            acl: zk.acl,
            digest_auth: zk.digest_auth.clone(),
            suspended_policy: if zk.tolerate_suspended_connections {
                SuspendedPolicy::TolerateSuspended
            } else {
                SuspendedPolicy::RevokeOnSuspended
            },
            job_graphs_dir: zk.job_graphs_path.clone(),
            authorization: zk.authorization.clone(),
            max_close_wait: zk.max_close_wait,
            simulated_expiration_percent: zk.simulated_session_expiration_percent,
            ensemble_tracker: zk.ensemble_tracker,
            tls: zk.tls.clone(),
            sasl: zk.sasl.clone(),
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Settings from a whole HA configuration.
    pub fn from_ha_config(ha: &HaConfig) -> Result<Self, ConnectError> {
        Self::from_config(&ha.zookeeper, &ha.cluster_id)
    }

    /// Sets the session timeout.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Sets the connection timeout.
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Sets the retry wait and the number of retries of the first connection.
    pub fn with_retry(mut self, wait: Duration, max_retry_attempts: u32) -> Self {
        self.retry_wait = wait;
        self.max_retry_attempts = max_retry_attempts;
        self
    }

    /// Sets the longest sleep between connection attempts.
    pub fn with_max_retry_wait(mut self, max_wait: Duration) -> Self {
        self.max_retry_wait = max_wait;
        self
    }

    /// The backoff between connection attempts: `retry_wait` doubling up to `max_retry_wait`.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new(self.retry_wait, self.max_retry_wait)
    }

    /// Sets the suspended policy.
    pub fn with_suspended_policy(mut self, policy: SuspendedPolicy) -> Self {
        self.suspended_policy = policy;
        self
    }

    /// Sets the ACL and digest credentials (`user:password`).
    pub fn with_acl(mut self, acl: ZooKeeperAcl, digest_auth: Option<String>) -> Self {
        self.acl = acl;
        self.digest_auth = digest_auth;
        self
    }

    /// Adds an `addAuth` entry (`scheme`, credentials) sent by every new session.
    pub fn with_authorization(mut self, scheme: &str, credentials: &str) -> Self {
        self.authorization.push(ZooKeeperAuth {
            scheme: scheme.to_owned(),
            auth: credentials.to_owned(),
        });
        self
    }

    /// Sets how long closing waits for the session to report closed.
    pub fn with_max_close_wait(mut self, wait: Duration) -> Self {
        self.max_close_wait = wait;
        self
    }

    /// Sets the share (1 to 100) of the negotiated session timeout after which a disconnected
    /// session is declared lost.
    pub fn with_simulated_expiration_percent(mut self, percent: u8) -> Self {
        self.simulated_expiration_percent = percent;
        self
    }

    /// Sets whether later sessions follow the ensemble's `/zookeeper/config`.
    pub fn with_ensemble_tracker(mut self, track: bool) -> Self {
        self.ensemble_tracker = track;
        self
    }

    /// Sets TLS to the servers.
    pub fn with_tls(mut self, tls: ZooKeeperTls) -> Self {
        self.tls = tls;
        self
    }

    /// Sets SASL authentication.
    pub fn with_sasl(mut self, sasl: ZooKeeperSasl) -> Self {
        self.sasl = sasl;
        self
    }

    /// Checks the quorum string, the timeouts and the credentials; errors name the Flink key.
    pub fn validate(&self) -> Result<(), ConnectError> {
        validate_quorum(&self.quorum)?;
        let ms = |d: Duration| d.as_millis();
        if self.session_timeout.is_zero() || ms(self.session_timeout) > i32::MAX as u128 {
            return Err(ConnectError::InvalidConfig {
                key: "high-availability.zookeeper.client.session-timeout",
                reason: format!(
                    "{:?} is not a positive number of milliseconds that fits in 32 bits",
                    self.session_timeout
                ),
            });
        }
        if self.connection_timeout.is_zero() {
            return Err(ConnectError::InvalidConfig {
                key: "high-availability.zookeeper.client.connection-timeout",
                reason: "must be positive".into(),
            });
        }
        if self.max_retry_wait.is_zero() {
            return Err(ConnectError::InvalidConfig {
                key: "high-availability.zookeeper.client.max-retry-wait",
                reason: "must be positive".into(),
            });
        }
        let graphs_key = "high-availability.zookeeper.path.jobgraphs";
        match tenure_core::config::job_graphs_dir(graphs_key, &self.job_graphs_dir) {
            Ok(dir) if dir == self.job_graphs_dir => {}
            Ok(dir) => {
                return Err(ConnectError::InvalidConfig {
                    key: graphs_key,
                    reason: format!("write it as {dir:?}, without slashes"),
                });
            }
            Err(e) => {
                return Err(ConnectError::InvalidConfig {
                    key: graphs_key,
                    reason: e.to_string(),
                });
            }
        }
        if let Some(d) = &self.digest_auth
            && d.split_once(':').is_none_or(|(user, _)| user.is_empty())
        {
            return Err(ConnectError::InvalidConfig {
                key: "high-availability.zookeeper.client.digest",
                reason: "expected \"user:password\" with a non-empty user".into(),
            });
        }
        crate::client_options::validate(self)?;
        let digest_in_authorization = self
            .authorization
            .iter()
            .any(|a| a.scheme.eq_ignore_ascii_case("digest"));
        if self.acl == ZooKeeperAcl::Creator
            && self.digest_auth.is_none()
            && !digest_in_authorization
            && !self.sasl.active()
        {
            return Err(ConnectError::InvalidConfig {
                key: "high-availability.zookeeper.client.acl",
                reason: "\"creator\" needs an identity: SASL credentials \
                         (high-availability.zookeeper.client.sasl.*, not disabled by \
                         zookeeper.sasl.disable), high-availability.zookeeper.client.digest or \
                         a digest entry in high-availability.zookeeper.client.authorization; \
                         only the authenticated creator may use the znodes"
                    .into(),
            });
        }
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => {
                return Err(ConnectError::InvalidConfig {
                    key: TLS_KEY_FILE_KEY,
                    reason: format!("not set, and {TLS_CERT_FILE_KEY} is (both or neither)"),
                });
            }
            (None, Some(_)) => {
                return Err(ConnectError::InvalidConfig {
                    key: TLS_CERT_FILE_KEY,
                    reason: format!("not set, and {TLS_KEY_FILE_KEY} is (both or neither)"),
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// Checks `host:port,host:port[/chroot]` as configuration validation does
/// ([`validate_zookeeper_quorum`](tenure_core::config::validate_zookeeper_quorum): Java client
/// syntax, checked strictly; a missing port means 2181).
pub fn validate_quorum(quorum: &str) -> Result<(), ConnectError> {
    tenure_core::config::validate_zookeeper_quorum(quorum).map_err(|problem| {
        ConnectError::InvalidConfig {
            key: QUORUM_KEY,
            reason: format!("{quorum:?}: {problem}"),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tenure_core::config::Configuration;
    use tenure_core::segments::PathSegments;

    proptest! {
        /// Whatever strings are given as root and cluster id, either the configuration rejects
        /// them or the namespace is exactly `/<root segments>/<cluster id segments>`: never above
        /// the root, never a different cluster's.
        #[test]
        fn the_namespace_is_the_root_then_the_cluster_id(
            root in prop_oneof![Just("/".to_owned()), Just("/flink".to_owned()), ".{0,10}"],
            id in prop_oneof![Just("%2e%2e".to_owned()), Just("a/../b".to_owned()), ".{0,10}"],
        ) {
            let c = Configuration::from_pairs([
                ("high-availability.zookeeper.quorum", "127.0.0.1:2181"),
                ("high-availability.zookeeper.path.root", root.as_str()),
                ("high-availability.cluster-id", id.as_str()),
            ]);
            let Ok(ha) = HaConfig::from_configuration(&c) else {
                return Ok(());
            };
            let s = ZooKeeperSettings::from_ha_config(&ha).unwrap();
            let root_segs = PathSegments::parse_allow_root(&ha.zookeeper.root).unwrap();
            let id_segs = PathSegments::parse(&ha.cluster_id).unwrap();
            let expected: Vec<&str> = root_segs.iter().chain(id_segs.iter()).collect();
            prop_assert_eq!(s.namespace, format!("/{}", expected.join("/")));
        }
    }

    #[test]
    fn from_flink_keys() {
        let c = Configuration::from_pairs([
            ("high-availability.type", "zookeeper"),
            ("high-availability.storageDir", "file:///tmp/ha"),
            ("high-availability.zookeeper.quorum", "zk1:2181, zk2:2181"),
            ("high-availability.zookeeper.path.root", "/flink/"),
            ("high-availability.cluster-id", "/peer1"),
            ("high-availability.zookeeper.client.session-timeout", "4 s"),
            (
                "high-availability.zookeeper.client.tolerate-suspended-connections",
                "true",
            ),
        ]);
        let ha = HaConfig::from_configuration(&c).unwrap();
        let s = ZooKeeperSettings::from_ha_config(&ha).unwrap();
        assert_eq!(s.quorum, "zk1:2181,zk2:2181");
        assert_eq!(s.namespace, "/flink/peer1");
        assert_eq!(s.session_timeout, Duration::from_secs(4));
        assert_eq!(s.suspended_policy, SuspendedPolicy::TolerateSuspended);
        assert_eq!(s.connection_timeout, Duration::from_secs(15));
    }

    #[test]
    fn security_from_flink_and_tenure_keys() {
        let c = Configuration::from_pairs([
            ("high-availability.type", "zookeeper"),
            ("high-availability.storageDir", "file:///tmp/ha"),
            ("high-availability.zookeeper.quorum", "zk1:2281"),
            ("high-availability.zookeeper.client.acl", "creator"),
            ("zookeeper.client.secure", "true"),
            ("high-availability.zookeeper.client.tls.ca-file", "/ca.pem"),
            (
                "high-availability.zookeeper.client.sasl.jaas-file",
                "/c.jaas",
            ),
            ("zookeeper.sasl.login-context-name", "ZkClient"),
            ("zookeeper.sasl.service-name", "zk"),
        ]);
        let ha = HaConfig::from_configuration(&c).unwrap();
        let s = ZooKeeperSettings::from_ha_config(&ha).unwrap();
        assert!(s.tls.enabled() && s.tls.ca_file.as_deref() == Some("/ca.pem"));
        assert_eq!(s.sasl.jaas_file.as_deref(), Some("/c.jaas"));
        assert_eq!(s.sasl.login_context, "ZkClient");
        assert_eq!(s.sasl.service_name, "zk");
        assert_eq!(s.acl, ZooKeeperAcl::Creator);
    }

    #[test]
    fn bad_quorums_name_the_key() {
        for q in [
            "",
            ",",
            "h:0",
            "h:x",
            ":2181",
            "h:2181,,g:2181",
            "[::1:2181",
            "h:99999",
            "h:",
            "h:+1",
            "h:1:2",
            "h:1/a//b",
        ] {
            let err = validate_quorum(q).unwrap_err();
            assert!(err.to_string().contains(QUORUM_KEY), "{q:?}: {err}");
        }
        for q in [
            "h",
            "h:2181",
            "a:1,b:2",
            "a:1,b:2/chroot/x",
            "[::1]:2181",
            "127.0.0.1:2181",
        ] {
            validate_quorum(q).unwrap();
        }
    }

    #[test]
    fn the_creator_acl_needs_a_digest() {
        let s = ZooKeeperSettings::new("h:1", "/flink", "c").with_acl(ZooKeeperAcl::Creator, None);
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("client.acl") && err.contains("client.digest"),
            "{err}"
        );
        s.clone()
            .with_sasl(ZooKeeperSasl {
                username: Some("u".into()),
                password: Some("p".into()),
                ..ZooKeeperSasl::default()
            })
            .validate()
            .unwrap();
        s.with_acl(ZooKeeperAcl::Creator, Some("u:p".into()))
            .validate()
            .unwrap();
    }

    #[test]
    fn debug_hides_the_digest() {
        let s = ZooKeeperSettings::new("h:1", "/flink", "c")
            .with_acl(ZooKeeperAcl::Creator, Some("u:secret".into()));
        assert!(!format!("{s:?}").contains("secret"));
    }
}
