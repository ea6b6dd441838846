//! A contender's leadership, as the session driver sets it and the contender's handles read it.
//!
//! Most contenders (a job's own election, among thousands on one session) only wait for their
//! grant and check `has_leadership`. A tokio `watch` per contender (about 400 bytes, most of it
//! the channel's eight `Notify`s) would be the largest part of an election's memory, so the
//! cell keeps the leadership under a lock and makes a `watch` only for a handle that asks for
//! one ([`super::LeaderElection::leadership`]); from then on the driver updates both. Waiting
//! for the grant goes through the driver's error waiter, which the grant answers.
//!
//! The end of a term is kept the same way. Every grant numbers its term; the cell holds the
//! number of the term in force (0: none), so [`LeaderTerm::is_over`] is one atomic load, and a
//! cancellation token for the term is made only when a holder of the term asks to wait for
//! its end ([`LeaderTerm::over`], [`LeaderTerm::cancellation`]); it is kept with the term's
//! number, so a token can only be the one of its own term. The cell cancels it when the term
//! ends: revoked, superseded, or the driver let go of the contender.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{LeaderTerm, Leadership};
use crate::ids::LeaderSessionId;
use crate::kv::FencingToken;
use crate::sync::lock;

/// One contender's leadership (see the module docs).
pub(crate) struct LeadershipCell {
    inner: Mutex<Inner>,
    /// The number of the term in force; 0 when none is.
    current: AtomicU64,
    /// A term's end, with the term's number, once one of its holders waits for it. A lock of
    /// its own: a holder may ask while it reads the `watch`, which the driver writes under
    /// `inner`.
    end: Mutex<Option<(u64, CancellationToken)>>,
}

struct Inner {
    /// The session and token of the term last granted, while it is not revoked (`None` when no
    /// term is). Kept as these two rather than as a [`Leadership`]: the term's end is the cell
    /// itself, added when a [`LeaderTerm`] is handed out.
    now: Option<(LeaderSessionId, FencingToken)>,
    /// The number of the last term granted.
    last: u64,
    /// The watch handed out, once a handle asked for one.
    watch: Option<watch::Sender<Leadership>>,
    /// The driver let go of the contender: the leadership changes no more.
    closed: bool,
}

impl fmt::Debug for LeadershipCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = lock(&self.inner);
        f.debug_tuple("LeadershipCell")
            .field(&inner.now.as_ref().map(|(session, _)| session))
            .finish()
    }
}

impl LeadershipCell {
    /// Not leader, not closed.
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                now: None,
                last: 0,
                watch: None,
                closed: false,
            }),
            current: AtomicU64::new(0),
            end: Mutex::new(None),
        }
    }

    /// The driver's grant of a new term; a term in force ends.
    pub(crate) fn grant(self: &Arc<Self>, session: LeaderSessionId, token: FencingToken) {
        let mut inner = lock(&self.inner);
        inner.last += 1;
        let number = inner.last;
        inner.now = Some((session, token));
        self.replaced(inner, number);
    }

    /// The driver's revocation: the term in force, if any, ends.
    pub(crate) fn revoke(self: &Arc<Self>) {
        let mut inner = lock(&self.inner);
        inner.now = None;
        self.replaced(inner, 0);
    }

    /// After `inner.now` changed: `number` is in force, the watch (if any) sees the change, and
    /// an ended term's token is cancelled.
    fn replaced(self: &Arc<Self>, inner: std::sync::MutexGuard<'_, Inner>, number: u64) {
        self.current.store(number, Ordering::Release);
        if let Some(w) = &inner.watch {
            w.send_replace(self.leadership(&inner));
        }
        drop(inner);
        self.end_term();
    }

    /// `inner`'s leadership as handles see it.
    fn leadership(self: &Arc<Self>, inner: &Inner) -> Leadership {
        match &inner.now {
            Some((session, token)) => Leadership::Leader(LeaderTerm::new(
                *session,
                token.clone(),
                TermEnd {
                    cell: Arc::downgrade(self),
                    number: inner.last,
                },
            )),
            None => Leadership::NotLeader,
        }
    }

    /// Cancels the token of a term no longer in force, if one was made. Runs after `current`
    /// changed; a holder of the new term may have made the new term's token in between, which
    /// stays.
    fn end_term(&self) {
        let mut end = lock(&self.end);
        let current = self.current.load(Ordering::Acquire);
        if end.as_ref().is_some_and(|(number, _)| *number != current)
            && let Some((_, token)) = end.take()
        {
            token.cancel();
        }
    }

    /// The driver lets go of the contender: a term in force ends, and a watch handed out sees
    /// its sender gone.
    pub(crate) fn close(&self) {
        let mut inner = lock(&self.inner);
        inner.closed = true;
        inner.watch = None;
        self.current.store(0, Ordering::Release);
        drop(inner);
        self.end_term();
    }

    /// The leadership now.
    pub(crate) fn get(self: &Arc<Self>) -> Leadership {
        self.leadership(&lock(&self.inner))
    }

    /// The current term, if leader.
    pub(crate) fn term(self: &Arc<Self>) -> Option<LeaderTerm> {
        match self.get() {
            Leadership::Leader(term) => Some(term),
            Leadership::NotLeader => None,
        }
    }

    /// Whether a term is in force.
    pub(crate) fn leads(&self) -> bool {
        self.current.load(Ordering::Acquire) != 0
    }

    /// Whether `session` is the current term.
    pub(crate) fn has(&self, session: LeaderSessionId) -> bool {
        let inner = lock(&self.inner);
        inner.now.as_ref().is_some_and(|(s, _)| *s == session)
            && self.current.load(Ordering::Acquire) == inner.last
    }

    /// A `watch` of the leadership, made on the first call. Once the driver let go, a fresh
    /// closed one: it shows the last leadership and `changed()` fails.
    pub(crate) fn watch(self: &Arc<Self>) -> watch::Receiver<Leadership> {
        let mut inner = lock(&self.inner);
        if let Some(w) = &inner.watch {
            return w.subscribe();
        }
        let (tx, rx) = watch::channel(self.leadership(&inner));
        if !inner.closed {
            inner.watch = Some(tx);
        }
        rx
    }
}

