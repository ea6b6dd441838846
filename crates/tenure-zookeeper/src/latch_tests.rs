//! The ZooKeeper latch recipe driven by scripted inputs: no server, no IO, no sleeps.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tenure_core::connection::{ConnectionState, SuspendedPolicy};
use tenure_core::driver::{LatchRecipe, RecipeInput, RecipeOutput, SessionView};
use tenure_core::kv::{FencingToken, KvError};
use tenure_core::retry::RetryPolicy;
use zookeeper_client as zk;

use super::{Op, Recipe, RecipeSettings, Reply, Request, Response};
use crate::paths::Paths;

const NAMESPACE: &str = "/flink/default";
const LATCH: &str = "leader/latch";
const DIR: &str = "/flink/default/leader/latch";
const LEAVE_WAIT: Duration = Duration::from_secs(3);
const MS: fn(u64) -> Duration = Duration::from_millis;

/// What a recipe decided, in a form tests compare.
#[derive(Debug, PartialEq)]
enum Ev {
    Create,
    Find(String),
    List,
    Watch(String),
    Delete(String),
    DeleteProtected(String),
    Granted(FencingToken),
    Revoked,
    Failed(KvError),
    Left,
    Done,
    WakeAfter(Duration),
}

/// A recipe and the requests it has asked.
struct Harness {
    recipe: Recipe,
    /// Every request asked, in order.
    asked: Vec<Request>,
}

fn view(state: ConnectionState, generation: u64, suspensions: u32) -> SessionView {
    SessionView {
        state,
        generation,
        suspensions,
    }
}

fn node(prefix: &str, seq: u32) -> String {
    format!("{prefix}latch-{seq:010}")
}

fn path(name: &str) -> String {
    format!("{DIR}/{name}")
}

impl Harness {
    fn new(policy: SuspendedPolicy) -> Self {
        Self::with_retry(policy, RetryPolicy::new(MS(100), MS(1_000)))
    }

    fn with_retry(policy: SuspendedPolicy, retry: RetryPolicy) -> Self {
        Self {
            recipe: Recipe::new(
                LATCH.into(),
                Arc::new(RecipeSettings {
                    paths: Paths::new(NAMESPACE),
                    policy,
                    retry,
                    leave_wait: LEAVE_WAIT,
                }),
            ),
            asked: Vec::new(),
        }
    }

    fn feed(&mut self, input: RecipeInput<Reply>) -> Vec<Ev> {
        let mut out = Vec::new();
        self.recipe.handle(input, &mut out);
        out.into_iter()
            .map(|o| match o {
                RecipeOutput::Request(r) => {
                    let ev = match &r.op {
                        Op::Create { dir, prefix } => {
                            assert_eq!(dir, DIR);
                            assert!(prefix.starts_with(&format!("{DIR}/_c_")), "{prefix}");
                            assert!(prefix.ends_with("-latch-"), "{prefix}");
                            Ev::Create
                        }
                        Op::Find { dir, prefix } => {
                            assert_eq!(dir, DIR);
                            Ev::Find(prefix.clone())
                        }
                        Op::List { dir } => {
                            assert_eq!(dir, DIR);
                            Ev::List
                        }
                        Op::Watch { path, .. } => Ev::Watch(path.clone()),
                        Op::Delete { path, .. } => Ev::Delete(path.clone()),
                        Op::DeleteProtected { dir, prefix } => {
                            assert_eq!(dir, DIR);
                            Ev::DeleteProtected(prefix.clone())
                        }
                    };
                    self.asked.push(r);
                    ev
                }
                RecipeOutput::Granted(t) => Ev::Granted(t),
                RecipeOutput::Revoked => Ev::Revoked,
                RecipeOutput::Failed(e) => Ev::Failed(e),
                RecipeOutput::Left => Ev::Left,
                RecipeOutput::Done => Ev::Done,
                RecipeOutput::WakeAfter(d) => Ev::WakeAfter(d),
            })
            .collect()
    }

