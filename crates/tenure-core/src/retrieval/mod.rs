//! Leader retrieval (Flink's `LeaderRetrievalService` + `LeaderRetrievalListener`): follow who
//! leads a component and where.
//!
//! A [`LeaderRetriever`] watches the component's leader-information key and shows a `watch` of
//! [`LeaderState`]. It re-reads the key after every reconnect, so a stale leader is never shown
//! as current.

pub mod state;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;

pub use state::{DEFAULT_LEADER_ID, LeaderState, RetrievalState};

use crate::driver::{Command, HaBackend, SessionDriver};
use crate::ids::ComponentId;
use crate::kv::KvError;
use crate::layout::Layout;
use crate::leader_info::LeaderInformation;

/// Callbacks for code ported from Flink (`LeaderRetrievalListener`).
pub trait LeaderRetrievalListener: Send + Sync + 'static {
    /// The leader changed; `None` means no leader is known.
    fn notify_leader_address(&self, leader: Option<LeaderInformation>);
    /// Retrieval failed.
    fn handle_error(&self, error: KvError);
}

/// Follows one component's leader. Dropping it stops following.
///
/// [`leader`](Self::leader) is a `watch` of the [`LeaderState`]: unknown until the first read,
/// then no leader or the leader's address and session id as it confirmed them.
/// Do not hold a borrow of it (`borrow()`, or the guard `wait_for` returns) across an
/// `.await`: the session's driver updates it, and every election and retrieval of the process
/// waits while a borrow is held. Clone what you need out of it.
///
/// ```
/// # use tenure_core::config::HaConfig;
/// # use tenure_core::embedded::EmbeddedCluster;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let services = EmbeddedCluster::new().services(&HaConfig::embedded())?;
/// let mut election = services.dispatcher_leader_election().await?;
/// let term = election.wait_for_leadership().await?;
/// election.confirm(term.session_id, "pekko.tcp://flink@jm-1:6123/user/rpc/dispatcher_1").await?;
///
/// let retriever = services.dispatcher_leader_retriever();
/// let mut leader = retriever.leader();
/// let state = leader.wait_for(|l| l.leader().is_some()).await?.clone();
/// assert_eq!(state.leader().map(|i| i.session_id), Some(term.session_id));
/// # Ok(()) }
/// ```
///
///
/// The session's driver ([`crate::driver::SessionDriver`]) does the following: one task for
/// every retrieval and election of the process, one backend watch per prefix among them.
#[derive(Debug)]
pub struct LeaderRetriever {
    component: ComponentId,
    state: watch::Receiver<LeaderState>,
    driver: Option<(SessionDriver, u64)>,
    /// Keeps the session open while the retriever lives.
    _backend: Arc<dyn HaBackend>,
}

impl Drop for LeaderRetriever {
    fn drop(&mut self) {
        if let Some((driver, id)) = &self.driver {
            let _ = driver.send(Command::StopRetrieve { id: *id });
        }
    }
}

impl LeaderRetriever {
    /// Starts following `component`. With `default_address`, that address is shown when nothing
    /// is published (Flink's job master retriever). Must be called inside a tokio runtime. On a
    /// closed session the leader stays [`LeaderState::Unknown`].
    pub fn start(
        backend: Arc<dyn HaBackend>,
        layout: Layout,
        component: ComponentId,
        default_address: Option<String>,
    ) -> Self {
        let (tx, rx) = watch::channel(LeaderState::Unknown);
        let driver = match backend.driver() {
            Ok(driver) => {
                let id = driver.next_id();
                let sent = driver.send(Command::Retrieve {
                    id,
                    key: layout.leader_info(&component),
                    dir: layout.leader_dir(&component),
                    state: RetrievalState::new(backend.suspended_policy(), default_address),
                    tx,
                });
                sent.ok().map(|()| (driver, id))
            }
            Err(e) => {
                debug!(%component, error = %e, "cannot follow the leader: the session is closed");
                None
            }
        };
        Self {
            component,
            state: rx,
            driver,
            _backend: backend,
        }
    }

    /// The component followed.
    pub fn component(&self) -> ComponentId {
        self.component.clone()
    }

    /// A `watch` of the component's leader.
    pub fn leader(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }

    /// What is known now.
    pub fn current(&self) -> LeaderState {
        self.state.borrow().clone()
    }

    /// Calls `listener` on every change until the retriever is dropped.
    pub fn notify(&self, listener: Arc<dyn LeaderRetrievalListener>) -> JoinHandle<()> {
        let mut rx = self.state.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let now = rx.borrow_and_update().leader();
                if now != last {
                    listener.notify_leader_address(now.clone());
                    last = now;
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
    }
}
