//! Latch waits parked on the session's persistent watches, against a real ZooKeeper: a deletion
//! while disconnected is still noticed, the watch works again after a reconnect, and each latch
//! root has its own watch that wakes only its waiters.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::{granted, next_event, wait_for_parked};
use tenure_core::connection::{ConnectionState, SuspendedPolicy};
use tenure_core::driver::{HaBackend, LatchEvent};
use tenure_testkit::zookeeper::ZooKeeperFactory;
use tenure_testkit::{DEADLINE, wait_for};
use tenure_zookeeper::latch_waits;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaders_node_deleted_while_it_was_disconnected_revokes_it_after_the_reconnect() {
    // Under the tolerate policy the suspension itself revokes nothing: only the deletion does.
    let f = ZooKeeperFactory::start_with_policy(SuspendedPolicy::TolerateSuspended).await;
    let proxy = f.start_proxy().await;
    let a = f
        .connect_with(
            f.settings_via(&proxy)
                .with_session_timeout(Duration::from_secs(8)),
        )
        .await;
    let mut conn = a.connection_state();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _latch = a.join_latch("leader/latch", tx).await.unwrap();
    let t1 = granted(&mut rx).await;
    wait_for_parked(&a, "the leader waiting on its node", 1).await;

    // Cut off, its node is deleted: no event can reach it.
    proxy.black_hole();
    wait_for(&mut conn, "suspended", DEADLINE, |s| {
        *s == ConnectionState::Suspended
    })
    .await;
    let raw = f.raw_client().await;
    raw.delete(t1.lock(), None).await.unwrap();
    proxy.heal();
    wait_for(&mut conn, "reconnected", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    assert_eq!(a.session_generation(), 1, "the session survived");

    // It looks again: revoked, and granted a new node.
    assert_eq!(next_event(&mut rx).await, LatchEvent::Revoked);
    let t2 = granted(&mut rx).await;
    assert_ne!(t1, t2);
    assert!(t2.epoch() > t1.epoch());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reconnect_a_deletion_still_wakes_the_waiter() {
    // Under the tolerate policy b keeps its node and its wait through the suspension (under
    // the revoke policy it would delete the node, which ends the wait, and join again).
    let f = ZooKeeperFactory::start_with_policy(SuspendedPolicy::TolerateSuspended).await;
    let proxy = f.start_proxy().await;
    let a = f.connect_zk().await;
    let b = f
        .connect_with(
            f.settings_via(&proxy)
                .with_session_timeout(Duration::from_secs(8)),
        )
        .await;
    let (tx_a, mut rx_a) = mpsc::unbounded_channel();
    let latch_a = a.join_latch("leader/latch", tx_a).await.unwrap();
    granted(&mut rx_a).await;
    let (tx_b, mut rx_b) = mpsc::unbounded_channel();
    let _latch_b = b.join_latch("leader/latch", tx_b).await.unwrap();
    wait_for_parked(&b, "b waiting on a's node", 1).await;
    // A wait is parked before it reads its node: cut during that read, the read fails and the
    // wait looks again by itself, woken by nobody. Cut only once the wait is set for good.
    let driver = b.driver().unwrap();
    tenure_testkit::wait_until("b's wait read its node", DEADLINE, || async {
        driver.stats().await.is_some_and(|s| s.in_flight == 0)
    })
    .await;

    // b's connection drops and comes back in the same session: the server forgot its
    // persistent watch, so it is registered again and b looks again.
    let mut conn = b.connection_state();
    let woken = latch_waits(&b).woken;
    proxy.cut();
    wait_for(&mut conn, "suspended", DEADLINE, |s| {
        *s == ConnectionState::Suspended
    })
    .await;
    wait_for(&mut conn, "reconnected", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    assert_eq!(b.session_generation(), 1, "the session survived");
    tenure_testkit::wait_until("b woken after the reconnect", DEADLINE, || async {
        latch_waits(&b).woken > woken
    })
    .await;
    wait_for_parked(&b, "b waiting on a's node again", 1).await;
    assert!(rx_b.try_recv().is_err(), "b is not granted while a leads");

    // a leaves: the re-registered watch wakes b, which is granted.
    latch_a.close().await.unwrap();
    granted(&mut rx_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_latch_root_has_its_own_watch_and_wakes_only_its_waiters() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    let _one = a.join_latch("one/latch", tx1).await.unwrap();
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let _two = a.join_latch("two/latch", tx2).await.unwrap();
    let t1 = granted(&mut rx1).await;
    granted(&mut rx2).await;
    wait_for_parked(&a, "both leaders waiting on their nodes", 2).await;
    let woken = latch_waits(&a).woken;

    // A decoy node next to a latch, deleted, wakes nobody.
    let raw = f.raw_client().await;
    let open = tenure_zookeeper::zk::CreateMode::Persistent
        .with_acls(tenure_zookeeper::zk::Acls::anyone_all());
    let decoy = format!("{}-decoy", t1.lock());
    raw.create(&decoy, &[], &open).await.unwrap();
    raw.delete(&decoy, None).await.unwrap();

    // The first latch's node deleted by someone: only its leader is woken, revoked and
    // granted again; the other latch holds.
    raw.delete(t1.lock(), None).await.unwrap();
    assert_eq!(next_event(&mut rx1).await, LatchEvent::Revoked);
    granted(&mut rx1).await;
    wait_for_parked(&a, "both leaders waiting again", 2).await;
    assert_eq!(latch_waits(&a).woken, woken + 1, "one wait woken");
    assert!(rx2.try_recv().is_err(), "the other latch holds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_leaving_while_it_waits_leaves_no_wait_behind() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    let b = f.connect_zk().await;
    let (tx_a, mut rx_a) = mpsc::unbounded_channel();
    let _leader = a.join_latch("leader/latch", tx_a).await.unwrap();
    granted(&mut rx_a).await;
    // b joins and leaves again and again while a's node, which it waits on, stays.
    for _ in 0..3 {
        let (tx_b, _rx_b) = mpsc::unbounded_channel();
        let latch_b = b.join_latch("leader/latch", tx_b).await.unwrap();
        wait_for_parked(&b, "b waiting on a's node", 1).await;
        latch_b.close().await.unwrap();
        wait_for_parked(&b, "b's wait forgotten with its participation", 0).await;
    }
    assert_eq!(
        latch_waits(&b).woken,
        0,
        "nothing woke b: its waits were forgotten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaders_wait_set_at_its_create_sees_its_node_deleted() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    // The first latch of the session starts the watch of the root `leader`.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let first = a.join_latch("leader/latch", tx).await.unwrap();
    granted(&mut rx).await;
    wait_for_parked(&a, "the first leader waiting", 1).await;
    first.close().await.unwrap();
    wait_for_parked(&a, "its wait gone", 0).await;
    // A node created now is watched from its creation: the leader's wait needs no read.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _latch = a.join_latch("leader/other", tx).await.unwrap();
    let t1 = granted(&mut rx).await;
    wait_for_parked(&a, "the leader waiting on its node", 1).await;
    let raw = f.raw_client().await;
    raw.delete(t1.lock(), None).await.unwrap();
    assert_eq!(next_event(&mut rx).await, LatchEvent::Revoked);
    let t2 = granted(&mut rx).await;
    assert!(t2.epoch() > t1.epoch());
}
