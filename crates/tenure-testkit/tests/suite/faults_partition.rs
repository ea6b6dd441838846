//! Fault tests, separate processes: network partitions between a `tenure-contender` and
//! ZooKeeper, made by a [`FaultProxy`] per contender (each contender's quorum is its own
//! proxy, so the leader alone can be cut off).
//!
//! - Shorter than the session timeout, default policy: the leader is suspended and revoked at
//!   once, the standby takes over, and the old leader campaigns again on its live session.
//! - Shorter than the session timeout, `tolerate-suspended-connections: true`: the leader keeps
//!   its term across the pause and goes on writing in it.
//! - Longer than the session timeout, either policy: the session is lost, the standby leads, and
//!   nothing the old leader tried from the start of the partition is accepted.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::faults::{
    HistoryExt, Scenario, Settings, assert_term_holds, figure, now_ms, wait_histories, wait_leading,
};
use tenure_testkit::history::EventKind;
use tenure_testkit::proxy::FaultProxy;
use tenure_testkit::zookeeper::ZooKeeperServer;

/// What a contender's backend logs when its connection is suspended / its session lost.
const SUSPENDED: &str = "ZooKeeper connection suspended";
const LOST: &str = "ZooKeeper session lost";
/// What a contender's latch logs when it gives its leadership up.
const LATCH_REVOKED: &str = "tenure_core::driver::participation: leadership revoked";
/// How soon after `black_hole()` returns no byte gets through any more (the connection tasks
/// learn the mode through a channel; a chunk already read may still be forwarded).
const CUT_MARGIN_MS: u64 = 200;

