//! The typed, validated HA configuration ([`HaConfig`]) read from a [`Configuration`].

use std::fmt;
use std::time::Duration;

use super::duration::parse_duration;
use super::{CleanupStrategy, ConfigError, Configuration, ZooKeeperSasl, ZooKeeperTls};
use crate::segments::{PathSegments, SegmentError};

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
pub(crate) const KUBERNETES_FACTORY_CLASS: &str =
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

/// The mode as the value of `high-availability.type` that selects it (`none`, `zookeeper`,
/// `kubernetes`, `etcd`, or a custom backend's name as given).
impl fmt::Display for HaMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::ZooKeeper => "zookeeper",
            Self::Kubernetes => "kubernetes",
            Self::Etcd => "etcd",
            Self::Custom(name) => name,
        })
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
    /// an optional `/chroot`, whitespace removed (and `;` from a YAML list turned into `,`),
    /// checked by [`validate_zookeeper_quorum`](super::validate_zookeeper_quorum); `None` when
    /// unset or blank.
    pub quorum: Option<String>,
    /// `high-availability.zookeeper.path.root` (`recovery.zookeeper.path.root`), default `/flink`.
    pub root: String,
    /// `high-availability.zookeeper.client.session-timeout`, default 60 s; must be positive.
    pub session_timeout: Duration,
    /// `high-availability.zookeeper.client.connection-timeout`, default 15 s; must be positive.
    pub connection_timeout: Duration,
    /// `high-availability.zookeeper.client.retry-wait`: base sleep of the exponential backoff, default 5 s.
    pub retry_wait: Duration,
    /// `high-availability.zookeeper.client.max-retry-wait`: the longest sleep of the
    /// exponential backoff (Curator's `maxSleepMs`), default 60 s; positive and at least
    /// `retry-wait`. See [`RetryPolicy`](crate::retry::RetryPolicy).
    pub max_retry_wait: Duration,
    /// `high-availability.zookeeper.client.max-retry-attempts`, default 3.
    pub max_retry_attempts: u32,
    /// `high-availability.zookeeper.client.acl`: `open` (default) or `creator`; `creator` in
    /// ZooKeeper mode needs [`digest_auth`](Self::digest_auth) or active [`sasl`](Self::sasl).
    pub acl: ZooKeeperAcl,
    /// `high-availability.zookeeper.client.tolerate-suspended-connections`, default false: when
    /// true only a lost session (not a suspended connection) revokes leadership.
    pub tolerate_suspended_connections: bool,
    /// `high-availability.zookeeper.client.ensemble-tracker`, default true; disable behind a VIP.
    pub ensemble_tracker: bool,
    /// `high-availability.zookeeper.client.max-close-wait` (Curator's `maxCloseWaitMs`),
    /// default 1 s: how long closing the backend waits for the session to close.
    pub max_close_wait: Duration,
    /// `high-availability.zookeeper.client.authorization`: `scheme:credentials` entries sent
    /// as `addAuth` by every new session. Credentials hidden in `Debug` output.
    pub authorization: Vec<super::ZooKeeperAuth>,
    /// `high-availability.zookeeper.client.simulated-session-expiration-percent` (Curator's
    /// `simulatedSessionExpirationPercent`), 1 to 100, default 100: a session disconnected for
    /// this share of its negotiated timeout is declared lost.
    pub simulated_session_expiration_percent: u8,
    /// `high-availability.zookeeper.path.jobgraphs`, default `jobgraphs`: the znode (one
    /// segment below the cluster's namespace, kept without slashes) holding Flink 1.x's job
    /// graphs. The ZooKeeper backend reads and writes the layout's `jobgraphs/...` keys there.
    pub job_graphs_path: String,
    /// tenure key `high-availability.zookeeper.client.digest`: `user:password` for ZooKeeper
    /// digest authentication. Hidden in `Debug` output.
    pub digest_auth: Option<String>,
    /// TLS to the servers (`zookeeper.client.secure`, `...client.tls.*`).
    pub tls: ZooKeeperTls,
    /// SASL authentication (`zookeeper.sasl.*`, `...client.sasl.*`, Kerberos login keys).
    pub sasl: ZooKeeperSasl,
}

