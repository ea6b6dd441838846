//! The lease as the session on a 3-node cluster with one node down: the client keeps routing
//! some requests to the dead node (tonic's balanced channel counts its refused reconnects as
//! ready), yet renewals are tried on another endpoint, so the session never leaves `Connected`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tenure_core::connection::ConnectionState;
use tenure_core::driver::HaBackend;
use tenure_core::kv::VersionedKv;
use tenure_testkit::etcd::{EtcdCluster, test_settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_does_not_suspend_the_session() {
    let mut c = EtcdCluster::start(3).await;
    let ttl = Duration::from_secs(2);
    let settings = test_settings(c.endpoints(), "dead-node").with_lease_ttl(ttl);
    let a = tenure_etcd::EtcdBackend::connect(settings).await.unwrap();
    let leader = c.raft_leader_index().await;
    let mut state = a.connection_state();
    state.mark_unchanged();
    // Steady traffic, as a leader writing checkpoints makes: the balancer then sees the dead
    // node's failed reconnects come back as "ready" between requests.
    let reader = a.clone();
    let traffic = tokio::spawn(async move {
        loop {
            let _ = reader.get("k").await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    c.node_mut((leader + 1) % 3).stop();

    // Six renewals (one every TTL/3): each used to fail with a third's chance.
    let changed = tokio::time::timeout(ttl * 2, state.changed()).await;
    assert!(
        changed.is_err(),
        "the session changed to {:?} with one node of three down",
        *state.borrow()
    );
    assert_eq!(*state.borrow(), ConnectionState::Connected);
    assert_eq!(a.lease_generation(), 1);
    traffic.abort();
    a.close().await.unwrap();
}