    fn session(&mut self, v: SessionView) -> Vec<Ev> {
        self.feed(RecipeInput::Session(v))
    }

    /// The reply to the request asked last.
    fn reply(&mut self, response: Response) -> Vec<Ev> {
        let seq = self.last().seq;
        self.feed(RecipeInput::Response(Reply { seq, response }))
    }

    fn last(&self) -> &Request {
        self.asked.last().unwrap()
    }

    /// The protection prefix (`_c_<uuid>-`) of the last create asked.
    fn protection(&self) -> String {
        let Some(Request {
            op: Op::Create { prefix, .. },
            ..
        }) = self
            .asked
            .iter()
            .rev()
            .find(|r| matches!(r.op, Op::Create { .. }))
        else {
            panic!("no create asked");
        };
        let name = prefix.rsplit('/').next().unwrap();
        name.strip_suffix("latch-").unwrap().to_owned()
    }

    fn creates(&self) -> usize {
        self.asked
            .iter()
            .filter(|r| matches!(r.op, Op::Create { .. }))
            .count()
    }

    /// Connected in generation 1 and joined: the create is asked.
    fn joined(policy: SuspendedPolicy) -> Self {
        let mut h = Self::new(policy);
        assert_eq!(h.session(SessionView::CONNECTED), vec![]);
        assert_eq!(h.feed(RecipeInput::Join), vec![Ev::Create]);
        h
    }

    /// Joined, created node `seq` and listed as first in line: leader, watching its node.
    fn leader(policy: SuspendedPolicy, seq: u32) -> (Self, String) {
        let mut h = Self::joined(policy);
        let name = node(&h.protection(), seq);
        assert_eq!(h.reply(Response::Created(Ok(name.clone()))), vec![Ev::List]);
        let evs = h.reply(Response::Names(Ok(vec![name.clone()])));
        assert_eq!(
            evs,
            vec![
                Ev::Granted(FencingToken::new(path(&name), i64::from(seq))),
                Ev::Watch(path(&name)),
            ]
        );
        (h, name)
    }
}

#[test]
fn first_in_line_is_granted_once_and_watches_its_own_node() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let create = h.last();
    assert_eq!(create.generation, 1);
    let protection = h.protection();
    assert!(protection.starts_with("_c_") && protection.ends_with('-'));
    assert_eq!(protection.len(), "_c_".len() + 36 + 1, "{protection}");
    let name = node(&protection, 7);
    assert_eq!(h.reply(Response::Created(Ok(name.clone()))), vec![Ev::List]);
    // Foreign children are never in line, even with a smaller number.
    let evs = h.reply(Response::Names(Ok(vec![
        "member-0000000001".into(),
        "junk".into(),
        name.clone(),
    ])));
    assert_eq!(
        evs,
        vec![
            Ev::Granted(FencingToken::new(path(&name), 7)),
            Ev::Watch(path(&name)),
        ]
    );
    // The own node's watch fires (data change): look again, still first: no second grant.
    assert_eq!(h.reply(Response::Watched), vec![Ev::List]);
    assert_eq!(
        h.reply(Response::Names(Ok(vec![name.clone()]))),
        vec![Ev::Watch(path(&name))]
    );
    assert_eq!(h.creates(), 1);
}

