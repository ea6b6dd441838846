//! What a backend provides: a versioned KV, a latch to campaign on, and its connection state.
//!
//! A backend is thin. The election and retrieval logic lives once in this crate
//! ([`crate::election`], [`crate::retrieval`]) and the typed stores are written once over
//! [`VersionedKv`]. A backend describes its leader latch as a [`LatchRecipe`] (a state machine
//! free of IO) plus a [`LatchIo`] that performs the recipe's requests, and starts one
//! [`SessionDriver`] per session with them: that one task runs every latch, election and leader
//! publication of the process.

mod elections;
mod handle;
mod inflight;
pub mod participation;
mod publications;
pub mod recipe;
mod retrieval;
mod task;

pub(crate) use handle::{Command, Commands};
pub use handle::{DriverStats, SessionDriver};
pub use recipe::{LatchIo, LatchRecipe, RecipeInput, RecipeOutput, SessionView};

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
    Failed(KvError),
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

    /// The session's driver, which runs every latch and election of this session.
    fn driver(&self) -> Result<SessionDriver, KvError>;

    /// Joins the latch whose directory is `latch` (a layout key) as one participant, directly
    /// (without an election's components); events go to `events`.
    async fn join_latch(
        &self,
        latch: &str,
        events: mpsc::UnboundedSender<LatchEvent>,
    ) -> Result<Box<dyn Latch>, KvError> {
        self.driver()?.join_latch(latch, events).await
    }

    /// Closes the session: latches are left and ephemeral data goes; persistent data is kept.
    async fn close(&self) -> Result<(), KvError>;
}