impl Default for ZooKeeperConfig {
    fn default() -> Self {
        Self {
            quorum: None,
            root: "/flink".to_owned(),
            session_timeout: Duration::from_secs(60),
            connection_timeout: Duration::from_secs(15),
            retry_wait: Duration::from_secs(5),
            max_retry_wait: crate::retry::DEFAULT_MAX_RETRY_WAIT,
            max_retry_attempts: 3,
            acl: ZooKeeperAcl::Open,
            tolerate_suspended_connections: false,
            ensemble_tracker: true,
            max_close_wait: super::zookeeper_client::DEFAULT_MAX_CLOSE_WAIT,
            authorization: Vec::new(),
            simulated_session_expiration_percent:
                super::zookeeper_client::DEFAULT_SIMULATED_EXPIRATION_PERCENT,
            job_graphs_path: crate::layout::FLINK1_JOB_GRAPHS_DIR.to_owned(),
            digest_auth: None,
            tls: ZooKeeperTls::default(),
            sasl: ZooKeeperSasl::default(),
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
            .field("max_retry_wait", &self.max_retry_wait)
            .field("max_retry_attempts", &self.max_retry_attempts)
            .field("acl", &self.acl)
            .field(
                "tolerate_suspended_connections",
                &self.tolerate_suspended_connections,
            )
            .field("ensemble_tracker", &self.ensemble_tracker)
            .field("max_close_wait", &self.max_close_wait)
            .field("authorization", &self.authorization)
            .field(
                "simulated_session_expiration_percent",
                &self.simulated_session_expiration_percent,
            )
            .field("job_graphs_path", &self.job_graphs_path)
            .field(
                "digest_auth",
                &self.digest_auth.as_ref().map(|_| "<redacted>"),
            )
            .field("tls", &self.tls)
            .field("sasl", &self.sasl)
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
    /// `kubernetes.config.file`: the kubeconfig to use instead of `$KUBECONFIG`,
    /// `~/.kube/config` or the in-cluster service account.
    pub config_file: Option<String>,
    /// `kubernetes.context`: the kubeconfig context to use instead of the current one.
    pub context: Option<String>,
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
            config_file: None,
            context: None,
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
    /// TLS to the servers (`high-availability.etcd.tls.*`).
    pub tls: super::EtcdTls,
    /// Username/password authentication (`high-availability.etcd.username`, `.password`,
    /// `.password-file`); the password is hidden in `Debug` output.
    pub auth: super::EtcdAuth,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            lease_ttl: Duration::from_secs(15),
            root: "/flink".to_owned(),
            tls: super::EtcdTls::default(),
            auth: super::EtcdAuth::default(),
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
    /// `cleanup-strategy.*`: how a failed job cleanup is retried (default exponential delay).
    pub cleanup_strategy: CleanupStrategy,
}

impl Default for HaConfig {
    fn default() -> Self {
        Self::embedded()
    }
}

/// A cluster id that cannot be used as path segments, naming the key it came from.
fn invalid_cluster_id(key: &str, value: &str, e: &SegmentError) -> ConfigError {
    invalid(
        key,
        value,
        &format!(
            "a cluster id usable as path segments ({e}): ASCII segments without \".\", \"..\", \
             control characters, whitespace at either end, or %, #, ?, \\ and the other \
             characters storage paths would escape"
        ),
    )
}

const DURATION: &str = "a duration such as \"60 s\" or milliseconds";
const POSITIVE_DURATION: &str = "a positive duration such as \"60 s\" or milliseconds";

pub(super) fn invalid(key: &str, value: &str, expected: &str) -> ConfigError {
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

    pub(super) fn int_or<T: std::str::FromStr>(
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

    pub(super) fn duration_or(
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
                &format!(
                    "a duration of at least {}",
                    super::duration::format_duration(min)
                ),
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
        if let Err(e) = PathSegments::parse(&cluster_id) {
            let key = c
                .lookup(cid_key, &cid_deprecated)
                .map_or(cid_key, |(k, _)| k);
            return Err(invalid_cluster_id(key, &cluster_id, &e));
        }
        super::retired_keys::check(c)?;
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
            cleanup_strategy: CleanupStrategy::from_configuration(c)?,
        };
        for (key, root) in [
            (format!("{ZK}path.root"), &config.zookeeper.root),
            (
                "high-availability.etcd.path.root".to_owned(),
                &config.etcd.root,
            ),
        ] {
            if let Err(e) = PathSegments::parse_allow_root(root) {
                return Err(invalid(
                    &key,
                    root,
                    &format!("a root path such as /flink ({e})"),
                ));
            }
        }
        // Flink forbids `creator` with `zookeeper.sasl.disable: true`; tenure also accepts a
        // digest as the creator's identity.
        if config.mode == HaMode::ZooKeeper
            && config.zookeeper.acl == ZooKeeperAcl::Creator
            && config.zookeeper.digest_auth.is_none()
            && !config.zookeeper.sasl.active()
        {
            let (k, v) = c
                .lookup("high-availability.zookeeper.client.acl", &[])
                .unwrap_or(("high-availability.zookeeper.client.acl", "creator"));
            let why = if config.zookeeper.sasl.disabled {
                "\"open\" when zookeeper.sasl.disable is true (unless \
                 high-availability.zookeeper.client.digest is set): the creator ACL lets only \
                 the authenticated creator use the znodes"
            } else {
                "\"open\" unless SASL credentials (high-availability.zookeeper.client.sasl.*, \
                 security.kerberos.login.*) or high-availability.zookeeper.client.digest are \
                 set: the creator ACL lets only the authenticated creator use the znodes"
            };
            return Err(invalid(k, v, why));
        }
        config.validate_for_mode()?;
        Ok(config)
    }

    /// All defaults, mode [`HaMode::None`]: the embedded, in-process services
    /// ([`HaConfig::builder`] starts from the same, with setters).
    ///
    /// Each `tenure::connect` with this configuration creates a new, private embedded cluster:
    /// services connected that way share nothing and each leads. For several in-process
    /// "processes" on one cluster, use one [`EmbeddedCluster`](crate::embedded::EmbeddedCluster)
    /// and its [`services`](crate::embedded::EmbeddedCluster::services).
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
            cleanup_strategy: CleanupStrategy::default(),
        }
    }

