//! What a backend provides: a versioned KV, a latch to campaign on, and its connection state.
//!
//! A backend is a thin driver. The election and retrieval logic lives once in this crate
//! ([`crate::election`], [`crate::retrieval`]) and the typed stores are written once over
//! [`VersionedKv`]; a backend only turns its events (latch acquired, session lost) into
//! [`LatchEvent`]s and carries out KV operations.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

use crate::connection::{ConnectionState, SuspendedPolicy};
use crate::kv::{FencingToken, KvError, VersionedKv};

/// What a latch reports to the election that joined it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LatchEvent {
    /// This process holds the latch; writes fenced with the token succeed while it lasts.
    Granted(FencingToken),
    /// This process no longer holds the latch (connection suspended under the revoke policy,
    /// session lost, latch node deleted). The latch keeps campaigning unless closed.
    Revoked,
    /// The latch failed and will not recover by itself.
    Failed(String),
}

/// One process's participation in a latch (a leader-latch recipe on the backend).
#[async_trait]
pub trait Latch: Send + Sync + fmt::Debug {
    /// Leaves the latch: gives up leadership if held and stops campaigning; the next contender
    /// in line is granted.
    async fn close(&self) -> Result<(), KvError>;
}

/// One process's connection to a coordination backend (a ZooKeeper session, an etcd lease, an
/// embedded session). Everything a process does goes through one `HaBackend`.
#[async_trait]
pub trait HaBackend: Send + Sync + fmt::Debug + 'static {
    /// A short name of the backend kind (`embedded`, `zookeeper`, ...).
    fn kind(&self) -> &'static str;

    /// The versioned KV of this cluster's namespace.
    fn kv(&self) -> Arc<dyn VersionedKv>;

    /// The connection state of this session.
    fn connection_state(&self) -> watch::Receiver<ConnectionState>;

    /// Whether `Suspended` revokes leadership on this backend.
    fn suspended_policy(&self) -> SuspendedPolicy {
        SuspendedPolicy::default()
    }

    /// Joins the latch whose directory is `latch` (a layout key); events go to `events`.
    async fn join_latch(
        &self,
        latch: &str,
        events: mpsc::UnboundedSender<LatchEvent>,
    ) -> Result<Box<dyn Latch>, KvError>;

    /// Closes the session: latches are left and ephemeral data goes; persistent data is kept.
    async fn close(&self) -> Result<(), KvError>;
}
