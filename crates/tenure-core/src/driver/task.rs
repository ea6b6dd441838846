//! The session driver task: every latch recipe, election and leader publication of one backend
//! session, multiplexed on one task.
//!
//! The loop never awaits network IO. Commands, session changes and completed requests are
//! applied to the state machines ([`LatchRecipe`]s and [`ElectionState`]s) at once; grants and
//! revocations go to the contenders' `watch`es right there; every request (a recipe's create,
//! list, watch or delete; a publication or unpublication of leader information) is a future in
//! one [`FuturesUnordered`], its completion fed back to whoever asked. Publications stay in order
//! per component: one in flight, the rest queued behind it.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::LatchEvent;
use super::elections::{Contender, Election, Owner, Participation, PubOp};
use super::handle::Command;
use super::inflight::{Completion, InFlight};
use super::recipe::{LatchIo, LatchRecipe, RecipeInput, RecipeOutput, ResponseOf, SessionView};
use super::retrieval::{self, Retrieval};
use crate::connection::ConnectionState;
use crate::election::state::{Input, Output};
use crate::election::{ElectionError, LeadershipCell};
use crate::ids::{ComponentId, LeaderSessionId};
use crate::kv::KvError;
use crate::layout::Layout;
use crate::observer::HaEvent;

/// The next late response; `None` (and the stream dropped) once the backend sends no more.
async fn late_response<R>(
    late: &mut Option<mpsc::UnboundedReceiver<(u64, R)>>,
) -> Option<(u64, R)> {
    let next = late.as_mut()?.recv().await;
    if next.is_none() {
        *late = None;
    }
    next
}

/// The driver task's state.
pub(crate) struct Driver<I: LatchIo> {
    pub(super) io: I,
    pub(super) session: watch::Receiver<SessionView>,
    /// Boxed: a map's slack then costs a pointer, not an election, per free slot.
    pub(super) elections: HashMap<u64, Box<Election>>,
    pub(super) retrievals: HashMap<u64, Retrieval>,
    pub(super) participations: HashMap<u64, Box<Participation<I::Recipe>>>,
    /// The id the next participation gets (ids start at 1, so an election keeps its
    /// participation in an `Option<NonZeroU64>` of one word).
    pub(super) next_participation: NonZeroU64,
    pub(super) inflight: FuturesUnordered<InFlight<ResponseOf<I>>>,
    pub(super) scratch: Vec<RecipeOutput<super::recipe::RequestOf<I>>>,
    /// Responses the backend delivers after their request's future (see
    /// [`LatchIo::late_responses`]).
    late: Option<mpsc::UnboundedReceiver<(u64, ResponseOf<I>)>>,
}

