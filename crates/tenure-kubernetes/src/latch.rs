//! The leader latch: fabric8's / client-go's leader election on the
//! `control-plane.alpha.kubernetes.io/leader` annotation of one ConfigMap, as a state machine
//! free of IO over the lease record and an injected clock.
//!
//! Every retry period (and at once when the ConfigMap changes, while not leading) the recipe
//! reads the ConfigMap: it acquires the lease when the record is released or expired
//! ([`crate::lease::is_free`]), renews it while it holds it, and steps down (revokes) when it
//! cannot confirm a renewal within the renew deadline, or sees another holder (client-go's
//! `tryAcquireOrRenew`). All writes are replaces conditioned on `resourceVersion`. Each campaign
//! uses a fresh holder identity, so every acquisition changes the holder and increments
//! `leaderTransitions`, which is the term (the fencing token's epoch). Leaving releases the
//! record (empty holder).
//!
//! [`Recipe`] decides, [`crate::latch_io::Io`] performs its [`Request`]s; the session driver
//! of `tenure-core` runs every latch of the session on one task.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use tenure_core::clock::Clock;
use tenure_core::connection::ConnectionState;
use tenure_core::driver::{LatchRecipe, RecipeInput, RecipeOutput};
use tenure_core::kv::FencingToken;
use tracing::{debug, info, warn};

use crate::api::ApiError;
use crate::cm;
use crate::codec::LeaderRecord;
use crate::latch_io::Active;
use crate::lease::{self, Observation};
use crate::settings::KubernetesSettings;

/// A request of the recipe.
#[derive(Debug)]
pub(crate) struct Request {
    /// Tells this request's reply from the replies of earlier ones.
    pub seq: u64,
    /// What to do.
    pub op: Op,
}

/// The operations of the recipe.
#[derive(Debug)]
pub(crate) enum Op {
    /// Read the lock ConfigMap.
    Get { lock: Arc<str> },
    /// Create the lock ConfigMap holding `record`.
    Create {
        lock: Arc<str>,
        record: LeaderRecord,
    },
    /// Replace the lock ConfigMap (conditioned on its `resourceVersion`).
    Replace { lock: Arc<str>, cm: Box<ConfigMap> },
    /// Resolve when the lock ConfigMap changes.
    WaitChange { lock: Arc<str> },
    /// Register a term granted to this process (store writes are fenced by it).
    TermGranted {
        lock: Arc<str>,
        epoch: i64,
        identity: String,
        started: u64,
    },
    /// Note a confirmed renewal of a term.
    TermRenewed {
        lock: Arc<str>,
        epoch: i64,
        started: u64,
    },
    /// Forget a term (revoked or released).
    TermOver { lock: Arc<str>, epoch: i64 },
    /// Claim the per-job ConfigMaps the new term fences.
    Sweep { token: FencingToken },
    /// Write the released record if `identity` still holds the lease.
    Release { lock: Arc<str>, identity: String },
}

/// The response to a [`Request`].
#[derive(Debug)]
pub(crate) enum Response {
    /// The lock ConfigMap (or none), and whether the cluster's data was cleaned up.
    Got {
        cm: Result<Option<Box<ConfigMap>>, ApiError>,
        cleaned: bool,
    },
    /// The outcome of a create or replace.
    Written(Result<(), ApiError>),
    /// The lock ConfigMap changed.
    Changed,
    /// The claims are made.
    Swept,
    /// The record is released.
    Released,
    /// Bookkeeping done.
    Noted,
    /// The backend is gone.
    Gone,
}

/// The reply to a [`Request`].
#[derive(Debug)]
pub(crate) struct Reply {
    /// The request's `seq`.
    pub seq: u64,
    /// What happened.
    pub response: Response,
}

/// What the recipe waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Nothing: attempt now.
    Nothing,
    /// The reply of a read or write.
    Response,
    /// The claims of a new term.
    Sweep,
    /// The next attempt's time (or a change of the ConfigMap while not leading).
    Timer,
    /// The release.
    Release,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Idle,
    Campaigning,
    Leaving,
    Done,
}

/// What one read-and-write round found.
enum Step {
    /// This process holds the lease with this term.
    Leading(i64),
    /// Someone else holds it (or it vanished while this process held it).
    NotLeading,
    /// Could not tell (request failed, conflict); retry soon or after the retry period.
    Retry { soon: bool },
}

