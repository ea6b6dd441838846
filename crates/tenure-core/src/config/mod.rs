//! Configuration with Flink's own keys, so that a Flink operator's config file means the same here.
//!
//! [`Configuration`] is the flat key/value view (`high-availability.type` → `zookeeper`), read from
//! a legacy `flink-conf.yaml` or a nested `config.yaml` ([`Configuration::from_file`]).
//! [`HaConfig`] is the typed, validated view of the HA keys (Flink's `HighAvailabilityOptions`,
//! `KubernetesHighAvailabilityOptions`, plus the tenure extensions for etcd). Unknown keys are
//! ignored; a bad value is an error that names the key, the value and what was expected.
//!
//! ```
//! use tenure_core::config::{Configuration, HaConfig, HaMode};
//!
//! let conf = Configuration::parse_yaml(
//!     "high-availability:\n  type: zookeeper\n  storageDir: hdfs:///flink/ha/\n  zookeeper:\n    quorum: zk1:2181, zk2:2181\n",
//! )?;
//! let ha = HaConfig::from_configuration(&conf)?;
//! assert_eq!(ha.mode, HaMode::ZooKeeper);
//! assert_eq!(ha.zookeeper.quorum.as_deref(), Some("zk1:2181,zk2:2181"));
//! assert_eq!(ha.cluster_id_segment(), "default");
//! # Ok::<(), tenure_core::config::ConfigError>(())
//! ```

pub mod duration;
mod parse;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use duration::parse_duration;

/// An error in configuration text or values. Every variant names what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key holds a value that cannot be used.
    #[error("invalid value {value:?} for {key}: expected {expected}")]
    InvalidValue {
        /// The key as it was set (the deprecated key if that is the one that was read).
        key: String,
        /// The offending value (`<redacted>` for secrets).
        value: String,
        /// What the key accepts.
        expected: String,
    },
    /// A key the chosen mode needs is not set.
    #[error("missing {key}: {reason}")]
    Missing {
        /// The key to set.
        key: String,
        /// Why it is needed.
        reason: String,
    },
    /// A line of a legacy `flink-conf.yaml` is malformed.
    #[error("line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// A standard-YAML configuration document is malformed or not a mapping.
    #[error("invalid YAML configuration: {message}")]
    Yaml {
        /// The parser's message, with its location when known.
        message: String,
    },
    /// A configuration file could not be read.
    #[error("cannot read {}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
}

/// A flat map of dotted configuration keys to string values, like Flink's `Configuration`.
///
/// Keys are kept sorted, so iteration order is stable. Values are stored as given; typed reading
/// and validation happen in [`HaConfig::from_configuration`]. `Debug` output hides the values of
/// keys that look secret (see [`Configuration::is_sensitive_key`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Configuration {
    entries: BTreeMap<String, String>,
}

impl Configuration {
    /// An empty configuration (every option at its default).
    pub fn new() -> Self {
        Self::default()
    }

    /// A configuration holding the given pairs; a later pair overrides an earlier one with the same key.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut conf = Self::new();
        conf.extend(pairs);
        conf
    }

    /// Sets `key` to `value`, replacing any previous value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.insert(key.into(), value.into());
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Removes `key`, returning its value if it was set.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.entries.remove(key)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The number of keys set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All `(key, value)` pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Parses Flink's legacy flat `flink-conf.yaml`: `key: value` lines, `#` comments (to the end
    /// of the line, anywhere), blank lines. A non-blank line without `": "` is an error naming
    /// its line number; a later line overrides an earlier one.
    pub fn parse_legacy(text: &str) -> Result<Self, ConfigError> {
        parse::parse_legacy(text).map(Self::from_pairs)
    }

    /// Parses a standard-YAML `config.yaml`, flattening nested mappings to dotted keys
    /// (`{high-availability: {type: zookeeper}}` gives `high-availability.type` = `zookeeper`).
    /// Scalars become their text, lists are joined with `;`, null values are left unset.
    pub fn parse_yaml(text: &str) -> Result<Self, ConfigError> {
        parse::parse_yaml(text).map(Self::from_pairs)
    }

    /// Reads a configuration file: a file named `flink-conf.yaml` is parsed with
    /// [`parse_legacy`](Self::parse_legacy), any other with [`parse_yaml`](Self::parse_yaml).
    /// I/O errors name the path.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        parse::read_file(path)
    }

    /// Whether the value of `key` should be hidden in logs and `Debug` output (passwords,
    /// secrets, tokens, ZooKeeper digest credentials), after Flink's `GlobalConfiguration.isSensitive`.
    pub fn is_sensitive_key(key: &str) -> bool {
        const MARKERS: [&str; 11] = [
            "password",
            "secret",
            "token",
            "digest",
            "apikey",
            "api-key",
            "auth-params",
            "service-key",
            "basic-auth",
            "jaas.config",
            "account.key",
        ];
        let key = key.to_lowercase();
        MARKERS.iter().any(|m| key.contains(m))
    }

    /// The first of `key`, then `deprecated` (in order) that is set, with its value.
    fn lookup<'a>(&'a self, key: &'a str, deprecated: &[&'a str]) -> Option<(&'a str, &'a str)> {
        std::iter::once(key)
            .chain(deprecated.iter().copied())
            .find_map(|k| self.get(k).map(|v| (k, v)))
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Configuration {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, pairs: I) {
        for (k, v) in pairs {
            self.set(k, v);
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Configuration {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        Self::from_pairs(pairs)
    }
}

impl fmt::Debug for Configuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| {
                let shown = if Self::is_sensitive_key(k) {
                    "<redacted>"
                } else {
                    v
                };
                (k, shown)
            }))
            .finish()
    }
}

