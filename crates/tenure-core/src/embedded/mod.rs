//! The embedded backend (HA mode `NONE`): an in-process "server" shared by any number of
//! sessions, with the same versioning, ephemeral-key and fencing semantics as the real backends.
//!
//! One [`EmbeddedCluster`] plays the coordination service (and, without a storage directory,
//! the shared blob store); each simulated process gets its HA services with
//! [`EmbeddedCluster::services`], or a bare session with [`EmbeddedCluster::connect`] (an
//! [`EmbeddedSession`], which implements [`HaBackend`] and [`VersionedKv`]). Every service and
//! session of one cluster shares its elections and data; two clusters share nothing. Closing or
//! killing a session ends its ephemeral keys and latch places, exactly as a ZooKeeper session
//! expiry would.
//!
//! ```
//! use tenure_core::config::HaConfig;
//! use tenure_core::embedded::EmbeddedCluster;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let cluster = EmbeddedCluster::new();
//! let config = HaConfig::builder().cluster_id("my-app").build()?;
//! let first = cluster.services(&config)?;
//! let second = cluster.services(&config)?;
//! // One election: exactly one of the two processes leads the dispatcher.
//! let mut a = first.dispatcher_leader_election().await?;
//! let b = second.dispatcher_leader_election().await?;
//! a.wait_for_leadership().await?;
//! assert!(b.current().term().is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod latch;
mod state;
mod txn;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;

use crate::blob::BlobStore;
use crate::config::{ConfigError, HaConfig, HaMode};
use crate::connection::{ConnectionState, SuspendedPolicy};
use crate::driver::{HaBackend, SessionDriver, SessionView};
use crate::kv::{
    CreateOptions, DeleteOptions, Entry, FencingToken, KvError, KvWatch, Txn, TxnResult, Version,
    VersionedKv, validate_key, validate_prefix,
};
use crate::services::{HaError, HaServices, HaServicesOptions};
use state::State;

/// The in-process coordination service of the embedded backend, and the blob store of its
/// processes when they have no storage directory. Cheap to clone; clones share the same data.
///
/// Everything connected to one cluster shares its elections, keys and blobs: create one cluster
/// and call [`services`](Self::services) once per simulated process. (`tenure::connect` with
/// the embedded mode creates a new cluster for each call, so its services share nothing.)
#[derive(Debug, Clone)]
pub struct EmbeddedCluster {
    state: Arc<Mutex<State>>,
    /// Blobs of every process without a storage directory, below `<cluster-id>`.
    blobs: BlobStore,
}

impl Default for EmbeddedCluster {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            blobs: BlobStore::in_memory(),
        }
    }
}

impl EmbeddedCluster {
    /// A new, empty embedded cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// The HA services of one more process on this cluster: a new session, with the cluster
    /// id, key naming, retained checkpoints and storage of `config`. Services of one cluster
    /// share elections (one of them leads, the others wait and take over when it stops or its
    /// session ends), keys and, without `high-availability.storageDir`, the cluster's
    /// in-memory blobs; with one, blobs go there as with any backend.
    ///
    /// `config` must be of the embedded mode (`high-availability.type: none`, as
    /// [`HaConfig::builder`] and [`HaConfig::embedded`] are); another mode is an error naming
    /// `high-availability.type`. Call within a Tokio runtime (the services start a task).
    pub fn services(&self, config: &HaConfig) -> Result<HaServices, HaError> {
        if config.mode != HaMode::None {
            return Err(ConfigError::InvalidValue {
                key: "high-availability.type".to_owned(),
                value: config.mode.to_string(),
                expected: "none: an embedded cluster serves the embedded mode; other backends \
                           are connected with tenure::connect"
                    .to_owned(),
            }
            .into());
        }
        let mut options = HaServicesOptions::from_config(config)?;
        if config.storage_dir.is_none() {
            options.blobs = self.blobs.child(&config.cluster_segments()?.joined());
        }
        Ok(HaServices::new(Arc::new(self.connect()), options))
    }

    /// Opens a new session (one simulated process) with the default suspended policy.
    pub fn connect(&self) -> EmbeddedSession {
        self.connect_with_policy(SuspendedPolicy::default())
    }

