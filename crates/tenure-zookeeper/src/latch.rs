//! The leader latch: Curator's `LeaderLatch` recipe as a state machine free of IO, so tenure
//! and Flink contenders on one latch agree who leads.
//!
//! - Each participant creates an EPHEMERAL_SEQUENTIAL znode `<latch dir>/_c_<uuid>-latch-<seq>`
//!   (Curator's protected mode: the `_c_<uuid>-` prefix finds the node again when the reply of
//!   the create was lost) with empty data.
//! - The participant whose node has the smallest sequence number (sorted by the number after
//!   `latch-`, not by name) leads; children that are not well-formed latch nodes are never in
//!   line ([`tenure_core::latch`] is the rule, shared with the tools). Every other participant
//!   waits only for its predecessor's deletion, so a change wakes one participant (no herd
//!   effect). The second of the line leads as soon as the first's deletion is seen, without
//!   reading the line again (numbers only grow: no node made later comes before it), so its
//!   wait ends on its own node's deletion too (then it reads the line, and joins again); others
//!   read the line when their predecessor goes. The leader waits for its own node's deletion,
//!   so a deletion by anyone is noticed at once. A wait is an `exists` and then an entry
//!   parked on the session's persistent recursive watch of the latch root (`deletions.rs`),
//!   not a watch per participant.
//! - Connection suspended: under [`SuspendedPolicy::RevokeOnSuspended`] leadership is revoked
//!   at once and, on reconnect, the old node is deleted and a new one created (Curator's
//!   `reset()`); under [`SuspendedPolicy::TolerateSuspended`] leadership is kept until the session
//!   is lost. Session lost: revoked; the node died with the session and a new one is created in
//!   the backend's new session.
//! - Leaving deletes the node (Curator's guaranteed delete: if the connection is down, once it
//!   is back in the same session; nothing to do once that session is gone).
//! - The fencing token is `(<latch node path>, <sequence>)`; fenced writes check that node.
//! - Joining a latch whose directory exists is one round trip: the get-children that reads the
//!   line is sent right behind the create, and ZooKeeper answers a session's requests in order,
//!   so that line holds the node. A new latch's directories are made in the node's own `multi`,
//!   and then the line is known without a read: the node alone, the first child of a directory
//!   made in the same transaction (see `latch_io::create`).
//!
//! `Recipe` decides, `latch_io::Io` performs its `Request`s; the session driver
//! of `tenure-core` runs every latch of the session on one task.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use tenure_core::connection::{ConnectionState, SuspendedPolicy};
use tenure_core::driver::participation::{Life, Participation, Wait};
use tenure_core::driver::{LatchRecipe, RecipeInput, RecipeOutput, SessionView};
use tenure_core::kv::KvError;
use tenure_core::latch::{sequence as latch_sequence, sorted_participants};
use thin_vec::ThinVec;
use tracing::{debug, info, warn};
use uuid::Uuid;
use zookeeper_client as zk;

use crate::error::is_transient;
use crate::paths::{Paths, child_path, latch_node_prefix, protected_prefix};
use tenure_core::retry::RetryPolicy;

/// A request of the recipe, performed in session `generation` (a request for an older session
/// fails with `SessionExpired` without reaching the server).
#[derive(Debug)]
pub(crate) struct Request {
    /// The session the request belongs to.
    pub generation: u64,
    /// Tells this request's reply from the replies of earlier ones.
    pub seq: u64,
    /// What to do.
    pub op: Op,
}

/// The reply to a [`Request`].
#[derive(Debug)]
pub(crate) struct Reply {
    /// The request's `seq`.
    pub seq: u64,
    /// What happened.
    pub response: Response,
}

/// The operations of the recipe.
#[derive(Debug)]
pub(crate) enum Op {
    /// Create the EPHEMERAL_SEQUENTIAL node `<prefix><seq>`, creating the latch directory (and
    /// its parent) if missing, and read the children of `dir` behind it.
    Create { dir: String, prefix: String },
    /// The children of `dir` whose names start with `prefix` (a protection prefix).
    Find { dir: String, prefix: String },
    /// The children of `dir`.
    List { dir: String },
    /// Resolve once `path` is deleted (or at once if it does not exist): at once with
    /// [`Response::Parked`] and later with [`Response::Gone`] (or [`Response::Watched`] to
    /// look again after a reconnect). With `also` (this participation's own node, while
    /// `path` is the first of the line), once either is deleted.
    Watch { path: String, also: Option<String> },
    /// Delete `path` (missing is fine); with `also` (keys of leader information), those first
    /// in the same multi, as far as they exist and are empty.
    Delete { path: String, also: Vec<String> },
    /// Delete the children of `dir` whose names start with `prefix` (missing is fine).
    DeleteProtected { dir: String, prefix: String },
}

