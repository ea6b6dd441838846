//! The connection options every operator command takes, and connecting with them.
//!
//! The configuration is built in layers, later ones winning: the Flink configuration file
//! (`--config`, else the conf dir named by `FLINK_CONF_DIR`, as Flink's own CLI reads it), then
//! the named flags (`--ha-type`, `--zookeeper-quorum`, `--cluster-id`, `--storage-dir`,
//! `--zookeeper-root`), then `-D key=value` pairs. The result is validated as Flink would before
//! anything connects.
//!
//! An operator command answers only about a backend the user chose: without any configuration,
//! or with one that sets no `high-availability.type`, it stops with exit 2 and says how to point
//! it at a cluster, instead of answering from a fresh in-process backend that holds nothing.
//! Connecting gives up after `--timeout` (else the backend's connection timeout) with exit 4.

use std::ffi::OsString;
use std::future::Future;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use tenure::blob::BlobError;
use tenure::config::HaMode;
use tenure::config::duration::{format_duration, parse_duration};
use tenure::{Configuration, HaConfig, HaError, HaServices};

use crate::exit::CliError;

/// How long connecting may take when neither `--timeout` nor a backend setting says (Flink's
/// default ZooKeeper connection timeout).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a connect may take before a terminal is told what tenure is waiting for.
const PROGRESS_AFTER: Duration = Duration::from_millis(500);

/// How much longer than its bound the CLI waits for a backend's own connect timeout to report
/// (it names more than the CLI's fallback can).
const BOUND_MARGIN: Duration = Duration::from_secs(2);

/// The environment variable naming Flink's conf dir (read by Flink's CLI the same way).
pub const FLINK_CONF_DIR: &str = "FLINK_CONF_DIR";

/// What to say when an operator command has no configuration at all.
const HOW_TO_CONNECT: &str = "point tenure at the cluster with --config <Flink conf dir or file>, \
     the FLINK_CONF_DIR environment variable, --zookeeper-quorum host:port (ZooKeeper HA), or \
     --ha-type kubernetes|zookeeper (--ha-type none reads only this process's own, empty, \
     in-process backend)";

/// The high-availability mode keys, current first.
const MODE_KEYS: [&str; 3] = [
    "high-availability.type",
    "high-availability",
    "recovery.mode",
];

/// Options selecting the backend and the cluster; global, so they go before or after the command.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnArgs {
    /// A Flink configuration file (`config.yaml` or legacy `flink-conf.yaml`), or a Flink conf
    /// directory holding one; its HA keys select the backend and the cluster. Default: the conf
    /// directory named by FLINK_CONF_DIR.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HA mode, overriding `high-availability.type` (none, zookeeper, kubernetes, etcd).
    #[arg(long, global = true, value_name = "TYPE")]
    pub ha_type: Option<String>,
    /// ZooKeeper servers `host:port,...`, overriding `high-availability.zookeeper.quorum`.
    #[arg(long, global = true, value_name = "HOSTS")]
    pub zookeeper_quorum: Option<String>,
    /// Cluster id, overriding `high-availability.cluster-id`.
    #[arg(long, global = true, value_name = "ID")]
    pub cluster_id: Option<String>,
    /// HA storage directory, overriding `high-availability.storageDir`.
    #[arg(long, global = true, value_name = "DIR")]
    pub storage_dir: Option<String>,
    /// ZooKeeper root path, overriding `high-availability.zookeeper.path.root`.
    #[arg(long, global = true, value_name = "PATH")]
    pub zookeeper_root: Option<String>,
    /// Any other Flink configuration key, as `key=value` (repeatable; wins over everything).
    #[arg(short = 'D', global = true, value_name = "KEY=VALUE", value_parser = parse_define)]
    pub define: Vec<(String, String)>,
    /// Give up connecting after this long (`5s`, `500ms`, `1 min`; a bare number is ms),
    /// overriding the backend's connection timeout (ZooKeeper:
    /// `high-availability.zookeeper.client.connection-timeout`, default 15 s).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
}

fn parse_define(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Ok(d) if d.is_zero() => Err("the timeout must be positive".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{s:?}: {e} (expected a duration such as 5s or 500ms)"
        )),
    }
}