async fn proxy(server: &ZooKeeperServer) -> FaultProxy {
    FaultProxy::start(server.addr()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_partition_revokes_the_leader_under_the_default_policy() {
    let server = ZooKeeperServer::start().await;
    let (pa, pb) = (proxy(&server).await, proxy(&server).await);
    let s = Scenario::new(Settings {
        session_timeout: Duration::from_secs(4),
        ..Settings::default()
    });
    let session = s.settings.session_timeout;

    let mut a = s.spawn("a", &pa.addr().to_string());
    let first = wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &pb.addr().to_string());
    s.wait_latch_participants(&server.connect_string(), 2).await;

    // Cut the leader off until its backend notices (suspended), then heal at once.
    let revoked_by_latch = a.stderr_count(LATCH_REVOKED);
    let cut = a
        .cut_until_suspended(
            &pa,
            SUSPENDED,
            "partition_suspended_pause",
            session,
            "the session timeout",
        )
        .await;

    // The suspension alone revoked a's term (its latch says so at once; its history once the
    // write it had in flight is over), and the standby takes over: a re-joined the latch
    // behind it.
    a.wait_stderr(LATCH_REVOKED, revoked_by_latch).await;
    wait_histories(&[&a, &b], "a to log its revocation", |h| {
        !h.of("a").since(EventKind::Revoked, cut).is_empty()
    })
    .await;
    let second = wait_leading(&[&a, &b], "b", cut).await;
    figure("partition_suspended_failover", second.t_ms - cut);
    assert!(second.epoch > first.epoch);
    // It was the connection, not the session, that was lost.
    assert_eq!(a.stderr_count(LOST), 0, "{}", a.stderr_tail());

    // a campaigns again: when b leaves, a leads in a new term.
    let left = now_ms();
    b.terminate().await;
    let third = wait_leading(&[&a, &b], "a", left).await;
    assert!(third.epoch > second.epoch);

    let done = s
        .finish(&mut [&mut a, &mut b], &server.connect_string())
        .await;
    assert_eq!(done.report.terms, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_partition_keeps_leadership_when_suspension_is_tolerated() {
    let server = ZooKeeperServer::start().await;
    let (pa, pb) = (proxy(&server).await, proxy(&server).await);
    let s = Scenario::new(Settings {
        session_timeout: Duration::from_secs(4),
        tolerate_suspended: true,
        ..Settings::default()
    });
    let session = s.settings.session_timeout;

    let mut a = s.spawn("a", &pa.addr().to_string());
    let grant = wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &pb.addr().to_string());
    s.wait_latch_participants(&server.connect_string(), 2).await;

    // Cut the leader off until it notices (suspended), then heal at once.
    let cut = a
        .cut_until_suspended(
            &pa,
            SUSPENDED,
            "partition_tolerated_pause",
            session,
            "the session timeout",
        )
        .await;

    // The term holds across the pause and past the session timeout after the cut.
    assert_term_holds(&[&a, &b], &grant, cut, session + Duration::from_millis(500)).await;
    assert_eq!(a.stderr_count(LOST), 0, "{}", a.stderr_tail());

    let done = s
        .finish(&mut [&mut a, &mut b], &server.connect_string())
        .await;
    assert_eq!(done.report.terms, 1);
}

/// The leader is cut off past its session timeout: its session is lost, the standby leads, and
/// no write the old leader issued after the cut is accepted.
async fn long_partition(tolerate_suspended: bool, figure_name: &str) {
    let server = ZooKeeperServer::start().await;
    let (pa, pb) = (proxy(&server).await, proxy(&server).await);
    let s = Scenario::new(Settings {
        tolerate_suspended,
        ..Settings::default()
    });
    let bound = s.settings.session_timeout + Duration::from_secs(10);

    let mut a = s.spawn("a", &pa.addr().to_string());
    let first = wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &pb.addr().to_string());
    s.wait_latch_participants(&server.connect_string(), 2).await;

    // The partition lasts until the standby leads: the event that shows a's session expired.
    let lost = a.stderr_count(LOST);
    let cut = now_ms();
    pa.black_hole();
    let second = wait_leading(&[&a, &b], "b", cut).await;
    let failover = second.t_ms - cut;
    figure(figure_name, failover);
    assert!(
        Duration::from_millis(failover) < bound,
        "b took over {failover} ms after the cut; bound {bound:?}"
    );
    pa.heal();

    // a learns it lost its session and its term.
    a.wait_stderr(LOST, lost).await;
    // Tolerating the suspension, a's write in flight ends after the revocation: its read
    // waits for the new session, then the write is refused with the old term's token.
    let h = wait_histories(&[&a, &b], "a to be revoked", |h| {
        let a = h.of("a");
        let refused = || {
            !a.since(EventKind::WriteRejected, cut).is_empty()
                || !a.since(EventKind::WriteFailed, cut).is_empty()
        };
        !a.since(EventKind::Revoked, cut).is_empty() && (!tolerate_suspended || refused())
    })
    .await;
    let old = h.of("a");
    // Nothing a issued once the cut was in effect was accepted.
    let accepted = old.acked_since(cut + CUT_MARGIN_MS);
    assert!(
        accepted.is_empty(),
        "a's writes after the cut were accepted: {accepted:?}"
    );
    let refused: Vec<_> = old
        .events()
        .iter()
        .filter(|e| {
            matches!(e.event, EventKind::WriteRejected | EventKind::WriteFailed)
                && e.epoch == first.epoch
                && e.t_ms >= cut
        })
        .collect();
    println!("a's writes refused after the cut: {refused:?}");
    if tolerate_suspended {
        // Tolerating the suspension, a kept writing in its term while cut off, in vain.
        assert!(!refused.is_empty(), "a tried no write while cut off");
    }

    // a campaigns again in a new session: when b leaves, a leads.
    let left = now_ms();
    b.terminate().await;
    let third = wait_leading(&[&a, &b], "a", left).await;
    assert!(third.epoch > second.epoch);

    let done = s
        .finish(&mut [&mut a, &mut b], &server.connect_string())
        .await;
    assert_eq!(done.report.terms, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_partition_loses_the_session_under_the_default_policy() {
    long_partition(false, "partition_lost_failover_default").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_partition_loses_the_session_when_suspension_is_tolerated() {
    long_partition(true, "partition_lost_failover_tolerate").await;
}