/// The response to a [`Request`].
#[derive(Debug)]
pub(crate) enum Response {
    /// The created node's name (the line was not read with it).
    Created(Result<String, zk::Error>),
    /// The created node's name and the latch's children, read right behind the create (or
    /// known from it: the node alone in the directory its `multi` made).
    Joined(String, Vec<String>),
    /// The names found, or the children listed (no directory: empty).
    Names(Result<Vec<String>, zk::Error>),
    /// The watched node changed or was missing, or the watch failed: look again.
    Watched,
    /// A deletion seen on the latch root's watch, of the node at this path: the wait on that
    /// path is over (with a 64-bit hash match, so the recipe checks the path before it acts).
    Gone(String),
    /// The wait is set; [`Response::Gone`] follows as a late response when the node goes.
    Parked,
    /// Deleted (or already missing).
    Deleted(Result<(), zk::Error>),
}

#[derive(Clone, Debug)]
struct Node {
    /// The node's path; shared with the fencing token of its term.
    path: Arc<str>,
    seq: i64,
    generation: u64,
}

/// A create whose reply was not seen (interrupted or lost with the connection).
#[derive(Clone, Copy, Debug)]
struct Pending {
    protection: Uuid,
    /// Sessions count from 1 (0 is the recipe's "no session yet", in which it asks nothing), so
    /// an `Option<Pending>` needs no tag word.
    generation: NonZeroU64,
}

/// The kind of the request asked last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Create,
    Find,
    List,
    Watch,
    Delete,
    DeleteProtected,
}

/// What every participation of one session shares, kept once per session so that each of
/// thousands of per-job participations holds a pointer, not a copy.
#[derive(Debug)]
pub(crate) struct RecipeSettings {
    /// Where a latch key's directory is.
    pub paths: Paths,
    /// Whether a suspended connection revokes leadership (and re-joins the latch after it).
    pub policy: SuspendedPolicy,
    /// Pauses after a failed request (`retry-wait` doubling up to `max-retry-wait`).
    pub retry: RetryPolicy,
    /// How long leaving waits for the node's deletion before contenders go on.
    pub leave_wait: Duration,
}

/// One participation in a latch.
#[derive(Debug)]
pub(crate) struct Recipe {
    settings: Arc<RecipeSettings>,
    session: SessionView,
    /// Life, wait, current request and leadership (shared with etcd's recipe).
    p: Participation,
    node: Option<Node>,
    pending: Option<Pending>,
    need_reset: bool,
    /// What the request awaited was.
    asked: Asked,
    failures: u32,
    /// The node awaited is the first of the line, just before this one: its deletion makes
    /// this node the first (numbers only grow), with no line to read.
    predecessor_first: bool,
    /// Keys to delete in the same write as the node when leaving.
    unpublish: ThinVec<String>,
}

type Out = Vec<RecipeOutput<Request>>;

impl Recipe {
    /// A participation in the latch `latch` (a layout key; its directory is
    /// `settings.paths.path(latch)`).
    pub(crate) fn new(latch: Arc<str>, settings: Arc<RecipeSettings>) -> Self {
        Self {
            p: Participation::new(latch),
            settings,
            session: SessionView {
                state: ConnectionState::Suspended,
                generation: 0,
                suspensions: 0,
            },
            node: None,
            pending: None,
            need_reset: false,
            asked: Asked::Watch,
            failures: 0,
            predecessor_first: false,
            unpublish: ThinVec::new(),
        }
    }

    /// The latch directory's znode path (made per request: a participation keeps only the
    /// latch key, which its election shares).
    fn dir(&self) -> String {
        self.settings.paths.path(self.p.dir())
    }

    fn connected(&self) -> bool {
        self.session.state == ConnectionState::Connected
    }

    fn request(&mut self, op: Op, out: &mut Out) {
        self.asked = match &op {
            Op::Create { .. } => Asked::Create,
            Op::Find { .. } => Asked::Find,
            Op::List { .. } => Asked::List,
            Op::Watch { .. } => Asked::Watch,
            Op::Delete { .. } => Asked::Delete,
            Op::DeleteProtected { .. } => Asked::DeleteProtected,
        };
        // A watch's wait is set by `watch`, after the request.
        let seq = self.p.next_request(false);
        out.push(RecipeOutput::Request(Request {
            generation: self.session.generation,
            seq,
            op,
        }));
    }