/// One participation in a latch ConfigMap.
pub(crate) struct Recipe {
    lock: Arc<str>,
    clock: Arc<dyn Clock>,
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
    skew_allowance: Duration,
    identity: String,
    obs: Option<Observation>,
    /// (term, start of the last confirmed renewal)
    leading: Option<(i64, u64)>,
    /// The term being claimed before it is reported.
    claiming: Option<i64>,
    started: u64,
    /// The epoch a write in flight would give this process.
    writing: i64,
    warned: bool,
    life: Life,
    wait: Wait,
    expect: u64,
    _active: Active,
}

impl std::fmt::Debug for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipe")
            .field("lock", &self.lock)
            .field("leading", &self.leading)
            .field("life", &self.life)
            .finish()
    }
}

type Out = Vec<RecipeOutput<Request>>;

fn new_identity() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Recipe {
    pub(crate) fn new(lock: String, settings: &KubernetesSettings, active: Active) -> Self {
        Self {
            lock: lock.into(),
            clock: settings.clock.clone(),
            lease_duration: settings.lease_duration,
            renew_deadline: settings.effective_renew_deadline(),
            retry_period: settings.retry_period,
            skew_allowance: settings.skew_allowance,
            identity: new_identity(),
            obs: None,
            leading: None,
            claiming: None,
            started: 0,
            writing: 0,
            warned: false,
            life: Life::Idle,
            wait: Wait::Nothing,
            expect: 0,
            _active: active,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    fn request(&mut self, op: Op, wait: Wait, out: &mut Out) {
        self.expect += 1;
        self.wait = wait;
        out.push(RecipeOutput::Request(Request {
            seq: self.expect,
            op,
        }));
    }

    /// Bookkeeping the IO does at once, in order; its reply is not awaited.
    fn note(&mut self, op: Op, out: &mut Out) {
        out.push(RecipeOutput::Request(Request { seq: 0, op }));
    }

    /// This process holds term `epoch` from the round started at `self.started`: registered
    /// with the backend (which fences store writes by it) and remembered for renewals.
    fn hold(&mut self, epoch: i64, out: &mut Out) {
        let (lock, started) = (self.lock.clone(), self.started);
        self.note(
            Op::TermGranted {
                lock,
                epoch,
                identity: self.identity.clone(),
                started,
            },
            out,
        );
        self.leading = Some((epoch, started));
    }

    fn revoke(&mut self, why: &str, out: &mut Out) {
        self.claiming = None;
        if let Some((epoch, _)) = self.leading.take() {
            let lock = self.lock.clone();
            self.note(Op::TermOver { lock, epoch }, out);
            info!(lock = %self.lock, term = epoch, "leadership lost: {why}");
            out.push(RecipeOutput::Revoked);
            self.identity = new_identity();
        }
    }

    /// Starts a round: step down if the renewal is overdue, then read the record.
    fn attempt(&mut self, out: &mut Out) {
        if self.life != Life::Campaigning || self.wait != Wait::Nothing {
            return;
        }
        if let Some((_, last)) = self.leading
            && lease::must_step_down(last, self.now(), self.renew_deadline)
        {
            self.revoke("no renewal confirmed within the renew deadline", out);
        }
        self.started = self.now();
        let lock = self.lock.clone();
        self.request(Op::Get { lock }, Wait::Response, out);
        if let Some((_, last)) = self.leading {
            // The round may hang: the term still ends at the renew deadline (client-go gives
            // up renewing at the renew deadline, whatever the request in flight).
            let until = (last + lease::ms(self.renew_deadline)).saturating_sub(self.now());
            out.push(RecipeOutput::WakeAfter(Duration::from_millis(until)));
        }
    }

    /// Steps down at the renew deadline even with a round in flight; that round is abandoned
    /// (its late success must not look like a new grant) and a new one starts.
    fn check_deadline(&mut self, out: &mut Out) {
        if self.life != Life::Campaigning {
            return;
        }
        if let Some((_, last)) = self.leading
            && lease::must_step_down(last, self.now(), self.renew_deadline)
        {
            self.revoke("no renewal confirmed within the renew deadline", out);
            if self.wait == Wait::Response {
                self.wait = Wait::Nothing;
                self.expect += 1;
                self.attempt(out);
            }
        }
    }

    /// Decides on the record read: write (acquire, renew) or a step outcome.
    fn decide(
        &mut self,
        got: Result<Option<Box<ConfigMap>>, ApiError>,
        cleaned: bool,
        out: &mut Out,
    ) -> Option<Step> {
        let leading = self.leading.map(|l| l.0);
        let now = self.started;
        let current = match got {
            Ok(c) => c,
            Err(e) => {
                debug!(lock = %self.lock, error = %e, "reading the lock failed");
                return Some(Step::Retry { soon: false });
            }
        };
        let Some(mut c) = current else {
            if leading.is_some() || cleaned {
                return Some(Step::NotLeading);
            }
            let record = lease::acquired(None, &self.identity, self.lease_duration, now);
            self.writing = record.leader_transitions;
            let lock = self.lock.clone();
            self.request(Op::Create { lock, record }, Wait::Response, out);
            return None;
        };
        let record = match cm::leader_record(&c) {
            Ok(r) => {
                self.warned = false;
                r
            }
            Err(reason) => {
                // Never overwrite a record that cannot be read.
                if !self.warned {
                    warn!("{reason}; not contending until it is readable");
                    self.warned = true;
                }
                return Some(if leading.is_some() {
                    Step::NotLeading
                } else {
                    Step::Retry { soon: false }
                });
            }
        };
        let new = match record {
            Some(r) if r.holder_identity == self.identity => {
                if leading.is_some_and(|e| e != r.leader_transitions) {
                    return Some(Step::NotLeading);
                }
                lease::renewed(&r, now)
            }
            Some(r) => {
                if leading.is_some() {
                    return Some(Step::NotLeading);
                }
                let o = Observation::observe(self.obs.take(), &r, now);
                let free = lease::is_free(&r, &o, now, self.lease_duration, self.skew_allowance);
                self.obs = Some(o);
                if !free {
                    return Some(Step::NotLeading);
                }
                lease::acquired(Some(&r), &self.identity, self.lease_duration, now)
            }
            None => {
                if leading.is_some() {
                    return Some(Step::NotLeading);
                }
                lease::acquired(None, &self.identity, self.lease_duration, now)
            }
        };
        cm::set_leader_record(&mut c, &new);
        self.writing = new.leader_transitions;
        let lock = self.lock.clone();
        self.request(Op::Replace { lock, cm: c }, Wait::Response, out);
        None
    }

    /// Applies the outcome of a round and schedules the next.
    fn stepped(&mut self, step: Step, out: &mut Out) {
        let mut soon = false;
        match step {
            Step::Leading(epoch) => match self.leading {
                Some((e, _)) if e == epoch => {
                    let (lock, started) = (self.lock.clone(), self.started);
                    self.note(
                        Op::TermRenewed {
                            lock,
                            epoch,
                            started,
                        },
                        out,
                    );
                    self.leading = Some((epoch, started));
                }
                _ => {
                    if self.leading.is_some() {
                        self.revoke("term changed", out);
                        return self.attempt(out);
                    }
                    // A grant that comes too late to be safe is not given.
                    if lease::must_step_down(self.started, self.now(), self.renew_deadline) {
                        return self.attempt(out);
                    }
                    self.hold(epoch, out);
                    self.claiming = Some(epoch);
                    info!(lock = %self.lock, term = epoch, identity = %self.identity, "leadership acquired");
                    let token = FencingToken::new(self.lock.clone(), epoch);
                    return self.request(Op::Sweep { token }, Wait::Sweep, out);
                }
            },
            Step::NotLeading => self.revoke("another holder", out),
            Step::Retry { soon: s } => soon = s,
        }
        self.schedule(soon, out);
    }

    /// Waits for the next round: the retry period (a few ms after a conflict), never past the
    /// renew deadline while leading; while not leading a change of the ConfigMap ends the wait.
    fn schedule(&mut self, soon: bool, out: &mut Out) {
        let mut wait = if soon {
            Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 20) + 1)
        } else {
            self.retry_period
        };
        if let Some((_, last)) = self.leading {
            let until = (last + lease::ms(self.renew_deadline)).saturating_sub(self.now());
            wait = wait.min(Duration::from_millis(until));
        } else {
            let lock = self.lock.clone();
            self.request(Op::WaitChange { lock }, Wait::Timer, out);
        }
        self.wait = Wait::Timer;
        out.push(RecipeOutput::WakeAfter(wait));
    }

    fn written(&mut self, r: Result<(), ApiError>) -> Step {
        match r {
            Ok(()) => Step::Leading(self.writing),
            Err(ApiError::Conflict | ApiError::AlreadyExists | ApiError::NotFound) => {
                Step::Retry { soon: true }
            }
            Err(e) => {
                debug!(lock = %self.lock, error = %e, "writing the lock failed");
                Step::Retry { soon: false }
            }
        }
    }

    /// Leaves: the term ends and the record is released if this process holds it.
    fn leave(&mut self, out: &mut Out) {
        if matches!(self.life, Life::Leaving | Life::Done) {
            return;
        }
        self.life = Life::Leaving;
        self.claiming = None;
        if self.wait == Wait::Response {
            // A write in flight may still give this process the lease: release after it.
            return;
        }
        self.release(out);
    }

    fn release(&mut self, out: &mut Out) {
        match self.leading.take() {
            Some((epoch, _)) => {
                let lock = self.lock.clone();
                self.note(Op::TermOver { lock, epoch }, out);
                out.push(RecipeOutput::Revoked);
                let (lock, identity) = (self.lock.clone(), self.identity.clone());
                self.request(Op::Release { lock, identity }, Wait::Release, out);
            }
            None => self.finish(out),
        }
    }

    fn finish(&mut self, out: &mut Out) {
        if self.life != Life::Done {
            self.life = Life::Done;
            self.wait = Wait::Nothing;
            out.push(RecipeOutput::Left);
            out.push(RecipeOutput::Done);
        }
    }
}

