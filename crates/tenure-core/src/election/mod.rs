//! Leader election (Flink's `LeaderElectionService` + `LeaderContender`).
//!
//! An [`ElectionService`] campaigns on one latch. Components register on it with
//! [`ElectionService::register`]; every grant of the latch issues a fresh [`LeaderSessionId`] and
//! goes to every registered component. Each component [`confirm`](LeaderElection::confirm)s its
//! own address, which publishes the leader information only if that session is still current.
//!
//! Two shapes of the same thing:
//! - Rust shape: [`LeaderElection::leadership`] is a `watch` of [`Leadership`]; each
//!   [`LeaderTerm`] tells when it ends ([`LeaderTerm::over`], a cancellation token).
//! - Flink shape: [`LeaderElection::run_contender`] drives a [`LeaderContender`] with
//!   `grant_leadership` / `revoke_leadership` / `handle_error` callbacks.
//!
//! ```
//! # use tenure_core::embedded::EmbeddedCluster;
//! # use tenure_core::election::ElectionService;
//! # use tenure_core::ids::ComponentId;
//! # use tenure_core::layout::Layout;
//! # use std::sync::Arc;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let backend = Arc::new(EmbeddedCluster::new().connect());
//! let service = ElectionService::new(backend, Layout::default(), "leader/latch");
//! let mut election = service.register(ComponentId::Dispatcher).await?;
//! let term = election.wait_for_leadership().await?;
//! assert!(election.confirm(term.session_id, "pekko.tcp://flink@host:6123/user/rpc/dispatcher_1").await?);
//! assert!(election.has_leadership(term.session_id));
//! election.stop().await?;
//! assert!(term.is_over());
//! # Ok(()) }
//! ```

mod cell;
mod contender;
pub(crate) mod publish;
pub mod state;

use std::fmt;
use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

pub(crate) use cell::LeadershipCell;
use cell::TermEnd;
pub use contender::{ContenderHandle, LeaderContender};
pub use publish::{publish_leader_info, unpublish_leader_info};

use crate::driver::{Command, Commands};
use crate::driver::{HaBackend, SessionDriver};
use crate::ids::{ComponentId, IdError, LeaderSessionId};
use crate::kv::{FencingToken, KvError};
use crate::layout::Layout;

/// Errors of leader election.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    /// The component already has a contender on this election.
    #[error("component {0} already has a contender on this election")]
    AlreadyRegistered(ComponentId),
    /// The election service has shut down.
    #[error("the election service is closed")]
    Closed,
    /// The latch failed and will not recover by itself.
    #[error("leader latch failed: {0}")]
    LatchFailed(#[source] KvError),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] KvError),
    /// The name of a service to elect is not a valid [`ServiceName`](crate::ids::ServiceName).
    #[error(transparent)]
    InvalidName(#[from] IdError),
}

/// One leadership term of one component.
///
/// A term carries two identities, for two different audiences:
///
/// - [`session_id`](Self::session_id), the **leader session id**, is for *other processes*:
///   a fresh UUID per term, published with the leader's address (what retrievers see) and
///   passed along with every RPC the leader sends, so a receiver can refuse messages of an old
///   term (Flink's `leaderSessionID`). Pass it to [`LeaderElection::confirm`] and
///   [`LeaderElection::has_leadership`].
/// - [`fencing_token`](Self::fencing_token) is for *the backend*: minted by the backend when
///   the term began, it rides in every store write of the term, and the backend refuses the
///   write atomically once the term is over. You do not handle it yourself: take the term's
///   stores with [`HaServices::leader_stores`](crate::services::HaServices::leader_stores) and
///   every write they make carries it.
#[derive(Clone)]
pub struct LeaderTerm {
    /// The term's leader session id: published with the address, checked on RPCs and
    /// confirmations (see the type's docs).
    pub session_id: LeaderSessionId,
    /// The token that fences the term's store writes; used by
    /// [`HaServices::leader_stores`](crate::services::HaServices::leader_stores).
    pub fencing_token: FencingToken,
    end: TermEnd,
}

impl LeaderTerm {
    fn new(session_id: LeaderSessionId, fencing_token: FencingToken, end: TermEnd) -> Self {
        Self {
            session_id,
            fencing_token,
            end,
        }
    }

    /// Whether the term is over (revoked, stopped, superseded, or its election gone).
    pub fn is_over(&self) -> bool {
        self.end.is_over()
    }

    /// Completes when the term is over (at once if it is).
    pub fn over(&self) -> WaitForCancellationFutureOwned {
        self.end.token().cancelled_owned()
    }

    /// A cancellation token that fires when the term is over (cancelled already if it is);
    /// hand it to work that must stop with leadership. Cancelling it does not end the term.
    pub fn cancellation(&self) -> CancellationToken {
        self.end.token().child_token()
    }
}

impl fmt::Debug for LeaderTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderTerm")
            .field("session_id", &self.session_id)
            .field("fencing_token", &self.fencing_token)
            .field("over", &self.is_over())
            .finish()
    }
}