    fn node_path(&self, node: &Node) -> String {
        node.path.to_string()
    }

    fn revoke(&mut self, out: &mut Out) {
        self.p.revoke(out);
    }

    /// Bookkeeping for a session change (revocations happen here, at once).
    fn on_session(&mut self, view: SessionView, out: &mut Out) {
        if view.suspensions != self.session.suspensions
            && self.settings.policy == SuspendedPolicy::RevokeOnSuspended
            && self.session.generation != 0
        {
            self.revoke(out);
            // Curator's LeaderLatch resets (new node) on RECONNECTED under this policy.
            self.need_reset = true;
        }
        if view.state == ConnectionState::Lost || view.generation != self.session.generation {
            self.revoke(out);
            // The node died with its session.
            self.node = None;
            self.pending = None;
            self.need_reset = false;
            // Replies of the old session are stale; what is in flight fails by itself.
            self.p.cancel_wait();
        }
        self.session = view;
    }

    /// Takes the next step if nothing is in flight.
    fn step(&mut self, out: &mut Out) {
        if self.p.wait != Wait::Nothing || !self.connected() {
            return;
        }
        match self.p.life {
            Life::Idle => {}
            Life::Leaving { .. } => self.leave_step(out),
            Life::Campaigning => self.campaign_step(out),
        }
    }

    fn campaign_step(&mut self, out: &mut Out) {
        let generation = self.session.generation;
        if self.need_reset {
            if let Some(node) = &self.node {
                info!(node = %self.node_path(node), "re-joining the latch after a suspended connection");
                let path = self.node_path(node);
                return self.request(
                    Op::Delete {
                        path,
                        also: Vec::new(),
                    },
                    out,
                );
            }
            if let Some(p) = self.pending {
                let dir = self.dir();
                let prefix = protected_prefix(&p.protection);
                return self.request(Op::DeleteProtected { dir, prefix }, out);
            }
            self.need_reset = false;
        }
        if self.node.is_none()
            && let Some(p) = self.pending
        {
            if p.generation.get() != generation {
                self.pending = None;
            } else {
                let dir = self.dir();
                let prefix = protected_prefix(&p.protection);
                return self.request(Op::Find { dir, prefix }, out);
            }
        }
        if self.node.is_none() {
            let Some(generation) = NonZeroU64::new(generation) else {
                // Not a session (steps run only when connected, in a session counted from 1).
                return;
            };
            let protection = Uuid::new_v4();
            self.pending = Some(Pending {
                protection,
                generation,
            });
            let dir = self.dir();
            let prefix = latch_node_prefix(&dir, &protection);
            return self.request(Op::Create { dir, prefix }, out);
        }
        let dir = self.dir();
        self.request(Op::List { dir }, out);
    }

    /// One step of leaving: delete the node, then what an interrupted create may have left.
    fn leave_step(&mut self, out: &mut Out) {
        let generation = self.session.generation;
        if let Some(node) = self.node.clone() {
            if node.generation == generation {
                let path = self.node_path(&node);
                // Kept until the delete lands: a retry deletes them too.
                let also = self.unpublish.to_vec();
                return self.request(Op::Delete { path, also }, out);
            }
            self.node = None;
        }
        if let Some(p) = self.pending {
            if p.generation.get() == generation {
                let dir = self.dir();
                let prefix = protected_prefix(&p.protection);
                return self.request(Op::DeleteProtected { dir, prefix }, out);
            }
            self.pending = None;
        }
        self.finish_leaving(out);
    }

    fn finish_leaving(&mut self, out: &mut Out) {
        self.p.finish_leaving(out);
    }

