//! Fault test, separate processes: the zombie leader. The leading `tenure-contender` is frozen
//! (SIGSTOP) past its session timeout, a standby takes over, and the old leader is resumed
//! (SIGCONT): none of its writes issued after the resume is accepted, it learns that it lost
//! leadership, campaigns again and can lead once more. The merged histories pass the checker.

#![allow(clippy::unwrap_used)]

use crate::common;

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
    let h = wait_histories(&[&a, &b], "a to log its revocation", |h| {
        !h.of("a").since(EventKind::Revoked, resumed).is_empty()
    })
    .await;
    let revoked = h.of("a").since(EventKind::Revoked, resumed)[0].t_ms;
    figure("zombie_revoked_after_resume", revoked - resumed);
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

    // With the whole history: no write the zombie issued with its old token after resuming was
    // accepted (a write issued before the stop may have landed then and be logged late). Whether
    // it attempted one depends on whether its write timer or the news of the lost session came
    // first; every attempt there was must have been refused.
    let old = done.histories.of("a");
    assert_eq!(
        old.acked_in_term_since(first.epoch.unwrap_or_default(), resumed),
        0,
        "the zombie's writes after resuming were accepted"
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
}