/// The configuration file read, and who named it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConfigFile {
    /// The file read.
    path: PathBuf,
    /// `--config` or `FLINK_CONF_DIR`.
    named_by: &'static str,
}

/// The flat configuration and where it came from.
#[derive(Debug, Clone)]
struct Loaded {
    conf: Configuration,
    file: Option<ConfigFile>,
    /// Whether any flag or `-D` pair was given.
    flags: bool,
}

impl Loaded {
    /// Whether the configuration chooses the HA mode (a quorum flag implies ZooKeeper).
    fn chooses_mode(&self) -> bool {
        MODE_KEYS.iter().any(|k| self.conf.contains_key(k))
    }
}

impl ConnArgs {
    /// Whether any option other than `--config` was given.
    fn has_overrides(&self) -> bool {
        self.has_flags() || self.timeout.is_some()
    }

    /// The configuration `tenure demo` runs with: the same layers as an operator command's
    /// (`--config`, the flags, `-D` pairs, `--timeout`) but never `FLINK_CONF_DIR` (the demo is
    /// embedded unless told otherwise), and no backend need be chosen: without
    /// `high-availability.type` it is the embedded backend. `None` when no option was given.
    pub fn demo_config(&self) -> Result<Option<HaConfig>, CliError> {
        if self.config.is_none() && !self.has_overrides() {
            return Ok(None);
        }
        let loaded = self.load(None)?;
        let mut config =
            HaConfig::from_configuration(&loaded.conf).map_err(|e| match &loaded.file {
                Some(f) => {
                    CliError::Usage(format!("{e} (configuration from {})", f.path.display()))
                }
                None => CliError::Usage(e.to_string()),
            })?;
        if let Some(t) = self.timeout {
            config.zookeeper.connection_timeout = t;
        }
        Ok(Some(config))
    }

    /// Whether any option changing the configuration, other than `--config`, was given.
    fn has_flags(&self) -> bool {
        self.ha_type.is_some()
            || self.zookeeper_quorum.is_some()
            || self.cluster_id.is_some()
            || self.storage_dir.is_some()
            || self.zookeeper_root.is_some()
            || !self.define.is_empty()
    }

    /// The flat configuration: the file (`--config`, else the conf dir `conf_dir`, which is
    /// `FLINK_CONF_DIR`), then the flags, then `-D` pairs.
    fn load(&self, conf_dir: Option<OsString>) -> Result<Loaded, CliError> {
        let file = match (&self.config, conf_dir.filter(|d| !d.is_empty())) {
            (Some(path), _) => Some(config_file(path, "--config")?),
            (None, Some(dir)) => Some(config_file(Path::new(&dir), FLINK_CONF_DIR)?),
            (None, None) => None,
        };
        let mut c = match &file {
            Some(f) => read_config(f)?,
            None => Configuration::new(),
        };
        let flags = [
            ("high-availability.type", &self.ha_type),
            ("high-availability.zookeeper.quorum", &self.zookeeper_quorum),
            ("high-availability.cluster-id", &self.cluster_id),
            ("high-availability.storageDir", &self.storage_dir),
            (
                "high-availability.zookeeper.path.root",
                &self.zookeeper_root,
            ),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                c.set(key, v.clone());
            }
        }
        for (k, v) in &self.define {
            c.set(k.clone(), v.clone());
        }
        // A quorum on the command line means ZooKeeper unless a mode is given somewhere.
        if self.zookeeper_quorum.is_some() && !MODE_KEYS.iter().any(|k| c.contains_key(k)) {
            c.set("high-availability.type", "zookeeper");
        }
        Ok(Loaded {
            conf: c,
            file,
            flags: self.has_flags(),
        })
    }

    /// The validated HA configuration of an operator command: the configuration must choose a
    /// backend (else a usage error saying how), a command that reads the backend alone
    /// ([`Storage::Optional`]) needs no storage directory, and `--timeout` replaces the
    /// connection timeout.
    pub fn operator_config(&self, storage: Storage) -> Result<HaConfig, CliError> {
        self.operator_config_with(storage, std::env::var_os(FLINK_CONF_DIR))
    }

    fn operator_config_with(
        &self,
        storage: Storage,
        conf_dir: Option<OsString>,
    ) -> Result<HaConfig, CliError> {
        let loaded = self.load(conf_dir)?;
        if !loaded.chooses_mode() {
            return Err(CliError::Usage(match (&loaded.file, loaded.flags) {
                (None, false) => format!(
                    "no HA configuration (no --config, no {FLINK_CONF_DIR}, no connection \
                     options): {HOW_TO_CONNECT}"
                ),
                (Some(f), _) => format!(
                    "{} (from {}) sets no high-availability.type, so it names no HA backend \
                     to read (a Flink cluster without HA keeps its state in its own memory): \
                     {HOW_TO_CONNECT}",
                    f.path.display(),
                    f.named_by
                ),
                (None, true) => format!(
                    "the options given name no HA backend (no --ha-type, \
                     --zookeeper-quorum or -D high-availability.type): {HOW_TO_CONNECT}"
                ),
            }));
        }
        let parsed = match storage {
            Storage::Required => HaConfig::from_configuration(&loaded.conf),
            Storage::Optional => HaConfig::from_configuration_for_reading(&loaded.conf),
        };
        let mut config = parsed.map_err(|e| match &loaded.file {
            Some(f) => CliError::Usage(format!("{e} (configuration from {})", f.path.display())),
            None => CliError::Usage(e.to_string()),
        })?;
        if let Some(t) = self.timeout {
            config.zookeeper.connection_timeout = t;
        }
        Ok(config)
    }
}

