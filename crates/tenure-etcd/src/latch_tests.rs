//! The etcd latch recipe driven by scripted inputs: no server, no IO, no sleeps.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tenure_core::connection::{ConnectionState, SuspendedPolicy};
use tenure_core::driver::{LatchRecipe, RecipeInput, RecipeOutput, SessionView};
use tenure_core::kv::FencingToken;
use tenure_core::retry::RetryPolicy;

use super::{Op, Recipe, Reply, Request, Response};

const DIR: &str = "/flink/default/leader/latch";
const LEAVE_WAIT: Duration = Duration::from_secs(3);

/// What a recipe decided, in a form tests compare.
#[derive(Debug, PartialEq)]
enum Ev {
    Join,
    List,
    Watch(String, i64),
    Delete(String, Vec<String>),
    Granted(FencingToken),
    Revoked,
    Left,
    Done,
    WakeAfter,
}

struct Harness {
    recipe: Recipe,
    asked: Vec<Request>,
}

fn key(lease: &str) -> String {
    format!("{DIR}/{lease}")
}

fn view(state: ConnectionState, generation: u64, suspensions: u32) -> SessionView {
    SessionView {
        state,
        generation,
        suspensions,
    }
}

impl Harness {
    fn new(policy: SuspendedPolicy) -> Self {
        let retry = RetryPolicy::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut h = Self {
            recipe: Recipe::new(DIR.into(), policy, retry, LEAVE_WAIT),
            asked: Vec::new(),
        };
        h.feed(RecipeInput::Session(SessionView::CONNECTED));
        h
    }

    fn feed(&mut self, input: RecipeInput<Reply>) -> Vec<Ev> {
        let mut out = Vec::new();
        self.recipe.handle(input, &mut out);
        out.into_iter()
            .map(|o| match o {
                RecipeOutput::Request(r) => {
                    let ev = match &r.op {
                        Op::Join { dir } => {
                            assert_eq!(dir, DIR);
                            Ev::Join
                        }
                        Op::List { .. } => Ev::List,
                        Op::Watch { key, revision, .. } => Ev::Watch(key.clone(), *revision),
                        Op::Delete { key, also } => Ev::Delete(key.clone(), also.clone()),
                    };
                    self.asked.push(r);
                    ev
                }
                RecipeOutput::Granted(t) => Ev::Granted(t),
                RecipeOutput::Revoked => Ev::Revoked,
                RecipeOutput::Left => Ev::Left,
                RecipeOutput::Done => Ev::Done,
                RecipeOutput::WakeAfter(_) => Ev::WakeAfter,
                RecipeOutput::Failed(e) => panic!("unexpected failure {e}"),
            })
            .collect()
    }

    fn reply(&mut self, response: Response) -> Vec<Ev> {
        let seq = self.asked.last().unwrap().seq;
        self.feed(RecipeInput::Response(Reply { seq, response }))
    }

    /// Joined as `lease` at create revision `rev`; the list that follows is asked.
    fn joined(policy: SuspendedPolicy, lease: &str, rev: i64) -> Self {
        let mut h = Self::new(policy);
        assert_eq!(h.feed(RecipeInput::Join), [Ev::Join]);
        assert_eq!(h.reply(Response::Joined(Ok((key(lease), rev)))), [Ev::List]);
        h
    }

    /// The leader as `a` at revision 5, watching its own key.
    fn leader() -> Self {
        let mut h = Self::joined(SuspendedPolicy::RevokeOnSuspended, "a", 5);
        let ev = h.reply(Response::Listed(Ok((vec![(key("a"), 5)], 7))));
        assert_eq!(
            ev,
            [
                Ev::Granted(FencingToken::new(key("a"), 5)),
                Ev::Watch(key("a"), 7)
            ]
        );
        h
    }
}

#[test]
fn lowest_create_revision_leads_with_its_key_and_revision_as_token() {
    let _ = Harness::leader();
}

#[test]
fn a_follower_watches_only_its_predecessor_and_leads_when_it_goes() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended, "c", 9);
    let line = vec![(key("c"), 9), (key("a"), 3), (key("b"), 6)];
    assert_eq!(
        h.reply(Response::Listed(Ok((line, 10)))),
        [Ev::Watch(key("b"), 10)]
    );
    assert_eq!(h.reply(Response::Watched), [Ev::List]);
    assert_eq!(
        h.reply(Response::Listed(Ok((vec![(key("c"), 9)], 12)))),
        [
            Ev::Granted(FencingToken::new(key("c"), 9)),
            Ev::Watch(key("c"), 12)
        ]
    );
}