/// A component's current leadership.
#[derive(Clone, Debug, Default)]
pub enum Leadership {
    /// Not the leader (yet, or any more).
    #[default]
    NotLeader,
    /// The leader, in this term.
    Leader(LeaderTerm),
}

impl Leadership {
    /// The term, if leader.
    pub fn term(&self) -> Option<&LeaderTerm> {
        match self {
            Leadership::Leader(t) if !t.is_over() => Some(t),
            _ => None,
        }
    }
}

/// Campaigns on one latch for any number of components of this process.
///
/// A handle on the session's driver ([`SessionDriver`]): every election of a process runs on
/// that one task. Clones are the same election (one participant in the latch).
#[derive(Clone, Debug)]
pub struct ElectionService {
    /// Keeps the session open while elections use it.
    backend: Arc<dyn HaBackend>,
    driver: Result<SessionDriver, KvError>,
    id: u64,
    layout: Layout,
    latch: Arc<str>,
    observer: Option<crate::observer::Observer>,
}

impl ElectionService {
    /// An election service on the latch directory `latch` (a layout key such as
    /// [`Layout::cluster_latch`]). It joins the latch when the first component registers and
    /// leaves it when the last one stops. Must be called inside a tokio runtime (the session's
    /// driver starts with the first election or retrieval of the session).
    pub fn new(backend: Arc<dyn HaBackend>, layout: Layout, latch: impl Into<String>) -> Self {
        let driver = backend.driver();
        let id = driver.as_ref().map(SessionDriver::next_id).unwrap_or(0);
        Self {
            backend,
            driver,
            id,
            layout,
            latch: latch.into().into(),
            observer: None,
        }
    }

    /// Reports this service's grants, revocations and publications to `observer` (as
    /// [`HaEvent`](crate::observer::HaEvent)s), from the next event on.
    pub fn with_observer(mut self, observer: crate::observer::Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The latch this service campaigns on.
    pub fn latch(&self) -> &str {
        &self.latch
    }

    /// Registers a contender for `component` and starts campaigning for it. If this process
    /// already leads, the component is granted the current session at once.
    pub async fn register(&self, component: ComponentId) -> Result<LeaderElection, ElectionError> {
        let driver = self.driver.clone().map_err(ElectionError::Backend)?;
        let (reply, rx) = oneshot::channel();
        driver.send(Command::Register {
            election: self.id,
            latch: self.latch.clone(),
            layout: self.layout,
            observer: self.observer.clone(),
            component: component.clone(),
            reply,
        })?;
        let leadership = rx.await.map_err(|_| ElectionError::Closed)??;
        Ok(LeaderElection {
            confirmer: LeaderConfirmer {
                component,
                election: self.id,
                driver: driver.commands(),
                _backend: self.backend.clone(),
                leadership,
            },
        })
    }
}

/// Confirms leadership and answers `has_leadership` for one component; cheap to clone, so a
/// contender can keep one.
#[derive(Clone, Debug)]
pub struct LeaderConfirmer {
    component: ComponentId,
    election: u64,
    driver: Commands,
    /// Keeps the session open while the contender lives.
    _backend: Arc<dyn HaBackend>,
    leadership: Arc<LeadershipCell>,
}

impl LeaderConfirmer {
    /// The component.
    pub fn component(&self) -> ComponentId {
        self.component.clone()
    }

    /// Whether `session` is the current term of this component.
    pub fn has_leadership(&self, session: LeaderSessionId) -> bool {
        self.leadership.has(session)
    }

    /// Confirms leadership of `session` at `address`: publishes the leader information if the
    /// session is still current. Returns `Ok(false)` (nothing published) for a stale session.
    pub async fn confirm(
        &self,
        session: LeaderSessionId,
        address: impl Into<String>,
    ) -> Result<bool, ElectionError> {
        let (reply, rx) = oneshot::channel();
        self.driver.send(Command::Confirm {
            election: self.election,
            component: self.component.clone(),
            session,
            address: address.into(),
            reply,
        })?;
        rx.await.map_err(|_| ElectionError::Closed)?
    }