/// Which high-availability backend to run (Flink's `HighAvailabilityMode`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HaMode {
    /// No HA: embedded, in-process services (Flink `NONE`; legacy value `standalone`).
    None,
    /// ZooKeeper (Flink `ZOOKEEPER`).
    ZooKeeper,
    /// Kubernetes ConfigMaps and leases (Flink `KUBERNETES`).
    Kubernetes,
    /// etcd (tenure extension, value `etcd`).
    Etcd,
    /// A user-registered backend factory of this name (Flink `FACTORY_CLASS`: the value is the
    /// name of a `HighAvailabilityServicesFactory`).
    Custom(String),
}

/// Flink's Kubernetes HA factory class, which pre-1.16 docs told users to set as the mode.
const KUBERNETES_FACTORY_CLASS: &str =
    "org.apache.flink.kubernetes.highavailability.KubernetesHaServicesFactory";

impl HaMode {
    /// Reads a mode value case-insensitively, as Flink's `valueOf(toUpperCase())`: `none` and
    /// `standalone` ⇒ [`None`](Self::None), `zookeeper`, `kubernetes` (also Flink's Kubernetes
    /// factory class name), `etcd`; any other non-blank value ⇒ [`Custom`](Self::Custom) with the
    /// trimmed value. A blank value gives `None` (the Rust `Option`).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        Some(match value.to_lowercase().as_str() {
            "" => return None,
            "none" | "standalone" => Self::None,
            "zookeeper" => Self::ZooKeeper,
            "kubernetes" => Self::Kubernetes,
            "etcd" => Self::Etcd,
            _ if value == KUBERNETES_FACTORY_CLASS => Self::Kubernetes,
            _ => Self::Custom(value.to_owned()),
        })
    }

    /// Whether HA is on (every mode but [`None`](Self::None)); Flink's `isHighAvailabilityModeActivated`.
    pub fn is_high_availability(&self) -> bool {
        *self != Self::None
    }
}

/// ACL on the znodes tenure creates (`high-availability.zookeeper.client.acl`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ZooKeeperAcl {
    /// `open`: world-readable and writable (`OPEN_ACL_UNSAFE`), the default.
    #[default]
    Open,
    /// `creator`: all rights to the authenticated creator only (`CREATOR_ALL_ACL`).
    Creator,
}

/// ZooKeeper client settings (Flink's `high-availability.zookeeper.*` keys).
#[derive(Clone, PartialEq, Eq)]
pub struct ZooKeeperConfig {
    /// `high-availability.zookeeper.quorum` (`recovery.zookeeper.quorum`): `host:port,...` with
    /// whitespace removed (and `;` from a YAML list turned into `,`); `None` when unset or blank.
    pub quorum: Option<String>,
    /// `high-availability.zookeeper.path.root` (`recovery.zookeeper.path.root`), default `/flink`.
    pub root: String,
    /// `high-availability.zookeeper.client.session-timeout`, default 60 s; must be positive.
    pub session_timeout: Duration,
    /// `high-availability.zookeeper.client.connection-timeout`, default 15 s; must be positive.
    pub connection_timeout: Duration,
    /// `high-availability.zookeeper.client.retry-wait`: base sleep of the exponential backoff, default 5 s.
    pub retry_wait: Duration,
    /// `high-availability.zookeeper.client.max-retry-attempts`, default 3.
    pub max_retry_attempts: u32,
    /// `high-availability.zookeeper.client.acl`: `open` (default) or `creator`.
    pub acl: ZooKeeperAcl,
    /// `high-availability.zookeeper.client.tolerate-suspended-connections`, default false: when
    /// true only a lost session (not a suspended connection) revokes leadership.
    pub tolerate_suspended_connections: bool,
    /// `high-availability.zookeeper.client.ensemble-tracker`, default true; disable behind a VIP.
    pub ensemble_tracker: bool,
    /// `high-availability.zookeeper.path.jobgraphs`, default `/jobgraphs` (informational).
    pub job_graphs_path: String,
    /// tenure key `high-availability.zookeeper.client.digest`: `user:password` for ZooKeeper
    /// digest authentication. Hidden in `Debug` output.
    pub digest_auth: Option<String>,
}

impl Default for ZooKeeperConfig {
    fn default() -> Self {
        Self {
            quorum: None,
            root: "/flink".to_owned(),
            session_timeout: Duration::from_secs(60),
            connection_timeout: Duration::from_secs(15),
            retry_wait: Duration::from_secs(5),
            max_retry_attempts: 3,
            acl: ZooKeeperAcl::Open,
            tolerate_suspended_connections: false,
            ensemble_tracker: true,
            job_graphs_path: "/jobgraphs".to_owned(),
            digest_auth: None,
        }
    }
}

impl fmt::Debug for ZooKeeperConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperConfig")
            .field("quorum", &self.quorum)
            .field("root", &self.root)
            .field("session_timeout", &self.session_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("retry_wait", &self.retry_wait)
            .field("max_retry_attempts", &self.max_retry_attempts)
            .field("acl", &self.acl)
            .field(
                "tolerate_suspended_connections",
                &self.tolerate_suspended_connections,
            )
            .field("ensemble_tracker", &self.ensemble_tracker)
            .field("job_graphs_path", &self.job_graphs_path)
            .field(
                "digest_auth",
                &self.digest_auth.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Kubernetes HA settings (Flink's `KubernetesHighAvailabilityOptions` and `KubernetesConfigOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// `kubernetes.namespace` of the HA ConfigMaps, default `default`.
    pub namespace: String,
    /// `kubernetes.cluster-id`: prefix of the HA ConfigMap names; required in Kubernetes mode.
    pub cluster_id: Option<String>,
    /// `high-availability.kubernetes.leader-election.lease-duration`, default 15 s.
    pub lease_duration: Duration,
    /// `high-availability.kubernetes.leader-election.renew-deadline`, default 15 s.
    pub renew_deadline: Duration,
    /// `high-availability.kubernetes.leader-election.retry-period`, default 5 s.
    pub retry_period: Duration,
    /// `kubernetes.transactional-operation.max-retries` of a compare-and-swap update, default 5.
    pub max_retries: u32,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            namespace: "default".to_owned(),
            cluster_id: None,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(15),
            retry_period: Duration::from_secs(5),
            max_retries: 5,
        }
    }
}