    /// The cluster id without leading and trailing `/` (`"/default"` ⇒ `"default"`), for use as
    /// one path segment (Flink's `generateZookeeperPath` trims segments the same way).
    pub fn cluster_id_segment(&self) -> String {
        self.cluster_id.trim_matches('/').to_owned()
    }

    /// The cluster id as validated path segments: what storage paths and keys are built from,
    /// one segment at a time. Checked here again because an `HaConfig` can be built in code.
    pub fn cluster_segments(&self) -> Result<PathSegments, ConfigError> {
        PathSegments::parse(&self.cluster_id)
            .map_err(|e| invalid_cluster_id("high-availability.cluster-id", &self.cluster_id, &e))
    }

    /// Where the job result store lives, as text for messages: `job-result-store.storage-path`
    /// if set, else `<storageDir>/job-result-store/<cluster id segment>` (joined without doubled
    /// `/`, keeping a URI scheme's `//`); `None` without either. The store itself is opened
    /// segment by segment ([`HaServicesOptions::from_config`](crate::services::HaServicesOptions::from_config)),
    /// never from this string.
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

    /// Reads the configuration of a tool that only reads the backend (leaders, the running jobs
    /// registry): every check of [`from_configuration`](Self::from_configuration) except that no
    /// mode requires `high-availability.storageDir` ([`validate_for_reading`](Self::validate_for_reading)
    /// instead of [`validate_for_mode`](Self::validate_for_mode)). Without one, `storage_dir` is
    /// `None` and blobs and job result files are unavailable.
    pub fn from_configuration_for_reading(c: &Configuration) -> Result<Self, ConfigError> {
        if c.non_blank(STORAGE_DIR, &STORAGE_DIR_DEPRECATED).is_some() {
            return Self::from_configuration(c);
        }
        // The storage dir is read as text and only required by `validate_for_mode`: validate
        // with a stand-in, then drop it, so every other check is exactly `from_configuration`'s.
        let mut stand_in = c.clone();
        stand_in.set(STORAGE_DIR, "/");
        let mut config = Self::from_configuration(&stand_in)?;
        config.storage_dir = None;
        config.validate_for_reading()?;
        Ok(config)
    }

