//! The etcd backend of tenure (HA mode `etcd`, a tenure extension): one lease per process,
//! the versioned KV on etcd's revisions and transactions, watches by revision.
//!
//! One [`EtcdBackend`] is one process's lease (its "session"), shared by every election,
//! retrieval and store of that process. It implements [`HaBackend`] (connection state,
//! closing) and [`VersionedKv`] (keys below `<path.root>/<cluster-id>/`), so the core's stores
//! run on it unchanged.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tenure_etcd::{EtcdBackend, EtcdSettings};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = EtcdSettings::new(vec!["http://127.0.0.1:2379".into()], "/flink", "default");
//! let backend = Arc::new(EtcdBackend::connect(settings).await?);
//! # Ok(()) }
//! ```
//!
//! # Mapping
//!
//! - Keys: see [`keys`]; a layout key is the etcd key `<namespace>/<key>`.
//! - Versions are etcd's `mod_revision` of the key (unique per write, growing); compare-and-set
//!   and versioned deletes compare it, [`Entry::version`](tenure_core::kv::Entry::version)
//!   reports it, and a write returns the revision it committed at.
//! - Ephemeral keys are put under the process's lease;
//!   [`Entry::ephemeral_owner`](tenure_core::kv::Entry::ephemeral_owner) is that lease id.
//! - Every write is one etcd transaction: checks are `Compare`s, a fence compares the leader
//!   key's create revision with the token's epoch (see the `txn` module).
//! - Connection state: see the `session` module; `Suspended` while renewals of the lease
//!   fail inside its TTL, `Lost` once the lease is gone (a new lease follows).
//!
//! - Leader latch: see [`latch`] (lease + transaction, lowest create revision leads, each
//!   participant watches only its predecessor).

pub mod auth;
mod error;
pub mod keys;
pub mod latch;
mod latch_io;
mod session;
pub mod settings;
mod store;
mod tls;
mod txn;
pub mod watch;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tenure_core::config::HaConfig;
use tenure_core::connect::ConnectError;
use tenure_core::connection::{ConnectionState, SuspendedPolicy};
use tenure_core::driver::{HaBackend, SessionDriver};
use tenure_core::kv::{KvError, VersionedKv};
use tokio::sync::watch as tokio_watch;

pub use auth::Credentials;
/// The etcd client crate this backend is built on.
pub use etcd_client;
pub use settings::EtcdSettings;

use session::Shared;

/// One process's etcd lease, implementing [`HaBackend`] and [`VersionedKv`] below one cluster
/// namespace. Cheap to clone; clones share the lease. [`HaBackend::close`] revokes it.
#[derive(Clone)]
pub struct EtcdBackend {
    shared: Arc<Shared>,
}

impl fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("endpoints", &self.shared.settings.endpoints)
            .field("namespace", &self.shared.keys.namespace())
            .field("lease", &format_args!("{:#x}", self.shared.lease()))
            .finish()
    }
}

impl EtcdBackend {
    /// Connects with `settings` and grants the process's lease, giving up after the request
    /// timeout with [`ConnectError::Unreachable`] naming the endpoints.
    pub async fn connect(settings: EtcdSettings) -> Result<Self, ConnectError> {
        Ok(Self {
            shared: Shared::connect(settings).await?,
        })
    }

    /// Connects from an HA configuration (`high-availability.etcd.*`,
    /// `high-availability.cluster-id`).
    pub async fn from_config(config: &HaConfig) -> Result<Self, ConnectError> {
        Self::connect(EtcdSettings::from_ha_config(config)?).await
    }

    /// The settings the backend was opened with.
    pub fn settings(&self) -> &EtcdSettings {
        &self.shared.settings
    }

    /// The namespace, `/<root>/<cluster-id>`.
    pub fn namespace(&self) -> &str {
        self.shared.keys.namespace()
    }

    /// The current lease id.
    pub fn lease_id(&self) -> i64 {
        self.shared.lease()
    }

    /// How many leases this backend has had (1 until the first was lost).
    pub fn lease_generation(&self) -> u64 {
        self.shared.status().generation
    }

    /// A client of the backend's connection, for tools and tests that need raw etcd access.
    pub fn client(&self) -> Result<etcd_client::Client, KvError> {
        self.shared.client()
    }
}

#[async_trait]
impl HaBackend for EtcdBackend {
    fn kind(&self) -> &'static str {
        "etcd"
    }

    fn kv(&self) -> Arc<dyn VersionedKv> {
        Arc::new(self.clone())
    }

    fn connection_state(&self) -> tokio_watch::Receiver<ConnectionState> {
        self.shared.subscribe_connection()
    }

    fn suspended_policy(&self) -> SuspendedPolicy {
        self.shared.settings.suspended_policy
    }

    fn driver(&self) -> Result<SessionDriver, KvError> {
        self.shared.client()?;
        Ok(self
            .shared
            .driver
            .get_or_init(|| {
                SessionDriver::spawn(latch_io::Io {
                    shared: Arc::downgrade(&self.shared),
                    view: self.shared.subscribe_status(),
                })
            })
            .clone())
    }

    async fn close(&self) -> Result<(), KvError> {
        self.shared.close().await;
        Ok(())
    }
}
