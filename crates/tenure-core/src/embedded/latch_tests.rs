//! The embedded latch recipe driven by scripted inputs: no cluster, no tasks.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Recipe, Request, Response};
use crate::driver::{LatchEvent, LatchRecipe, RecipeInput, RecipeOutput, SessionView};
use crate::kv::{FencingToken, KvError};

const LATCH: &str = "leader/latch";

fn recipe() -> Recipe {
    Recipe {
        latch: Arc::from(LATCH),
        member: None,
        leaving: false,
    }
}

fn feed(r: &mut Recipe, input: RecipeInput<Response>) -> Vec<RecipeOutput<Request>> {
    let mut out = Vec::new();
    r.handle(input, &mut out);
    out
}

/// The receiver a `Next` request waits on.
fn next_rx(out: Vec<RecipeOutput<Request>>) -> mpsc::UnboundedReceiver<LatchEvent> {
    match <[_; 1]>::try_from(out) {
        Ok([RecipeOutput::Request(Request::Next(rx))]) => rx,
        Ok(other) => panic!("{other:?}"),
        Err(out) => panic!("{out:?}"),
    }
}

/// Joined as `member`: the server's sender and the receiver the `Next` request waits on.
fn joined(
    r: &mut Recipe,
    member: u64,
) -> (
    mpsc::UnboundedSender<LatchEvent>,
    mpsc::UnboundedReceiver<LatchEvent>,
) {
    let out = feed(r, RecipeInput::Join);
    assert!(
        matches!(&out[..], [RecipeOutput::Request(Request::Join { latch })] if &**latch == LATCH),
        "{out:?}"
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = next_rx(feed(
        r,
        RecipeInput::Response(Response::Joined(Ok((member, rx)))),
    ));
    assert!(rx.is_empty());
    (tx, rx)
}

#[test]
fn join_asks_to_join_then_waits_for_the_next_notice() {
    let mut r = recipe();
    let (tx, mut rx) = joined(&mut r, 7);
    // The Next request waits on the very channel the join returned.
    tx.send(LatchEvent::Revoked).unwrap();
    assert_eq!(rx.try_recv().unwrap(), LatchEvent::Revoked);
}

#[test]
fn notices_become_granted_revoked_and_failed_each_followed_by_the_next_wait() {
    let mut r = recipe();
    let _joined = joined(&mut r, 1);
    let token = FencingToken::new(LATCH, 3);
    for (event, expect) in [
        (LatchEvent::Granted(token.clone()), "granted"),
        (LatchEvent::Revoked, "revoked"),
        (
            LatchEvent::Failed(KvError::Backend("boom".into())),
            "failed",
        ),
    ] {
        let (_, rx) = mpsc::unbounded_channel();
        let out = feed(
            &mut r,
            RecipeInput::Response(Response::Notice(Some(event), rx)),
        );
        assert_eq!(out.len(), 2, "{out:?}");
        match (&out[0], expect) {
            (RecipeOutput::Granted(t), "granted") => assert_eq!(t, &token),
            (RecipeOutput::Revoked, "revoked") => {}
            (RecipeOutput::Failed(KvError::Backend(m)), "failed") => assert_eq!(m, "boom"),
            (o, _) => panic!("{expect}: {o:?}"),
        }
        assert!(matches!(out[1], RecipeOutput::Request(Request::Next(_))));
    }
}

#[test]
fn a_closed_notice_channel_revokes_and_stops_waiting() {
    let mut r = recipe();
    let _joined = joined(&mut r, 1);
    let (_, rx) = mpsc::unbounded_channel();
    let out = feed(&mut r, RecipeInput::Response(Response::Notice(None, rx)));
    assert!(matches!(out[..], [RecipeOutput::Revoked]), "{out:?}");
}

#[test]
fn leave_asks_to_leave_then_is_left_and_done() {
    let mut r = recipe();
    let _joined = joined(&mut r, 9);
    let out = feed(&mut r, RecipeInput::Leave);
    assert!(
        matches!(&out[..], [RecipeOutput::Request(Request::Leave { latch, member: 9 })] if &**latch == LATCH),
        "{out:?}"
    );
    // A notice still in flight is not reported after leaving.
    let (_, rx) = mpsc::unbounded_channel();
    let out = feed(
        &mut r,
        RecipeInput::Response(Response::Notice(Some(LatchEvent::Revoked), rx)),
    );
    assert!(out.is_empty(), "{out:?}");
    let out = feed(&mut r, RecipeInput::Response(Response::Left));
    assert!(
        matches!(out[..], [RecipeOutput::Left, RecipeOutput::Done]),
        "{out:?}"
    );
}

#[test]
fn leave_before_joined_leaves_once_joined() {
    let mut r = recipe();
    feed(&mut r, RecipeInput::Join);
    assert!(feed(&mut r, RecipeInput::Leave).is_empty());
    let (_, rx) = mpsc::unbounded_channel();
    let out = feed(&mut r, RecipeInput::Response(Response::Joined(Ok((4, rx)))));
    assert!(
        matches!(
            &out[..],
            [RecipeOutput::Request(Request::Leave { member: 4, .. })]
        ),
        "{out:?}"
    );
    let out = feed(&mut r, RecipeInput::Response(Response::Left));
    assert!(
        matches!(out[..], [RecipeOutput::Left, RecipeOutput::Done]),
        "{out:?}"
    );
}

#[test]
fn a_second_leave_asks_nothing_more() {
    let mut r = recipe();
    let _joined = joined(&mut r, 2);
    assert_eq!(feed(&mut r, RecipeInput::Leave).len(), 1);
    assert!(feed(&mut r, RecipeInput::Leave).is_empty());
}

#[test]
fn a_failed_join_fails_and_is_done() {
    let mut r = recipe();
    feed(&mut r, RecipeInput::Join);
    let out = feed(
        &mut r,
        RecipeInput::Response(Response::Joined(Err(KvError::Closed))),
    );
    assert!(
        matches!(
            out[..],
            [RecipeOutput::Failed(KvError::Closed), RecipeOutput::Done]
        ),
        "{out:?}"
    );
}

#[test]
fn session_changes_and_wake_ups_are_left_to_the_server() {
    let mut r = recipe();
    let _joined = joined(&mut r, 1);
    assert!(feed(&mut r, RecipeInput::Session(SessionView::CONNECTED)).is_empty());
    assert!(feed(&mut r, RecipeInput::Wake).is_empty());
}
