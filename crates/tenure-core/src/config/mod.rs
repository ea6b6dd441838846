//! Configuration with Flink's own keys, so that a Flink operator's config file means the same here.
//!
//! [`Configuration`] is the flat key/value view (`high-availability.type` → `zookeeper`), read from
//! a legacy `flink-conf.yaml` or a nested `config.yaml` ([`Configuration::from_file`]).
//! [`HaConfig`] is the typed, validated view of the HA keys (Flink's `HighAvailabilityOptions`,
//! `KubernetesHighAvailabilityOptions`, plus the tenure extensions for etcd). Unknown keys are
//! ignored; a bad value is an error that names the key, the value and what was expected.
//!
//! In code, the typed builders ([`HaConfig::zookeeper`], [`HaConfig::kubernetes`],
//! [`HaConfig::etcd`], [`HaConfig::builder`]) record the same keys and validate them the same
//! way.
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
    /// Only a regular file of at most [`MAX_FILE_BYTES`](Self::MAX_FILE_BYTES) is read (a FIFO,
    /// a device or a bigger file is refused from its metadata, unread). I/O errors name the path.
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

pub mod builder;
mod builder_etcd;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod builder_tests;
pub mod cleanup_strategy;
mod etcd_endpoints;
pub mod etcd_security;
mod ha;
mod job_graphs_path;
mod quorum;
mod retired_keys;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
pub mod zk_security;
pub mod zookeeper_client;

pub use builder::HaConfigBuilder;
pub use builder_etcd::Etcd;
pub use cleanup_strategy::CleanupStrategy;
pub use etcd_security::{EtcdAuth, EtcdTls};
pub use ha::{
    EtcdConfig, HaConfig, HaMode, KubernetesConfig, NamingEra, ZooKeeperAcl, ZooKeeperConfig,
};
pub use job_graphs_path::job_graphs_dir;
pub use quorum::{DEFAULT_ZOOKEEPER_PORT, validate_zookeeper_quorum};
pub use zk_security::{ZooKeeperSasl, ZooKeeperTls};
pub use zookeeper_client::ZooKeeperAuth;
