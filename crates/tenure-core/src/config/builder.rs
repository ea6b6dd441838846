//! A typed builder of [`HaConfig`] for code that does not start from a Flink configuration file.
//!
//! The builder records Flink key/value pairs and [`build`](HaConfigBuilder::build) reads them
//! with [`HaConfig::from_configuration`], so a configuration built in code is validated exactly
//! as the same settings written as Flink keys, and its errors name the Flink key. One builder
//! type per backend ([`ZooKeeper`], [`Kubernetes`], [`Embedded`]) offers that backend's setters
//! next to the common ones.
//!
//! ```no_run
//! use std::time::Duration;
//! use tenure_core::config::HaConfig;
//!
//! let config = HaConfig::zookeeper("zk1:2181,zk2:2181")
//!     .cluster_id("my-app")
//!     .storage_dir("/var/lib/my-app/ha")
//!     .session_timeout(Duration::from_secs(10))
//!     .build()?;
//! assert_eq!(config.zookeeper.session_timeout, Duration::from_secs(10));
//! # Ok::<(), tenure_core::config::ConfigError>(())
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use super::duration::format_duration;
use super::{
    CleanupStrategy, ConfigError, Configuration, HaConfig, NamingEra, ZooKeeperAcl, zk_security,
};

/// Marks a builder of ZooKeeper settings ([`HaConfig::zookeeper`]).
#[derive(Debug, Clone, Copy)]
pub struct ZooKeeper;

/// Marks a builder of Kubernetes settings ([`HaConfig::kubernetes`]).
#[derive(Debug, Clone, Copy)]
pub struct Kubernetes;

/// Marks a builder of the embedded, in-process mode ([`HaConfig::builder`]).
#[derive(Debug, Clone, Copy)]
pub struct Embedded;

/// Builds an [`HaConfig`] from typed setters; `B` ([`ZooKeeper`], [`Kubernetes`] or
/// [`Embedded`]) decides which backend's setters exist. Each setter records a Flink key
/// ([`configuration`](Self::configuration) shows them); [`build`](Self::build) validates them
/// all at once, exactly as [`HaConfig::from_configuration`] does.
#[derive(Debug, Clone)]
pub struct HaConfigBuilder<B> {
    conf: Configuration,
    backend: PhantomData<B>,
}

impl HaConfig {
    /// A builder for ZooKeeper HA (`high-availability.type: zookeeper`) with the servers
    /// `quorum` (`high-availability.zookeeper.quorum`: `host:port,host:port[/chroot]`).
    /// ZooKeeper HA needs a [storage directory](HaConfigBuilder::storage_dir) too.
    ///
    /// ```no_run
    /// use tenure_core::config::HaConfig;
    ///
    /// let config = HaConfig::zookeeper("zk1:2181")
    ///     .cluster_id("my-app")
    ///     .storage_dir("s3://bucket/ha")
    ///     .build()?;
    /// # Ok::<(), tenure_core::config::ConfigError>(())
    /// ```
    pub fn zookeeper(quorum: impl Into<String>) -> HaConfigBuilder<ZooKeeper> {
        HaConfigBuilder::with_mode("zookeeper")
            .set("high-availability.zookeeper.quorum", quorum.into())
    }

    /// A builder for Kubernetes HA (`high-availability.type: kubernetes`) whose ConfigMaps are
    /// named after `cluster_id` (`kubernetes.cluster-id`). Kubernetes HA needs a
    /// [storage directory](HaConfigBuilder::storage_dir) too.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tenure_core::config::{HaConfig, HaMode};
    ///
    /// let config = HaConfig::kubernetes("my-app")
    ///     .namespace("flink")
    ///     .storage_dir("s3://bucket/ha")
    ///     .lease_duration(Duration::from_secs(20))
    ///     .build()?;
    /// assert_eq!(config.mode, HaMode::Kubernetes);
    /// assert_eq!(config.kubernetes.cluster_id.as_deref(), Some("my-app"));
    /// # Ok::<(), tenure_core::config::ConfigError>(())
    /// ```
    pub fn kubernetes(cluster_id: impl Into<String>) -> HaConfigBuilder<Kubernetes> {
        HaConfigBuilder::with_mode("kubernetes").set("kubernetes.cluster-id", cluster_id.into())
    }