    /// Opens a new session whose leadership follows `policy` when its connection is suspended.
    pub fn connect_with_policy(&self, policy: SuspendedPolicy) -> EmbeddedSession {
        let id = lock(&self.state).next_id();
        let (conn_tx, _) = watch::channel(ConnectionState::Connected);
        let (view, _) = watch::channel(SessionView::CONNECTED);
        EmbeddedSession {
            inner: Arc::new(SessionInner {
                cluster: self.clone(),
                id,
                policy,
                connection: conn_tx,
                view,
                driver: OnceLock::new(),
            }),
        }
    }

    /// Every key in the cluster, for tests that prove cleanup left nothing behind.
    pub fn all_keys(&self) -> Vec<String> {
        lock(&self.state).nodes.keys().cloned().collect()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the maps half-updated in a way later readers
    // could misuse more than a poisoned lock would; keep serving.
    crate::sync::lock(state)
}

#[derive(Debug)]
struct SessionInner {
    cluster: EmbeddedCluster,
    id: u64,
    policy: SuspendedPolicy,
    connection: watch::Sender<ConnectionState>,
    /// The session as the driver's recipes see it.
    view: watch::Sender<SessionView>,
    driver: OnceLock<SessionDriver>,
}

impl SessionInner {
    fn set_state(&self, state: ConnectionState) {
        self.connection.send_replace(state);
        self.view.send_modify(|v| {
            if state == ConnectionState::Suspended && v.state != state {
                v.count_suspension();
            }
            v.state = state;
        });
    }

    fn alive(&self) -> Result<MutexGuard<'_, State>, KvError> {
        if *self.connection.borrow() == ConnectionState::Lost {
            return Err(KvError::Closed);
        }
        Ok(lock(&self.cluster.state))
    }

    fn end(&self) {
        let mut st = lock(&self.cluster.state);
        st.end_session(self.id);
        drop(st);
        self.set_state(ConnectionState::Lost);
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        lock(&self.cluster.state).end_session(self.id);
    }
}

/// One process's session on an [`EmbeddedCluster`]. Cheap to clone; the session ends when
/// [`HaBackend::close`] or [`EmbeddedSession::kill`] is called, or the last clone is dropped.
#[derive(Debug, Clone)]
pub struct EmbeddedSession {
    inner: Arc<SessionInner>,
}

impl EmbeddedSession {
    /// Ends the session abruptly, as a crashed process's session expires: latch places and
    /// ephemeral keys go, every later operation fails with [`KvError::Closed`].
    pub fn kill(&self) {
        self.inner.end();
    }

    /// Simulates a connection-state change of this session (for tests of the suspended policy).
    /// `Suspended` revokes held latches under [`SuspendedPolicy::RevokeOnSuspended`]; `Connected`
    /// after a suspension re-joins the latches; `Lost` ends the session.
    pub fn simulate_connection(&self, state: ConnectionState) {
        match state {
            ConnectionState::Lost => self.inner.end(),
            ConnectionState::Suspended => {
                let revoke = self.inner.policy == SuspendedPolicy::RevokeOnSuspended;
                lock(&self.inner.cluster.state).suspend_session(self.inner.id, revoke);
                self.inner.set_state(state);
            }
            ConnectionState::Connected => {
                lock(&self.inner.cluster.state).resume_session(self.inner.id);
                self.inner.set_state(state);
            }
        }
    }

    /// The cluster this session belongs to.
    pub fn cluster(&self) -> &EmbeddedCluster {
        &self.inner.cluster
    }
}

