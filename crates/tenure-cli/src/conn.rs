//! The connection options every operator command takes, and connecting with them.
//!
//! The configuration is built in layers, later ones winning: the Flink configuration file
//! (`--config`), then the named flags (`--ha-type`, `--zookeeper-quorum`, `--cluster-id`,
//! `--storage-dir`, `--zookeeper-root`), then `-D key=value` pairs. The result is validated as
//! Flink would before anything connects.

use std::path::{Path, PathBuf};

use clap::Args;
use tenure::blob::BlobError;
use tenure::config::HaMode;
use tenure::{Configuration, HaConfig, HaError, HaServices};

use crate::exit::CliError;

/// Options selecting the backend and the cluster; global, so they go before or after the command.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnArgs {
    /// A Flink configuration file (`config.yaml` or legacy `flink-conf.yaml`), or a Flink conf
    /// directory holding one; its HA keys select the backend and the cluster.
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
}

fn parse_define(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl ConnArgs {
    /// Whether any option other than `--config` was given (the demo takes only `--config`).
    pub fn has_overrides(&self) -> bool {
        self.ha_type.is_some()
            || self.zookeeper_quorum.is_some()
            || self.cluster_id.is_some()
            || self.storage_dir.is_some()
            || self.zookeeper_root.is_some()
            || !self.define.is_empty()
    }

    /// The flat configuration: the file, then the flags, then `-D` pairs.
    pub fn configuration(&self) -> Result<Configuration, CliError> {
        let mut c = match &self.config {
            Some(path) => Configuration::from_file(&config_file(path))
                .map_err(|e| CliError::Usage(e.to_string()))?,
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
        let mode_keys = [
            "high-availability.type",
            "high-availability",
            "recovery.mode",
        ];
        if self.zookeeper_quorum.is_some() && !mode_keys.iter().any(|k| c.contains_key(k)) {
            c.set("high-availability.type", "zookeeper");
        }
        Ok(c)
    }

    /// The validated HA configuration; bad values are usage errors naming the key.
    pub fn ha_config(&self) -> Result<HaConfig, CliError> {
        HaConfig::from_configuration(&self.configuration()?)
            .map_err(|e| CliError::Usage(e.to_string()))
    }
}

/// A Flink conf directory stands for its `config.yaml` (Flink 2) or `flink-conf.yaml`.
fn config_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        for name in ["config.yaml", "flink-conf.yaml"] {
            let candidate = path.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
        return path.join("config.yaml");
    }
    path.to_path_buf()
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

    /// Closes the session; the data stays.
    pub async fn close(self) {
        if let Err(e) = self.services.close().await {
            tracing::debug!(error = %e, "closing the HA services failed");
        }
    }
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

/// Validates the configuration and connects. In HA mode `NONE` an info-level log says that this
/// process's in-memory backend holds nothing written by other processes.
pub async fn connect(args: &ConnArgs, storage: Storage) -> Result<Connection, CliError> {
    let config = args.ha_config()?;
    connect_config(config, storage).await
}

/// Connects with a validated configuration.
pub async fn connect_config(config: HaConfig, storage: Storage) -> Result<Connection, CliError> {
    if config.mode == HaMode::None {
        tracing::info!(
            "HA mode NONE: this process's own in-memory backend holds no data of other processes; \
             select a backend with --config or --ha-type"
        );
    }
    let what = format!(
        "connecting to the {} backend of cluster {}",
        backend_name(&config),
        config.cluster_id
    );
    match tenure::connect(&config).await {
        Ok(services) => Ok(Connection { config, services }),
        Err(HaError::Blob(e @ BlobError::InvalidLocation { .. }))
            if storage == Storage::Optional =>
        {
            eprintln!(
                "tenure: warning: {e}; reading the backend only (blobs and job result files are \
                 not available)"
            );
            let mut without = config.clone();
            without.storage_dir = None;
            without.job_result_store_path = None;
            let services = tenure::connect(&without)
                .await
                .map_err(|e| CliError::ha(&what, e))?;
            Ok(Connection { config, services })
        }
        Err(e) => Err(CliError::ha(&what, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let c = args.ha_config().expect("valid");
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
        let e = args.ha_config().expect_err("no quorum");
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
    }

    #[test]
    fn a_quorum_flag_implies_zookeeper_unless_a_mode_is_set() {
        let args = ConnArgs {
            zookeeper_quorum: Some("zk1:2181".into()),
            storage_dir: Some("/tmp/ha".into()),
            ..Default::default()
        };
        assert_eq!(args.ha_config().expect("valid").mode, HaMode::ZooKeeper);
        let explicit = ConnArgs {
            ha_type: Some("none".into()),
            ..args
        };
        assert_eq!(explicit.ha_config().expect("valid").mode, HaMode::None);
    }
}
