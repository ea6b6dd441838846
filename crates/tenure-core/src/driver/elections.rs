//! What the session driver keeps per election: its contenders, their error queues and the
//! queues of leader-information writes, one in flight per component.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::sync::Arc;

use smallvec::SmallVec;
use thin_vec::ThinVec;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::LatchEvent;
use crate::election::state::ElectionState;
use crate::election::{ElectionError, LeadershipCell};
use crate::ids::{ComponentId, LeaderSessionId};
use crate::kv::{FencingToken, KvError, Version};
use crate::layout::Layout;
use crate::leader_info::LeaderInformation;
use crate::observer::Observer;

/// Whom a participation's grants and revocations go to.
pub(super) enum Owner {
    /// An election (components registered through an `ElectionService`; its id is never 0,
    /// so an owner is one word).
    Election(NonZeroU64),
    /// Nobody any more (left, failed): the recipe only finishes its cleanup.
    Detached,
}

/// One participation in one latch: a recipe and whom it reports to.
pub(super) struct Participation<R> {
    pub(super) recipe: R,
    pub(super) owner: Owner,
}

/// A contender registered for one component.
pub(super) struct Contender {
    pub(super) component: ComponentId,
    pub(super) leadership: Arc<LeadershipCell>,
    /// Errors not yet taken, and who waits for the next; allocated on first use.
    pub(super) errors: Option<Box<Errors>>,
}

impl Drop for Contender {
    fn drop(&mut self) {
        self.leadership.close();
    }
}

/// A contender's undelivered errors and their waiters.
#[derive(Default)]
pub(super) struct Errors {
    pub(super) queue: VecDeque<ElectionError>,
    /// Each with whether it waits only until the contender is granted.
    pub(super) waiters: Vec<(bool, oneshot::Sender<Option<ElectionError>>)>,
}

/// A publication or unpublication waiting its turn.
pub(super) enum PubOp {
    Publish {
        info: LeaderInformation,
        token: FencingToken,
        reply: Option<oneshot::Sender<Result<bool, ElectionError>>>,
    },
    Unpublish {
        token: FencingToken,
        reply: Option<oneshot::Sender<()>>,
    },
}

/// The leader-information writes of one component, one in flight at a time.
pub(super) struct PubQueue {
    pub(super) component: ComponentId,
    pub(super) busy: Option<PubOp>,
    pub(super) queue: VecDeque<PubOp>,
    /// What this component last published in which term, so a new confirmation in the same
    /// term is one compare-and-set.
    pub(super) known: Option<(FencingToken, Version)>,
}

/// One election: its state machine, its contenders and its current participation.
pub(super) struct Election {
    pub(super) latch: Arc<str>,
    pub(super) layout: Layout,
    pub(super) state: ElectionState,
    /// Inline while there is one (most elections: a job's own).
    pub(super) contenders: SmallVec<[Contender; 1]>,
    /// For a latch joined directly: where its events go.
    pub(super) events: Option<mpsc::UnboundedSender<LatchEvent>>,
    /// The current participation, if joined (ids start at 1).
    participation: Option<NonZeroU64>,
    pub(super) publications: ThinVec<PubQueue>,
    /// The state machine asked to leave; the recipe is told once publications are done.
    pub(super) leave_pending: bool,
    /// Told when the participation being left is left.
    on_left: ThinVec<oneshot::Sender<()>>,
    /// Where grants, revocations and publications are reported.
    pub(super) observer: Option<Observer>,
}

impl Election {
    pub(super) fn new(latch: Arc<str>, layout: Layout) -> Self {
        Self {
            latch,
            layout,
            state: ElectionState::default(),
            contenders: SmallVec::new(),
            events: None,
            participation: None,
            publications: ThinVec::new(),
            leave_pending: false,
            on_left: ThinVec::new(),
            observer: None,
        }
    }

    /// The current participation, if joined.
    pub(super) fn participation(&self) -> Option<u64> {
        self.participation.map(NonZeroU64::get)
    }

    /// Sets the current participation.
    pub(super) fn set_participation(&mut self, id: NonZeroU64) {
        self.participation = Some(id);
    }

    /// Clears the current participation.
    pub(super) fn clear_participation(&mut self) {
        self.participation = None;
    }

    /// Takes the current participation, if joined.
    pub(super) fn take_participation(&mut self) -> Option<u64> {
        self.participation.take().map(NonZeroU64::get)
    }

    /// `reply` is told when the participation being left is left.
    pub(super) fn wait_until_left(&mut self, reply: oneshot::Sender<()>) {
        self.on_left.push(reply);
    }

    /// Whether someone waits for the participation being left.
    pub(super) fn waits_until_left(&self) -> bool {
        !self.on_left.is_empty()
    }

    /// Tells whoever waits that the participation being left is left.
    pub(super) fn left(&mut self) {
        for reply in std::mem::take(&mut self.on_left) {
            let _ = reply.send(());
        }
    }

    pub(super) fn contender(&mut self, component: &ComponentId) -> Option<&mut Contender> {
        self.contenders
            .iter_mut()
            .find(|c| c.component == *component)
    }

    pub(super) fn is_finished(&self) -> bool {
        self.contenders.is_empty()
            && self.events.is_none()
            && self.participation.is_none()
            && self.publications.is_empty()
            && !self.leave_pending
    }

    pub(super) fn publishing(&self) -> bool {
        self.publications.iter().any(|p| p.busy.is_some())
    }

    pub(super) fn broadcast_error(&mut self, err: &ElectionError) {
        for c in &mut self.contenders {
            c.report(err.clone());
        }
    }
}

impl Contender {
    pub(super) fn report(&mut self, err: ElectionError) {
        let errors = self.errors.get_or_insert_with(Box::default);
        let mut err = Some(err);
        while let Some((_, waiter)) = errors.waiters.pop() {
            match waiter.send(err.take()) {
                Ok(()) => return,
                Err(back) => err = back,
            }
        }
        errors.queue.extend(err);
    }
}

/// Answers the waiter of a finished publication or unpublication.
pub(super) fn finish(
    op: PubOp,
    outcome: Result<Option<Version>, KvError>,
    report: Option<&mut Contender>,
) {
    match op {
        PubOp::Publish { reply, .. } => {
            let result = match outcome {
                Ok(_) => Ok(true),
                Err(KvError::NotLeader { .. }) => Ok(false),
                Err(e) => {
                    let err = ElectionError::Backend(e);
                    if let Some(c) = report {
                        c.report(err.clone());
                    }
                    Err(err)
                }
            };
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
        PubOp::Unpublish { reply, .. } => {
            if let Err(e) = outcome {
                debug!(error = %e, "removing leader information failed");
            }
            if let Some(reply) = reply {
                let _ = reply.send(());
            }
        }
    }
}

impl Contender {
    pub(super) fn grant(&mut self, session: LeaderSessionId, token: FencingToken) {
        self.leadership.grant(session, token);
        // Who waited for an error while waiting for this grant looks at the leadership now; no
        // waiter (nor its channel) stays with a granted contender.
        if let Some(mut errors) = self.errors.take() {
            for (_, waiter) in errors
                .waiters
                .extract_if(.., |(until_granted, _)| *until_granted)
            {
                let _ = waiter.send(None);
            }
            if !errors.queue.is_empty() || !errors.waiters.is_empty() {
                self.errors = Some(errors);
            }
        }
    }

    pub(super) fn revoke(&mut self) {
        self.leadership.revoke();
    }
}