impl LatchRecipe for Recipe {
    type Request = Request;
    type Response = Reply;

    fn handle(&mut self, input: RecipeInput<Reply>, out: &mut Out) {
        match input {
            RecipeInput::Join => {
                self.life = Life::Campaigning;
                self.attempt(out);
            }
            RecipeInput::Leave => self.leave(out),
            RecipeInput::Session(view) => {
                if view.state == ConnectionState::Lost && self.life == Life::Campaigning {
                    // The backend is closing: give the lease back now.
                    self.leave(out);
                }
            }
            RecipeInput::Wake => {
                self.check_deadline(out);
                if self.wait == Wait::Timer && self.life == Life::Campaigning {
                    self.wait = Wait::Nothing;
                    self.attempt(out);
                }
            }
            RecipeInput::Response(reply) => {
                if reply.seq == 0 || reply.seq != self.expect {
                    return;
                }
                match (self.wait, reply.response) {
                    (_, Response::Gone) => self.finish(out),
                    (Wait::Response, Response::Got { cm, cleaned }) => {
                        self.wait = Wait::Nothing;
                        if self.life == Life::Leaving {
                            return self.release(out);
                        }
                        if let Some(step) = self.decide(cm, cleaned, out) {
                            self.stepped(step, out);
                        }
                    }
                    (Wait::Response, Response::Written(r)) => {
                        self.wait = Wait::Nothing;
                        let step = self.written(r);
                        if self.life == Life::Leaving {
                            if let Step::Leading(epoch) = step
                                && self.leading.is_none()
                            {
                                // Acquired as it left: hold it just long enough to release.
                                self.hold(epoch, out);
                            }
                            return self.release(out);
                        }
                        self.stepped(step, out);
                    }
                    (Wait::Sweep, Response::Swept) => {
                        if let Some(epoch) = self.claiming.take()
                            && self.leading.is_some_and(|(e, _)| e == epoch)
                        {
                            out.push(RecipeOutput::Granted(FencingToken::new(
                                self.lock.clone(),
                                epoch,
                            )));
                        }
                        self.wait = Wait::Nothing;
                        if self.life == Life::Leaving {
                            return self.release(out);
                        }
                        self.schedule(false, out);
                    }
                    (Wait::Timer, Response::Changed)
                        if self.life == Life::Campaigning && self.leading.is_none() =>
                    {
                        self.wait = Wait::Nothing;
                        self.attempt(out);
                    }
                    (Wait::Release, Response::Released) => {
                        info!(lock = %self.lock, "leadership released");
                        self.finish(out);
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "latch_tests.rs"]
mod tests;