#[test]
fn second_in_line_watches_only_its_predecessor_and_is_granted_when_it_goes() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let ours = node(&h.protection(), 5);
    assert_eq!(h.reply(Response::Created(Ok(ours.clone()))), vec![Ev::List]);
    let first = "_c_aaaaaaaa-0000-0000-0000-000000000000-latch-0000000002".to_owned();
    let after = "_c_bbbbbbbb-0000-0000-0000-000000000000-latch-0000000009".to_owned();
    let before = "_c_cccccccc-0000-0000-0000-000000000000-latch-0000000001".to_owned();
    // Line by number: before(1), first(2), ours(5), after(9); the predecessor is `first`.
    let evs = h.reply(Response::Names(Ok(vec![
        after.clone(),
        ours.clone(),
        before.clone(),
        first.clone(),
    ])));
    assert_eq!(evs, vec![Ev::Watch(path(&first))]);
    // The predecessor is deleted: list again; the one before it is still there.
    assert_eq!(h.reply(Response::Watched), vec![Ev::List]);
    let evs = h.reply(Response::Names(Ok(vec![
        after.clone(),
        ours.clone(),
        before.clone(),
    ])));
    assert_eq!(evs, vec![Ev::Watch(path(&before))]);
    assert_eq!(h.reply(Response::Watched), vec![Ev::List]);
    let evs = h.reply(Response::Names(Ok(vec![after, ours.clone()])));
    assert_eq!(
        evs,
        vec![
            Ev::Granted(FencingToken::new(path(&ours), 5)),
            Ev::Watch(path(&ours)),
        ]
    );
}

#[test]
fn own_node_deleted_by_someone_revokes_and_joins_again() {
    let (mut h, name) = Harness::leader(SuspendedPolicy::RevokeOnSuspended, 3);
    assert_eq!(h.reply(Response::Watched), vec![Ev::List]);
    let other = "_c_aaaaaaaa-0000-0000-0000-000000000000-latch-0000000004".to_owned();
    assert_eq!(
        h.reply(Response::Names(Ok(vec![other]))),
        vec![Ev::Revoked, Ev::Create]
    );
    assert_ne!(
        h.protection(),
        name[..name.len() - "latch-0000000003".len()]
    );
}

#[test]
fn leave_while_leader_revokes_deletes_the_node_then_is_left_and_done() {
    let (mut h, name) = Harness::leader(SuspendedPolicy::RevokeOnSuspended, 3);
    let watch_seq = h.last().seq;
    assert_eq!(
        h.feed(RecipeInput::Leave),
        vec![
            Ev::Revoked,
            Ev::WakeAfter(LEAVE_WAIT),
            Ev::Delete(path(&name))
        ]
    );
    // The overtaken watch of the own node fires (the delete): stale, ignored.
    let stale = Reply {
        seq: watch_seq,
        response: Response::Watched,
    };
    assert_eq!(h.feed(RecipeInput::Response(stale)), vec![]);
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Left, Ev::Done]);
    // The bounded leave wait elapses afterwards: nothing more.
    assert_eq!(h.feed(RecipeInput::Wake), vec![]);
}

#[test]
fn leave_wait_elapsing_reports_left_before_the_delete_lands() {
    let (mut h, name) = Harness::leader(SuspendedPolicy::RevokeOnSuspended, 3);
    assert_eq!(
        h.feed(RecipeInput::Leave),
        vec![
            Ev::Revoked,
            Ev::WakeAfter(LEAVE_WAIT),
            Ev::Delete(path(&name))
        ]
    );
    assert_eq!(h.feed(RecipeInput::Wake), vec![Ev::Left]);
    // The delete goes on behind; once it lands the participation is done (no second Left).
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Done]);
}

#[test]
fn leave_while_disconnected_is_left_at_once_and_deletes_after_reconnect() {
    let (mut h, name) = Harness::leader(SuspendedPolicy::TolerateSuspended, 3);
    assert_eq!(
        h.session(view(ConnectionState::Suspended, 1, 1)),
        vec![],
        "tolerated: no revocation"
    );
    assert_eq!(h.feed(RecipeInput::Leave), vec![Ev::Revoked, Ev::Left]);
    // Back in the same session: the node is deleted (guaranteed delete), no second Left.
    assert_eq!(
        h.session(view(ConnectionState::Connected, 1, 1)),
        vec![Ev::Delete(path(&name))]
    );
    assert_eq!(h.last().generation, 1);
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Done]);
}