    /// The next error reported for this contender (backend or latch failures); `None` once the
    /// session's driver is gone.
    pub(crate) async fn next_error(&self) -> Option<ElectionError> {
        self.error(false).await?
    }

    /// The next error, or `Some(None)` once the contender leads; `None` once the session's
    /// driver is gone.
    async fn error_or_grant(&self) -> Option<Option<ElectionError>> {
        self.error(true).await
    }

    async fn error(&self, until_granted: bool) -> Option<Option<ElectionError>> {
        let (reply, rx) = oneshot::channel();
        self.driver
            .send(Command::NextError {
                election: self.election,
                component: self.component.clone(),
                until_granted,
                reply,
            })
            .ok()?;
        rx.await.ok()
    }
}

/// One component's contender registration on an [`ElectionService`]. Dropping it stops the
/// contender (like [`LeaderElection::stop`], without waiting).
///
/// Wait for a term, confirm it with the address others should reach the leader at, do the
/// leader's work until the term is over, then wait for the next one:
///
/// ```
/// # use tenure_core::config::HaConfig;
/// # use tenure_core::embedded::EmbeddedCluster;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let services = EmbeddedCluster::new().services(&HaConfig::embedded())?;
/// let mut election = services.resource_manager_leader_election().await?;
/// let term = election.wait_for_leadership().await?;
/// election.confirm(term.session_id, "pekko.tcp://flink@jm-1:6123/user/rpc/resourcemanager_0").await?;
/// assert!(election.has_leadership(term.session_id));
/// let work = term.cancellation(); // hand to tasks that must stop with the term
/// # let _ = work;
/// election.stop().await?; // gives up leadership; a standby is granted the next term
/// assert!(term.is_over());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LeaderElection {
    /// Once stopped, its channel is a closed one ([`Commands::closed`]): the drop that follows
    /// sends nothing.
    confirmer: LeaderConfirmer,
}

impl LeaderElection {
    /// The component.
    pub fn component(&self) -> ComponentId {
        self.confirmer.component.clone()
    }

    /// A `watch` of this component's leadership.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.confirmer.leadership.watch()
    }

    /// The current leadership.
    pub fn current(&self) -> Leadership {
        self.confirmer.leadership.get()
    }

    /// Whether `session` is the current term of this component.
    pub fn has_leadership(&self, session: LeaderSessionId) -> bool {
        self.confirmer.has_leadership(session)
    }

    /// A cloneable handle for confirming and checking leadership.
    pub fn confirmer(&self) -> LeaderConfirmer {
        self.confirmer.clone()
    }

    /// Waits until this component leads and returns the term.
    pub async fn wait_for_leadership(&mut self) -> Result<LeaderTerm, ElectionError> {
        loop {
            if let Some(term) = self.confirmer.leadership.term() {
                return Ok(term);
            }
            // The driver answers at the grant (or at once if granted meanwhile): the loop
            // then reads the term.
            match self.confirmer.error_or_grant().await {
                Some(None) => {}
                Some(Some(err)) => return Err(err),
                None => return Err(ElectionError::Closed),
            }
        }
    }

    /// See [`LeaderConfirmer::confirm`].
    pub async fn confirm(
        &self,
        session: LeaderSessionId,
        address: impl Into<String>,
    ) -> Result<bool, ElectionError> {
        self.confirmer.confirm(session, address).await
    }

    /// The next error reported for this contender (backend or latch failures).
    pub async fn next_error(&mut self) -> Option<ElectionError> {
        self.confirmer.next_error().await
    }

    /// Stops the contender: revokes its term, removes its published leader information and, if
    /// it was the last component on the latch, leaves the latch so the next contender is granted.
    pub async fn stop(mut self) -> Result<(), ElectionError> {
        let driver = std::mem::replace(&mut self.confirmer.driver, Commands::closed());
        let (reply, rx) = oneshot::channel();
        driver.send(Command::Unregister {
            election: self.confirmer.election,
            component: self.confirmer.component.clone(),
            reply: Some(reply),
        })?;
        rx.await.map_err(|_| ElectionError::Closed)
    }

    /// Drives a Flink-style [`LeaderContender`] with this election's events.
    pub fn run_contender(self, contender: Arc<dyn LeaderContender>) -> ContenderHandle {
        contender::spawn(self, contender)
    }
}

impl Drop for LeaderElection {
    fn drop(&mut self) {
        let _ = self.confirmer.driver.send(Command::Unregister {
            election: self.confirmer.election,
            component: self.confirmer.component.clone(),
            reply: None,
        });
    }
}
