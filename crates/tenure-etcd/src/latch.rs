//! The leader latch on etcd, by lease and transaction, as a state machine free of IO.
//!
//! - Each participant puts `<latch dir>/<lease id in hex>` under its lease, if absent (one
//!   transaction: `create_revision == 0` ⇒ put; then, either way, read the key back). Re-doing
//!   it after a lost reply finds the same key, so nothing is left behind.
//! - The participant whose key has the lowest create revision leads. Every other participant
//!   watches only its predecessor's key for deletion (no herd effect), from the revision of the
//!   listing it decided on, so no deletion is missed. The second of the line leads as soon as
//!   the first's key is deleted, without reading the line again (create revisions only grow:
//!   no key made after that listing comes before it), so its wait follows its own key too,
//!   from that listing, in the same watch (a change of its key seen first ends the wait: it
//!   reads the line, and joins again); others read the line when their predecessor goes. The
//!   leader watches its own key. Every such watch of a session is one watch on the session's
//!   one latch-wait stream (`deletions.rs`), not a stream of its own.
//! - The fencing token is `(<etcd key of the participant's key>, <its create revision>)`; every
//!   fenced write compares that key's create revision, and its lease with the lease it is named
//!   by, in the same transaction.
//! - Connection suspended (renewals failing inside the TTL): under
//!   [`SuspendedPolicy::RevokeOnSuspended`] leadership is revoked at once and the line is read
//!   again once connected (the key lives on with the lease). Lease lost: revoked; the key is gone
//!   with the lease and the participant joins again under the new lease.
//! - Leaving deletes the key (with the leader's published information in the same transaction,
//!   only while the key still exists).
//!
//! `Recipe` decides, `latch_io::Io` performs its requests; the session driver of `tenure-core`
//! runs every latch of the session on one task.

use std::sync::Arc;
use std::time::Duration;

use tenure_core::connection::{ConnectionState, SuspendedPolicy};
use tenure_core::driver::participation::{Life, Participation, Wait};
use tenure_core::driver::{LatchRecipe, RecipeInput, RecipeOutput, SessionView};
use tenure_core::retry::RetryPolicy;
use tracing::{debug, warn};

/// A request of the recipe, performed under the lease of `generation` (a request for an older
/// lease fails without reaching the server).
#[derive(Debug)]
pub(crate) struct Request {
    /// The lease generation the request belongs to.
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

/// The operations of the recipe. Keys are etcd keys.
#[derive(Debug)]
pub(crate) enum Op {
    /// Put `<dir>/<lease hex>` under the lease unless it exists; reply with its key and create
    /// revision.
    Join { dir: String },
    /// The participants' keys below `dir` with their create revisions, and the revision read at.
    List { dir: String },
    /// Resolve once `key` is deleted after `revision` (or put again, or the watch fails: look
    /// again). With `also` (this participant's own key, while `key` is the first of the line),
    /// a deletion or put of that key after `revision` ends the wait too, as "look again".
    Watch {
        key: String,
        revision: i64,
        also: Option<String>,
    },
    /// Delete `key` and, in the same transaction while `key` still exists, the layout keys
    /// `also` (the leader's published information).
    Delete { key: String, also: Vec<String> },
}

/// The response to a [`Request`].
#[derive(Debug)]
pub(crate) enum Response {
    /// The participant's key and create revision.
    Joined(Result<(String, i64), String>),
    /// `(key, create revision)` of every participant, and the revision of the read.
    Listed(Result<(Vec<(String, i64)>, i64), String>),
    /// The watch ended without seeing a deletion (the stream broke, the server cancelled the
    /// watch): look again.
    Watched,
    /// The watched key was deleted after the revision the watch started from.
    Gone,
    /// Deleted (or already gone).
    Deleted(Result<(), String>),
}

/// The participant's key.
#[derive(Clone, Debug)]
struct Node {
    key: String,
    revision: i64,
    generation: u64,
}

/// One participation in a latch.
#[derive(Debug)]
pub(crate) struct Recipe {
    policy: SuspendedPolicy,
    retry: RetryPolicy,
    leave_wait: Duration,
    session: SessionView,
    /// Life, wait, current request and leadership (shared with ZooKeeper's recipe).
    p: Participation,
    node: Option<Node>,
    /// Revoked while suspended: the line must be read again before leading.
    recheck: bool,
    /// While waiting for the first of the line, just before this key: the revision of that
    /// listing. The first's deletion makes this key the first (create revisions only grow),
    /// with no line to read.
    predecessor_first: Option<i64>,
    failures: u32,
    unpublish: Vec<String>,
}

type Out = Vec<RecipeOutput<Request>>;

impl Recipe {
    /// A participation in the latch whose directory is the etcd key prefix `dir`.
    pub(crate) fn new(
        dir: Arc<str>,
        policy: SuspendedPolicy,
        retry: RetryPolicy,
        leave_wait: Duration,
    ) -> Self {
        Self {
            p: Participation::new(dir),
            policy,
            retry,
            leave_wait,
            session: SessionView {
                state: ConnectionState::Suspended,
                generation: 0,
                suspensions: 0,
            },
            node: None,
            recheck: false,
            predecessor_first: None,
            failures: 0,
            unpublish: Vec::new(),
        }
    }

