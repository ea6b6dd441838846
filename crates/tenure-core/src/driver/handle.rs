//! [`SessionDriver`]: the handle of a session's one driver task, and the commands it takes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use super::recipe::LatchIo;
use super::task::Driver;
use super::{Latch, LatchEvent};
use crate::election::{ElectionError, LeadershipCell};
use crate::ids::{ComponentId, LeaderSessionId};
use crate::kv::KvError;
use crate::layout::Layout;
use crate::observer::Observer;
use crate::retrieval::{LeaderState, RetrievalState};

/// A request to the driver task.
pub(crate) enum Command {
    /// Registers a contender for `component` on election `election` (created on first use).
    Register {
        election: u64,
        latch: Arc<str>,
        layout: Layout,
        observer: Option<Observer>,
        component: ComponentId,
        reply: oneshot::Sender<Result<Arc<LeadershipCell>, ElectionError>>,
    },
    /// Stops a contender; `reply` once its term is revoked, its leader information removed and,
    /// if it was the last, the latch left.
    Unregister {
        election: u64,
        component: ComponentId,
        reply: Option<oneshot::Sender<()>>,
    },
    /// Confirms `session` at `address`; `reply` with whether it was published.
    Confirm {
        election: u64,
        component: ComponentId,
        session: LeaderSessionId,
        address: String,
        reply: oneshot::Sender<Result<bool, ElectionError>>,
    },
    /// Asks for the contender's next error.
    NextError {
        election: u64,
        component: ComponentId,
        /// Whether the waiter waits only until the contender leads: it is then answered with
        /// `None` at the grant (or at once, if the contender leads), so no waiter is left
        /// behind in a granted contender.
        until_granted: bool,
        /// Answered with the next error (or `None`, see `until_granted`).
        reply: oneshot::Sender<Option<ElectionError>>,
    },
    /// Joins a latch directly (no components): its events go to `events`.
    JoinLatch {
        election: u64,
        latch: Arc<str>,
        events: mpsc::UnboundedSender<LatchEvent>,
        reply: oneshot::Sender<Result<(), KvError>>,
    },
    /// Starts following a component's leader key.
    Retrieve {
        id: u64,
        key: String,
        dir: String,
        state: RetrievalState,
        tx: watch::Sender<LeaderState>,
    },
    /// Stops a retrieval.
    StopRetrieve { id: u64 },
    /// Reports what the driver holds.
    Stats { reply: oneshot::Sender<DriverStats> },
    /// Leaves a directly joined latch; `reply` once left.
    LeaveLatch {
        election: u64,
        reply: Option<oneshot::Sender<()>>,
    },
}

/// What a session driver holds right now (for tests and diagnostics: everything here is
/// released once the elections, latches and retrievals that made it are stopped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Elections (and direct latch participations) with contenders, publications or a latch.
    pub elections: usize,
    /// Latch participations, including ones still finishing a leave.
    pub participations: usize,
    /// Leader retrievals.
    pub retrievals: usize,
    /// Requests in flight (watches included).
    pub in_flight: usize,
}

/// The handle of one backend session's driver: the one task that runs every latch recipe,
/// election and leader publication of the session. Cheap to clone.
///
/// A backend starts it once per session object with [`SessionDriver::spawn`] and hands it out
/// from [`super::HaBackend::driver`]; elections ([`crate::election::ElectionService`]) and
/// direct latch participations ([`super::HaBackend::join_latch`]) send it commands.
#[derive(Clone)]
pub struct SessionDriver {
    commands: Commands,
    ids: Arc<AtomicU64>,
    /// A handle for reading only: it follows leaders but registers no contender and joins no
    /// latch ([`SessionDriver::read_only`]).
    read_only: bool,
}

/// The command channel of a [`SessionDriver`], for a registered contender's handle.
#[derive(Clone, Debug)]
pub(crate) struct Commands(mpsc::UnboundedSender<Command>);

