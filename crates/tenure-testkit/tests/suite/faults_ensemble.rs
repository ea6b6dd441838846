//! Fault tests, separate processes, on a 3-node ZooKeeper ensemble: losing one node does not
//! change the tenure leader.
//!
//! - Default policy: a follower the leading contender is not connected to dies (and comes
//!   back): nobody notices; the leader keeps its term and keeps writing.
//! - `tolerate-suspended-connections`: the follower the leader *is* connected to dies, then the
//!   ZooKeeper leader itself: the leader's session moves to another server (and survives the
//!   re-election), so it keeps its term through both.
//!
//! "No leadership change" is checked over a window after each fault: the leader's
//! acknowledged writes until one issued more than a session timeout after the fault, with no
//! `granted` in any history and no `revoked` in the leader's meanwhile.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::faults::{
    Contender, EVENT_DEADLINE, Scenario, Settings, assert_term_holds, connected_remote_ports,
    figure, now_ms, wait_leading,
};
use tenure_testkit::ensemble::ZooKeeperEnsemble;

const SESSION: Duration = Duration::from_secs(4);
/// How long the leader's term is watched after a fault: longer than a session timeout, so a
/// session lost to the fault would have shown.
const WINDOW: Duration = Duration::from_millis(4500);
/// What a contender's backend logs when its connection is suspended.
const SUSPENDED: &str = "ZooKeeper connection suspended";

fn settings(tolerate_suspended: bool) -> Settings {
    Settings {
        session_timeout: SESSION,
        tolerate_suspended,
        ..Settings::default()
    }
}

/// The index of the ensemble server contender `c` is connected to (from its sockets).
async fn server_of(ensemble: &ZooKeeperEnsemble, c: &Contender) -> usize {
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    loop {
        let ports = connected_remote_ports(c.pid());
        let servers: Vec<usize> = (0..ensemble.len())
            .filter(|&n| ports.contains(&ensemble.client_port(n)))
            .collect();
        if let [n] = servers[..] {
            return n;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} is not connected to one ensemble server: {servers:?}",
            c.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_follower_the_leader_does_not_use_changes_nothing() {
    let mut ensemble = ZooKeeperEnsemble::start(3).await;
    let quorum = ensemble.connect_string();
    let s = Scenario::new(settings(false));

    let mut a = s.spawn("a", &quorum);
    let grant = wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &quorum);
    s.wait_latch_participants(&quorum, 2).await;

    let zk_leader = ensemble.leader_index().await;
    let used = server_of(&ensemble, &a).await;
    let victim = (0..3).find(|&n| n != zk_leader && n != used).unwrap();
    println!("ZooKeeper leader {zk_leader}, a on {used}, killing follower {victim}");

    let killed = now_ms();
    ensemble.kill(victim);
    assert_term_holds(&[&a, &b], &grant, killed, WINDOW).await;
    assert_eq!(ensemble.leader_index().await, zk_leader);

    // The follower comes back and syncs; writes go on in the same term.
    ensemble.restart(victim).await;
    let back = now_ms();
    assert_term_holds(&[&a, &b], &grant, back, Duration::from_secs(1)).await;
    assert_eq!(ensemble.leader_index().await, zk_leader);

    let done = s.finish(&mut [&mut a, &mut b], &quorum).await;
    assert_eq!(done.report.terms, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_keeps_its_term_through_node_failures_when_suspension_is_tolerated() {
    let mut ensemble = ZooKeeperEnsemble::start(3).await;
    let quorum = ensemble.connect_string();
    let zk_leader = ensemble.leader_index().await;
    let followers: Vec<usize> = (0..3).filter(|&n| n != zk_leader).collect();
    let s = Scenario::new(settings(true));

    // a reaches the followers only, so it is on a follower when that one dies.
    let mut a = s.spawn("a", &ensemble.connect_string_of(&followers));
    let grant = wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &quorum);
    s.wait_latch_participants(&quorum, 2).await;

    // The follower a is connected to dies: a's session moves to the other follower.
    let used = server_of(&ensemble, &a).await;
    let suspended = a.stderr_count(SUSPENDED);
    let killed = now_ms();
    ensemble.kill(used);
    a.wait_stderr(SUSPENDED, suspended).await;
    assert_term_holds(&[&a, &b], &grant, killed, WINDOW).await;
    let moved = server_of(&ensemble, &a).await;
    assert_ne!(moved, used, "a's session moved to another server");
    ensemble.restart(used).await;

    // The ZooKeeper leader dies: every server stops serving until a new leader is elected;
    // a's session survives the election.
    let suspended = a.stderr_count(SUSPENDED);
    let killed = now_ms();
    ensemble.kill(zk_leader);
    let new_leader = ensemble.leader_index().await;
    figure("zk_leader_reelection", now_ms() - killed);
    assert_ne!(new_leader, zk_leader);
    a.wait_stderr(SUSPENDED, suspended).await;
    assert_term_holds(&[&a, &b], &grant, killed, WINDOW).await;

    let done = s.finish(&mut [&mut a, &mut b], &quorum).await;
    assert_eq!(done.report.terms, 1);
}
