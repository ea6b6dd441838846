//! Fault test, separate processes: SIGKILL of the leading `tenure-contender` on a real
//! ZooKeeper. A standby leads within the session timeout plus a margin, twice in a row, and the
//! merged histories pass the checker.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::faults::{Scenario, Settings, figure, now_ms, wait_any_leading, wait_leading};
use tenure_testkit::zookeeper::ZooKeeperServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leaders_are_replaced_within_the_session_timeout() {
    let server = ZooKeeperServer::start().await;
    let quorum = server.connect_string();
    let s = Scenario::new(Settings::default());
    let session = s.settings.session_timeout;
    // Generous: the bound is about failover happening at all, not its speed (measured below).
    let bound = session + Duration::from_secs(10);

    let mut a = s.spawn("a", &quorum);
    wait_leading(&[&a], "a", 0).await;
    let b = s.spawn("b", &quorum);
    let c = s.spawn("c", &quorum);
    s.wait_latch_participants(&quorum, 3).await;

    // First failover: a dies; its session (and latch node) lives until the server expires it.
    let killed_a = now_ms();
    a.kill();
    let second = wait_any_leading(&[&a, &b, &c], killed_a).await;
    assert_ne!(second.process, "a");
    let failover = second.t_ms - killed_a;
    figure("failover_sigkill", failover);
    assert!(
        Duration::from_millis(failover) < bound,
        "{} took over {failover} ms after the kill; bound {bound:?}",
        second.process
    );

    // Second failover: the new leader dies too; the last standby takes over.
    let (mut next, mut last) = if second.process == "b" {
        (b, c)
    } else {
        (c, b)
    };
    let killed_next = now_ms();
    next.kill();
    let third = wait_leading(&[&a, &next, &last], &last.name.clone(), killed_next).await;
    let failover = third.t_ms - killed_next;
    figure("failover_sigkill", failover);
    assert!(
        Duration::from_millis(failover) < bound,
        "{} took over {failover} ms after the kill; bound {bound:?}",
        third.process
    );

    let done = s.finish(&mut [&mut a, &mut next, &mut last], &quorum).await;
    assert_eq!(done.report.terms, 3, "one term per leader");
    // The checkpoint counter went on where the killed leaders stopped.
    let ids = done.merged.acknowledged_ids();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}