/// The configuration file `path` stands for: the file itself, or in a Flink conf directory its
/// `config.yaml` (Flink 2, and 1.19+ when present) or else legacy `flink-conf.yaml`.
fn config_file(path: &Path, named_by: &'static str) -> Result<ConfigFile, CliError> {
    if path.is_dir() {
        for name in ["config.yaml", "flink-conf.yaml"] {
            let candidate = path.join(name);
            if candidate.exists() {
                return Ok(ConfigFile {
                    path: candidate,
                    named_by,
                });
            }
        }
        return Err(CliError::Usage(format!(
            "{} (from {named_by}) is a directory holding neither config.yaml nor flink-conf.yaml",
            path.display()
        )));
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        named_by,
    })
}

/// Reads a configuration file; errors name the file (and `FLINK_CONF_DIR` if it named it).
fn read_config(f: &ConfigFile) -> Result<Configuration, CliError> {
    Configuration::from_file(&f.path).map_err(|e| {
        let text = match e {
            e @ tenure::config::ConfigError::Io { .. } => e.to_string(),
            other => format!("{}: {other}", f.path.display()),
        };
        CliError::Usage(if f.named_by == FLINK_CONF_DIR {
            format!("{text} (from {FLINK_CONF_DIR})")
        } else {
            text
        })
    })
}

/// The backend's name for messages and JSON (`embedded`, `zookeeper`, ...).
pub fn backend_name(config: &HaConfig) -> String {
    match &config.mode {
        HaMode::None => "embedded".into(),
        HaMode::ZooKeeper => "zookeeper".into(),
        HaMode::Kubernetes => "kubernetes".into(),
        HaMode::Etcd => "etcd".into(),
        HaMode::Custom(name) => name.clone(),
    }
}

/// A connected cluster: the configuration and the HA services of this process.
#[derive(Debug)]
pub struct Connection {
    /// The validated configuration.
    pub config: HaConfig,
    /// The HA services.
    pub services: HaServices,
}

impl Connection {
    /// The backend's name.
    pub fn backend(&self) -> String {
        backend_name(&self.config)
    }

    /// Refuses (exit 3) a cluster of which the backend holds nothing: `kv.list("")` of the
    /// cluster's namespace is empty (listing creates nothing). Not in HA mode `NONE`, whose
    /// in-process backend always starts empty. The error names the cluster, the backend and
    /// where it looked, and (ZooKeeper) the cluster ids that do have data next to it.
    pub async fn require_data(&self) -> Result<(), CliError> {
        if self.config.mode == HaMode::None {
            return Ok(());
        }
        let entries = self
            .services
            .backend()
            .kv()
            .list("")
            .await
            .map_err(|e| CliError::kv("listing the cluster's HA data", e))?;
        if !entries.is_empty() {
            return Ok(());
        }
        let mut msg = format!(
            "no HA data of cluster {} on {} ({})",
            cluster_name(&self.config),
            self.backend(),
            location(&self.config)
        );
        if let Some(near) = nearby_clusters(&self.config).await {
            msg.push_str("; ");
            msg.push_str(&near);
        }
        Err(CliError::NotFound(msg))
    }