/// etcd settings (tenure extension; keys under `high-availability.etcd.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `high-availability.etcd.endpoints`: comma- (or `;`-) separated URLs, default none.
    pub endpoints: Vec<String>,
    /// `high-availability.etcd.lease-ttl`, default 15 s; at least 1 s (etcd TTLs are whole seconds).
    pub lease_ttl: Duration,
    /// `high-availability.etcd.path.root`, default `/flink`.
    pub root: String,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            lease_ttl: Duration::from_secs(15),
            root: "/flink".to_owned(),
        }
    }
}

pub use crate::layout::NamingEra;

/// The typed, validated HA configuration. Field docs name the Flink key each comes from
/// (deprecated keys in parentheses are read when the current key is unset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// `high-availability.type` (`high-availability`, `recovery.mode`), default none.
    pub mode: HaMode,
    /// `high-availability.cluster-id` (`high-availability.zookeeper.path.namespace`,
    /// `recovery.zookeeper.path.namespace`), Flink's raw value, default `/default`. Must have a
    /// non-empty [segment](Self::cluster_id_segment) without `.` or `..` parts.
    pub cluster_id: String,
    /// `high-availability.storageDir` (`high-availability.zookeeper.storageDir`,
    /// `recovery.zookeeper.storageDir`): where job graphs, checkpoint metadata and blobs go.
    pub storage_dir: Option<String>,
    /// `job-result-store.storage-path` as set; see [`HaConfig::job_result_store_path`] for the default.
    pub job_result_store_path: Option<String>,
    /// `job-result-store.delete-on-commit`, default true.
    pub job_result_delete_on_commit: bool,
    /// `execution.checkpointing.num-retained` (`state.checkpoints.num-retained`), default 1, at least 1.
    pub num_retained_checkpoints: usize,
    /// `high-availability.tenure.flink-naming`: `2` (default) or `1`.
    pub naming: NamingEra,
    /// ZooKeeper settings (read and validated in every mode).
    pub zookeeper: ZooKeeperConfig,
    /// Kubernetes settings (read and validated in every mode).
    pub kubernetes: KubernetesConfig,
    /// etcd settings (read and validated in every mode).
    pub etcd: EtcdConfig,
}

impl Default for HaConfig {
    fn default() -> Self {
        Self::embedded()
    }
}

const DURATION: &str = "a duration such as \"60 s\" or milliseconds";
const POSITIVE_DURATION: &str = "a positive duration such as \"60 s\" or milliseconds";