#[test]
fn leave_while_disconnected_is_done_without_a_delete_once_the_session_is_new() {
    let (mut h, _) = Harness::leader(SuspendedPolicy::RevokeOnSuspended, 3);
    assert_eq!(
        h.session(view(ConnectionState::Suspended, 1, 1)),
        vec![Ev::Revoked]
    );
    assert_eq!(h.feed(RecipeInput::Leave), vec![Ev::Left]);
    let asked = h.asked.len();
    assert_eq!(
        h.session(view(ConnectionState::Connected, 2, 1)),
        vec![Ev::Done]
    );
    assert_eq!(h.asked.len(), asked, "nothing asked in the new session");
}

#[test]
fn leave_while_disconnected_is_done_when_the_session_is_lost() {
    let (mut h, _) = Harness::leader(SuspendedPolicy::TolerateSuspended, 3);
    h.session(view(ConnectionState::Suspended, 1, 1));
    assert_eq!(h.feed(RecipeInput::Leave), vec![Ev::Revoked, Ev::Left]);
    assert_eq!(h.session(view(ConnectionState::Lost, 1, 1)), vec![Ev::Done]);
}

#[test]
fn a_create_whose_reply_is_lost_is_found_again_by_its_protection_prefix() {
    let mut h = Harness::joined(SuspendedPolicy::TolerateSuspended);
    let protection = h.protection();
    let evs = h.reply(Response::Created(Err(zk::Error::ConnectionLoss)));
    assert_eq!(evs, vec![Ev::WakeAfter(MS(100))]);
    assert_eq!(h.session(view(ConnectionState::Suspended, 1, 1)), vec![]);
    // Reconnected; the retry pause elapses: look for the node of the interrupted create.
    assert_eq!(h.session(view(ConnectionState::Connected, 1, 1)), vec![]);
    assert_eq!(
        h.feed(RecipeInput::Wake),
        vec![Ev::Find(protection.clone())]
    );
    // The create did land: adopt the node, no second create.
    let name = node(&protection, 11);
    assert_eq!(
        h.reply(Response::Names(Ok(vec![name.clone()]))),
        vec![Ev::List]
    );
    assert_eq!(
        h.reply(Response::Names(Ok(vec![name.clone()]))),
        vec![
            Ev::Granted(FencingToken::new(path(&name), 11)),
            Ev::Watch(path(&name)),
        ]
    );
    assert_eq!(h.creates(), 1);
}

#[test]
fn a_create_that_did_not_land_is_asked_again_after_the_find() {
    let mut h = Harness::joined(SuspendedPolicy::TolerateSuspended);
    let protection = h.protection();
    h.reply(Response::Created(Err(zk::Error::ConnectionLoss)));
    assert_eq!(
        h.feed(RecipeInput::Wake),
        vec![Ev::Find(protection.clone())]
    );
    assert_eq!(h.reply(Response::Names(Ok(vec![]))), vec![Ev::Create]);
    assert_eq!(h.creates(), 2);
    assert_ne!(
        h.protection(),
        protection,
        "a new create has a new protection"
    );
}

#[test]
fn suspension_under_revoke_policy_revokes_at_once_and_resets_on_reconnect() {
    let (mut h, name) = Harness::leader(SuspendedPolicy::RevokeOnSuspended, 3);
    let old_protection = h.protection();
    assert_eq!(
        h.session(view(ConnectionState::Suspended, 1, 1)),
        vec![Ev::Revoked]
    );
    // Curator's reset on RECONNECTED: delete the old node, then create a new one.
    assert_eq!(
        h.session(view(ConnectionState::Connected, 1, 1)),
        vec![Ev::Delete(path(&name))]
    );
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Create]);
    assert_ne!(h.protection(), old_protection);
    let new = node(&h.protection(), 8);
    assert_eq!(h.reply(Response::Created(Ok(new.clone()))), vec![Ev::List]);
    assert_eq!(
        h.reply(Response::Names(Ok(vec![new.clone()]))),
        vec![
            Ev::Granted(FencingToken::new(path(&new), 8)),
            Ev::Watch(path(&new)),
        ]
    );
}

