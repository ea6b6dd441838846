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
    /// Sorted by component, so a process-wide election with thousands of job masters finds
    /// one by binary search; inline while there is one (most elections: a job's own).
    contenders: SmallVec<[Contender; 1]>,
    /// For a latch joined directly: where its events go.
    pub(super) events: Option<mpsc::UnboundedSender<LatchEvent>>,
    /// The current participation, if joined (ids start at 1).
    participation: Option<NonZeroU64>,
    /// Sorted by component, like the contenders.
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

    /// The contender registered for `component`.
    pub(super) fn contender(&mut self, component: &ComponentId) -> Option<&mut Contender> {
        let i = self
            .contenders
            .binary_search_by(|c| c.component.cmp(component))
            .ok()?;
        Some(&mut self.contenders[i])
    }

    /// Adds a contender (its component is not registered yet).
    pub(super) fn add_contender(&mut self, contender: Contender) {
        let (Ok(i) | Err(i)) = self
            .contenders
            .binary_search_by(|c| c.component.cmp(&contender.component));
        self.contenders.insert(i, contender);
    }

    /// Removes `component`'s contender, if registered.
    pub(super) fn remove_contender(&mut self, component: &ComponentId) {
        if let Ok(i) = self
            .contenders
            .binary_search_by(|c| c.component.cmp(component))
        {
            self.contenders.remove(i);
        }
    }

    /// The registered contenders.
    pub(super) fn contenders_mut(&mut self) -> impl Iterator<Item = &mut Contender> {
        self.contenders.iter_mut()
    }

    /// How many contenders are registered.
    pub(super) fn contender_count(&self) -> usize {
        self.contenders.len()
    }

    /// Where `component`'s publication queue is (`Ok`), or would go (`Err`).
    pub(super) fn publication_index(&self, component: &ComponentId) -> Result<usize, usize> {
        self.publications
            .binary_search_by(|p| p.component.cmp(component))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;

    fn contender(component: &ComponentId) -> Contender {
        Contender {
            component: component.clone(),
            leadership: Arc::new(LeadershipCell::new()),
            errors: None,
        }
    }

    #[test]
    fn contenders_registered_in_any_order_are_found_and_removed_by_component() {
        let mut e = Election::new(Arc::from("leader/latch"), Layout::default());
        let mut components: Vec<ComponentId> = (0..200)
            .map(|_| ComponentId::JobMaster(JobId::new_random()))
            .collect();
        components.extend([
            ComponentId::RestServer,
            ComponentId::ResourceManager,
            ComponentId::Dispatcher,
        ]);
        for c in &components {
            e.add_contender(contender(c));
        }
        assert_eq!(e.contender_count(), components.len());
        for c in &components {
            assert_eq!(e.contender(c).map(|x| x.component.clone()), Some(c.clone()));
        }

        let gone = components.swap_remove(17);
        e.remove_contender(&gone);
        e.remove_contender(&gone);
        assert!(e.contender(&gone).is_none());
        assert_eq!(e.contender_count(), components.len());
        for c in &components {
            assert!(e.contender(c).is_some(), "{c} lost");
        }
    }

    #[test]
    fn publication_queues_are_looked_up_by_component() {
        let mut e = Election::new(Arc::from("leader/latch"), Layout::default());
        assert_eq!(e.publication_index(&ComponentId::Dispatcher), Err(0));
        for c in [ComponentId::RestServer, ComponentId::ResourceManager] {
            let Err(i) = e.publication_index(&c) else {
                panic!("{c} queued before it was added");
            };
            e.publications.insert(
                i,
                PubQueue {
                    component: c,
                    busy: None,
                    queue: VecDeque::new(),
                    known: None,
                },
            );
        }
        for c in [ComponentId::RestServer, ComponentId::ResourceManager] {
            let i = e.publication_index(&c).unwrap();
            assert_eq!(e.publications[i].component, c);
        }
        assert!(e.publication_index(&ComponentId::Dispatcher).is_err());
    }
}
