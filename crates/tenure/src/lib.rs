#![doc = include_str!("../../../README.md")]

mod connect;

/// Configuration with Flink's own keys, so that a Flink operator's config file means the same
/// here (the items of `tenure_core::config`).
///
/// [`Configuration`] is the flat key/value view, read from a legacy
/// `flink-conf.yaml` or a nested `config.yaml`; [`HaConfig`] is the typed, validated view of
/// the HA keys. In code, the typed builders ([`HaConfig::zookeeper`], [`HaConfig::kubernetes`],
/// [`HaConfig::builder`]) record the same keys and validate them the same way.
///
/// ```
/// use tenure::config::{Configuration, HaConfig, HaMode};
///
/// let conf = Configuration::parse_yaml(
///     "high-availability:\n  type: zookeeper\n  storageDir: /shared/ha\n  zookeeper:\n    quorum: zk1:2181, zk2:2181\n",
/// )?;
/// let ha = HaConfig::from_configuration(&conf)?;
/// assert_eq!(ha.mode, HaMode::ZooKeeper);
///
/// // The same settings, typed:
/// let built = HaConfig::zookeeper("zk1:2181,zk2:2181").storage_dir("/shared/ha").build()?;
/// assert_eq!(built.zookeeper.quorum, ha.zookeeper.quorum);
/// # Ok::<(), tenure::config::ConfigError>(())
/// ```
pub mod config {
    pub use tenure_core::config::*;
}

/// Byte buffers as the stores take and return them (re-exported from `bytes`).
pub use bytes::Bytes;
pub use connect::{
    BackendFactory, BackendRegistry, connect, connect_client, connect_client_with,
    connect_read_only, connect_with,
};
pub use tenure_core::config::HaConfigBuilder;
pub use tenure_core::config::{CleanupStrategy, Configuration, HaConfig, HaMode};
pub use tenure_core::connect::ConnectError;
pub use tenure_core::election::{LeaderConfirmer, LeaderElection, LeaderTerm, Leadership};
pub use tenure_core::embedded::EmbeddedCluster;
pub use tenure_core::ha_stores::HaStores;
pub use tenure_core::ids::{CheckpointId, ComponentId, JobId, LeaderSessionId};
pub use tenure_core::retrieval::{LeaderRetriever, LeaderState};
pub use tenure_core::services::{HaError, HaServices, HaServicesOptions};
pub use tenure_core::services_client::ClientHaServices;
pub use tenure_core::store::{CompletedCheckpoint, StoreError, Writes};
pub use tenure_core::{
    backend_read_only, blob, cleanup, clock, codec, connection, driver, election, embedded,
    ha_stores, ids, job_cleanup, kv, kv_read_only, latch, layout, leader_info, observed_kv,
    observer, retrieval, retry, segments, services, services_client, store, sync, watch_hub,
};
/// The etcd backend (feature `etcd`).
#[cfg(feature = "etcd")]
pub use tenure_etcd as etcd;
/// The Kubernetes backend (feature `kubernetes`).
#[cfg(feature = "kubernetes")]
pub use tenure_kubernetes as kubernetes;
/// The ZooKeeper backend (feature `zookeeper`, on by default).
#[cfg(feature = "zookeeper")]
pub use tenure_zookeeper as zookeeper;
/// Cancellation of work bound to a leader term ([`LeaderTerm::cancellation`]), re-exported from
/// `tokio-util`.
pub use tokio_util::sync::CancellationToken;
