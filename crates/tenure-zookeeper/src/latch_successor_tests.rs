//! The second of the line leads on the first's deletion without reading the line again; every
//! other wake-up still reads it.

use super::*;

const FIRST: &str = "_c_aaaaaaaa-0000-0000-0000-000000000000-latch-0000000002";
const AFTER: &str = "_c_bbbbbbbb-0000-0000-0000-000000000000-latch-0000000009";

/// Joined as node 5 behind `FIRST` (and before `AFTER`): waiting for `FIRST`.
fn second(policy: SuspendedPolicy) -> (Harness, String) {
    let mut h = Harness::joined(policy);
    let ours = node(&h.protection(), 5);
    assert_eq!(h.reply(Response::Created(Ok(ours.clone()))), vec![Ev::List]);
    let line = vec![AFTER.to_owned(), ours.clone(), FIRST.to_owned()];
    assert_eq!(
        h.reply(Response::Names(Ok(line))),
        vec![Ev::Watch(path(FIRST))]
    );
    assert_eq!(
        also(&h),
        Some(path(&ours)),
        "its own node ends the wait too"
    );
    (h, ours)
}

/// The second node of the last wait asked for.
fn also(h: &Harness) -> Option<String> {
    match &h.last().op {
        Op::Watch { also, .. } => also.clone(),
        op => panic!("the last request is {op:?}, not a wait"),
    }
}

fn led(ours: &str) -> Vec<Ev> {
    vec![
        Ev::Granted(FencingToken::new(path(ours), 5)),
        Ev::Watch(path(ours)),
    ]
}

#[test]
fn the_second_of_the_line_leads_when_the_first_is_gone_with_no_read() {
    let (mut h, ours) = second(SuspendedPolicy::RevokeOnSuspended);
    assert_eq!(h.reply(Response::Gone(path(FIRST))), led(&ours));
    assert_eq!(also(&h), None, "the leader waits for its own node alone");
    assert!(
        !h.asked
            .iter()
            .skip(2)
            .any(|r| matches!(r.op, Op::List { .. })),
        "no line read after the first one"
    );
}

#[test]
fn the_third_of_the_line_reads_the_line_when_its_predecessor_is_gone() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended);
    let ours = node(&h.protection(), 5);
    assert_eq!(h.reply(Response::Created(Ok(ours.clone()))), vec![Ev::List]);
    let before = "_c_cccccccc-0000-0000-0000-000000000000-latch-0000000001".to_owned();
    let line = vec![FIRST.to_owned(), before.clone(), ours.clone()];
    assert_eq!(
        h.reply(Response::Names(Ok(line))),
        vec![Ev::Watch(path(FIRST))]
    );
    assert_eq!(also(&h), None, "behind a node that is not the first");
    // `FIRST` (2) waits behind `before` (1): its deletion leaves `before` first.
    assert_eq!(h.reply(Response::Gone(path(FIRST))), vec![Ev::List]);
    let line = vec![before.clone(), ours.clone()];
    assert_eq!(
        h.reply(Response::Names(Ok(line))),
        vec![Ev::Watch(path(&before))]
    );
    assert_eq!(also(&h), Some(path(&ours)));
    // Now second: `before`'s deletion grants at once.
    assert_eq!(h.reply(Response::Gone(path(&before))), led(&ours));
}

#[test]
fn a_deletion_that_cannot_be_the_first_reads_the_line() {
    let (mut h, ours) = second(SuspendedPolicy::RevokeOnSuspended);
    let relist = |h: &mut Harness| {
        let line = vec![FIRST.to_owned(), ours.clone()];
        assert_eq!(
            h.reply(Response::Names(Ok(line))),
            vec![Ev::Watch(path(FIRST))]
        );
    };
    // A woken waiter of another path with the same hash: a node numbered after ours, a node
    // of another latch, a child that is no latch node, the directory itself.
    for gone in [
        path(AFTER),
        format!("/flink/default/leader/job-1/latch/{FIRST}"),
        path("member-0000000001"),
        DIR.to_owned(),
        path(&ours),
    ] {
        assert_eq!(
            h.reply(Response::Gone(gone.clone())),
            vec![Ev::List],
            "{gone}"
        );
        relist(&mut h);
    }
    // A plain wake-up (a reconnect's) reads the line too.
    assert_eq!(h.reply(Response::Watched), vec![Ev::List]);
    relist(&mut h);
    assert_eq!(h.reply(Response::Gone(path(FIRST))), led(&ours));
}

#[test]
fn the_deletion_of_a_wait_overtaken_by_a_suspension_grants_nothing() {
    let (mut h, ours) = second(SuspendedPolicy::TolerateSuspended);
    let wait = h.last().seq;
    assert_eq!(h.session(view(ConnectionState::Suspended, 1, 1)), vec![]);
    // Connected again: the wait may have missed a deletion, so the line is read.
    assert_eq!(
        h.session(view(ConnectionState::Connected, 1, 1)),
        vec![Ev::List]
    );
    let stale = Reply {
        seq: wait,
        response: Response::Gone(path(FIRST)),
    };
    assert_eq!(h.feed(RecipeInput::Response(stale)), vec![]);
    // The line read says who leads.
    let line = vec![FIRST.to_owned(), ours.clone()];
    assert_eq!(
        h.reply(Response::Names(Ok(line))),
        vec![Ev::Watch(path(FIRST))]
    );
}

#[test]
fn the_deletion_of_the_first_after_a_reset_was_asked_grants_nothing() {
    let (mut h, ours) = second(SuspendedPolicy::RevokeOnSuspended);
    let wait = h.last().seq;
    // Suspended: under this policy the node is replaced once connected again.
    assert_eq!(h.session(view(ConnectionState::Suspended, 1, 1)), vec![]);
    assert_eq!(
        h.session(view(ConnectionState::Connected, 1, 1)),
        vec![Ev::Delete(path(&ours))]
    );
    for seq in [wait, h.last().seq] {
        let gone = Reply {
            seq,
            response: Response::Gone(path(FIRST)),
        };
        assert_eq!(h.feed(RecipeInput::Response(gone)), vec![], "seq {seq}");
    }
    assert_eq!(h.reply(Response::Deleted(Ok(()))), vec![Ev::Create]);
}

#[test]
fn a_leader_whose_own_node_is_gone_reads_the_line() {
    let (mut h, name) = Harness::leader(SuspendedPolicy::RevokeOnSuspended, 3);
    assert_eq!(h.reply(Response::Gone(path(&name))), vec![Ev::List]);
    assert_eq!(
        h.reply(Response::Names(Ok(vec![]))),
        vec![Ev::Revoked, Ev::Create]
    );
}