#[test]
fn a_suspension_seen_only_as_a_counter_still_resets() {
    // Suspended and connected again between two observations: the counter tells.
    let (mut h, name) = Harness::leader(SuspendedPolicy::RevokeOnSuspended, 3);
    assert_eq!(
        h.session(view(ConnectionState::Connected, 1, 1)),
        vec![Ev::Revoked, Ev::Delete(path(&name))]
    );
}

#[test]
fn suspension_during_an_interrupted_create_resets_by_protection_prefix() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let protection = h.protection();
    assert_eq!(h.session(view(ConnectionState::Suspended, 1, 1)), vec![]);
    assert_eq!(
        h.reply(Response::Created(Err(zk::Error::ConnectionLoss)))
            .len(),
        1
    );
    h.session(view(ConnectionState::Connected, 1, 1));
    assert_eq!(
        h.feed(RecipeInput::Wake),
        vec![Ev::DeleteProtected(protection.clone())]
    );
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Create]);
    assert_ne!(h.protection(), protection);
}

#[test]
fn suspension_under_tolerate_policy_keeps_leadership() {
    let (mut h, name) = Harness::leader(SuspendedPolicy::TolerateSuspended, 3);
    assert_eq!(h.session(view(ConnectionState::Suspended, 1, 1)), vec![]);
    // The watch may have missed something: look again, still first, no new grant.
    assert_eq!(
        h.session(view(ConnectionState::Connected, 1, 1)),
        vec![Ev::List]
    );
    assert_eq!(
        h.reply(Response::Names(Ok(vec![name.clone()]))),
        vec![Ev::Watch(path(&name))]
    );
    assert_eq!(h.creates(), 1);
}

#[test]
fn session_lost_revokes_forgets_the_node_and_creates_in_the_new_session() {
    for policy in [
        SuspendedPolicy::RevokeOnSuspended,
        SuspendedPolicy::TolerateSuspended,
    ] {
        let (mut h, name) = Harness::leader(policy, 3);
        let old = h.last().seq;
        h.session(view(ConnectionState::Suspended, 1, 1));
        let evs = h.session(view(ConnectionState::Lost, 1, 1));
        let revoked = match policy {
            SuspendedPolicy::RevokeOnSuspended => vec![],
            SuspendedPolicy::TolerateSuspended => vec![Ev::Revoked],
        };
        assert_eq!(evs, revoked, "{policy:?}");
        assert_eq!(
            h.session(view(ConnectionState::Connected, 2, 1)),
            vec![Ev::Create]
        );
        assert_eq!(h.last().generation, 2);
        // The old session's watch reply is stale.
        let stale = Reply {
            seq: old,
            response: Response::Watched,
        };
        assert_eq!(h.feed(RecipeInput::Response(stale)), vec![]);
        let new = node(&h.protection(), 4);
        assert_ne!(new, name);
        assert_eq!(h.reply(Response::Created(Ok(new.clone()))), vec![Ev::List]);
        assert_eq!(h.last().generation, 2);
        assert_eq!(
            h.reply(Response::Names(Ok(vec![new.clone()]))),
            vec![
                Ev::Granted(FencingToken::new(path(&new), 4)),
                Ev::Watch(path(&new))
            ]
        );
    }
}

#[test]
fn a_new_generation_without_lost_revokes_too() {
    let (mut h, _) = Harness::leader(SuspendedPolicy::TolerateSuspended, 3);
    assert_eq!(
        h.session(view(ConnectionState::Connected, 2, 0)),
        vec![Ev::Revoked, Ev::Create]
    );
    assert_eq!(h.last().generation, 2);
}

