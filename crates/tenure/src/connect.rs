//! Choosing and connecting a backend from a configuration (Flink's
//! `HighAvailabilityServicesUtils.createHighAvailabilityServices`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tenure_core::backend_read_only::ReadOnlyBackend;
use tenure_core::config::{HaConfig, HaMode};
use tenure_core::driver::HaBackend;
use tenure_core::embedded::EmbeddedCluster;
use tenure_core::services::{HaError, HaServices, HaServicesOptions};
use tenure_core::services_client::ClientHaServices;

/// Connects a user-provided backend; register one under a name and select it with
/// `high-availability.type: <name>` (the Rust counterpart of Flink's factory-class option).
#[async_trait]
pub trait BackendFactory: Send + Sync {
    /// Opens this process's session on the backend.
    async fn connect(&self, config: &HaConfig) -> Result<Arc<dyn HaBackend>, HaError>;

    /// Opens a session for [`ClientHaServices`]: one that writes nothing on the backend by
    /// itself (no session record, no renewals). The default is [`connect`](Self::connect),
    /// right for a backend whose session writes nothing until asked; override it otherwise.
    async fn connect_client(&self, config: &HaConfig) -> Result<Arc<dyn HaBackend>, HaError> {
        self.connect(config).await
    }
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
            None => return Err(no_factory(name)),
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
        other => return Err(not_built(other)),
    };
    Ok(HaServices::new(backend, options))
}

/// Opens client-only HA services (Flink's `ClientHighAvailabilityServices`) for this
/// configuration: leader retrievers and read-only stores, without a backend session that
/// writes anything.
///
/// - ZooKeeper: an ordinary session; reads and persistent watches create no znode, and no
///   ephemeral node is ever created by it.
/// - Kubernetes: the client-only backend: no session ConfigMap
///   (`<cluster-id>-tenure-session-<id>`), nothing renewed or reaped, and every ConfigMap it
///   follows is watched by name (`fieldSelector=metadata.name=<name>`), so renewals of other
///   processes' sessions never reach it.
/// - etcd: a session without a lease (`EtcdSettings::for_client_only`): it leaves nothing on
///   the server, joins no latch, and its connection state follows a count-only read of the
///   namespace every lease TTL / 3.
/// - `NONE`: a new, private embedded cluster, as [`connect`] (it holds nothing of other
///   processes).
///
/// Every write through the services' KV or stores fails with
/// [`KvError::Unauthorized`](tenure_core::kv::KvError::Unauthorized) naming the operation, and
/// nothing reaches the backend. Connecting is bounded as [`connect`]'s is.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let config = tenure::HaConfig::builder().cluster_id("my-app").build()?;
/// let client = tenure::connect_client(&config).await?;
/// let dispatcher = client.dispatcher_leader_retriever();
/// # drop(dispatcher);
/// client.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn connect_client(config: &HaConfig) -> Result<ClientHaServices, HaError> {
    connect_client_with(config, &BackendRegistry::new()).await
}

/// Opens client-only HA services (see [`connect_client`]); custom mode names are looked up in
/// `registry` and connected with [`BackendFactory::connect_client`].
pub async fn connect_client_with(
    config: &HaConfig,
    registry: &BackendRegistry,
) -> Result<ClientHaServices, HaError> {
    let options = HaServicesOptions::from_config(config)?;
    let backend = client_session(config, registry).await?;
    Ok(ClientHaServices::new(backend, options))
}

/// Opens the full [`HaServices`] type on a client-only session (see [`connect_client`]),
/// read-only: reads, store listings and leader retrieval work as usual; every write (KV,
/// stores) and every election fails with
/// [`KvError::Unauthorized`](tenure_core::kv::KvError::Unauthorized) naming what was refused,
/// and nothing reaches the backend. For code written against [`HaServices`] that only reads
/// (operator tools); new code should prefer [`connect_client`], whose type has no write
/// methods.
pub async fn connect_read_only(config: &HaConfig) -> Result<HaServices, HaError> {
    let options = HaServicesOptions::from_config(config)?;
    let session = client_session(config, &BackendRegistry::new()).await?;
    Ok(HaServices::new(
        Arc::new(ReadOnlyBackend::new(session)),
        options,
    ))
}

/// A session that writes nothing on the backend by itself.
async fn client_session(
    config: &HaConfig,
    registry: &BackendRegistry,
) -> Result<Arc<dyn HaBackend>, HaError> {
    Ok(match &config.mode {
        HaMode::None => Arc::new(EmbeddedCluster::new().connect()),
        HaMode::Custom(name) => match registry.get(name) {
            Some(factory) => factory.connect_client(config).await?,
            None => return Err(no_factory(name)),
        },
        #[cfg(feature = "zookeeper")]
        HaMode::ZooKeeper => {
            Arc::new(tenure_zookeeper::ZooKeeperBackend::from_config(config).await?)
        }
        #[cfg(feature = "kubernetes")]
        HaMode::Kubernetes => {
            Arc::new(tenure_kubernetes::KubernetesBackend::from_config_client(config).await?)
        }
        #[cfg(feature = "etcd")]
        HaMode::Etcd => Arc::new(tenure_etcd::EtcdBackend::from_config_client(config).await?),
        // Reached only in builds without one of the backend features.
        #[allow(unreachable_patterns)]
        other => return Err(not_built(other)),
    })
}

fn no_factory(name: &str) -> HaError {
    HaError::Unsupported(format!(
        "high-availability.type {name:?} names no registered backend factory \
         (expected NONE, ZOOKEEPER, KUBERNETES, ETCD or a registered name)"
    ))
}

fn not_built(mode: &HaMode) -> HaError {
    HaError::Unsupported(format!(
        "HA mode {mode:?} is not built into this tenure build"
    ))
}
