//! The etcd test servers: start, stop, restart, pause and resume by process id; a 3-node
//! cluster that keeps serving without one node.

use std::time::Duration;

use tenure_testkit::etcd::{EtcdCluster, EtcdServer};
use tenure_testkit::{DEADLINE, wait_until};

#[tokio::test]
async fn a_server_starts_stops_and_restarts_on_its_ports() {
    let mut s = EtcdServer::start().await;
    assert!(s.is_healthy().await);
    let pid = s.pid().expect("running");
    let endpoint = s.endpoint();
    s.stop();
    assert!(!s.is_running());
    assert!(!s.is_healthy().await);
    s.restart().await;
    assert!(s.is_running());
    assert_ne!(s.pid(), Some(pid));
    assert_eq!(s.endpoint(), endpoint);
    assert!(s.is_healthy().await);
}

#[tokio::test]
async fn a_paused_server_does_not_answer_until_resumed() {
    let s = EtcdServer::start().await;
    s.pause();
    assert!(!s.is_healthy().await, "a stopped process answered");
    s.resume();
    wait_until("the resumed node answers", DEADLINE, || s.is_healthy()).await;
}

#[tokio::test]
async fn servers_in_parallel_use_their_own_ports() {
    let (a, b) = tokio::join!(EtcdServer::start(), EtcdServer::start());
    assert_ne!(a.port(), b.port());
    assert!(a.is_healthy().await && b.is_healthy().await);
}

#[tokio::test]
async fn a_three_node_cluster_survives_one_node_and_takes_it_back() {
    let mut c = EtcdCluster::start(3).await;
    assert_eq!(c.endpoints().len(), 3);
    c.node_mut(0).stop();
    let (n1, n2) = (&c.nodes()[1], &c.nodes()[2]);
    wait_until("the other two nodes stay healthy", DEADLINE, || async {
        n1.is_healthy().await && n2.is_healthy().await
    })
    .await;
    tokio::time::timeout(DEADLINE + Duration::from_secs(30), c.node_mut(0).restart())
        .await
        .expect("the node rejoined in time");
    assert!(c.nodes()[0].is_healthy().await);
}