    fn connected(&self) -> bool {
        self.session.state == ConnectionState::Connected
    }

    fn request(&mut self, op: Op, out: &mut Out) {
        self.predecessor_first = None;
        let seq = self.p.next_request(matches!(op, Op::Watch { .. }));
        out.push(RecipeOutput::Request(Request {
            generation: self.session.generation,
            seq,
            op,
        }));
    }

    fn revoke(&mut self, out: &mut Out) {
        self.p.revoke(out);
    }

    fn on_session(&mut self, view: SessionView, out: &mut Out) {
        if view.suspensions != self.session.suspensions
            && self.policy == SuspendedPolicy::RevokeOnSuspended
            && self.session.generation != 0
        {
            self.revoke(out);
            self.recheck = true;
        }
        if view.state == ConnectionState::Lost || view.generation != self.session.generation {
            self.revoke(out);
            // The key died with its lease.
            self.node = None;
            self.p.cancel_wait();
        }
        self.session = view;
    }

    fn step(&mut self, out: &mut Out) {
        if self.p.wait != Wait::Nothing || !self.connected() {
            return;
        }
        match self.p.life {
            Life::Idle => {}
            Life::Campaigning => {
                let dir = self.p.dir().to_string();
                if self.node.is_none() {
                    self.request(Op::Join { dir }, out);
                } else {
                    self.request(Op::List { dir }, out);
                }
            }
            Life::Leaving { .. } => self.leave_step(out),
        }
    }

    fn leave_step(&mut self, out: &mut Out) {
        if let Some(node) = self.node.clone() {
            if node.generation == self.session.generation {
                let also = self.unpublish.clone();
                return self.request(
                    Op::Delete {
                        key: node.key,
                        also,
                    },
                    out,
                );
            }
            self.node = None;
        }
        self.finish_leaving(out);
    }

    fn finish_leaving(&mut self, out: &mut Out) {
        self.p.finish_leaving(out);
    }

    fn failed(&mut self, why: String, out: &mut Out) {
        let attempt = self.failures;
        self.failures = self.failures.saturating_add(1);
        warn!(dir = %self.p.dir(), error = %why, "latch step failed; retrying");
        self.p.pause(self.retry.wait(attempt), out);
    }

    fn response(&mut self, reply: Reply, out: &mut Out) {
        if reply.seq != self.p.expect {
            return;
        }
        match reply.response {
            r @ (Response::Watched | Response::Gone) => {
                if self.p.wait == Wait::Watching {
                    self.p.wait = Wait::Nothing;
                    let first = matches!(r, Response::Gone) && self.now_first(out);
                    if !first {
                        self.step(out);
                    }
                }
            }
            _ if self.p.wait != Wait::Response => {}
            Response::Joined(r) => {
                self.p.wait = Wait::Nothing;
                match r {
                    Ok((key, revision)) => {
                        self.failures = 0;
                        debug!(%key, revision, "joined the latch");
                        self.node = Some(Node {
                            key,
                            revision,
                            generation: self.session.generation,
                        });
                        self.step(out);
                    }
                    Err(e) => self.failed(e, out),
                }
            }
            Response::Listed(r) => {
                self.p.wait = Wait::Nothing;
                match r {
                    Ok((line, revision)) => {
                        self.failures = 0;
                        if self.p.life == Life::Campaigning {
                            self.check_line(line, revision, out);
                        } else {
                            self.step(out);
                        }
                    }
                    Err(e) => self.failed(e, out),
                }
            }
            Response::Deleted(r) => {
                self.p.wait = Wait::Nothing;
                match r {
                    Ok(()) => {
                        self.failures = 0;
                        self.node = None;
                        self.unpublish.clear();
                        self.step(out);
                    }
                    Err(e) => self.failed(e, out),
                }
            }
        }
    }

