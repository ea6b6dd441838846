//! The bookkeeping shared by latch recipes in which each participant owns a key of the latch
//! (ZooKeeper's latch node, etcd's lease-named key): what the recipe waits for, where the
//! participation is in its life, which reply is current, whether it leads, and how leaving and
//! wake-ups go. The recipes keep what differs (their keys, requests and line rule).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info};

use super::recipe::RecipeOutput;
use crate::kv::FencingToken;

/// What a recipe waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Nothing: step when connected.
    Nothing,
    /// A request's response.
    Response,
    /// A pause after a failure.
    Pause,
    /// A watch to fire (leaving or a reset may go ahead meanwhile).
    Watching,
}

/// Where a participation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// Not joined yet.
    Idle,
    /// Joined: in line or leading.
    Campaigning,
    /// Leaving; `reported` once `Left` was output.
    Leaving {
        /// Whether `Left` was output.
        reported: bool,
    },
}

/// The shared state of one participation (see the module docs).
pub struct Participation {
    /// The latch (its directory or key prefix), for the recipe's requests and log lines;
    /// shared with the election where the recipe keeps its latch key.
    dir: Arc<str>,
    /// Where the participation is in its life.
    pub life: Life,
    /// What the recipe waits for.
    pub wait: Wait,
    /// The sequence number of the request whose reply is awaited; other replies are stale.
    pub expect: u64,
    /// Whether the participant leads (was granted and not revoked since).
    pub leader: bool,
}

impl fmt::Debug for Participation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Participation")
            .field("dir", &self.dir)
            .field("life", &self.life)
            .field("wait", &self.wait)
            .field("expect", &self.expect)
            .field("leader", &self.leader)
            .finish()
    }
}

impl Participation {
    /// A participation in the latch `dir` that has not joined yet.
    pub fn new(dir: Arc<str>) -> Self {
        Self {
            dir,
            life: Life::Idle,
            wait: Wait::Nothing,
            expect: 0,
            leader: false,
        }
    }

    /// The latch.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Marks a request as sent and returns its sequence number; a watch is awaited as
    /// [`Wait::Watching`], anything else as [`Wait::Response`].
    pub fn next_request(&mut self, watch: bool) -> u64 {
        self.wait = if watch {
            Wait::Watching
        } else {
            Wait::Response
        };
        self.expect += 1;
        self.expect
    }

    /// Stops waiting: the reply of the request in flight, if any, is stale from now on.
    pub fn cancel_wait(&mut self) {
        self.wait = Wait::Nothing;
        self.expect += 1;
    }

    /// Outputs `Revoked` if the participant leads.
    pub fn revoke<Q>(&mut self, out: &mut Vec<RecipeOutput<Q>>) {
        if self.leader {
            self.leader = false;
            info!(dir = %self.dir, "leadership revoked");
            out.push(RecipeOutput::Revoked);
        }
    }

    /// The participant's key `key` is first in line: outputs `Granted` with the token
    /// `(key, epoch)` unless it leads already.
    pub fn grant<Q>(
        &mut self,
        key: impl Into<Arc<str>>,
        epoch: i64,
        out: &mut Vec<RecipeOutput<Q>>,
    ) {
        if !self.leader {
            self.leader = true;
            let token = FencingToken::new(key, epoch);
            info!(key = token.lock(), "leadership granted");
            out.push(RecipeOutput::Granted(token));
        }
    }

    /// Pauses for `wait` after a failure (the recipe steps again on the wake-up).
    pub fn pause<Q>(&mut self, wait: Duration, out: &mut Vec<RecipeOutput<Q>>) {
        self.wait = Wait::Pause;
        out.push(RecipeOutput::WakeAfter(wait));
    }

    /// Whether a leader may make its key's deletion fence the deletion of its published keys
    /// when leaving: it leads with a key of the current session (`key_generation`).
    pub fn holds_key_of(&self, key_generation: Option<u64>, session_generation: u64) -> bool {
        self.leader && key_generation == Some(session_generation)
    }

    /// Starts leaving: revokes, stops waiting for a watch or a pause, and either bounds the
    /// wait for the key's deletion by `leave_wait` (connected; returns true: step now) or
    /// reports `Left` at once (the key is deleted once connected again; returns false).
    pub fn leave<Q>(
        &mut self,
        connected: bool,
        leave_wait: Duration,
        out: &mut Vec<RecipeOutput<Q>>,
    ) -> bool {
        self.revoke(out);
        self.life = Life::Leaving { reported: false };
        if self.wait == Wait::Watching || self.wait == Wait::Pause {
            self.cancel_wait();
        }
        if connected {
            // Bounded: past this, contenders go on and the delete goes on behind.
            out.push(RecipeOutput::WakeAfter(leave_wait));
            true
        } else {
            out.push(RecipeOutput::Left);
            self.life = Life::Leaving { reported: true };
            false
        }
    }

    /// A wake-up: it does not say which timer elapsed, the bounded leave wait or a retry
    /// pause. Either way the leave wait is over as far as contenders are concerned (`Left` is
    /// reported), and a paused retry goes ahead (returns true: step now).
    pub fn wake<Q>(&mut self, out: &mut Vec<RecipeOutput<Q>>) -> bool {
        if let Life::Leaving { reported: false } = self.life {
            out.push(RecipeOutput::Left);
            self.life = Life::Leaving { reported: true };
        }
        if self.wait == Wait::Pause {
            self.wait = Wait::Nothing;
            return true;
        }
        false
    }

    /// The participation is over: `Left` (unless reported) and `Done`.
    pub fn finish_leaving<Q>(&mut self, out: &mut Vec<RecipeOutput<Q>>) {
        if let Life::Leaving { reported: false } = self.life {
            debug!(dir = %self.dir, "left the latch");
            out.push(RecipeOutput::Left);
        }
        self.life = Life::Leaving { reported: true };
        out.push(RecipeOutput::Done);
    }
}