/// Which term of which cell a [`LeaderTerm`] is: its end is the cell's to tell. Weak, since
/// the cell holds its current term.
#[derive(Clone)]
pub(crate) struct TermEnd {
    cell: Weak<LeadershipCell>,
    number: u64,
}

impl TermEnd {
    /// Whether the term is over: another term (or none) is in force, or the cell is gone.
    pub(crate) fn is_over(&self) -> bool {
        self.cell
            .upgrade()
            .is_none_or(|cell| cell.current.load(Ordering::Acquire) != self.number)
    }

    /// A token that is cancelled when the term is over (already, if it is).
    pub(crate) fn token(&self) -> CancellationToken {
        if let Some(cell) = self.cell.upgrade() {
            let mut end = lock(&cell.end);
            // Read under `end`: an ending term changes `current` before it takes `end`.
            if cell.current.load(Ordering::Acquire) == self.number {
                if let Some((number, token)) = end.as_ref()
                    && *number == self.number
                {
                    return token.clone();
                }
                // The slot holds an ended term's token whose `end_term` has not run yet.
                if let Some((_, ended)) = end.take() {
                    ended.cancel();
                }
                let token = CancellationToken::new();
                *end = Some((self.number, token.clone()));
                return token;
            }
        }
        let over = CancellationToken::new();
        over.cancel();
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(cell: &Arc<LeadershipCell>) -> LeaderTerm {
        cell.grant(
            LeaderSessionId::new_random(),
            FencingToken::new("/latch/n", 1),
        );
        cell.term().expect("granted")
    }

    #[test]
    fn a_watch_made_later_starts_at_the_current_leadership_and_follows_it() {
        let cell = Arc::new(LeadershipCell::new());
        let term = granted(&cell);
        let mut rx = cell.watch();
        assert!(rx.borrow_and_update().term().is_some());
        assert!(cell.has(term.session_id));
        cell.revoke();
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().term().is_none());
        assert!(!cell.has(term.session_id));
        assert!(cell.term().is_none());
    }

    #[test]
    fn closing_ends_handed_out_and_later_watches() {
        let cell = Arc::new(LeadershipCell::new());
        let before = cell.watch();
        cell.close();
        assert!(before.has_changed().is_err(), "the sender is gone");
        let after = cell.watch();
        assert!(after.has_changed().is_err(), "a later watch is closed too");
        assert!(after.borrow().term().is_none());
    }

    #[test]
    fn a_term_ends_at_its_revocation_at_the_next_grant_and_at_close() {
        let cell = Arc::new(LeadershipCell::new());
        let first = granted(&cell);
        let waiting = first.cancellation();
        assert!(!first.is_over() && !waiting.is_cancelled());
        let second = granted(&cell);
        assert!(first.is_over(), "superseded by the next grant");
        assert!(waiting.is_cancelled(), "a token made before the end fires");
        assert!(
            first.cancellation().is_cancelled(),
            "one made after is born cancelled"
        );
        assert!(!second.is_over());
        let waiting = second.cancellation();
        cell.revoke();
        assert!(second.is_over() && waiting.is_cancelled(), "revoked");
        let third = granted(&cell);
        let waiting = third.cancellation();
        cell.close();
        assert!(
            third.is_over() && waiting.is_cancelled(),
            "the driver let go"
        );
        assert!(!cell.leads());
    }

    #[test]
    fn a_term_outliving_its_cell_is_over() {
        let cell = Arc::new(LeadershipCell::new());
        let term = granted(&cell);
        drop(cell);
        assert!(term.is_over());
        assert!(term.cancellation().is_cancelled());
    }

    #[test]
    fn a_new_terms_token_made_before_the_old_ones_end_ran_survives_it() {
        // The window between a grant changing `current` and its `end_term`: the old term's
        // token is still in the slot when a holder of the new term asks for its own.
        let cell = Arc::new(LeadershipCell::new());
        let first = granted(&cell);
        let first_end = first.cancellation();
        let second = TermEnd {
            cell: Arc::downgrade(&cell),
            number: 2,
        };
        cell.current.store(2, Ordering::Release);
        let second_end = second.token();
        assert!(first_end.is_cancelled(), "the old term's token ends");
        assert!(!second_end.is_cancelled());
        cell.end_term();
        assert!(!second_end.is_cancelled(), "the new term's token stays");
        assert!(!second.is_over());
        assert!(first.is_over());
    }

    #[tokio::test]
    async fn waiting_for_the_end_wakes_at_the_revocation() {
        let cell = Arc::new(LeadershipCell::new());
        let term = granted(&cell);
        let over = term.over();
        let revoker = cell.clone();
        tokio::spawn(async move { revoker.revoke() });
        tokio::time::timeout(std::time::Duration::from_secs(10), over)
            .await
            .expect("the end is seen");
    }
}