    /// Closes the session; the data stays.
    pub async fn close(self) {
        if let Err(e) = self.services.close().await {
            tracing::debug!(error = %e, "closing the HA services failed");
        }
    }
}

/// What kind of backend session a command opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// A process's full session (elections, writes; on Kubernetes a session ConfigMap).
    Full,
    /// A client-only session (`tenure::connect_read_only`): reads and leader retrieval only;
    /// it writes nothing (on Kubernetes: no session ConfigMap, watches by ConfigMap name).
    ClientOnly,
}

/// Whether a command needs the storage directory (blobs, job result files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// It reads or writes blobs or job result files: an unusable storage directory is an error.
    Required,
    /// It reads the backend only (or Flink's data, whose files it never opens): an unusable
    /// storage directory (say `hdfs://`, which tenure cannot open) is skipped with a warning.
    Optional,
}

/// Validates the configuration and connects (bounded, see [`connect_config`]). The
/// configuration must choose a backend ([`ConnArgs::operator_config`]).
pub async fn connect(args: &ConnArgs, storage: Storage) -> Result<Connection, CliError> {
    let config = args.operator_config(storage)?;
    connect_config(config, args.timeout, storage).await
}

/// Validates the configuration and connects a client-only session ([`Session::ClientOnly`]):
/// for commands that only read. Nothing is written to the backend; a write through the
/// services fails naming what was refused.
pub async fn connect_client(args: &ConnArgs, storage: Storage) -> Result<Connection, CliError> {
    let config = args.operator_config(storage)?;
    connect_config_as(config, args.timeout, storage, Session::ClientOnly).await
}

/// Connects for a command that only reads (a listing, one entry): a client-only session
/// ([`connect_client`]) with [`Storage::Optional`], then refuses (exit 3) a cluster of which
/// the backend holds nothing (see [`Connection::require_data`]): a mistyped cluster id is not
/// an empty answer.
pub async fn connect_reading(args: &ConnArgs) -> Result<Connection, CliError> {
    let conn = connect_client(args, Storage::Optional).await?;
    if let Err(e) = conn.require_data().await {
        conn.close().await;
        return Err(e);
    }
    Ok(conn)
}

/// How long connecting may take: `--timeout`, else the backend's connection timeout.
pub fn connect_bound(config: &HaConfig, timeout: Option<Duration>) -> Duration {
    timeout.unwrap_or(match config.mode {
        HaMode::ZooKeeper => config.zookeeper.connection_timeout,
        _ => DEFAULT_CONNECT_TIMEOUT,
    })
}

/// Where the backend keeps the cluster's data, for messages (`127.0.0.1:2181, znode
/// /flink/peer1`).
pub fn location(config: &HaConfig) -> String {
    match &config.mode {
        HaMode::None => "this process's memory".into(),
        HaMode::ZooKeeper => {
            let quorum = config.zookeeper.quorum.as_deref().unwrap_or("?");
            match zookeeper_namespace(config) {
                Some(ns) => format!("{quorum}, znode {ns}"),
                None => quorum.to_owned(),
            }
        }
        HaMode::Kubernetes => format!(
            "namespace {}, ConfigMaps labelled app={}",
            config.kubernetes.namespace,
            config.kubernetes.cluster_id.as_deref().unwrap_or("?")
        ),
        HaMode::Etcd => config.etcd.endpoints.join(","),
        HaMode::Custom(name) => format!("backend factory {name}"),
    }
}

/// The cluster's id as the backend names it (`kubernetes.cluster-id` on Kubernetes).
fn cluster_name(config: &HaConfig) -> &str {
    match (&config.mode, &config.kubernetes.cluster_id) {
        (HaMode::Kubernetes, Some(id)) => id,
        _ => &config.cluster_id,
    }
}