#[test]
fn stale_replies_are_ignored() {
    let mut h = Harness::joined(SuspendedPolicy::TolerateSuspended);
    let create_seq = h.last().seq;
    // A new session overtakes the create: a new create is asked in generation 2.
    assert_eq!(
        h.session(view(ConnectionState::Connected, 2, 0)),
        vec![Ev::Create]
    );
    let name = node(&h.protection(), 1);
    let stale = Reply {
        seq: create_seq,
        response: Response::Created(Ok(name)),
    };
    assert_eq!(h.feed(RecipeInput::Response(stale)), vec![]);
    let stale_err = Reply {
        seq: create_seq,
        response: Response::Created(Err(zk::Error::NoAuth)),
    };
    assert_eq!(h.feed(RecipeInput::Response(stale_err)), vec![]);
    // A reply from the future (never asked) is ignored as well.
    let future = Reply {
        seq: h.last().seq + 1,
        response: Response::Watched,
    };
    assert_eq!(h.feed(RecipeInput::Response(future)), vec![]);
    assert_eq!(h.creates(), 2);
}

#[test]
fn no_auth_fails_the_latch_and_deletes_its_node() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let name = node(&h.protection(), 3);
    assert_eq!(h.reply(Response::Created(Ok(name.clone()))), vec![Ev::List]);
    let evs = h.reply(Response::Names(Err(zk::Error::NoAuth)));
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert!(
        matches!(&evs[0], Ev::Failed(KvError::Unauthorized { key, .. }) if key == LATCH),
        "{evs:?}"
    );
    assert_eq!(evs[1], Ev::Delete(path(&name)));
    // Failed already told the election; the delete lands: done, no Left.
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Done]);
}

#[test]
fn no_auth_of_a_leader_revokes_before_failing() {
    let (mut h, name) = Harness::leader(SuspendedPolicy::RevokeOnSuspended, 3);
    assert_eq!(h.reply(Response::Watched), vec![Ev::List]);
    let evs = h.reply(Response::Names(Err(zk::Error::NoAuth)));
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert_eq!(evs[0], Ev::Revoked);
    assert!(matches!(&evs[1], Ev::Failed(KvError::Unauthorized { .. })));
    assert_eq!(evs[2], Ev::Delete(path(&name)));
}

#[test]
fn no_auth_on_create_deletes_what_the_create_may_have_left() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let protection = h.protection();
    let evs = h.reply(Response::Created(Err(zk::Error::NoAuth)));
    assert!(matches!(&evs[0], Ev::Failed(KvError::Unauthorized { .. })));
    assert_eq!(evs[1..], [Ev::DeleteProtected(protection)]);
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Done]);
}

#[test]
fn a_closed_client_fails_the_latch_as_closed() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let evs = h.reply(Response::Created(Err(zk::Error::ClientClosed)));
    assert_eq!(evs[0], Ev::Failed(KvError::Closed));
}

#[test]
fn transient_errors_pause_growing_up_to_the_bounded_policy_then_reset() {
    let retry = RetryPolicy::new(MS(100), MS(1_000));
    let mut h = Harness::with_retry(SuspendedPolicy::TolerateSuspended, retry);
    h.session(SessionView::CONNECTED);
    h.feed(RecipeInput::Join);
    let name = node(&h.protection(), 1);
    assert_eq!(h.reply(Response::Created(Ok(name.clone()))), vec![Ev::List]);
    let mut pauses = Vec::new();
    for _ in 0..6 {
        let evs = h.reply(Response::Names(Err(zk::Error::ConnectionLoss)));
        let [Ev::WakeAfter(d)] = evs[..] else {
            panic!("{evs:?}")
        };
        pauses.push(d);
        assert_eq!(h.feed(RecipeInput::Wake), vec![Ev::List]);
    }
    // The first retry waits the policy's base; waits double up to the ceiling.
    assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000].map(MS));
    // A success resets the count.
    assert_eq!(
        h.reply(Response::Names(Ok(vec![name.clone()]))),
        vec![
            Ev::Granted(FencingToken::new(path(&name), 1)),
            Ev::Watch(path(&name))
        ]
    );
    assert_eq!(h.reply(Response::Watched), vec![Ev::List]);
    assert_eq!(
        h.reply(Response::Names(Err(zk::Error::ConnectionLoss))),
        vec![Ev::WakeAfter(MS(100))]
    );
}