#[async_trait]
impl VersionedKv for EmbeddedSession {
    async fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        validate_key(key)?;
        let st = self.inner.alive()?;
        Ok(st.nodes.get(key).map(|n| State::entry(key, n)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, KvError> {
        validate_prefix(prefix)?;
        let st = self.inner.alive()?;
        Ok(st
            .keys_below(prefix)
            .into_iter()
            .filter_map(|k| st.nodes.get(&k).map(|n| State::entry(&k, n)))
            .collect())
    }

    async fn watch(&self, prefix: &str) -> Result<KvWatch, KvError> {
        validate_prefix(prefix)?;
        let mut st = self.inner.alive()?;
        Ok(KvWatch::new(st.add_watcher(self.inner.id, prefix)))
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        opts: CreateOptions,
    ) -> Result<Version, KvError> {
        validate_key(key)?;
        self.inner.alive()?.create(self.inner.id, key, value, &opts)
    }

    async fn compare_and_set(
        &self,
        key: &str,
        value: Bytes,
        expected: Version,
        fence: Option<FencingToken>,
    ) -> Result<Version, KvError> {
        validate_key(key)?;
        self.inner
            .alive()?
            .compare_and_set(key, value, expected, fence.as_ref())
    }

    async fn delete(&self, key: &str, opts: DeleteOptions) -> Result<(), KvError> {
        validate_key(key)?;
        self.inner.alive()?.delete(key, &opts)
    }

    async fn txn(&self, txn: Txn) -> Result<Vec<TxnResult>, KvError> {
        txn.validate()?;
        self.inner.alive()?.txn(self.inner.id, &txn)
    }

    async fn remove_empty_namespace(&self) -> Result<Vec<String>, KvError> {
        // Keys are the whole namespace here: there is no container to remove.
        drop(self.inner.alive()?);
        Ok(Vec::new())
    }

    fn session_id(&self) -> u64 {
        self.inner.id
    }
}

#[async_trait]
impl HaBackend for EmbeddedSession {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn kv(&self) -> Arc<dyn VersionedKv> {
        Arc::new(self.clone())
    }

    fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.connection.subscribe()
    }

    fn suspended_policy(&self) -> SuspendedPolicy {
        self.inner.policy
    }

    fn driver(&self) -> Result<SessionDriver, KvError> {
        Ok(self
            .inner
            .driver
            .get_or_init(|| {
                SessionDriver::spawn(latch::Io {
                    session: Arc::downgrade(&self.inner),
                    view: self.inner.view.subscribe(),
                })
            })
            .clone())
    }

    async fn close(&self) -> Result<(), KvError> {
        self.inner.end();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::driver::LatchEvent;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn fenced_write_fails_after_the_term_ends() {
        let cluster = EmbeddedCluster::new();
        let a = cluster.connect();
        let b = cluster.connect();
        let (tx_a, mut rx_a) = mpsc::unbounded_channel();
        let (tx_b, mut rx_b) = mpsc::unbounded_channel();
        let _la = a.join_latch("leader/latch", tx_a).await.unwrap();
        let _lb = b.join_latch("leader/latch", tx_b).await.unwrap();
        let Some(LatchEvent::Granted(token_a)) = rx_a.recv().await else {
            panic!("a not granted")
        };
        let opts = CreateOptions {
            fence: Some(token_a.clone()),
            ..Default::default()
        };
        a.create("x", Bytes::from_static(b"1"), opts.clone())
            .await
            .unwrap();
        a.kill();
        let Some(LatchEvent::Granted(token_b)) = rx_b.recv().await else {
            panic!("b not granted")
        };
        assert_ne!(token_a, token_b);
        // A stale token is rejected even when sent through a live session.
        let err = b.create("y", Bytes::new(), opts).await.unwrap_err();
        assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
        assert!(b.get("y").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn ephemeral_keys_end_with_the_session() {
        let cluster = EmbeddedCluster::new();
        let a = cluster.connect();
        let b = cluster.connect();
        let mut w = b.watch("e").await.unwrap();
        let opts = CreateOptions {
            ephemeral: true,
            ..Default::default()
        };
        a.create("e/1", Bytes::new(), opts).await.unwrap();
        assert!(matches!(w.next().await, Some(crate::kv::KvEvent::Put(_))));
        a.kill();
        assert_eq!(
            w.next().await,
            Some(crate::kv::KvEvent::Deleted { key: "e/1".into() })
        );
        assert!(matches!(a.get("e/1").await, Err(KvError::Closed)));
    }

    #[tokio::test]
    async fn delete_refuses_keys_with_descendants_unless_recursive() {
        let s = EmbeddedCluster::new().connect();
        s.create("a", Bytes::new(), Default::default())
            .await
            .unwrap();
        s.create("a/b", Bytes::new(), Default::default())
            .await
            .unwrap();
        let err = s.delete("a", Default::default()).await.unwrap_err();
        assert!(matches!(err, KvError::NotEmpty { .. }));
        let rec = DeleteOptions {
            recursive: true,
            ..Default::default()
        };
        s.delete("a", rec).await.unwrap();
        assert!(s.list("").await.unwrap().is_empty());
    }
}