#[cfg(feature = "zookeeper")]
fn zookeeper_namespace(config: &HaConfig) -> Option<String> {
    tenure::zookeeper::ZooKeeperSettings::from_ha_config(config)
        .ok()
        .map(|s| s.namespace)
}

#[cfg(not(feature = "zookeeper"))]
fn zookeeper_namespace(_config: &HaConfig) -> Option<String> {
    None
}

/// Connects with a validated configuration, giving up after [`connect_bound`] (exit 4). While
/// it waits, a terminal on stderr is told what for. In HA mode `NONE` a terminal is told (and a
/// warning logged) that this process's in-memory backend holds nothing of other processes.
pub async fn connect_config(
    config: HaConfig,
    timeout: Option<Duration>,
    storage: Storage,
) -> Result<Connection, CliError> {
    connect_config_as(config, timeout, storage, Session::Full).await
}

/// [`connect_config`] with the kind of session to open.
pub async fn connect_config_as(
    config: HaConfig,
    timeout: Option<Duration>,
    storage: Storage,
    session: Session,
) -> Result<Connection, CliError> {
    let terminal = std::io::stderr().is_terminal();
    if config.mode == HaMode::None {
        const NOTE: &str = "HA mode NONE: this process's own in-memory backend holds nothing of \
                            other processes";
        tracing::warn!("{NOTE}");
        if terminal {
            eprintln!("tenure: note: {NOTE}");
        }
    }
    let bound = connect_bound(&config, timeout);
    let backend = backend_name(&config);
    let place = location(&config);
    let what = format!(
        "connecting to the {backend} backend of cluster {}",
        cluster_name(&config)
    );
    let progress = format!(
        "tenure: connecting to {backend} {place} (cluster {}), giving up after {}…",
        cluster_name(&config),
        format_duration(bound)
    );
    let connect = |config: HaConfig| {
        let progress = terminal.then(|| progress.clone());
        async move {
            match session {
                Session::Full => bounded(tenure::connect(&config), bound, progress).await,
                Session::ClientOnly => {
                    bounded(tenure::connect_read_only(&config), bound, progress).await
                }
            }
        }
    };
    let unreachable = || {
        CliError::Unreachable(format!(
            "{what}: no connection to {backend} {place} within {} (set --timeout, or the \
             backend's connection timeout, to wait longer)",
            format_duration(bound)
        ))
    };
    match connect(config.clone()).await {
        None => Err(unreachable()),
        Some(Ok(services)) => Ok(Connection { config, services }),
        Some(Err(HaError::Blob(e @ BlobError::InvalidLocation { .. })))
            if storage == Storage::Optional =>
        {
            eprintln!(
                "tenure: warning: {e}; reading the backend only (blobs and job result files are \
                 not available)"
            );
            let mut without = config.clone();
            without.storage_dir = None;
            without.job_result_store_path = None;
            match connect(without).await {
                None => Err(unreachable()),
                Some(Ok(services)) => Ok(Connection { config, services }),
                Some(Err(e)) => Err(CliError::ha(&what, e)),
            }
        }
        Some(Err(e)) => Err(CliError::ha(&what, e)),
    }
}

/// Runs `fut` for at most `bound` plus a margin (`None` after that); prints `progress` to
/// stderr if it takes longer than a moment.
async fn bounded<F: Future>(
    fut: F,
    bound: Duration,
    progress: Option<String>,
) -> Option<F::Output> {
    let deadline = tokio::time::Instant::now() + bound + BOUND_MARGIN;
    tokio::pin!(fut);
    if let Some(line) = progress {
        tokio::select! {
            out = &mut fut => return Some(out),
            () = tokio::time::sleep(PROGRESS_AFTER) => eprintln!("{line}"),
        }
    }
    tokio::time::timeout_at(deadline, fut).await.ok()
}

/// How many nearby cluster ids a "no HA data" error lists at most.
const NEARBY_SHOWN: usize = 10;