impl<I: LatchIo> Driver<I> {
    pub(crate) fn new(mut io: I) -> Self {
        let session = io.session();
        let late = io.late_responses();
        Self {
            io,
            session,
            elections: HashMap::new(),
            retrievals: HashMap::new(),
            participations: HashMap::new(),
            next_participation: NonZeroU64::MIN,
            inflight: FuturesUnordered::new(),
            scratch: Vec::new(),
            late,
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            // A session change goes first: what is in flight may belong to the old session.
            match self.session.has_changed() {
                Ok(true) => {
                    self.session_changed();
                    continue;
                }
                Ok(false) => {}
                Err(_) => break,
            }
            // Then commands and finished requests, fairly: neither a flood of registrations nor
            // a flood of replies holds the other back.
            tokio::select! {
                changed = self.session.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.session_changed();
                }
                Some((id, done)) = self.inflight.next(), if !self.inflight.is_empty() => {
                    self.completed(id, done);
                }
                Some((id, r)) = late_response(&mut self.late), if self.late.is_some() => {
                    self.drive(id, RecipeInput::Response(r));
                }
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
            }
        }
        // The session is gone (or nobody can reach the driver): every term is over, and no
        // leader is known any more.
        for (_, mut r) in self.retrievals.drain() {
            r.connection(
                0,
                ConnectionState::Lost,
                Err(KvError::Closed),
                &mut Vec::new(),
            );
        }
        for (_, mut e) in self.elections.drain() {
            for c in e.contenders_mut() {
                c.revoke();
            }
            if let Some(events) = &e.events {
                let _ = events.send(LatchEvent::Revoked);
            }
        }
    }

    /// Every recipe and retrieval learns the new session view.
    fn session_changed(&mut self) {
        let view = *self.session.borrow_and_update();
        let ids: Vec<u64> = self.participations.keys().copied().collect();
        for id in ids {
            self.drive(id, RecipeInput::Session(view));
        }
        self.retrievals_connection(view.state);
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Register {
                election,
                latch,
                layout,
                observer,
                component,
                reply,
            } => {
                let e = self
                    .elections
                    .entry(election)
                    .or_insert_with(|| Box::new(Election::new(latch, layout)));
                if observer.is_some() {
                    e.observer = observer;
                }
                if e.state.is_registered(&component) {
                    let _ = reply.send(Err(ElectionError::AlreadyRegistered(component)));
                    return;
                }
                let cell = Arc::new(LeadershipCell::new());
                e.add_contender(Contender {
                    component: component.clone(),
                    leadership: cell.clone(),
                    errors: None,
                });
                let _ = reply.send(Ok(cell));
                self.apply(election, Input::Register(component));
            }
            Command::Unregister {
                election,
                component,
                reply,
            } => {
                let Some(e) = self.elections.get_mut(&election) else {
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    return;
                };
                let leaving = e.state.is_registered(&component) && e.contender_count() == 1;
                let outputs = e.state.handle(Input::Unregister(component.clone()));
                let mut reply = reply;
                for output in outputs {
                    match output {
                        Output::Unpublish { component, token } if leaving => {
                            // The latch is left next: the recipe may remove the information in
                            // the same write as its node (one round trip, fenced by the node).
                            if !self.unpublish_on_leave(election, &component) {
                                self.execute(election, Output::Unpublish { component, token });
                            }
                        }
                        Output::Unpublish { component, token } => {
                            self.enqueue(
                                election,
                                component,
                                PubOp::Unpublish {
                                    token,
                                    reply: reply.take(),
                                },
                            );
                        }
                        other => self.execute(election, other),
                    }
                }
                if let Some(e) = self.elections.get_mut(&election) {
                    e.remove_contender(&component);
                    if let Some(reply) = reply {
                        if e.leave_pending || e.participation().is_some() && leaving {
                            e.wait_until_left(reply);
                        } else {
                            let _ = reply.send(());
                        }
                    }
                }
                self.maybe_leave(election);
                self.forget_if_finished(election);
            }
            Command::Confirm {
                election,
                component,
                session,
                address,
                reply,
            } => {
                let Some(e) = self.elections.get_mut(&election) else {
                    let _ = reply.send(Err(ElectionError::Closed));
                    return;
                };
                let outputs = e.state.handle(Input::Confirm {
                    component,
                    session,
                    address,
                });
                let mut reply = Some(reply);
                for output in outputs {
                    self.execute_confirm(election, output, &mut reply);
                }
            }
            Command::NextError {
                election,
                component,
                until_granted,
                reply,
            } => {
                if let Some(c) = self
                    .elections
                    .get_mut(&election)
                    .and_then(|e| e.contender(&component))
                {
                    if let Some(err) = c.errors.as_mut().and_then(|e| e.queue.pop_front()) {
                        let _ = reply.send(Some(err));
                    } else if until_granted && c.leadership.leads() {
                        // Granted before the waiter came: it looks at the leadership.
                        let _ = reply.send(None);
                    } else {
                        let errors = c.errors.get_or_insert_with(Box::default);
                        errors.waiters.retain(|(_, w)| !w.is_closed());
                        errors.waiters.push((until_granted, reply));
                    }
                }
            }
            Command::JoinLatch {
                election,
                latch,
                events,
                reply,
            } => match self.io.recipe(&latch) {
                Ok(recipe) => {
                    let mut e = Election::new(latch, Layout::default());
                    e.events = Some(events);
                    self.elections.insert(election, Box::new(e));
                    let _ = reply.send(Ok(()));
                    self.join(election, recipe);
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Command::Retrieve {
                id,
                key,
                dir,
                state,
                tx,
            } => {
                let mut r = Retrieval::new(key, dir, state, tx);
                let mut out = Vec::new();
                let view = *self.session.borrow();
                r.connection(id, view.state, self.io.kv(), &mut out);
                self.retrievals.insert(id, r);
                self.push_retrievals(out);
            }
            Command::Stats { reply } => {
                let _ = reply.send(super::DriverStats {
                    elections: self.elections.len(),
                    participations: self.participations.len(),
                    retrievals: self.retrievals.len(),
                    in_flight: self.inflight.len(),
                });
            }
            Command::StopRetrieve { id } => {
                if let Some(mut r) = self.retrievals.remove(&id) {
                    r.stop();
                }
            }
            Command::LeaveLatch { election, reply } => {
                let Some(e) = self.elections.get_mut(&election) else {
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    return;
                };
                e.events = None;
                match e.participation() {
                    Some(_) => {
                        if let Some(reply) = reply {
                            e.wait_until_left(reply);
                        }
                        e.leave_pending = true;
                        self.maybe_leave(election);
                    }
                    None => {
                        if let Some(reply) = reply {
                            let _ = reply.send(());
                        }
                        self.forget_if_finished(election);
                    }
                }
            }
        }
    }

    /// Applies an input to an election's state machine and carries out the outputs.
    fn apply(&mut self, election: u64, input: Input) {
        let Some(e) = self.elections.get_mut(&election) else {
            return;
        };
        for output in e.state.handle(input) {
            self.execute(election, output);
        }
        self.maybe_leave(election);
    }

    /// Carries out one output of an election's state machine; nothing here waits.
    fn execute(&mut self, election: u64, output: Output) {
        self.execute_confirm(election, output, &mut None);
    }

    /// [`Self::execute`], for the outputs of a confirmation: `reply` learns whether the
    /// confirmation is published (after its publication) or ignored (at once).
    fn execute_confirm(
        &mut self,
        election: u64,
        output: Output,
        reply: &mut Option<oneshot::Sender<Result<bool, ElectionError>>>,
    ) {
        match output {
            Output::JoinLatch => {
                let Some(e) = self.elections.get_mut(&election) else {
                    return;
                };
                e.leave_pending = false;
                // A participation still waiting to leave (its publications were in flight)
                // leaves now; the new campaign is a new participation.
                if let Some(old) = e.take_participation() {
                    self.drive(old, RecipeInput::Leave);
                }
                let Some(e) = self.elections.get_mut(&election) else {
                    return;
                };
                match self.io.recipe(&e.latch) {
                    Ok(recipe) => self.join(election, recipe),
                    Err(err) => e.broadcast_error(&ElectionError::Backend(err)),
                }
            }
            Output::LeaveLatch => {
                if let Some(e) = self.elections.get_mut(&election) {
                    e.leave_pending = true;
                }
            }
            Output::Grant {
                component,
                session,
                token,
            } => {
                let Some(e) = self.elections.get_mut(&election) else {
                    return;
                };
                if let Some(o) = &e.observer {
                    o.emit(|| HaEvent::LeadershipGranted {
                        latch: e.latch.clone(),
                        component: component.clone(),
                        session,
                        token: token.clone(),
                    });
                }
                if let Some(c) = e.contender(&component) {
                    debug!(%component, %session, "granting");
                    c.grant(session, token);
                }
            }
            Output::Revoke { component } => {
                let Some(e) = self.elections.get_mut(&election) else {
                    return;
                };
                if let Some(o) = &e.observer {
                    o.emit(|| HaEvent::LeadershipRevoked {
                        component: component.clone(),
                    });
                }
                if let Some(c) = e.contender(&component) {
                    debug!(%component, "revoking");
                    c.revoke();
                }
            }
            Output::Publish {
                component,
                info,
                token,
            } => self.enqueue(
                election,
                component,
                PubOp::Publish {
                    info,
                    token,
                    reply: reply.take(),
                },
            ),
            Output::Unpublish { component, token } => {
                self.enqueue(election, component, PubOp::Unpublish { token, reply: None })
            }
            Output::ConfirmIgnored { component } => {
                debug!(%component, "confirmation for a stale session ignored");
                if let Some(reply) = reply.take() {
                    let _ = reply.send(Ok(false));
                }
            }
            Output::Error(reason) => {
                if let Some(e) = self.elections.get_mut(&election) {
                    e.broadcast_error(&ElectionError::LatchFailed(reason));
                }
            }
        }
    }

    /// Starts a new participation of `election` with `recipe`.
    fn join(&mut self, election: u64, recipe: I::Recipe) {
        let next = self.next_participation;
        self.next_participation = next.saturating_add(1);
        if let Some(e) = self.elections.get_mut(&election) {
            e.set_participation(next);
        }
        let id = next.get();
        self.participations.insert(
            id,
            Box::new(Participation {
                recipe,
                owner: NonZeroU64::new(election).map_or(Owner::Detached, Owner::Election),
            }),
        );
        let view = *self.session.borrow();
        self.drive(id, RecipeInput::Session(view));
        self.drive(id, RecipeInput::Join);
    }

    /// Hands the component's leader-information keys to the election's participation, to be
    /// deleted in the same write that leaves the latch; false if the recipe cannot.
    fn unpublish_on_leave(&mut self, election: u64, component: &ComponentId) -> bool {
        let Some(e) = self.elections.get_mut(&election) else {
            return false;
        };
        let Some(p) = e
            .participation()
            .and_then(|id| self.participations.get_mut(&id))
        else {
            return false;
        };
        let info = e.layout.leader_info(component);
        let dir = e.layout.leader_dir(component);
        let mut keys = vec![info];
        if !crate::kv::is_below(&dir, &e.latch) {
            keys.push(dir);
        }
        if !p.recipe.delete_on_leave(keys) {
            return false;
        }
        // Nothing of this component is published once the latch is left; a write in flight
        // finishes first (leaving waits for it) and its queue goes with it.
        e.publications
            .retain(|q| q.component != *component || q.busy.is_some() || !q.queue.is_empty());
        true
    }

    /// Tells the recipe to leave once the election asked for it and its publications are done
    /// (an unpublication is fenced by the latch node, so it must land before the node goes).
    pub(super) fn maybe_leave(&mut self, election: u64) {
        let Some(e) = self.elections.get_mut(&election) else {
            return;
        };
        if !e.leave_pending || e.publishing() {
            return;
        }
        e.leave_pending = false;
        match e.take_participation() {
            // Until `Left`, the participation still reports to the election (its `on_left`).
            Some(id) => self.drive(id, RecipeInput::Leave),
            None => e.left(),
        }
        self.forget_if_finished(election);
    }

    /// Feeds one input to a participation's recipe and carries out its decisions.
    fn drive(&mut self, id: u64, input: RecipeInput<ResponseOf<I>>) {
        let mut out = std::mem::take(&mut self.scratch);
        let owner = match self.participations.get_mut(&id) {
            Some(p) => {
                p.recipe.handle(input, &mut out);
                match p.owner {
                    Owner::Election(e) => Some(e.get()),
                    Owner::Detached => None,
                }
            }
            None => None,
        };
        for o in out.drain(..) {
            match o {
                RecipeOutput::Request(q) => {
                    let fut = self.io.perform(id, q);
                    self.inflight.push(InFlight::Recipe { id, fut });
                }
                RecipeOutput::WakeAfter(d) => self.wake_after(id, d),
                RecipeOutput::Granted(token) => {
                    self.latch_event(id, owner, LatchEvent::Granted(token))
                }
                RecipeOutput::Revoked => self.latch_event(id, owner, LatchEvent::Revoked),
                RecipeOutput::Failed(err) => self.latch_event(id, owner, LatchEvent::Failed(err)),
                RecipeOutput::Left => self.left(id),
                RecipeOutput::Done => {
                    self.left(id);
                    self.participations.remove(&id);
                    self.io.forget(id);
                }
            }
        }
        self.scratch = out;
    }

    fn wake_after(&mut self, id: u64, d: Duration) {
        let fut: BoxFuture<'static, Completion<ResponseOf<I>>> = Box::pin(async move {
            tokio::time::sleep(d).await;
            Completion::Wake
        });
        self.inflight.push(InFlight::Own { id, fut });
    }

    /// A participation is left: whoever waits for that hears it; it reports to nobody now. A
    /// participation the election still counts as current was ended by the backend (a closed
    /// session): the election is no longer joined, so a later stop does not wait for it.
    fn left(&mut self, id: u64) {
        let Some(p) = self.participations.get_mut(&id) else {
            return;
        };
        let Owner::Election(election) = std::mem::replace(&mut p.owner, Owner::Detached) else {
            return;
        };
        let election = election.get();
        if let Some(e) = self.elections.get_mut(&election) {
            if e.participation() == Some(id) {
                e.clear_participation();
            }
            e.left();
            self.forget_if_finished(election);
        }
    }

    /// A grant, revocation or failure of participation `id`, for its election.
    fn latch_event(&mut self, id: u64, owner: Option<u64>, event: LatchEvent) {
        let Some(election) = owner else { return };
        let Some(e) = self.elections.get_mut(&election) else {
            return;
        };
        if e.participation() != Some(id) {
            // A participation being left still reports its revocation, nothing else.
            return;
        }
        if e.events.is_some() {
            if let LatchEvent::Failed(_) = event {
                e.clear_participation();
                if let Some(p) = self.participations.get_mut(&id) {
                    p.owner = Owner::Detached;
                }
            }
            if let Some(events) = &e.events {
                let _ = events.send(event);
            }
            return;
        }
        let input = match event {
            LatchEvent::Granted(token) => {
                let session = LeaderSessionId::new_random();
                info!(latch = %e.latch, %token, %session, "leadership granted");
                Input::Granted { token, session }
            }
            LatchEvent::Revoked => {
                info!(latch = %e.latch, "leadership revoked");
                Input::Revoked
            }
            LatchEvent::Failed(reason) => {
                warn!(latch = %e.latch, %reason, "latch failed");
                e.clear_participation();
                if let Some(p) = self.participations.get_mut(&id) {
                    p.owner = Owner::Detached;
                }
                Input::LatchFailed(reason)
            }
        };
        self.apply(election, input);
    }

    /// A request finished.
    fn completed(&mut self, id: u64, done: Completion<ResponseOf<I>>) {
        match done {
            Completion::Response(r) => self.drive(id, RecipeInput::Response(r)),
            Completion::Wake => self.drive(id, RecipeInput::Wake),
            Completion::Published { component, outcome } => self.published(id, component, outcome),
            Completion::Retrieved(Some((rid, epoch, done))) => {
                let mut out = Vec::new();
                let kv = self.io.kv();
                if let Some(r) = self.retrievals.get_mut(&rid) {
                    r.done(rid, epoch, done, kv, &mut out);
                }
                self.push_retrievals(out);
            }
            Completion::Retrieved(None) => {}
        }
    }

    /// Every retrieval learns the connection state (and watches afresh once connected).
    fn retrievals_connection(&mut self, state: ConnectionState) {
        let mut out = Vec::new();
        let kv = self.io.kv();
        for (id, r) in &mut self.retrievals {
            r.connection(*id, state, kv.clone(), &mut out);
        }
        self.push_retrievals(out);
    }

    fn push_retrievals(&mut self, requests: Vec<retrieval::Request>) {
        for r in requests {
            self.inflight.push(InFlight::Retrieval(r));
        }
    }

    pub(super) fn forget_if_finished(&mut self, election: u64) {
        if self
            .elections
            .get(&election)
            .is_some_and(|e| e.is_finished() && !e.waits_until_left())
        {
            self.elections.remove(&election);
        }
    }
}
