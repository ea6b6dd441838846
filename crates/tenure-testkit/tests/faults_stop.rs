//! Fault test, separate processes: the zombie leader. The leading `tenure-contender` is frozen
//! (SIGSTOP) past its session timeout, a standby takes over, and the old leader is resumed
//! (SIGCONT): none of its writes issued after the resume is accepted, it learns that it lost
//! leadership, campaigns again and can lead once more. The merged histories pass the checker.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::faults::{
    HistoryExt, Scenario, Settings, figure, now_ms, wait_histories, wait_leading,
};
use tenure_testkit::history::EventKind;
use tenure_testkit::zookeeper::ZooKeeperServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_past_its_session_is_deposed_and_cannot_write_after_resuming() {
    let server = ZooKeeperServer::start().await;
    let quorum = server.connect_string();
    let s = Scenario::new(Settings::default());
    let bound = s.settings.session_timeout + Duration::from_secs(10);

    let mut a = s.spawn("a", &quorum);
    let first = wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &quorum);
    s.wait_latch_participants(&quorum, 2).await;

    // Freeze the leader. b's grant is the event that shows a's session expired meanwhile.
    let stopped = now_ms();
    a.sigstop();
    let second = wait_leading(&[&a, &b], "b", stopped).await;
    let failover = second.t_ms - stopped;
    figure("failover_sigstop", failover);
    assert!(
        Duration::from_millis(failover) < bound,
        "b took over {failover} ms after the stop; bound {bound:?}"
    );
    assert!(second.epoch > first.epoch);

    // The zombie wakes up still believing it leads: it learns it lost leadership.
    let resumed = now_ms();
    a.sigcont();
    // Its loop wakes with its write timer due, before the news of the lost session, so it tries
    // a write with the old token; the revocation is logged as soon as the term ends, possibly
    // before that write's outcome. Wait for both.
    let h = wait_histories(
        &[&a, &b],
        "a to log its revocation and its write's outcome",
        |h| {
            let a = h.of("a");
            !a.since(EventKind::Revoked, resumed).is_empty()
                && a.events().iter().any(|e| {
                    matches!(
                        e.event,
                        EventKind::Write | EventKind::WriteRejected | EventKind::WriteFailed
                    ) && e.epoch == first.epoch
                        && e.t_ms >= resumed
                })
        },
    )
    .await;
    let old = h.of("a");
    let revoked = old.since(EventKind::Revoked, resumed)[0].t_ms;
    figure("zombie_revoked_after_resume", revoked - resumed);
    // Nothing it issued after the resume was accepted (a write issued before the stop may have
    // taken effect then and be logged now); what it tried was rejected or failed.
    let accepted: Vec<_> = old.acked_since(resumed);
    assert!(
        accepted.is_empty(),
        "the zombie's writes were accepted: {accepted:?}"
    );
    let refused: Vec<_> = old
        .events()
        .iter()
        .filter(|e| {
            matches!(e.event, EventKind::WriteRejected | EventKind::WriteFailed)
                && e.epoch == first.epoch
                && e.t_ms >= resumed
        })
        .collect();
    println!("the zombie's writes refused after the resume: {refused:?}");
    assert!(
        !refused.is_empty(),
        "the zombie tried no write after resuming"
    );
    // b led throughout.
    assert!(h.of("b").leads(), "b kept its term");
    assert!(h.granted_since(stopped).iter().all(|g| g.process == "b"));

    // a campaigns again: once b leaves, a leads in a new term.
    let left = now_ms();
    b.terminate().await;
    let third = wait_leading(&[&a, &b], "a", left).await;
    assert!(third.epoch > second.epoch);

    let done = s.finish(&mut [&mut a, &mut b], &quorum).await;
    assert_eq!(done.report.terms, 3);
}