#[test]
fn transient_pauses_are_capped_even_under_a_slow_policy() {
    // Interrupted requests retry soon (200 ms first, 5 s at most) whatever the policy.
    let retry = RetryPolicy::new(Duration::from_secs(5), Duration::from_secs(60));
    let mut h = Harness::with_retry(SuspendedPolicy::TolerateSuspended, retry);
    h.session(SessionView::CONNECTED);
    h.feed(RecipeInput::Join);
    let name = node(&h.protection(), 1);
    h.reply(Response::Created(Ok(name)));
    let mut pauses = Vec::new();
    for _ in 0..10 {
        let evs = h.reply(Response::Names(Err(zk::Error::ConnectionLoss)));
        let [Ev::WakeAfter(d)] = evs[..] else {
            panic!("{evs:?}")
        };
        pauses.push(d);
        assert_eq!(h.feed(RecipeInput::Wake), vec![Ev::List]);
    }
    assert_eq!(
        pauses,
        [200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000, 5000].map(MS)
    );
}

#[test]
fn definite_errors_pause_by_the_configured_policy() {
    let retry = RetryPolicy::new(Duration::from_secs(1), Duration::from_secs(4));
    let mut h = Harness::with_retry(SuspendedPolicy::TolerateSuspended, retry);
    h.session(SessionView::CONNECTED);
    h.feed(RecipeInput::Join);
    let name = node(&h.protection(), 1);
    h.reply(Response::Created(Ok(name)));
    let mut pauses = Vec::new();
    for _ in 0..4 {
        let evs = h.reply(Response::Names(Err(zk::Error::QuotaExceeded)));
        let [Ev::WakeAfter(d)] = evs[..] else {
            panic!("{evs:?}")
        };
        pauses.push(d);
        assert_eq!(h.feed(RecipeInput::Wake), vec![Ev::List]);
    }
    assert_eq!(pauses, [1, 2, 4, 4].map(Duration::from_secs));
}

#[test]
fn leave_during_a_retry_pause_deletes_at_once_and_the_old_pause_is_superfluous() {
    let mut h = Harness::joined(SuspendedPolicy::TolerateSuspended);
    let name = node(&h.protection(), 2);
    h.reply(Response::Created(Ok(name.clone())));
    assert_eq!(
        h.reply(Response::Names(Err(zk::Error::ConnectionLoss))),
        vec![Ev::WakeAfter(MS(100))]
    );
    assert_eq!(
        h.feed(RecipeInput::Leave),
        vec![Ev::WakeAfter(LEAVE_WAIT), Ev::Delete(path(&name))]
    );
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Left, Ev::Done]);
}

#[test]
fn leave_with_a_create_in_flight_deletes_the_node_once_created() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let name = node(&h.protection(), 6);
    assert_eq!(h.feed(RecipeInput::Leave), vec![Ev::WakeAfter(LEAVE_WAIT)]);
    assert_eq!(
        h.reply(Response::Created(Ok(name.clone()))),
        vec![Ev::Delete(path(&name))]
    );
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Left, Ev::Done]);
}

#[test]
fn leave_with_an_interrupted_create_deletes_by_protection_prefix_after_the_pause() {
    let mut h = Harness::joined(SuspendedPolicy::TolerateSuspended);
    let protection = h.protection();
    assert_eq!(h.feed(RecipeInput::Leave), vec![Ev::WakeAfter(LEAVE_WAIT)]);
    let evs = h.reply(Response::Created(Err(zk::Error::ConnectionLoss)));
    assert_eq!(evs, vec![Ev::WakeAfter(MS(100))]);
    // The first wake-up is the short retry pause: the delete goes ahead then, not only once
    // the (longer) leave wait is over. A wake-up does not say which timer it is, so the leave
    // counts as over for contenders as well.
    assert_eq!(
        h.feed(RecipeInput::Wake),
        vec![Ev::Left, Ev::DeleteProtected(protection)]
    );
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Done]);
    // The leave wait's own wake-up comes last: nothing more.
    assert_eq!(h.feed(RecipeInput::Wake), vec![]);
}