    /// A builder for the embedded, in-process mode (`high-availability.type: none`), the
    /// defaults of [`HaConfig::embedded`] to start from.
    ///
    /// ```
    /// use tenure_core::config::HaConfig;
    ///
    /// let config = HaConfig::builder().cluster_id("tests").num_retained_checkpoints(3).build()?;
    /// assert_eq!(config.cluster_id_segment(), "tests");
    /// assert_eq!(config.num_retained_checkpoints, 3);
    /// # Ok::<(), tenure_core::config::ConfigError>(())
    /// ```
    pub fn builder() -> HaConfigBuilder<Embedded> {
        HaConfigBuilder::with_mode("none")
    }
}

impl<B> HaConfigBuilder<B> {
    pub(super) fn with_mode(mode: &str) -> Self {
        Self {
            conf: Configuration::from_pairs([("high-availability.type", mode)]),
            backend: PhantomData,
        }
    }

    /// Sets any Flink key to `value` (for keys without a typed setter); a later setter of the
    /// same key wins. The value is validated by [`build`](Self::build) like any other.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.conf.set(key, value);
        self
    }

    pub(super) fn duration(self, key: &str, value: Duration) -> Self {
        self.set(key, format_duration(value))
    }

    /// The Flink keys recorded so far: what [`build`](Self::build) reads, and what a Flink
    /// configuration file with the same meaning would hold. Secrets are hidden in its `Debug`.
    pub fn configuration(&self) -> &Configuration {
        &self.conf
    }

    /// Validates the recorded keys with [`HaConfig::from_configuration`]: the same checks, and
    /// the same errors naming the Flink key, as a configuration file with these keys.
    pub fn build(&self) -> Result<HaConfig, ConfigError> {
        HaConfig::from_configuration(&self.conf)
    }

    /// Validates the recorded keys for a tool that only reads the backend, with
    /// [`HaConfig::from_configuration_for_reading`]: no storage directory is required.
    pub fn build_for_reading(&self) -> Result<HaConfig, ConfigError> {
        HaConfig::from_configuration_for_reading(&self.conf)
    }

    /// `high-availability.cluster-id`: the cluster's name, below which its keys and blobs live
    /// (default `/default`).
    pub fn cluster_id(self, id: impl Into<String>) -> Self {
        self.set("high-availability.cluster-id", id)
    }

    /// `high-availability.storageDir`: where job graphs, checkpoint metadata and other large
    /// payloads go (a local path, `file://`, or `s3://`, `gs://`, `az://` with the matching
    /// feature). Every process of the cluster must see the same storage.
    pub fn storage_dir(self, dir: impl Into<String>) -> Self {
        self.set("high-availability.storageDir", dir)
    }

    /// `job-result-store.storage-path`: where Flink's job result files go (default
    /// `<storageDir>/job-result-store/<cluster-id>`).
    pub fn job_result_store_path(self, path: impl Into<String>) -> Self {
        self.set("job-result-store.storage-path", path)
    }

    /// `job-result-store.delete-on-commit`: delete a job's result file when it is committed
    /// instead of marking it clean (default true).
    pub fn job_result_delete_on_commit(self, delete: bool) -> Self {
        self.set("job-result-store.delete-on-commit", delete.to_string())
    }

    /// `execution.checkpointing.num-retained`: completed checkpoints kept per job (default 1,
    /// at least 1).
    pub fn num_retained_checkpoints(self, n: usize) -> Self {
        self.set("execution.checkpointing.num-retained", n.to_string())
    }

    /// `cleanup-strategy.*`: how a failed job cleanup is retried (default: exponential delay
    /// from 1 s up to 1 h, no limit on retries). Records every key of `strategy`.
    pub fn cleanup_strategy(mut self, strategy: CleanupStrategy) -> Self {
        for (key, value) in strategy.to_pairs() {
            self = self.set(key, value);
        }
        self
    }

    /// `high-availability.tenure.flink-naming`: the key names of Flink 2.x (default) or 1.x.
    pub fn naming(self, naming: NamingEra) -> Self {
        let value = match naming {
            NamingEra::Flink1 => "1",
            NamingEra::Flink2 => "2",
        };
        self.set("high-availability.tenure.flink-naming", value)
    }
}