/// The cluster ids with data next to this one (ZooKeeper: the children of the cluster
/// namespace's parent znode, usually `high-availability.zookeeper.path.root`), as a sentence;
/// `None` if that cannot be learnt cheaply. Opens a short-lived session of its own (the HA
/// services expose no raw client); creates nothing.
#[cfg(feature = "zookeeper")]
async fn nearby_clusters(config: &HaConfig) -> Option<String> {
    use tenure::zookeeper::zk;
    if config.mode != HaMode::ZooKeeper {
        return None;
    }
    let settings = tenure::zookeeper::ZooKeeperSettings::from_ha_config(config).ok()?;
    let (parent, _) = settings.namespace.rsplit_once('/')?;
    let parent = if parent.is_empty() { "/" } else { parent };
    // The cluster id's own parent path (`/a` of `/a/b`), to print siblings as cluster ids.
    let segment = config.cluster_id_segment();
    let id_prefix = segment
        .rsplit_once('/')
        .map_or(String::new(), |(p, _)| format!("/{p}"));
    let mut connector = zk::Client::connector().with_session_timeout(settings.session_timeout);
    if let Some(digest) = &settings.digest_auth {
        connector = connector.with_auth("digest", digest.as_bytes());
    }
    let bound = settings.connection_timeout.min(Duration::from_secs(5));
    let client = tokio::time::timeout(bound, connector.connect(&settings.quorum))
        .await
        .ok()?
        .ok()?;
    let children = tokio::time::timeout(bound, client.list_children(parent))
        .await
        .ok()?;
    let mut ids: Vec<String> = match children {
        Ok(children) => children
            .into_iter()
            .filter(|c| parent != "/" || c != "zookeeper")
            .map(|c| format!("{id_prefix}/{c}"))
            .collect(),
        Err(zk::Error::NoNode) => {
            return Some(format!(
                "{parent} does not exist: no cluster has HA data there"
            ));
        }
        Err(e) => {
            tracing::debug!(error = %e, parent, "listing the clusters next to this one failed");
            return None;
        }
    };
    ids.sort();
    if ids.is_empty() {
        return Some(format!("no cluster has HA data under {parent}"));
    }
    let more = ids.len().saturating_sub(NEARBY_SHOWN);
    ids.truncate(NEARBY_SHOWN);
    let mut text = format!("cluster ids with data under {parent}: {}", ids.join(", "));
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    Some(text)
}