    /// A failure of a request: retried after a pause, or the end of the latch.
    fn failed(&mut self, e: zk::Error, out: &mut Out) {
        if matches!(
            e,
            zk::Error::NoAuth
                | zk::Error::InvalidAcl
                | zk::Error::NoChildrenForEphemerals
                | zk::Error::BadArguments(_)
                | zk::Error::AuthFailed
                | zk::Error::ClientClosed
        ) && self.p.life == Life::Campaigning
        {
            let reason = format!("latch {}: {e}", self.p.dir());
            warn!(%reason, "leader latch failed");
            self.revoke(out);
            let err = match e {
                zk::Error::NoAuth | zk::Error::InvalidAcl | zk::Error::AuthFailed => {
                    KvError::Unauthorized {
                        key: self.p.dir().to_string(),
                        reason,
                    }
                }
                zk::Error::ClientClosed => KvError::Closed,
                _ => KvError::Backend(reason),
            };
            out.push(RecipeOutput::Failed(err));
            // Keep the node out of the line: a failed latch must not block others.
            self.p.life = Life::Leaving { reported: true };
            self.p.wait = Wait::Nothing;
            return self.step(out);
        }
        // The policy counts retries from 0: the first retry waits the base.
        let attempt = self.failures;
        self.failures = self.failures.saturating_add(1);
        let pause = if is_transient(&e) {
            // An interrupted request is retried soon: the connection is usually back at once.
            debug!(latch = %self.p.dir(), error = %e, "latch step interrupted; retrying");
            RetryPolicy::new(
                self.settings.retry.base.min(Duration::from_millis(200)),
                self.settings.retry.max_wait.min(Duration::from_secs(5)),
            )
            .wait(attempt)
        } else {
            warn!(latch = %self.p.dir(), error = %e, "latch step failed; retrying");
            self.settings.retry.wait(attempt)
        };
        self.p.pause(pause, out);
    }

    fn take_node(&mut self, name: &str, how: &str) -> Result<(), zk::Error> {
        let path = child_path(&self.dir(), name);
        let seq = latch_sequence(name).ok_or_else(|| {
            zk::Error::UnexpectedError(format!("latch node {path} has no sequence"))
        })?;
        debug!(node = %path, "{how}");
        self.node = Some(Node {
            path: path.into(),
            seq,
            generation: self.session.generation,
        });
        self.pending = None;
        Ok(())
    }

    fn response(&mut self, reply: Reply, out: &mut Out) {
        if reply.seq != self.p.expect {
            // Stale: a watch or request that was overtaken (a reset, a new session, leaving).
            return;
        }
        let r = reply.response;
        if let Response::Parked = r {
            // The wake-up comes later, with this request's seq.
            return;
        }
        if let Response::Watched | Response::Gone(_) = r {
            // A watch's reply means "look again" (also when it failed), unless it is the
            // deletion of the first of the line, just before this node.
            if self.p.wait == Wait::Watching {
                self.p.wait = Wait::Nothing;
                let first = match &r {
                    Response::Gone(path) => self.now_first(path, out),
                    _ => false,
                };
                if !first {
                    self.step(out);
                }
            }
            return;
        }
        if self.p.wait != Wait::Response {
            return;
        }
        self.p.wait = Wait::Nothing;
        match self.outcome(r, out) {
            Ok(()) => {
                self.failures = 0;
                self.step(out);
            }
            Err(e) => self.failed(e, out),
        }
    }

    /// Applies the reply to the request asked last.
    fn outcome(&mut self, r: Response, out: &mut Out) -> Result<(), zk::Error> {
        match (self.asked, r) {
            (Asked::Create, Response::Created(Ok(name))) => {
                self.take_node(&name, "joined the latch")
            }
            (Asked::Create, Response::Joined(name, children)) => {
                self.take_node(&name, "joined the latch")?;
                // The line read behind the create saves the get-children round trip.
                self.line_read(&children, out);
                Ok(())
            }
            (Asked::Find, Response::Names(Ok(names))) => {
                // The protected nodes of an interrupted create.
                self.pending = None;
                match names.first() {
                    Some(name) => {
                        self.take_node(name, "found the latch node of an interrupted create")
                    }
                    None => Ok(()),
                }
            }
            (Asked::List, Response::Names(Ok(children))) => {
                self.line_read(&children, out);
                Ok(())
            }
            (Asked::Delete, Response::Deleted(Ok(()))) => {
                self.node = None;
                self.unpublish.clear();
                Ok(())
            }
            (Asked::DeleteProtected, Response::Deleted(Ok(()))) => {
                self.pending = None;
                Ok(())
            }
            (
                _,
                Response::Created(Err(e)) | Response::Names(Err(e)) | Response::Deleted(Err(e)),
            ) => Err(e),
            (asked, r) => Err(zk::Error::UnexpectedError(format!(
                "latch {}: reply {r:?} to a {asked:?} request",
                self.p.dir()
            ))),
        }
    }

    /// A line read for this participation: acted on while campaigning.
    fn line_read(&mut self, children: &[String], out: &mut Out) {
        // A line read before a suspension that asked for a reset grants nothing: the node goes
        // first.
        if self.p.life == Life::Campaigning && !self.need_reset {
            self.check_line(children, out);
        }
    }