impl HaConfigBuilder<ZooKeeper> {
    /// `high-availability.zookeeper.path.root`: the root znode of every cluster's namespace
    /// (default `/flink`).
    pub fn root(self, root: impl Into<String>) -> Self {
        self.set("high-availability.zookeeper.path.root", root)
    }

    /// `high-availability.zookeeper.client.session-timeout` (default 60 s, Flink's): how long
    /// the servers keep the session (and so its leadership) of a process they stopped hearing
    /// from. Shorter hands leadership over sooner after a crash; too short loses leadership on
    /// a pause.
    pub fn session_timeout(self, timeout: Duration) -> Self {
        self.duration(
            "high-availability.zookeeper.client.session-timeout",
            timeout,
        )
    }

    /// `high-availability.zookeeper.client.connection-timeout` (default 15 s): the bound of the
    /// first connect, and of a read waiting for a new session after the session expired.
    pub fn connection_timeout(self, timeout: Duration) -> Self {
        self.duration(
            "high-availability.zookeeper.client.connection-timeout",
            timeout,
        )
    }

    /// `high-availability.zookeeper.client.retry-wait` (default 5 s): the first wait between
    /// connection attempts, doubling up to
    /// [`max_retry_wait`](Self::max_retry_wait).
    pub fn retry_wait(self, wait: Duration) -> Self {
        self.duration("high-availability.zookeeper.client.retry-wait", wait)
    }

    /// `high-availability.zookeeper.client.max-retry-wait` (default 60 s): the longest wait
    /// between connection attempts; at least [`retry_wait`](Self::retry_wait).
    pub fn max_retry_wait(self, wait: Duration) -> Self {
        self.duration("high-availability.zookeeper.client.max-retry-wait", wait)
    }

    /// `high-availability.zookeeper.client.max-retry-attempts` (default 3).
    pub fn max_retry_attempts(self, attempts: u32) -> Self {
        self.set(
            "high-availability.zookeeper.client.max-retry-attempts",
            attempts.to_string(),
        )
    }

    /// `high-availability.zookeeper.client.acl`: `Open` (default) or `Creator` (which needs
    /// [`digest_auth`](Self::digest_auth) or SASL credentials such as
    /// [`sasl_digest`](Self::sasl_digest)).
    pub fn acl(self, acl: ZooKeeperAcl) -> Self {
        let value = match acl {
            ZooKeeperAcl::Open => "open",
            ZooKeeperAcl::Creator => "creator",
        };
        self.set("high-availability.zookeeper.client.acl", value)
    }

    /// `high-availability.zookeeper.client.digest`: `user:password` for ZooKeeper digest
    /// authentication (hidden in `Debug` output).
    pub fn digest_auth(self, user_password: impl Into<String>) -> Self {
        self.set("high-availability.zookeeper.client.digest", user_password)
    }

    /// `high-availability.zookeeper.client.tolerate-suspended-connections` (default false):
    /// when true, only a lost session (not a suspended connection) revokes leadership.
    pub fn tolerate_suspended_connections(self, tolerate: bool) -> Self {
        self.set(
            "high-availability.zookeeper.client.tolerate-suspended-connections",
            tolerate.to_string(),
        )
    }

    /// `high-availability.zookeeper.client.ensemble-tracker` (default true); disable behind a
    /// virtual IP.
    pub fn ensemble_tracker(self, track: bool) -> Self {
        self.set(
            "high-availability.zookeeper.client.ensemble-tracker",
            track.to_string(),
        )
    }

    /// `high-availability.zookeeper.client.max-close-wait` (default 1 s): how long closing
    /// waits for the ZooKeeper session to close.
    pub fn max_close_wait(self, wait: Duration) -> Self {
        self.duration(super::zookeeper_client::MAX_CLOSE_WAIT_KEY, wait)
    }

    /// Adds an entry to `high-availability.zookeeper.client.authorization`: `scheme` with
    /// `credentials` (for `digest`: `user:password`), sent as `addAuth` by every session.
    pub fn authorization(self, scheme: &str, credentials: &str) -> Self {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let entry = format!("{}:{}", quote(scheme), quote(credentials));
        let key = super::zookeeper_client::AUTHORIZATION_KEY;
        let value = match self.conf.get(key) {
            Some(v) if !v.trim().is_empty() => format!("{v},{entry}"),
            _ => entry,
        };
        self.set(key, value)
    }