#[test]
fn a_failing_delete_while_leaving_is_retried_after_a_pause() {
    let (mut h, name) = Harness::leader(SuspendedPolicy::RevokeOnSuspended, 3);
    h.feed(RecipeInput::Leave);
    assert_eq!(
        h.reply(Response::Deleted(Err(zk::Error::ConnectionLoss))),
        vec![Ev::WakeAfter(MS(100))]
    );
    assert_eq!(
        h.feed(RecipeInput::Wake),
        vec![Ev::Left, Ev::Delete(path(&name))]
    );
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Done]);
}

#[test]
fn leave_before_join_is_left_and_done_at_once() {
    let mut h = Harness::new(SuspendedPolicy::RevokeOnSuspended);
    h.session(SessionView::CONNECTED);
    assert_eq!(
        h.feed(RecipeInput::Leave),
        vec![Ev::WakeAfter(LEAVE_WAIT), Ev::Left, Ev::Done]
    );
    assert!(h.asked.is_empty());
}

#[test]
fn nothing_is_asked_before_the_session_is_connected() {
    let mut h = Harness::new(SuspendedPolicy::RevokeOnSuspended);
    assert_eq!(h.feed(RecipeInput::Join), vec![]);
    assert_eq!(h.session(view(ConnectionState::Suspended, 1, 0)), vec![]);
    assert_eq!(h.session(SessionView::CONNECTED), vec![Ev::Create]);
    assert_eq!(h.last().generation, 1);
}

#[test]
fn a_line_read_with_the_create_grants_without_another_list() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let name = node(&h.protection(), 3);
    let evs = h.reply(Response::Joined(name.clone(), vec![name.clone()]));
    assert_eq!(
        evs,
        vec![
            Ev::Granted(FencingToken::new(path(&name), 3)),
            Ev::Watch(path(&name)),
        ]
    );
    assert!(
        !h.asked.iter().any(|r| matches!(r.op, Op::List { .. })),
        "no get-children of its own"
    );
}

#[test]
fn a_line_read_with_the_create_puts_a_later_node_behind_its_predecessor() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let ours = node(&h.protection(), 8);
    let first = "_c_aaaaaaaa-0000-0000-0000-000000000000-latch-0000000004".to_owned();
    let evs = h.reply(Response::Joined(ours.clone(), vec![ours, first.clone()]));
    assert_eq!(evs, vec![Ev::Watch(path(&first))]);
}

#[test]
fn a_line_read_with_the_create_that_lacks_the_node_joins_again() {
    // The node was deleted by someone between the create and the read behind it.
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let ours = node(&h.protection(), 8);
    assert_eq!(
        h.reply(Response::Joined(ours, Vec::new())),
        vec![Ev::Create]
    );
    assert_eq!(h.creates(), 2);
}

#[test]
fn a_line_read_with_the_create_before_a_reset_grants_nothing() {
    // Suspended while the create was in flight: under this policy the node goes first.
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let name = node(&h.protection(), 3);
    h.session(view(ConnectionState::Suspended, 1, 1));
    h.session(view(ConnectionState::Connected, 1, 1));
    let evs = h.reply(Response::Joined(name.clone(), vec![name.clone()]));
    assert!(
        !evs.iter().any(|e| matches!(e, Ev::Granted(_))),
        "granted from a line read before the reset: {evs:?}"
    );
}

#[path = "latch_successor_tests.rs"]
mod successor;