fn invalid(key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

// Typed reads: `(key, deprecated keys)`; the default applies when none is set.
impl Configuration {
    fn string_or(&self, key: &str, deprecated: &[&str], default: &str) -> String {
        self.lookup(key, deprecated)
            .map_or(default, |(_, v)| v)
            .to_owned()
    }

    fn non_blank(&self, key: &str, deprecated: &[&str]) -> Option<String> {
        let (_, value) = self.lookup(key, deprecated)?;
        Some(value.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.lookup(key, &[]) {
            None => Ok(default),
            Some((_, v)) if v.trim().eq_ignore_ascii_case("true") => Ok(true),
            Some((_, v)) if v.trim().eq_ignore_ascii_case("false") => Ok(false),
            Some((k, v)) => Err(invalid(k, v, "true or false")),
        }
    }

    fn int_or<T: std::str::FromStr>(
        &self,
        key: &str,
        dep: &[&str],
        default: T,
    ) -> Result<T, ConfigError> {
        match self.lookup(key, dep) {
            None => Ok(default),
            Some((k, v)) => v
                .trim()
                .parse()
                .map_err(|_| invalid(k, v, "a non-negative integer")),
        }
    }

    fn duration_or(
        &self,
        key: &str,
        dep: &[&str],
        default: Duration,
        min: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some((k, v)) = self.lookup(key, dep) else {
            return Ok(default);
        };
        match parse_duration(v) {
            Ok(d) if d >= min => Ok(d),
            Ok(_) if min == POSITIVE => Err(invalid(k, v, POSITIVE_DURATION)),
            Ok(_) => Err(invalid(
                k,
                v,
                &format!("a duration of at least {}", duration::format_duration(min)),
            )),
            Err(_) => Err(invalid(k, v, DURATION)),
        }
    }
}

const ZK: &str = "high-availability.zookeeper.";
const POSITIVE: Duration = Duration::from_nanos(1);

impl HaConfig {
    /// Reads and validates every HA key of `c` (bad values are errors in any mode), then checks
    /// that the chosen mode has what it needs ([`validate_for_mode`](Self::validate_for_mode)).
    /// Unknown keys are ignored. Never panics.
    pub fn from_configuration(c: &Configuration) -> Result<Self, ConfigError> {
        let mode = match c.lookup(
            "high-availability.type",
            &["high-availability", "recovery.mode"],
        ) {
            None => HaMode::None,
            Some((k, v)) => HaMode::parse(v).ok_or_else(|| {
                invalid(
                    k,
                    v,
                    "none, zookeeper, kubernetes, etcd or the name of a registered backend factory",
                )
            })?,
        };
        let (cid_key, cid_deprecated) = (
            "high-availability.cluster-id",
            [
                "high-availability.zookeeper.path.namespace",
                "recovery.zookeeper.path.namespace",
            ],
        );
        let cluster_id = c.string_or(cid_key, &cid_deprecated, "/default");
        let segment = cluster_id.trim_matches('/');
        if segment.is_empty()
            || segment
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            let key = c
                .lookup(cid_key, &cid_deprecated)
                .map_or(cid_key, |(k, _)| k);
            return Err(invalid(
                key,
                &cluster_id,
                "a non-empty cluster id without empty, \".\" or \"..\" path segments",
            ));
        }
        let naming = match c.lookup("high-availability.tenure.flink-naming", &[]) {
            None => NamingEra::Flink2,
            Some((_, v)) if v.trim() == "2" => NamingEra::Flink2,
            Some((_, v)) if v.trim() == "1" => NamingEra::Flink1,
            Some((k, v)) => {
                return Err(invalid(
                    k,
                    v,
                    "\"2\" (Flink 2.x names) or \"1\" (Flink 1.x names)",
                ));
            }
        };
        let num_retained_checkpoints = c.int_or(
            "execution.checkpointing.num-retained",
            &["state.checkpoints.num-retained"],
            1usize,
        )?;
        if num_retained_checkpoints == 0 {
            let (k, v) = c
                .lookup(
                    "execution.checkpointing.num-retained",
                    &["state.checkpoints.num-retained"],
                )
                .unwrap_or(("execution.checkpointing.num-retained", "0"));
            return Err(invalid(k, v, "an integer of at least 1"));
        }
        let config = Self {
            mode,
            cluster_id,
            storage_dir: c.non_blank(
                "high-availability.storageDir",
                &[
                    "high-availability.zookeeper.storageDir",
                    "recovery.zookeeper.storageDir",
                ],
            ),
            job_result_store_path: c.non_blank("job-result-store.storage-path", &[]),
            job_result_delete_on_commit: c.bool_or("job-result-store.delete-on-commit", true)?,
            num_retained_checkpoints,
            naming,
            zookeeper: read_zookeeper(c)?,
            kubernetes: read_kubernetes(c)?,
            etcd: read_etcd(c)?,
        };
        if config.mode == HaMode::ZooKeeper && config.zookeeper.acl == ZooKeeperAcl::Creator {
            let sasl_disabled = c.bool_or("zookeeper.sasl.disable", false)?;
            if sasl_disabled && config.zookeeper.digest_auth.is_none() {
                return Err(invalid(
                    "high-availability.zookeeper.client.acl",
                    "creator",
                    "\"open\" while zookeeper.sasl.disable is true and no \
                     high-availability.zookeeper.client.digest is set (nobody could authenticate as creator)",
                ));
            }
        }
        config.validate_for_mode()?;
        Ok(config)
    }

    /// All defaults, mode [`HaMode::None`]: the embedded, in-process services.
    pub fn embedded() -> Self {
        Self {
            mode: HaMode::None,
            cluster_id: "/default".to_owned(),
            storage_dir: None,
            job_result_store_path: None,
            job_result_delete_on_commit: true,
            num_retained_checkpoints: 1,
            naming: NamingEra::Flink2,
            zookeeper: ZooKeeperConfig::default(),
            kubernetes: KubernetesConfig::default(),
            etcd: EtcdConfig::default(),
        }
    }

    /// The cluster id without leading and trailing `/` (`"/default"` ⇒ `"default"`), for use as
    /// one path segment (Flink's `generateZookeeperPath` trims segments the same way).
    pub fn cluster_id_segment(&self) -> String {
        self.cluster_id.trim_matches('/').to_owned()
    }

    /// Where the job result store lives: `job-result-store.storage-path` if set, else
    /// `<storageDir>/job-result-store/<cluster id segment>` (joined without doubled `/`, keeping a
    /// URI scheme's `//`); `None` without either.
    pub fn job_result_store_path(&self) -> Option<String> {
        if let Some(path) = &self.job_result_store_path {
            return Some(path.clone());
        }
        let dir = self.storage_dir.as_deref()?;
        let trimmed = dir.trim_end_matches('/');
        let base = if trimmed.is_empty() || trimmed.ends_with(':') {
            dir
        } else {
            trimmed
        };
        let sep = if base.ends_with('/') { "" } else { "/" };
        Some(format!(
            "{base}{sep}job-result-store/{}",
            self.cluster_id_segment()
        ))
    }

    /// Checks that the mode has the keys it needs: ZooKeeper needs a quorum and a storage dir;
    /// Kubernetes needs a storage dir and `kubernetes.cluster-id` (as Flink does); etcd needs an
    /// endpoint. `None` and custom modes need nothing here.
    pub fn validate_for_mode(&self) -> Result<(), ConfigError> {
        let missing = |key: &str, reason: &str| {
            Err(ConfigError::Missing {
                key: key.to_owned(),
                reason: reason.to_owned(),
            })
        };
        let storage_reason = |mode: &str| {
            format!(
                "{mode} HA keeps job graphs, checkpoint metadata and blobs under the storage directory"
            )
        };
        match self.mode {
            HaMode::ZooKeeper if self.zookeeper.quorum.is_none() => missing(
                "high-availability.zookeeper.quorum",
                "ZooKeeper HA needs the ZooKeeper servers as host:port,host:port",
            ),
            HaMode::ZooKeeper | HaMode::Kubernetes if self.storage_dir.is_none() => {
                let mode = if self.mode == HaMode::ZooKeeper {
                    "ZooKeeper"
                } else {
                    "Kubernetes"
                };
                missing("high-availability.storageDir", &storage_reason(mode))
            }
            HaMode::Kubernetes if self.kubernetes.cluster_id.is_none() => missing(
                "kubernetes.cluster-id",
                "Kubernetes HA names its ConfigMaps after the cluster id",
            ),
            HaMode::Etcd if self.etcd.endpoints.is_empty() => missing(
                "high-availability.etcd.endpoints",
                "etcd HA needs at least one endpoint URL such as http://127.0.0.1:2379",
            ),
            _ => Ok(()),
        }
    }
}

fn read_zookeeper(c: &Configuration) -> Result<ZooKeeperConfig, ConfigError> {
    let d = ZooKeeperConfig::default();
    let key = |suffix: &str| format!("{ZK}{suffix}");
    let old = |suffix: &str| format!("recovery.zookeeper.{suffix}");
    let dur = |suffix: &str, default: Duration, min: Duration| {
        c.duration_or(&key(suffix), &[&old(suffix)], default, min)
    };
    let quorum = c.lookup(&key("quorum"), &[&old("quorum")]).map(|(_, v)| {
        v.chars()
            .filter(|ch| !ch.is_whitespace())
            .map(|ch| if ch == ';' { ',' } else { ch })
            .collect::<String>()
    });
    let acl = match c.lookup(&key("client.acl"), &[]) {
        None => ZooKeeperAcl::Open,
        Some((_, v)) if v.trim().eq_ignore_ascii_case("open") => ZooKeeperAcl::Open,
        Some((_, v)) if v.trim().eq_ignore_ascii_case("creator") => ZooKeeperAcl::Creator,
        Some((k, v)) => return Err(invalid(k, v, "\"open\" or \"creator\"")),
    };
    let digest_auth = match c.lookup(&key("client.digest"), &[]) {
        None => None,
        Some((_, v)) if v.split_once(':').is_some_and(|(user, _)| !user.is_empty()) => {
            Some(v.to_owned())
        }
        Some((k, _)) => {
            return Err(invalid(
                k,
                "<redacted>",
                "\"user:password\" with a non-empty user",
            ));
        }
    };
    Ok(ZooKeeperConfig {
        quorum: quorum.filter(|q| !q.is_empty()),
        root: c.string_or(&key("path.root"), &[&old("path.root")], &d.root),
        session_timeout: dur("client.session-timeout", d.session_timeout, POSITIVE)?,
        connection_timeout: dur("client.connection-timeout", d.connection_timeout, POSITIVE)?,
        retry_wait: dur("client.retry-wait", d.retry_wait, Duration::ZERO)?,
        max_retry_attempts: c.int_or(
            &key("client.max-retry-attempts"),
            &[&old("client.max-retry-attempts")],
            d.max_retry_attempts,
        )?,
        acl,
        tolerate_suspended_connections: c
            .bool_or(&key("client.tolerate-suspended-connections"), false)?,
        ensemble_tracker: c.bool_or(&key("client.ensemble-tracker"), true)?,
        job_graphs_path: c.string_or(
            &key("path.jobgraphs"),
            &[&old("path.jobgraphs")],
            &d.job_graphs_path,
        ),
        digest_auth,
    })
}

fn read_kubernetes(c: &Configuration) -> Result<KubernetesConfig, ConfigError> {
    let d = KubernetesConfig::default();
    let le = "high-availability.kubernetes.leader-election.";
    let dur = |suffix: &str, default: Duration| {
        c.duration_or(&format!("{le}{suffix}"), &[], default, POSITIVE)
    };
    let raw_namespace = c.string_or("kubernetes.namespace", &[], &d.namespace);
    let namespace = raw_namespace.trim().to_owned();
    if namespace.is_empty() {
        return Err(invalid(
            "kubernetes.namespace",
            &raw_namespace,
            "a non-empty namespace",
        ));
    }
    Ok(KubernetesConfig {
        namespace,
        cluster_id: c.non_blank("kubernetes.cluster-id", &[]),
        lease_duration: dur("lease-duration", d.lease_duration)?,
        renew_deadline: dur("renew-deadline", d.renew_deadline)?,
        retry_period: dur("retry-period", d.retry_period)?,
        max_retries: c.int_or(
            "kubernetes.transactional-operation.max-retries",
            &[],
            d.max_retries,
        )?,
    })
}

fn read_etcd(c: &Configuration) -> Result<EtcdConfig, ConfigError> {
    let d = EtcdConfig::default();
    let endpoints = c
        .lookup("high-availability.etcd.endpoints", &[])
        .map_or_else(Vec::new, |(_, v)| {
            v.split([',', ';'])
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect()
        });
    Ok(EtcdConfig {
        endpoints,
        lease_ttl: c.duration_or(
            "high-availability.etcd.lease-ttl",
            &[],
            d.lease_ttl,
            Duration::from_secs(1),
        )?,
        root: c.string_or("high-availability.etcd.path.root", &[], &d.root),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn set_get_override_and_iterate_in_order() {
        let mut c = Configuration::from_pairs([("b", "2"), ("a", "1"), ("b", "3")]);
        assert_eq!(c.get("b"), Some("3"));
        c.set("c", String::from("4"));
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            vec![("a", "1"), ("b", "3"), ("c", "4")]
        );
        assert_eq!(c.len(), 3);
        assert_eq!(c.remove("a").as_deref(), Some("1"));
        assert!(!c.contains_key("a"));
        assert!(Configuration::new().is_empty());
        let collected: Configuration = [("x", "y")].into_iter().collect();
        assert_eq!(collected.get("x"), Some("y"));
    }

    #[test]
    fn lookup_prefers_the_current_key_then_deprecated_in_order() {
        let c = Configuration::from_pairs([("old2", "b"), ("old1", "a")]);
        assert_eq!(c.lookup("new", &["old1", "old2"]), Some(("old1", "a")));
        let c = Configuration::from_pairs([("old2", "b"), ("new", "n")]);
        assert_eq!(c.lookup("new", &["old1", "old2"]), Some(("new", "n")));
        assert_eq!(c.lookup("none", &[]), None);
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Configuration::from_pairs([
            ("high-availability.zookeeper.client.digest", "user:hunter2"),
            ("s3.secret-key", "abc"),
            ("high-availability.type", "zookeeper"),
        ]);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("abc"),
            "{shown}"
        );
        assert!(shown.contains("zookeeper"), "{shown}");
    }

    #[test]
    fn error_messages() {
        let e = ConfigError::InvalidValue {
            key: "k".into(),
            value: "abc".into(),
            expected: "a number".into(),
        };
        assert_eq!(
            e.to_string(),
            "invalid value \"abc\" for k: expected a number"
        );
        let e = ConfigError::Io {
            path: PathBuf::from("/etc/flink/config.yaml"),
            message: "not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot read /etc/flink/config.yaml: not found"
        );
    }

    fn ha(pairs: &[(&str, &str)]) -> Result<HaConfig, ConfigError> {
        HaConfig::from_configuration(&Configuration::from_pairs(pairs.iter().copied()))
    }

    const ZK_BASE: [(&str, &str); 3] = [
        ("high-availability.type", "zookeeper"),
        ("high-availability.zookeeper.quorum", "zk1:2181"),
        ("high-availability.storageDir", "file:///tmp/ha"),
    ];

    fn zk(extra: &[(&str, &str)]) -> Result<HaConfig, ConfigError> {
        ha(&[&ZK_BASE[..], extra].concat())
    }

    fn invalid_key(err: ConfigError) -> String {
        match err {
            ConfigError::InvalidValue { key, .. } => key,
            other => panic!("expected InvalidValue, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = ha(&[]).unwrap();
        assert_eq!(c, HaConfig::embedded());
        assert_eq!(c, HaConfig::default());
        assert_eq!(c.mode, HaMode::None);
        assert!(!c.mode.is_high_availability());
        assert_eq!(c.cluster_id, "/default");
        assert_eq!(c.cluster_id_segment(), "default");
        assert_eq!(
            (c.storage_dir.clone(), c.job_result_store_path()),
            (None, None)
        );
        assert!(c.job_result_delete_on_commit);
        assert_eq!(c.num_retained_checkpoints, 1);
        assert_eq!(c.naming, NamingEra::Flink2);
        let z = &c.zookeeper;
        assert_eq!((z.quorum.as_deref(), z.root.as_str()), (None, "/flink"));
        assert_eq!(z.session_timeout, Duration::from_secs(60));
        assert_eq!(z.connection_timeout, Duration::from_secs(15));
        assert_eq!(z.retry_wait, Duration::from_secs(5));
        assert_eq!(z.max_retry_attempts, 3);
        assert_eq!(z.acl, ZooKeeperAcl::Open);
        assert!(!z.tolerate_suspended_connections && z.ensemble_tracker);
        assert_eq!(
            (z.job_graphs_path.as_str(), z.digest_auth.as_deref()),
            ("/jobgraphs", None)
        );
        let k = &c.kubernetes;
        assert_eq!(
            (k.namespace.as_str(), k.cluster_id.as_deref()),
            ("default", None)
        );
        assert_eq!(k.lease_duration, Duration::from_secs(15));
        assert_eq!(k.renew_deadline, Duration::from_secs(15));
        assert_eq!(k.retry_period, Duration::from_secs(5));
        assert_eq!(k.max_retries, 5);
        assert!(c.etcd.endpoints.is_empty());
        assert_eq!(
            (c.etcd.lease_ttl, c.etcd.root.as_str()),
            (Duration::from_secs(15), "/flink")
        );
    }

    #[test]
    fn mode_keys_values_and_precedence() {
        let mode = |pairs: &[(&str, &str)]| ha(pairs).map(|c| c.mode);
        let ty = "high-availability.type";
        assert_eq!(mode(&[(ty, "NONE")]).unwrap(), HaMode::None);
        assert_eq!(
            mode(&[("high-availability", "standalone")]).unwrap(),
            HaMode::None
        );
        assert_eq!(
            mode(&[("recovery.mode", "Standalone")]).unwrap(),
            HaMode::None
        );
        assert_eq!(
            mode(&[
                (ty, "custom"),
                ("high-availability", "none"),
                ("recovery.mode", "none")
            ])
            .unwrap(),
            HaMode::Custom("custom".into())
        );
        assert_eq!(
            mode(&[
                ("high-availability", "my.Factory"),
                ("recovery.mode", "none")
            ])
            .unwrap(),
            HaMode::Custom("my.Factory".into())
        );
        assert_eq!(HaMode::parse(" ZooKeeper "), Some(HaMode::ZooKeeper));
        assert_eq!(HaMode::parse("KUBERNETES"), Some(HaMode::Kubernetes));
        assert_eq!(
            HaMode::parse(KUBERNETES_FACTORY_CLASS),
            Some(HaMode::Kubernetes)
        );
        assert_eq!(HaMode::parse("Etcd"), Some(HaMode::Etcd));
        assert_eq!(HaMode::parse("  "), None);
        assert_eq!(
            invalid_key(mode(&[("recovery.mode", " ")]).unwrap_err()),
            "recovery.mode"
        );
    }

    #[test]
    fn deprecated_keys_are_fallbacks() {
        type Read = fn(&HaConfig) -> String;
        let cases: [(&str, &str, Read); 9] = [
            (
                "high-availability.cluster-id",
                "high-availability.zookeeper.path.namespace",
                |c| c.cluster_id.clone(),
            ),
            (
                "high-availability.cluster-id",
                "recovery.zookeeper.path.namespace",
                |c| c.cluster_id.clone(),
            ),
            (
                "high-availability.storageDir",
                "high-availability.zookeeper.storageDir",
                |c| format!("{:?}", c.storage_dir),
            ),
            (
                "high-availability.storageDir",
                "recovery.zookeeper.storageDir",
                |c| format!("{:?}", c.storage_dir),
            ),
            (
                "execution.checkpointing.num-retained",
                "state.checkpoints.num-retained",
                |c| c.num_retained_checkpoints.to_string(),
            ),
            (
                "high-availability.zookeeper.quorum",
                "recovery.zookeeper.quorum",
                |c| format!("{:?}", c.zookeeper.quorum),
            ),
            (
                "high-availability.zookeeper.path.root",
                "recovery.zookeeper.path.root",
                |c| c.zookeeper.root.clone(),
            ),
            (
                "high-availability.zookeeper.client.session-timeout",
                "recovery.zookeeper.client.session-timeout",
                |c| format!("{:?}", c.zookeeper.session_timeout),
            ),
            (
                "high-availability.zookeeper.client.max-retry-attempts",
                "recovery.zookeeper.client.max-retry-attempts",
                |c| c.zookeeper.max_retry_attempts.to_string(),
            ),
        ];
        for (current, deprecated, read) in cases {
            let old = read(&ha(&[(deprecated, "7")]).unwrap());
            let new = read(&ha(&[(current, "7")]).unwrap());
            let both = read(&ha(&[(current, "7"), (deprecated, "9")]).unwrap());
            let default = read(&ha(&[]).unwrap());
            assert_eq!((&old, &both), (&new, &new), "{deprecated} -> {current}");
            assert_ne!(new, default, "{current}");
        }
        let err = ha(&[("recovery.zookeeper.client.connection-timeout", "x")]).unwrap_err();
        assert_eq!(
            invalid_key(err),
            "recovery.zookeeper.client.connection-timeout"
        );
    }

    #[test]
    fn typed_values() {
        let c = zk(&[
            (
                "high-availability.zookeeper.quorum",
                " zk1:2181, zk2:2181 ;zk3:2181",
            ),
            (
                "high-availability.zookeeper.client.session-timeout",
                "30000",
            ),
            (
                "high-availability.zookeeper.client.connection-timeout",
                "3 s",
            ),
            ("high-availability.zookeeper.client.retry-wait", "0"),
            ("high-availability.zookeeper.client.acl", "CREATOR"),
            (
                "high-availability.zookeeper.client.tolerate-suspended-connections",
                "TRUE",
            ),
            (
                "high-availability.zookeeper.client.ensemble-tracker",
                "False",
            ),
            ("high-availability.zookeeper.client.digest", "user:pa:ss"),
            ("high-availability.tenure.flink-naming", "1"),
            ("job-result-store.delete-on-commit", "false"),
            ("kubernetes.namespace", "flink"),
            (
                "high-availability.kubernetes.leader-election.lease-duration",
                "1 min",
            ),
            ("kubernetes.transactional-operation.max-retries", "0"),
            (
                "high-availability.etcd.endpoints",
                " http://a:2379, ,http://b:2379;http://c:2379",
            ),
            ("high-availability.etcd.lease-ttl", "2s"),
        ])
        .unwrap();
        let z = &c.zookeeper;
        assert_eq!(z.quorum.as_deref(), Some("zk1:2181,zk2:2181,zk3:2181"));
        assert_eq!(
            (z.session_timeout, z.connection_timeout),
            (Duration::from_secs(30), Duration::from_secs(3))
        );
        assert_eq!(
            (z.retry_wait, z.acl),
            (Duration::ZERO, ZooKeeperAcl::Creator)
        );
        assert!(z.tolerate_suspended_connections && !z.ensemble_tracker);
        assert_eq!(z.digest_auth.as_deref(), Some("user:pa:ss"));
        assert!(!format!("{c:?}").contains("pa:ss"));
        assert_eq!(
            (c.naming, c.job_result_delete_on_commit),
            (NamingEra::Flink1, false)
        );
        assert_eq!(c.kubernetes.namespace, "flink");
        assert_eq!(c.kubernetes.lease_duration, Duration::from_secs(60));
        assert_eq!(c.kubernetes.max_retries, 0);
        assert_eq!(
            c.etcd.endpoints,
            ["http://a:2379", "http://b:2379", "http://c:2379"]
        );
        assert_eq!(c.etcd.lease_ttl, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_name_key_value_and_expectation() {
        let err = ha(&[("high-availability.zookeeper.client.session-timeout", "abc")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"abc\" for high-availability.zookeeper.client.session-timeout: \
             expected a duration such as \"60 s\" or milliseconds"
        );
        let err = ha(&[("high-availability.etcd.lease-ttl", "0")]).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("expected a duration of at least 1 s"),
            "{err}"
        );
        let err = ha(&[("high-availability.zookeeper.client.session-timeout", "0")]).unwrap_err();
        assert!(
            err.to_string().contains("expected a positive duration"),
            "{err}"
        );
        let bad = [
            (
                "high-availability.zookeeper.client.connection-timeout",
                "0 s",
            ),
            ("high-availability.zookeeper.client.retry-wait", "-1"),
            (
                "high-availability.zookeeper.client.max-retry-attempts",
                "-1",
            ),
            ("high-availability.zookeeper.client.acl", "world"),
            (
                "high-availability.zookeeper.client.tolerate-suspended-connections",
                "yes",
            ),
            ("high-availability.zookeeper.client.ensemble-tracker", "1"),
            ("high-availability.tenure.flink-naming", "3"),
            ("job-result-store.delete-on-commit", ""),
            ("execution.checkpointing.num-retained", "0"),
            ("state.checkpoints.num-retained", "many"),
            ("kubernetes.namespace", " "),
            (
                "high-availability.kubernetes.leader-election.retry-period",
                "0",
            ),
            (
                "kubernetes.transactional-operation.max-retries",
                "4294967296",
            ),
            ("high-availability.etcd.lease-ttl", "999 ms"),
            ("high-availability.cluster-id", "/"),
            ("high-availability.cluster-id", "a/../b"),
            ("recovery.zookeeper.path.namespace", "a//b"),
        ];
        for (key, value) in bad {
            let err = ha(&[(key, value)]).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
            assert!(
                matches!(&err, ConfigError::InvalidValue { key: k, value: v, .. } if k == key && v == value),
                "{err:?}"
            );
        }
        let err = ha(&[(
            "high-availability.zookeeper.client.digest",
            "no-colon-secret",
        )])
        .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert_eq!(
            invalid_key(err),
            "high-availability.zookeeper.client.digest"
        );
    }

    #[test]
    fn mode_requirements() {
        let missing = |r: Result<HaConfig, ConfigError>| match r {
            Err(ConfigError::Missing { key, .. }) => key,
            other => panic!("expected Missing, got {other:?}"),
        };
        assert!(zk(&[]).is_ok());
        let no_quorum = ha(&[
            ZK_BASE[0],
            ZK_BASE[2],
            ("high-availability.zookeeper.quorum", " "),
        ]);
        assert_eq!(missing(no_quorum), "high-availability.zookeeper.quorum");
        assert_eq!(missing(ha(&ZK_BASE[..2])), "high-availability.storageDir");
        let k8s = [
            ("high-availability.type", "kubernetes"),
            ("kubernetes.cluster-id", "c1"),
        ];
        assert_eq!(missing(ha(&k8s)), "high-availability.storageDir");
        assert_eq!(missing(ha(&[k8s[0], ZK_BASE[2]])), "kubernetes.cluster-id");
        assert!(ha(&[k8s[0], k8s[1], ZK_BASE[2]]).is_ok());
        assert_eq!(
            missing(ha(&[("high-availability.type", "etcd")])),
            "high-availability.etcd.endpoints"
        );
        assert!(
            ha(&[
                ("high-availability.type", "etcd"),
                ("high-availability.etcd.endpoints", "http://e:2379")
            ])
            .is_ok()
        );
        assert!(ha(&[("high-availability.type", "my-factory")]).is_ok());
        // Flink forbids the creator ACL when SASL is disabled; a digest credential makes it usable.
        let creator = [
            ("high-availability.zookeeper.client.acl", "creator"),
            ("zookeeper.sasl.disable", "true"),
        ];
        assert_eq!(
            invalid_key(zk(&creator).unwrap_err()),
            "high-availability.zookeeper.client.acl"
        );
        assert!(
            zk(&[
                &creator[..],
                &[("high-availability.zookeeper.client.digest", "u:p")]
            ]
            .concat())
            .is_ok()
        );
    }

    #[test]
    fn job_result_store_path_defaults_under_storage_dir() {
        let path = |pairs: &[(&str, &str)]| ha(pairs).unwrap().job_result_store_path();
        let sd = "high-availability.storageDir";
        assert_eq!(
            path(&[(sd, "hdfs:///flink/ha/")]).as_deref(),
            Some("hdfs:///flink/ha/job-result-store/default")
        );
        assert_eq!(
            path(&[(sd, "s3://b/ha"), ("high-availability.cluster-id", "/c1/")]).as_deref(),
            Some("s3://b/ha/job-result-store/c1")
        );
        assert_eq!(
            path(&[(sd, "file:///")]).as_deref(),
            Some("file:///job-result-store/default")
        );
        assert_eq!(
            path(&[(sd, "/")]).as_deref(),
            Some("/job-result-store/default")
        );
        assert_eq!(
            path(&[(sd, "/ha"), ("job-result-store.storage-path", "/jrs")]).as_deref(),
            Some("/jrs")
        );
        assert_eq!(
            path(&[("job-result-store.storage-path", "/jrs")]).as_deref(),
            Some("/jrs")
        );
    }

    proptest::proptest! {
        #[test]
        fn from_configuration_never_panics(
            pairs in proptest::collection::vec((".*", ".*"), 0..8),
            known in proptest::collection::vec((0usize..KNOWN_KEYS.len(), ".*"), 0..8),
        ) {
            let mut conf = Configuration::from_pairs(pairs);
            conf.extend(known.into_iter().map(|(i, v)| (KNOWN_KEYS[i], v)));
            if let Ok(c) = HaConfig::from_configuration(&conf) {
                let _ = (c.cluster_id_segment(), c.job_result_store_path(), format!("{c:?}"));
            }
        }
    }

    const KNOWN_KEYS: [&str; 24] = [
        "high-availability.type",
        "high-availability",
        "recovery.mode",
        "high-availability.cluster-id",
        "high-availability.storageDir",
        "job-result-store.storage-path",
        "job-result-store.delete-on-commit",
        "execution.checkpointing.num-retained",
        "high-availability.tenure.flink-naming",
        "high-availability.zookeeper.quorum",
        "high-availability.zookeeper.path.root",
        "high-availability.zookeeper.client.session-timeout",
        "high-availability.zookeeper.client.connection-timeout",
        "high-availability.zookeeper.client.retry-wait",
        "high-availability.zookeeper.client.max-retry-attempts",
        "high-availability.zookeeper.client.acl",
        "high-availability.zookeeper.client.tolerate-suspended-connections",
        "high-availability.zookeeper.client.digest",
        "zookeeper.sasl.disable",
        "kubernetes.namespace",
        "kubernetes.cluster-id",
        "high-availability.kubernetes.leader-election.lease-duration",
        "high-availability.etcd.endpoints",
        "high-availability.etcd.lease-ttl",
    ];
}
