//! Choosing and connecting a backend from a configuration (Flink's
//! `HighAvailabilityServicesUtils.createHighAvailabilityServices`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tenure_core::config::{HaConfig, HaMode};
use tenure_core::driver::HaBackend;
use tenure_core::embedded::EmbeddedCluster;
use tenure_core::services::{HaError, HaServices, HaServicesOptions};

/// Connects a user-provided backend; register one under a name and select it with
/// `high-availability.type: <name>` (the Rust counterpart of Flink's factory-class option).
#[async_trait]
pub trait BackendFactory: Send + Sync {
    /// Opens this process's session on the backend.
    async fn connect(&self, config: &HaConfig) -> Result<Arc<dyn HaBackend>, HaError>;
}

/// Named user-provided backend factories.
#[derive(Clone, Default)]
pub struct BackendRegistry {
    factories: HashMap<String, Arc<dyn BackendFactory>>,
}

impl fmt::Debug for BackendRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendRegistry")
            .field("names", &self.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl BackendRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `factory` under `name` (matched case-sensitively against
    /// `high-availability.type`).
    pub fn register(&mut self, name: impl Into<String>, factory: Arc<dyn BackendFactory>) {
        self.factories.insert(name.into(), factory);
    }

    /// The factory registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn BackendFactory>> {
        self.factories.get(name)
    }
}

/// Opens the HA services this configuration selects, with no custom backends.
///
/// Connecting is bounded: with ZooKeeper the first session must be established within
/// `high-availability.zookeeper.client.connection-timeout` (Flink's default 15 s), retries
/// included; else this fails with [`HaError::Connect`] ([`ConnectError::Unreachable`](tenure_core::connect::ConnectError::Unreachable)) naming
/// the servers. (Once connected,
/// a lost connection is retried in the background and reported as a connection state.) The
/// Kubernetes backend bounds each API request by its request timeout. `NONE` never waits.
///
/// `NONE` (the embedded mode) creates a new, private in-process cluster on every call: two
/// services connected this way share no elections and no data, and both lead. For several
/// simulated processes on one embedded cluster (tests, demos), create an [`EmbeddedCluster`]
/// and call [`EmbeddedCluster::services`] once per process:
///
/// ```
/// use tenure::{EmbeddedCluster, HaConfig};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let cluster = EmbeddedCluster::new();
/// let config = HaConfig::builder().cluster_id("my-app").build()?;
/// let first = cluster.services(&config)?;
/// let second = cluster.services(&config)?; // shares first's elections, keys and blobs
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// Without `high-availability.storageDir`, a shared backend (ZooKeeper, Kubernetes, a custom
/// one) has no blob store: reads and small writes work, and a write needing a blob fails with
/// an error naming `high-availability.storageDir`
/// (see [`HaServicesOptions::from_config`]).
pub async fn connect(config: &HaConfig) -> Result<HaServices, HaError> {
    connect_with(config, &BackendRegistry::new()).await
}

/// Opens the HA services this configuration selects; custom mode names are looked up in
/// `registry`.
///
/// `NONE` starts a new in-process embedded cluster for this process alone. To let several
/// in-process "processes" share one embedded cluster, call [`EmbeddedCluster::services`] on
/// one cluster.
pub async fn connect_with(
    config: &HaConfig,
    registry: &BackendRegistry,
) -> Result<HaServices, HaError> {
    if config.mode == HaMode::None {
        return EmbeddedCluster::new().services(config);
    }
    let options = HaServicesOptions::from_config(config)?;
    let backend: Arc<dyn HaBackend> = match &config.mode {
        HaMode::Custom(name) => match registry.get(name) {
            Some(factory) => factory.connect(config).await?,
            None => {
                return Err(HaError::Unsupported(format!(
                    "high-availability.type {name:?} names no registered backend factory \
                     (expected NONE, ZOOKEEPER, KUBERNETES, ETCD or a registered name)"
                )));
            }
        },
        #[cfg(feature = "zookeeper")]
        HaMode::ZooKeeper => {
            Arc::new(tenure_zookeeper::ZooKeeperBackend::from_config(config).await?)
        }
        #[cfg(feature = "kubernetes")]
        HaMode::Kubernetes => {
            Arc::new(tenure_kubernetes::KubernetesBackend::from_config(config).await?)
        }
        #[cfg(feature = "etcd")]
        HaMode::Etcd => Arc::new(tenure_etcd::EtcdBackend::from_config(config).await?),
        other => {
            return Err(HaError::Unsupported(format!(
                "HA mode {other:?} is not built into this tenure build"
            )));
        }
    };
    Ok(HaServices::new(backend, options))
}