    /// Our place in the line: lead and watch our node, or watch the predecessor.
    fn check_line(&mut self, children: &[String], out: &mut Out) {
        let Some(node) = self.node.clone() else {
            return;
        };
        let line = sorted_participants(children);
        let own = node.path.rsplit('/').next().unwrap_or_default();
        match line.iter().position(|(_, name)| *name == own) {
            None => {
                // Our node is gone (deleted by someone): we do not lead; join again.
                warn!(node = %self.node_path(&node), "the latch node disappeared; joining again");
                self.revoke(out);
                self.node = None;
            }
            Some(0) => self.lead(&node, out),
            Some(i) => {
                self.revoke(out);
                let predecessor = child_path(&self.dir(), line[i - 1].1);
                debug!(%predecessor, "waiting for the predecessor");
                // Waiting for the first of the line, this node leads on its deletion without a
                // read: a deletion of this node, too, must end the wait.
                let first = i == 1;
                self.watch(predecessor, first.then(|| self.node_path(&node)), out);
                self.predecessor_first = first;
            }
        }
    }

    /// Leads with `node` (the first of the line) and waits for its deletion.
    fn lead(&mut self, node: &Node, out: &mut Out) {
        self.p.grant(node.path.clone(), node.seq, out);
        self.watch(self.node_path(node), None, out);
    }

    /// On the deletion of `path` while waiting: when the node awaited was the first of the
    /// line read last, just before this one, and `path` is that node (in this latch's
    /// directory, numbered before this node), this node is now the first, and leads without
    /// reading the line again. Numbers in a directory only grow, so no node made after that
    /// read can come before it. Curator's recipe reads the line here; the leader's deletion
    /// costs its successor no round trip. False if it does not apply (the line is read).
    fn now_first(&mut self, path: &str, out: &mut Out) -> bool {
        let applies = self.predecessor_first
            && self.p.life == Life::Campaigning
            && !self.need_reset
            && self.connected();
        let Some(node) = self.node.clone().filter(|_| applies) else {
            return false;
        };
        let Some((dir, name)) = path.rsplit_once('/') else {
            return false;
        };
        let before = latch_sequence(name).is_some_and(|seq| seq < node.seq);
        if !before || node.generation != self.session.generation || dir != self.dir() {
            return false;
        }
        debug!(predecessor = %path, "the first of the line is gone");
        self.lead(&node, out);
        true
    }

    /// Watches `path` (and `also`); the next step comes with the watch's response.
    fn watch(&mut self, path: String, also: Option<String>, out: &mut Out) {
        self.request(Op::Watch { path, also }, out);
        self.p.wait = Wait::Watching;
        self.predecessor_first = false;
    }
}

impl LatchRecipe for Recipe {
    type Request = Request;
    type Response = Reply;

    fn delete_on_leave(&mut self, keys: Vec<String>) -> bool {
        // Only a leader whose node is in this session can make its node delete the fence.
        let held = self.p.holds_key_of(
            self.node.as_ref().map(|n| n.generation),
            self.session.generation,
        );
        if held {
            self.unpublish = keys.into();
        }
        held
    }

    fn handle(&mut self, input: RecipeInput<Reply>, out: &mut Out) {
        match input {
            RecipeInput::Join => {
                self.p.life = Life::Campaigning;
                self.step(out);
            }
            RecipeInput::Leave => {
                // Not connected: the node is deleted once connected again in this session.
                if self
                    .p
                    .leave(self.connected(), self.settings.leave_wait, out)
                {
                    self.step(out);
                }
            }
            RecipeInput::Session(view) => {
                self.on_session(view, out);
                if let Life::Leaving { .. } = self.p.life
                    && (view.state == ConnectionState::Lost
                        || (self.node.is_none() && self.pending.is_none()))
                {
                    // Nothing of this participation is left with the session gone.
                    self.node = None;
                    self.pending = None;
                    self.p.wait = Wait::Nothing;
                    return self.finish_leaving(out);
                }
                if self.p.wait == Wait::Watching {
                    // A watch may miss what happened while disconnected: look again.
                    self.p.cancel_wait();
                }
                self.step(out);
            }
            RecipeInput::Response(r) => self.response(r, out),
            RecipeInput::Wake => {
                // Past the bounded leave wait contenders go on; a paused retry goes ahead.
                if self.p.wake(out) {
                    self.step(out);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "latch_tests.rs"]
mod tests;