#[test]
fn own_key_gone_revokes_and_joins_again() {
    let mut h = Harness::leader();
    assert_eq!(h.reply(Response::Watched), [Ev::List]);
    assert_eq!(
        h.reply(Response::Listed(Ok((vec![(key("b"), 8)], 9)))),
        [Ev::Revoked, Ev::Join]
    );
}

#[test]
fn suspension_revokes_under_the_default_policy_and_the_line_is_read_again() {
    let mut h = Harness::leader();
    let ev = h.feed(RecipeInput::Session(view(ConnectionState::Suspended, 1, 1)));
    assert_eq!(ev, [Ev::Revoked]);
    let ev = h.feed(RecipeInput::Session(view(ConnectionState::Connected, 1, 1)));
    assert_eq!(ev, [Ev::List]);
    // Still first in line: granted again (a new term for the election).
    let ev = h.reply(Response::Listed(Ok((vec![(key("a"), 5)], 20))));
    assert_eq!(
        ev,
        [
            Ev::Granted(FencingToken::new(key("a"), 5)),
            Ev::Watch(key("a"), 20)
        ]
    );
}

#[test]
fn suspension_keeps_leadership_when_tolerated() {
    let mut h = Harness::joined(SuspendedPolicy::TolerateSuspended, "a", 5);
    h.reply(Response::Listed(Ok((vec![(key("a"), 5)], 7))));
    let ev = h.feed(RecipeInput::Session(view(ConnectionState::Suspended, 1, 1)));
    assert!(!ev.contains(&Ev::Revoked), "{ev:?}");
    let ev = h.feed(RecipeInput::Session(view(ConnectionState::Connected, 1, 1)));
    assert_eq!(ev, [Ev::List]);
    let ev = h.reply(Response::Listed(Ok((vec![(key("a"), 5)], 8))));
    assert_eq!(ev, [Ev::Watch(key("a"), 8)]);
}

#[test]
fn a_lost_lease_revokes_and_joins_under_the_new_one() {
    let mut h = Harness::leader();
    let ev = h.feed(RecipeInput::Session(view(ConnectionState::Lost, 1, 0)));
    assert_eq!(ev, [Ev::Revoked]);
    let ev = h.feed(RecipeInput::Session(view(ConnectionState::Connected, 2, 0)));
    assert_eq!(ev, [Ev::Join]);
    assert_eq!(h.asked.last().unwrap().generation, 2);
}

#[test]
fn leaving_as_leader_revokes_deletes_with_the_published_keys_then_is_done() {
    let mut h = Harness::leader();
    assert!(
        h.recipe
            .delete_on_leave(vec!["leader/dispatcher/connection_info".into()])
    );
    let ev = h.feed(RecipeInput::Leave);
    assert_eq!(
        ev,
        [
            Ev::Revoked,
            Ev::WakeAfter,
            Ev::Delete(key("a"), vec!["leader/dispatcher/connection_info".into()])
        ]
    );
    assert_eq!(h.reply(Response::Deleted(Ok(()))), [Ev::Left, Ev::Done]);
}

#[test]
fn leaving_while_disconnected_is_left_at_once_and_deletes_after_reconnect() {
    let mut h = Harness::leader();
    h.feed(RecipeInput::Session(view(ConnectionState::Suspended, 1, 1)));
    assert_eq!(h.feed(RecipeInput::Leave), [Ev::Left]);
    let ev = h.feed(RecipeInput::Session(view(ConnectionState::Connected, 1, 1)));
    assert_eq!(ev, [Ev::Delete(key("a"), Vec::new())]);
    assert_eq!(h.reply(Response::Deleted(Ok(()))), [Ev::Done]);
}

#[test]
fn a_failed_request_pauses_then_retries() {
    let mut h = Harness::new(SuspendedPolicy::RevokeOnSuspended);
    h.feed(RecipeInput::Join);
    assert_eq!(
        h.reply(Response::Joined(Err("unavailable".into()))),
        [Ev::WakeAfter]
    );
    assert_eq!(h.feed(RecipeInput::Wake), [Ev::Join]);
}

#[test]
fn stale_replies_are_ignored() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended, "a", 5);
    let old = h.asked.last().unwrap().seq;
    h.feed(RecipeInput::Session(view(ConnectionState::Lost, 1, 0)));
    let ev = h.feed(RecipeInput::Response(Reply {
        seq: old,
        response: Response::Listed(Ok((vec![(key("a"), 5)], 7))),
    }));
    assert!(ev.is_empty(), "{ev:?}");
}

#[path = "latch_successor_tests.rs"]
mod successor;