#[cfg(not(feature = "zookeeper"))]
async fn nearby_clusters(_config: &HaConfig) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &ConnArgs) -> Result<HaConfig, CliError> {
        args.operator_config_with(Storage::Required, None)
    }

    #[test]
    fn flags_override_the_file_and_defines_override_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("flink-conf.yaml");
        std::fs::write(
            &path,
            "high-availability.type: zookeeper\nhigh-availability.cluster-id: /from-file\n\
             high-availability.zookeeper.quorum: zk1:2181\nhigh-availability.storageDir: /tmp/ha\n",
        )
        .expect("write");
        let args = ConnArgs {
            config: Some(dir.path().to_path_buf()),
            cluster_id: Some("/from-flag".into()),
            define: vec![(
                "high-availability.zookeeper.quorum".into(),
                "zk9:2181".into(),
            )],
            ..Default::default()
        };
        let c = config(&args).expect("valid");
        assert_eq!(c.mode, HaMode::ZooKeeper);
        assert_eq!(c.cluster_id, "/from-flag");
        assert_eq!(c.zookeeper.quorum.as_deref(), Some("zk9:2181"));
        assert_eq!(c.storage_dir.as_deref(), Some("/tmp/ha"));
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_key() {
        let args = ConnArgs {
            ha_type: Some("zookeeper".into()),
            storage_dir: Some("/tmp/ha".into()),
            ..Default::default()
        };
        let e = config(&args).expect_err("no quorum");
        assert_eq!(e.code(), crate::exit::USAGE);
        assert!(
            e.to_string().contains("high-availability.zookeeper.quorum"),
            "{e}"
        );
        assert!(parse_define("novalue").is_err());
        assert_eq!(
            parse_define("a.b=c=d").expect("ok"),
            ("a.b".into(), "c=d".into())
        );
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("soon").is_err());
    }

    #[test]
    fn a_quorum_flag_implies_zookeeper_unless_a_mode_is_set() {
        let args = ConnArgs {
            zookeeper_quorum: Some("zk1:2181".into()),
            storage_dir: Some("/tmp/ha".into()),
            ..Default::default()
        };
        assert_eq!(config(&args).expect("valid").mode, HaMode::ZooKeeper);
        let explicit = ConnArgs {
            ha_type: Some("none".into()),
            ..args
        };
        assert_eq!(config(&explicit).expect("valid").mode, HaMode::None);
    }

    #[test]
    fn without_a_chosen_backend_operator_commands_are_told_how_to_connect() {
        let e = config(&ConnArgs::default()).expect_err("nothing configured");
        assert_eq!(e.code(), crate::exit::USAGE);
        for hint in [
            "--config",
            FLINK_CONF_DIR,
            "--zookeeper-quorum",
            "--ha-type",
        ] {
            assert!(e.to_string().contains(hint), "{hint} not in: {e}");
        }
        // A cluster id alone does not choose a backend.
        let e = config(&ConnArgs {
            cluster_id: Some("/peer1".into()),
            ..Default::default()
        })
        .expect_err("no mode");
        assert!(e.to_string().contains("name no HA backend"), "{e}");
        // Nor does a Flink configuration without HA keys.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.yaml"), "rest.port: 8081\n").expect("write");
        let e = config(&ConnArgs {
            config: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .expect_err("no mode");
        assert!(
            e.to_string().contains("sets no high-availability.type"),
            "{e}"
        );
        // An explicit NONE is the user's choice.
        let none = ConnArgs {
            ha_type: Some("NONE".into()),
            ..Default::default()
        };
        assert_eq!(config(&none).expect("explicit").mode, HaMode::None);
    }

    #[test]
    fn flink_conf_dir_is_read_unless_config_is_given() {
        let env = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            env.path().join("flink-conf.yaml"),
            "high-availability.type: zookeeper\nhigh-availability.zookeeper.quorum: zk1:2181\n\
             high-availability.cluster-id: /from-env\n",
        )
        .expect("write");
        let read = |args: &ConnArgs| {
            args.operator_config_with(Storage::Optional, Some(env.path().as_os_str().to_owned()))
        };
        let c = read(&ConnArgs::default()).expect("from FLINK_CONF_DIR");
        assert_eq!(c.cluster_id, "/from-env");
        assert_eq!(c.storage_dir, None, "a reader needs no storage dir");
        let flag = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            flag.path().join("config.yaml"),
            "high-availability:\n  type: NONE\n  cluster-id: /from-flag\n",
        )
        .expect("write");
        let c = read(&ConnArgs {
            config: Some(flag.path().to_path_buf()),
            ..Default::default()
        })
        .expect("--config wins");
        assert_eq!(c.cluster_id, "/from-flag");
        let empty = tempfile::tempdir().expect("tempdir");
        let e = ConnArgs::default()
            .operator_config_with(Storage::Optional, Some(empty.path().as_os_str().to_owned()))
            .expect_err("no file in the dir");
        assert!(
            e.to_string().contains(FLINK_CONF_DIR) && e.to_string().contains("neither"),
            "{e}"
        );
        // An empty FLINK_CONF_DIR is unset.
        let e = ConnArgs::default()
            .operator_config_with(Storage::Optional, Some(OsString::new()))
            .expect_err("nothing");
        assert!(e.to_string().starts_with("no HA configuration"), "{e}");
    }

    #[test]
    fn readers_need_no_storage_dir_and_timeout_bounds_the_connect() {
        let args = ConnArgs {
            zookeeper_quorum: Some("zk1:2181".into()),
            timeout: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        let e = config(&args).expect_err("writers need a storage dir");
        assert!(
            e.to_string().contains("high-availability.storageDir"),
            "{e}"
        );
        let c = args
            .operator_config_with(Storage::Optional, None)
            .expect("readers do not");
        assert_eq!(c.zookeeper.connection_timeout, Duration::from_secs(2));
        assert_eq!(connect_bound(&c, args.timeout), Duration::from_secs(2));
        assert_eq!(
            connect_bound(&HaConfig::embedded(), None),
            DEFAULT_CONNECT_TIMEOUT
        );
        assert_eq!(location(&c), "zk1:2181, znode /flink/default");
    }
}
