//! The lease as the session, on real etcd servers: suspended while etcd cannot be reached
//! inside the TTL and connected again with the same lease; a lost lease is replaced by a new
//! one; closing revokes it; a 3-node cluster serves on without one node.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use tenure_core::connection::ConnectionState;
use tenure_core::driver::HaBackend;
use tenure_core::kv::{CreateOptions, VersionedKv};
use tenure_testkit::etcd::{EtcdCluster, EtcdFactory, test_settings};
use tenure_testkit::{DEADLINE, wait_for, wait_until};

fn ephemeral() -> CreateOptions {
    CreateOptions {
        ephemeral: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_outage_suspends_and_the_same_lease_goes_on() {
    let mut f = EtcdFactory::start().await;
    let settings = f.settings().with_lease_ttl(Duration::from_secs(10));
    let a = f.connect_with(settings).await;
    a.create("e/a", Bytes::new(), ephemeral()).await.unwrap();
    let lease = a.lease_id();
    let mut state = a.connection_state();
    f.server_mut().stop();
    wait_for(&mut state, "suspended", DEADLINE, |s| {
        *s == ConnectionState::Suspended
    })
    .await;
    f.server_mut().restart().await;
    wait_for(&mut state, "connected again", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    assert_eq!(a.lease_id(), lease);
    assert_eq!(a.lease_generation(), 1);
    assert!(
        a.get("e/a").await.unwrap().is_some(),
        "the ephemeral key lives on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_gone_on_the_server_is_lost_and_replaced() {
    let f = EtcdFactory::start().await;
    let a = f.connect_etcd().await;
    let b = f.connect_etcd().await;
    a.create("e/a", Bytes::new(), ephemeral()).await.unwrap();
    let old = a.lease_id();
    let mut state = a.connection_state();
    // Someone else revokes a's lease (as an operator could).
    b.client().unwrap().lease_revoke(old).await.unwrap();
    wait_for(&mut state, "lost", DEADLINE, |s| {
        *s == ConnectionState::Lost
    })
    .await;
    wait_for(&mut state, "a new lease", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    assert_ne!(a.lease_id(), old);
    assert_eq!(a.lease_generation(), 2);
    assert!(b.get("e/a").await.unwrap().is_none());
    let v = a.create("e/a", Bytes::new(), ephemeral()).await.unwrap();
    let e = b.get("e/a").await.unwrap().unwrap();
    assert_eq!(
        (e.version, e.ephemeral_owner),
        (v, Some(a.lease_id() as u64))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_revokes_the_lease_at_once() {
    let f = EtcdFactory::start().await;
    let a = f.connect_etcd().await;
    let b = f.connect_etcd().await;
    a.create("e/a", Bytes::new(), ephemeral()).await.unwrap();
    a.close().await.unwrap();
    assert!(b.get("e/a").await.unwrap().is_none());
    assert!(
        a.get("e/a").await.is_err(),
        "a closed backend refuses requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_serves_without_one_node() {
    let mut c = EtcdCluster::start(3).await;
    let settings = test_settings(c.endpoints(), "three").with_lease_ttl(Duration::from_secs(5));
    let a = tenure_etcd::EtcdBackend::connect(settings).await.unwrap();
    a.create("k/1", Bytes::from_static(b"1"), ephemeral())
        .await
        .unwrap();
    c.node_mut(0).stop();
    wait_until("writes succeed with one node down", DEADLINE, || async {
        a.create("k/2", Bytes::new(), CreateOptions::default())
            .await
            .is_ok()
            || a.get("k/2").await.is_ok_and(|e| e.is_some())
    })
    .await;
    assert!(a.get("k/1").await.unwrap().is_some(), "the lease lived on");
}