    /// Our place in the line: lead and watch our key, or watch the predecessor's.
    fn check_line(&mut self, mut line: Vec<(String, i64)>, revision: i64, out: &mut Out) {
        let Some(node) = self.node.clone() else {
            return self.step(out);
        };
        line.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        self.recheck = false;
        match line.iter().position(|(k, _)| *k == node.key) {
            None => {
                warn!(key = %node.key, "the latch key disappeared; joining again");
                self.revoke(out);
                self.node = None;
                self.step(out);
            }
            Some(0) => self.lead(node, revision, out),
            Some(i) => {
                self.revoke(out);
                let predecessor = line[i - 1].0.clone();
                debug!(%predecessor, "waiting for the predecessor");
                // Waiting for the first of the line, this key leads on its deletion without a
                // read: a deletion of this key, too, must end the wait.
                let first = i == 1;
                self.request(
                    Op::Watch {
                        key: predecessor,
                        revision,
                        also: first.then(|| node.key.clone()),
                    },
                    out,
                );
                if first {
                    self.predecessor_first = Some(revision);
                }
            }
        }
    }

    /// Leads with `node` (the first of the line read at `revision`) and watches its key for
    /// deletions after that read.
    fn lead(&mut self, node: Node, revision: i64, out: &mut Out) {
        self.p.grant(node.key.as_str(), node.revision, out);
        self.request(
            Op::Watch {
                key: node.key,
                revision,
                also: None,
            },
            out,
        );
    }

    /// On the deletion of the key awaited: when it was the first of the line, just before this
    /// one, this key is now the first and leads without reading the line again (create
    /// revisions only grow, so no key made after that read comes before it). The wait's watch
    /// covers its own key too, from that read, in revision order: a deletion of it before the
    /// first's was seen first, and ended the wait as "look again". Curator's and etcd's own
    /// election recipes read the line here. False if it does not apply (the line is read).
    fn now_first(&mut self, out: &mut Out) -> bool {
        let Some(revision) = self.predecessor_first.take() else {
            return false;
        };
        let applies = self.p.life == Life::Campaigning && !self.recheck && self.connected();
        match self.node.clone() {
            Some(node) if applies && node.generation == self.session.generation => {
                debug!(key = %node.key, "the first of the line is gone");
                self.lead(node, revision, out);
                true
            }
            _ => false,
        }
    }
}

impl LatchRecipe for Recipe {
    type Request = Request;
    type Response = Reply;

    fn delete_on_leave(&mut self, keys: Vec<String>) -> bool {
        let held = self.p.holds_key_of(
            self.node.as_ref().map(|n| n.generation),
            self.session.generation,
        );
        if held {
            self.unpublish = keys;
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
                // Not connected: the key is deleted once connected again under this lease.
                if self.p.leave(self.connected(), self.leave_wait, out) {
                    self.step(out);
                }
            }
            RecipeInput::Session(view) => {
                self.on_session(view, out);
                if let Life::Leaving { .. } = self.p.life
                    && (view.state == ConnectionState::Lost || self.node.is_none())
                {
                    self.node = None;
                    self.p.wait = Wait::Nothing;
                    return self.finish_leaving(out);
                }
                if self.p.wait == Wait::Watching && (self.recheck || !self.connected()) {
                    self.p.cancel_wait();
                }
                self.step(out);
            }
            RecipeInput::Response(r) => self.response(r, out),
            RecipeInput::Wake => {
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
