//! A contender's leadership, as the session driver sets it and the contender's handles read it.
//!
//! Most contenders (a job's own election, among thousands on one session) only wait for their
//! grant and check `has_leadership`. A tokio `watch` per contender (about 400 bytes, most of it
//! the channel's eight `Notify`s) would be the largest part of an election's memory, so the
//! cell keeps the leadership under a lock and makes a `watch` only for a handle that asks for
//! one ([`super::LeaderElection::leadership`]); from then on the driver updates both. Waiting
//! for the grant goes through the driver's error waiter, which the grant answers.

use std::fmt;
use std::sync::Mutex;

use tokio::sync::watch;

use super::{LeaderTerm, Leadership};
use crate::ids::LeaderSessionId;
use crate::sync::lock;

/// One contender's leadership (see the module docs).
pub(crate) struct LeadershipCell {
    inner: Mutex<Inner>,
}

struct Inner {
    now: Leadership,
    /// The watch handed out, once a handle asked for one.
    watch: Option<watch::Sender<Leadership>>,
    /// The driver let go of the contender: the leadership changes no more.
    closed: bool,
}

impl fmt::Debug for LeadershipCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LeadershipCell").field(&self.get()).finish()
    }
}

impl LeadershipCell {
    /// Not leader, not closed.
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                now: Leadership::NotLeader,
                watch: None,
                closed: false,
            }),
        }
    }

    /// The driver's change of the leadership.
    pub(crate) fn set(&self, leadership: Leadership) {
        let mut inner = lock(&self.inner);
        if let Some(w) = &inner.watch {
            w.send_replace(leadership.clone());
        }
        inner.now = leadership;
    }

    /// The driver lets go of the contender: a watch handed out sees its sender gone.
    pub(crate) fn close(&self) {
        let mut inner = lock(&self.inner);
        inner.closed = true;
        inner.watch = None;
    }

    /// The leadership now.
    pub(crate) fn get(&self) -> Leadership {
        lock(&self.inner).now.clone()
    }

    /// The current term, if leader.
    pub(crate) fn term(&self) -> Option<LeaderTerm> {
        lock(&self.inner).now.term().cloned()
    }

    /// Whether `session` is the current term.
    pub(crate) fn has(&self, session: LeaderSessionId) -> bool {
        lock(&self.inner)
            .now
            .term()
            .is_some_and(|t| t.session_id == session)
    }

    /// A `watch` of the leadership, made on the first call. Once the driver let go, a fresh
    /// closed one: it shows the last leadership and `changed()` fails.
    pub(crate) fn watch(&self) -> watch::Receiver<Leadership> {
        let mut inner = lock(&self.inner);
        if let Some(w) = &inner.watch {
            return w.subscribe();
        }
        let (tx, rx) = watch::channel(inner.now.clone());
        if !inner.closed {
            inner.watch = Some(tx);
        }
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::FencingToken;
    use tokio_util::sync::CancellationToken;

    fn leader(session: LeaderSessionId) -> Leadership {
        Leadership::Leader(LeaderTerm::new(
            session,
            FencingToken::new("/latch/n", 1),
            CancellationToken::new(),
        ))
    }

    #[test]
    fn a_watch_made_later_starts_at_the_current_leadership_and_follows_it() {
        let cell = LeadershipCell::new();
        let session = LeaderSessionId::new_random();
        cell.set(leader(session));
        let mut rx = cell.watch();
        assert!(rx.borrow_and_update().term().is_some());
        assert!(cell.has(session));
        cell.set(Leadership::NotLeader);
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().term().is_none());
        assert!(!cell.has(session));
        assert!(cell.term().is_none());
    }

    #[test]
    fn closing_ends_handed_out_and_later_watches() {
        let cell = LeadershipCell::new();
        let before = cell.watch();
        cell.close();
        assert!(before.has_changed().is_err(), "the sender is gone");
        let after = cell.watch();
        assert!(after.has_changed().is_err(), "a later watch is closed too");
        assert!(after.borrow().term().is_none());
    }
}
