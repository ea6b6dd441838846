#![doc = include_str!("../../../README.md")]

mod connect;

pub use connect::{BackendFactory, BackendRegistry, connect, connect_with};
pub use tenure_core::config::HaConfigBuilder;
pub use tenure_core::config::{Configuration, HaConfig, HaMode};
pub use tenure_core::connect::ConnectError;
pub use tenure_core::embedded::EmbeddedCluster;
pub use tenure_core::services::{HaError, HaServices, HaServicesOptions};
pub use tenure_core::{
    blob, cleanup, clock, codec, config, connection, driver, election, embedded, ids, kv, latch,
    layout, leader_info, observed_kv, observer, retrieval, retry, segments, services, store, sync,
    watch_hub,
};
/// The Kubernetes backend (feature `kubernetes`).
#[cfg(feature = "kubernetes")]
pub use tenure_kubernetes as kubernetes;
/// The ZooKeeper backend (feature `zookeeper`, on by default).
#[cfg(feature = "zookeeper")]
pub use tenure_zookeeper as zookeeper;
