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
//! # When to pick etcd
//!
//! - You already run etcd (every Kubernetes control plane does, but give tenure an etcd of its
//!   own or a prefix of a shared one, never the API server's), and not ZooKeeper.
//! - You want failover bounded by one number: a crashed leader's lease expires after
//!   `high-availability.etcd.lease-ttl` (default 15 s; the fault tests run at 2 s and a standby
//!   led 1.7–2.1 s after SIGKILL or SIGSTOP of the leader), and its keys go with it.
//! - Every fenced write is one etcd transaction comparing the leader key's create revision and
//!   lease, checked by the raft leader in the same commit as the write: no window between a
//!   check and the write, on one node or a 3-node cluster.
//!
//! Prefer ZooKeeper when Flink processes must share the HA data (Flink has no etcd HA
//! service), and the Kubernetes mode when the cluster runs on Kubernetes without an etcd of
//! its own to use. Payloads above 1 KiB (job graphs, checkpoint metadata) live in the blob
//! store (`high-availability.storageDir`), as on every backend; etcd holds their pointers.
//!
//! # Client-only readers
//!
//! [`EtcdBackend::from_config_client`] (used by `tenure::connect_client` and the `tenure`
//! command's read-only commands) grants no lease: a reader leaves nothing on the server, joins
//! no latch and refuses writes before sending them (see [`EtcdSettings::for_client_only`]).
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
//!   key's create revision with the token's epoch and its lease with the lease the key is named
//!   by (see the `txn` module).
//! - Connection state: see the `session` module; `Suspended` while renewals of the lease
//!   fail inside its TTL, `Lost` once the lease is gone (a new lease follows).
//!
//! - Leader latch: see [`latch`] (lease + transaction, lowest create revision leads, each
//!   participant watches only its predecessor).
//!
//! # Secured etcd
//!
//! TLS and username/password authentication are set with these keys (read by
//! [`EtcdSettings::from_ha_config`]; in code, [`EtcdSettings::with_tls`] and
//! [`EtcdSettings::with_user`]):
//!
//! | key | meaning |
//! |-----|---------|
//! | `high-availability.etcd.tls.ca-file` | PEM CA certificates that verify the servers; without it, `https://` endpoints are verified against the system roots |
//! | `high-availability.etcd.tls.cert-file` | PEM client certificate chain, for servers run with `--client-cert-auth` (only with the key file) |
//! | `high-availability.etcd.tls.key-file` | PEM private key of the client certificate (only with the cert file) |
//! | `high-availability.etcd.username` | the etcd user |
//! | `high-availability.etcd.password` | its password, or instead: |
//! | `high-availability.etcd.password-file` | a file holding it (one trailing newline is dropped) |
//!
//! A TLS key makes every endpoint TLS: endpoints are then `https://` (an `http://` endpoint
//! beside a TLS key is a configuration error naming it). TLS runs on rustls with the `ring`
//! provider, the only one in the build.
//!
//! Failures are reported at connect, within the request timeout, naming the endpoints:
//! [`ConnectError::Tls`] when a server's certificate does not verify against the CA, when a
//! server requiring a client certificate refused the handshake, or when an `http://` endpoint
//! is in fact a TLS port (a handshake check runs before the client connects, because the
//! client itself only reports a closed connection); [`ConnectError::AuthFailed`] naming
//! `high-availability.etcd.username` when etcd refuses the user or password. The CLI exits 7
//! for both. Once connected, a request refused by etcd's RBAC is
//! [`KvError::Unauthorized`].
//!
//! **The minimal role** for RBAC-enabled clusters is `readwrite` on the key prefix
//! `<path.root>/<cluster-id>/` (for the defaults: `/flink/<cluster-id>/`), e.g.
//!
//! ```text
//! etcdctl role add flink-ha
//! etcdctl role grant-permission flink-ha --prefix=true readwrite /flink/my-cluster/
//! etcdctl user add flink
//! etcdctl user grant-role flink flink-ha
//! ```
//!
//! Nothing else is needed: granting, renewing and revoking the process's lease needs no
//! permission of its own (etcd checks a revoke against write permission on the lease's keys,
//! which all lie below the prefix). Tested on etcd 3.4 with a user holding only that role
//! (`tests/suite/security.rs`), including that a write outside the prefix is refused.
//!
//! Auth tokens: etcd's simple tokens expire after `--auth-token-ttl` (300 s) without use, and
//! after a server restart. The client authenticates again when a request is refused for its
//! token, but a watch opened with an expired token is cancelled rather than refused, and lease
//! renewals do not use the token; so the session uses the token at every confirmed renewal
//! (one count-only read of the namespace's own key), which keeps it alive while the session
//! lives and refreshes it after a restart.

pub mod auth;
mod client_only;
mod deletions;
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
pub use deletions::{LatchWaits, latch_waits};
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

    /// Connects a client-only session from an HA configuration (see
    /// [`EtcdSettings::for_client_only`]): no lease, no latch, writes refused.
    pub async fn from_config_client(config: &HaConfig) -> Result<Self, ConnectError> {
        Self::connect(EtcdSettings::from_ha_config(config)?.for_client_only()).await
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
        let driver = self
            .shared
            .driver
            .get_or_init(|| {
                SessionDriver::spawn(latch_io::Io {
                    shared: Arc::downgrade(&self.shared),
                    view: self.shared.subscribe_status(),
                    deletions: self.shared.deletions().clone(),
                })
            })
            .clone();
        // A client-only session has no lease to put a latch key under.
        Ok(if self.shared.settings.client_only {
            driver.read_only()
        } else {
            driver
        })
    }

    async fn close(&self) -> Result<(), KvError> {
        self.shared.close().await;
        Ok(())
    }
}