impl Commands {
    /// A channel nobody reads: every send fails. A stopped election's handle keeps it, so
    /// its drop sends nothing.
    pub(crate) fn closed() -> Self {
        Self(mpsc::unbounded_channel().0)
    }

    pub(crate) fn send(&self, cmd: Command) -> Result<(), ElectionError> {
        self.0.send(cmd).map_err(|_| ElectionError::Closed)
    }
}

impl fmt::Debug for SessionDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionDriver")
            .field("running", &!self.commands.0.is_closed())
            .finish()
    }
}

impl SessionDriver {
    /// Starts the driver task for one backend session. `io` makes the backend's recipes and
    /// performs their requests. The task ends when the session's [`LatchIo::session`] watch
    /// closes or every handle is dropped. Must be called inside a tokio runtime.
    pub fn spawn<I: LatchIo>(io: I) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(Driver::new(io).run(rx));
        Self {
            commands: Commands(tx),
            ids: Arc::new(AtomicU64::new(1)),
            read_only: false,
        }
    }

    /// A handle on the same driver that only follows leaders: registering a contender or
    /// joining a latch through it fails with [`KvError::Unauthorized`], and nothing is sent
    /// to the backend (client-only services).
    pub fn read_only(&self) -> Self {
        Self {
            read_only: true,
            ..self.clone()
        }
    }

    fn refused(latch: &str) -> KvError {
        KvError::Unauthorized {
            key: latch.to_owned(),
            reason: "client-only HA services only read: campaigning on a leader latch is \
                     refused (connect the full HA services to run elections)"
                .into(),
        }
    }

    /// A fresh id for an election (or a direct latch participation) of this session.
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn send(&self, cmd: Command) -> Result<(), ElectionError> {
        if self.read_only
            && let Command::Register { latch, .. } = &cmd
        {
            return Err(ElectionError::Backend(Self::refused(latch)));
        }
        self.commands.send(cmd)
    }

    /// Where a registered contender sends its commands: the channel alone (a contender's
    /// handle keeps one, and never registers, which is all a read-only handle refuses).
    pub(crate) fn commands(&self) -> Commands {
        self.commands.clone()
    }

    /// What the driver holds right now; `None` once it has ended.
    pub async fn stats(&self) -> Option<DriverStats> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Stats { reply }).ok()?;
        rx.await.ok()
    }

    /// Joins the latch whose directory is `latch` (a layout key) as one participant; its
    /// grants and revocations go to `events`. Leave with [`Latch::close`] (or by dropping the
    /// returned latch).
    pub async fn join_latch(
        &self,
        latch: &str,
        events: mpsc::UnboundedSender<LatchEvent>,
    ) -> Result<Box<dyn Latch>, KvError> {
        if self.read_only {
            return Err(Self::refused(latch));
        }
        let election = self.next_id();
        let (reply, rx) = oneshot::channel();
        self.send(Command::JoinLatch {
            election,
            latch: latch.into(),
            events,
            reply,
        })
        .map_err(|_| KvError::Closed)?;
        rx.await.map_err(|_| KvError::Closed)??;
        Ok(Box::new(DriverLatch {
            driver: self.clone(),
            election,
        }))
    }
}

/// A direct participation in a latch, run by the session driver.
#[derive(Debug)]
struct DriverLatch {
    driver: SessionDriver,
    election: u64,
}

#[async_trait]
impl Latch for DriverLatch {
    async fn close(&self) -> Result<(), KvError> {
        let (reply, rx) = oneshot::channel();
        if self
            .driver
            .send(Command::LeaveLatch {
                election: self.election,
                reply: Some(reply),
            })
            .is_err()
        {
            return Ok(());
        }
        let _ = rx.await;
        Ok(())
    }
}

impl Drop for DriverLatch {
    fn drop(&mut self) {
        let _ = self.driver.send(Command::LeaveLatch {
            election: self.election,
            reply: None,
        });
    }
}