    /// Checks that the mode has the keys it needs: ZooKeeper needs a quorum and a storage dir;
    /// Kubernetes needs a storage dir and `kubernetes.cluster-id` (as Flink does); etcd needs an
    /// endpoint. `None` and custom modes need nothing here.
    pub fn validate_for_mode(&self) -> Result<(), ConfigError> {
        self.validate_for_reading()?;
        match self.mode {
            HaMode::ZooKeeper | HaMode::Kubernetes if self.storage_dir.is_none() => {
                let mode = if self.mode == HaMode::ZooKeeper {
                    "ZooKeeper"
                } else {
                    "Kubernetes"
                };
                Err(ConfigError::Missing {
                    key: STORAGE_DIR.to_owned(),
                    reason: format!(
                        "{mode} HA keeps job graphs, checkpoint metadata and blobs under the \
                         storage directory"
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// The checks of [`validate_for_mode`](Self::validate_for_mode) that a tool reading the
    /// backend alone needs: where the backend is (ZooKeeper quorum, `kubernetes.cluster-id`,
    /// etcd endpoints), but no storage directory.
    pub fn validate_for_reading(&self) -> Result<(), ConfigError> {
        let missing = |key: &str, reason: &str| {
            Err(ConfigError::Missing {
                key: key.to_owned(),
                reason: reason.to_owned(),
            })
        };
        match self.mode {
            HaMode::ZooKeeper if self.zookeeper.quorum.is_none() => missing(
                "high-availability.zookeeper.quorum",
                "ZooKeeper HA needs the ZooKeeper servers as host:port,host:port",
            ),
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

/// `high-availability.storageDir` and its deprecated names, in lookup order.
const STORAGE_DIR: &str = "high-availability.storageDir";
const STORAGE_DIR_DEPRECATED: [&str; 2] = [
    "high-availability.zookeeper.storageDir",
    "recovery.zookeeper.storageDir",
];

fn read_zookeeper(c: &Configuration) -> Result<ZooKeeperConfig, ConfigError> {
    let d = ZooKeeperConfig::default();
    let key = |suffix: &str| format!("{ZK}{suffix}");
    let old = |suffix: &str| format!("recovery.zookeeper.{suffix}");
    let dur = |suffix: &str, default: Duration, min: Duration| {
        c.duration_or(&key(suffix), &[&old(suffix)], default, min)
    };
    let quorum = match c.lookup(&key("quorum"), &[&old("quorum")]) {
        None => None,
        Some((k, v)) => {
            let q: String = v
                .chars()
                .filter(|ch| !ch.is_whitespace())
                .map(|ch| if ch == ';' { ',' } else { ch })
                .collect();
            if !q.is_empty()
                && let Err(problem) = super::validate_zookeeper_quorum(&q)
            {
                return Err(invalid(
                    k,
                    v,
                    &format!(
                        "host:port,host:port[/chroot] (hostnames, IPv4 or [IPv6] addresses, \
                         ports 1 to 65535, an absolute ZooKeeper path as chroot): {problem}"
                    ),
                ));
            }
            Some(q)
        }
    };
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
    let retry_wait = dur("client.retry-wait", d.retry_wait, Duration::ZERO)?;
    // Unset, the ceiling is the default or the base, whichever is longer; set, it must not be
    // shorter than the first wait.
    let max_wait_key = key("client.max-retry-wait");
    let max_retry_wait = match c.lookup(&max_wait_key, &[]) {
        None => d.max_retry_wait.max(retry_wait),
        Some((k, v)) => {
            let max = c.duration_or(k, &[], d.max_retry_wait, POSITIVE)?;
            if max < retry_wait {
                return Err(invalid(
                    k,
                    v,
                    &format!(
                        "a duration of at least {ZK}client.retry-wait ({retry_wait:?}), the \
                         first wait"
                    ),
                ));
            }
            max
        }
    };
    Ok(ZooKeeperConfig {
        quorum: quorum.filter(|q| !q.is_empty()),
        root: c.string_or(&key("path.root"), &[&old("path.root")], &d.root),
        session_timeout: dur("client.session-timeout", d.session_timeout, POSITIVE)?,
        connection_timeout: dur("client.connection-timeout", d.connection_timeout, POSITIVE)?,
        retry_wait,
        max_retry_wait,
        max_retry_attempts: c.int_or(
            &key("client.max-retry-attempts"),
            &[&old("client.max-retry-attempts")],
            d.max_retry_attempts,
        )?,
        acl,
        tolerate_suspended_connections: c
            .bool_or(&key("client.tolerate-suspended-connections"), false)?,
        ensemble_tracker: c.bool_or(&key("client.ensemble-tracker"), true)?,
        max_close_wait: c.duration_or(
            super::zookeeper_client::MAX_CLOSE_WAIT_KEY,
            &[],
            d.max_close_wait,
            POSITIVE,
        )?,
        authorization: super::zookeeper_client::read_authorization(c)?,
        simulated_session_expiration_percent:
            super::zookeeper_client::read_simulated_expiration_percent(c)?,
        job_graphs_path: match c.lookup(&key("path.jobgraphs"), &[&old("path.jobgraphs")]) {
            None => d.job_graphs_path,
            Some((k, v)) => super::job_graphs_path::job_graphs_dir(k, v)?,
        },
        digest_auth,
        tls: super::zk_security::read_tls(c)?,
        sasl: super::zk_security::read_sasl(c)?,
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
        config_file: c.non_blank("kubernetes.config.file", &[]),
        context: c.non_blank("kubernetes.context", &[]),
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
    super::etcd_endpoints::check(&endpoints)?;
    Ok(EtcdConfig {
        lease_ttl: c.duration_or(
            "high-availability.etcd.lease-ttl",
            &[],
            d.lease_ttl,
            Duration::from_secs(1),
        )?,
        root: c.string_or("high-availability.etcd.path.root", &[], &d.root),
        tls: super::etcd_security::read_tls(c, &endpoints)?,
        auth: super::etcd_security::read_auth(c)?,
        endpoints,
    })
}
