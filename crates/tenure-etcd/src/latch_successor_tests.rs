//! The second of the line leads on the first's deletion without reading the line again; every
//! other wake-up still reads it.

use super::*;

/// Joined as `c` (create revision 9) behind `a` (3), listed at revision 10: waiting for `a`.
fn second(policy: SuspendedPolicy) -> Harness {
    let mut h = Harness::joined(policy, "c", 9);
    let line = vec![(key("c"), 9), (key("a"), 3), (key("d"), 11)];
    assert_eq!(
        h.reply(Response::Listed(Ok((line, 12)))),
        [Ev::Watch(key("a"), 12)]
    );
    assert_eq!(also(&h), Some(key("c")), "its own key ends the wait too");
    h
}

/// The second key of the last wait asked for.
fn also(h: &Harness) -> Option<String> {
    match &h.asked.last().unwrap().op {
        Op::Watch { also, .. } => also.clone(),
        op => panic!("the last request is {op:?}, not a wait"),
    }
}

fn led() -> [Ev; 2] {
    [
        Ev::Granted(FencingToken::new(key("c"), 9)),
        // Its own key's deletions since the line read are seen.
        Ev::Watch(key("c"), 12),
    ]
}

#[test]
fn the_second_of_the_line_leads_when_the_first_is_gone_with_no_read() {
    let mut h = second(SuspendedPolicy::RevokeOnSuspended);
    assert_eq!(h.reply(Response::Gone), led());
    assert_eq!(also(&h), None, "the leader waits for its own key alone");
}

#[test]
fn the_third_of_the_line_reads_the_line_when_its_predecessor_is_gone() {
    let mut h = Harness::joined(SuspendedPolicy::RevokeOnSuspended, "c", 9);
    let line = vec![(key("a"), 3), (key("b"), 6), (key("c"), 9)];
    assert_eq!(
        h.reply(Response::Listed(Ok((line, 10)))),
        [Ev::Watch(key("b"), 10)]
    );
    assert_eq!(also(&h), None, "behind a key that is not the first");
    // `b` waited behind `a`: its deletion leaves `a` first.
    assert_eq!(h.reply(Response::Gone), [Ev::List]);
    let line = vec![(key("a"), 3), (key("c"), 9)];
    assert_eq!(
        h.reply(Response::Listed(Ok((line, 12)))),
        [Ev::Watch(key("a"), 12)]
    );
    assert_eq!(h.reply(Response::Gone), led());
}

#[test]
fn a_wake_up_to_look_again_reads_the_line() {
    let mut h = second(SuspendedPolicy::RevokeOnSuspended);
    assert_eq!(h.reply(Response::Watched), [Ev::List]);
    // The list's answer is what counts; a Gone now is no reply to it.
    assert_eq!(h.reply(Response::Gone), []);
    let line = vec![(key("a"), 3), (key("c"), 9)];
    assert_eq!(
        h.reply(Response::Listed(Ok((line, 14)))),
        [Ev::Watch(key("a"), 14)]
    );
}

#[test]
fn the_deletion_of_a_wait_overtaken_by_a_suspension_grants_nothing() {
    // Under either policy a suspension ends the wait: the line is read once connected.
    let mut h = second(SuspendedPolicy::TolerateSuspended);
    let wait = h.asked.last().unwrap().seq;
    assert_eq!(
        h.feed(RecipeInput::Session(view(ConnectionState::Suspended, 1, 1))),
        []
    );
    assert_eq!(
        h.feed(RecipeInput::Session(view(ConnectionState::Connected, 1, 1))),
        [Ev::List]
    );
    let stale = Reply {
        seq: wait,
        response: Response::Gone,
    };
    assert_eq!(h.feed(RecipeInput::Response(stale)), []);
}

#[test]
fn a_leader_whose_own_key_is_gone_reads_the_line() {
    let mut h = Harness::leader();
    assert_eq!(h.reply(Response::Gone), [Ev::List]);
}