    /// `high-availability.zookeeper.client.simulated-session-expiration-percent` (1 to 100,
    /// default 100): a session disconnected for this share of its timeout is declared lost.
    pub fn simulated_session_expiration_percent(self, percent: u8) -> Self {
        self.set(
            super::zookeeper_client::SIMULATED_EXPIRATION_KEY,
            percent.to_string(),
        )
    }

    /// TLS to the servers, verified with the CA certificates in the PEM file `ca_file`
    /// (`high-availability.zookeeper.client.tls.ca-file`; TLS is on when it is set).
    pub fn tls_ca_file(self, ca_file: impl Into<String>) -> Self {
        self.set(zk_security::TLS_CA_FILE_KEY, ca_file)
    }

    /// `zookeeper.client.secure`: TLS to the servers; it needs
    /// [`tls_ca_file`](Self::tls_ca_file) (tenure trusts that file only).
    pub fn tls_secure(self, secure: bool) -> Self {
        self.set(zk_security::SECURE_KEY, secure.to_string())
    }

    /// A client certificate for mutual TLS: the PEM chain `cert_file` and its PEM key
    /// `key_file` (`...client.tls.cert-file`, `...client.tls.key-file`).
    pub fn tls_client_cert(
        self,
        cert_file: impl Into<String>,
        key_file: impl Into<String>,
    ) -> Self {
        self.set(zk_security::TLS_CERT_FILE_KEY, cert_file)
            .set(zk_security::TLS_KEY_FILE_KEY, key_file)
    }

    /// SASL DIGEST-MD5 credentials (`...client.sasl.username`, `...client.sasl.password`;
    /// hidden in `Debug` output).
    pub fn sasl_digest(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.set(zk_security::SASL_USERNAME_KEY, username)
            .set(zk_security::SASL_PASSWORD_KEY, password)
    }

    /// SASL credentials from the section `zookeeper.sasl.login-context-name` (default
    /// `Client`) of a JAAS file (`high-availability.zookeeper.client.sasl.jaas-file`).
    pub fn sasl_jaas_file(self, path: impl Into<String>) -> Self {
        self.set(zk_security::SASL_JAAS_FILE_KEY, path)
    }

    /// `zookeeper.sasl.disable`: when true, no SASL even if credentials are set.
    pub fn sasl_disable(self, disable: bool) -> Self {
        self.set(zk_security::SASL_DISABLE_KEY, disable.to_string())
    }
}

impl HaConfigBuilder<Kubernetes> {
    /// `kubernetes.namespace` of the HA ConfigMaps (default `default`).
    pub fn namespace(self, namespace: impl Into<String>) -> Self {
        self.set("kubernetes.namespace", namespace)
    }

    /// `high-availability.kubernetes.leader-election.lease-duration` (default 15 s): how long a
    /// leader's record holds without renewal.
    pub fn lease_duration(self, duration: Duration) -> Self {
        self.duration(
            "high-availability.kubernetes.leader-election.lease-duration",
            duration,
        )
    }

    /// `high-availability.kubernetes.leader-election.renew-deadline` (default 15 s).
    pub fn renew_deadline(self, deadline: Duration) -> Self {
        self.duration(
            "high-availability.kubernetes.leader-election.renew-deadline",
            deadline,
        )
    }

    /// `high-availability.kubernetes.leader-election.retry-period` (default 5 s).
    pub fn retry_period(self, period: Duration) -> Self {
        self.duration(
            "high-availability.kubernetes.leader-election.retry-period",
            period,
        )
    }

    /// `kubernetes.transactional-operation.max-retries` (default 5).
    pub fn max_retries(self, retries: u32) -> Self {
        self.set(
            "kubernetes.transactional-operation.max-retries",
            retries.to_string(),
        )
    }

    /// `kubernetes.config.file`: the kubeconfig to use instead of `$KUBECONFIG`,
    /// `~/.kube/config` or the in-cluster service account.
    pub fn config_file(self, path: impl Into<String>) -> Self {
        self.set("kubernetes.config.file", path)
    }

    /// `kubernetes.context`: the kubeconfig context to use instead of the current one.
    pub fn context(self, context: impl Into<String>) -> Self {
        self.set("kubernetes.context", context)
    }
}
