//! The suspended-connection policy on the embedded backend: revoke on suspension (default) or
//! tolerate it until the session is lost.

use std::sync::Arc;
use std::time::Duration;

use tenure_core::connection::{ConnectionState, SuspendedPolicy};
use tenure_core::election::{ElectionService, LeaderElection, Leadership};
use tenure_core::embedded::EmbeddedCluster;
use tenure_core::ids::ComponentId;
use tenure_core::layout::Layout;
use tenure_core::retrieval::{LeaderRetriever, LeaderState};

const DEADLINE: Duration = Duration::from_secs(10);

async fn contend(session: &tenure_core::embedded::EmbeddedSession) -> LeaderElection {
    let layout = Layout::default();
    ElectionService::new(Arc::new(session.clone()), layout, layout.cluster_latch())
        .register(ComponentId::Dispatcher)
        .await
        .expect("register")
}

async fn until(e: &LeaderElection, leader: bool) {
    let mut rx = e.leadership();
    tokio::time::timeout(DEADLINE, rx.wait_for(|l| l.term().is_some() == leader))
        .await
        .expect("in time")
        .expect("election alive");
}

#[tokio::test]
async fn suspension_revokes_by_default_and_the_next_contender_leads_after_reconnect() {
    let cluster = EmbeddedCluster::new();
    let a = cluster.connect();
    let b = cluster.connect();
    let ea = contend(&a).await;
    until(&ea, true).await;
    let eb = contend(&b).await;
    a.simulate_connection(ConnectionState::Suspended);
    until(&ea, false).await;
    // While a's session lives, its latch place blocks the line, as a live latch node does.
    assert!(matches!(eb.current(), Leadership::NotLeader));
    a.simulate_connection(ConnectionState::Connected);
    until(&eb, true).await;
    assert!(matches!(ea.current(), Leadership::NotLeader));
}

#[tokio::test]
async fn tolerated_suspension_keeps_leadership_until_the_session_is_lost() {
    let cluster = EmbeddedCluster::new();
    let a = cluster.connect_with_policy(SuspendedPolicy::TolerateSuspended);
    let b = cluster.connect();
    let ea = contend(&a).await;
    until(&ea, true).await;
    let term = ea.current().term().cloned().expect("leader");
    let eb = contend(&b).await;
    a.simulate_connection(ConnectionState::Suspended);
    a.simulate_connection(ConnectionState::Connected);
    assert!(
        ea.has_leadership(term.session_id),
        "kept through the suspension"
    );
    a.simulate_connection(ConnectionState::Lost);
    until(&ea, false).await;
    until(&eb, true).await;
}

#[tokio::test]
async fn a_suspended_retriever_shows_unknown_not_a_stale_leader() {
    let cluster = EmbeddedCluster::new();
    let leader = cluster.connect();
    let e = contend(&leader).await;
    until(&e, true).await;
    let t = e.current().term().cloned().expect("leader");
    e.confirm(t.session_id, "addr").await.expect("confirm");
    let observer = cluster.connect();
    let r = LeaderRetriever::start(
        Arc::new(observer.clone()),
        Layout::default(),
        ComponentId::Dispatcher,
        None,
    );
    let mut rx = r.leader();
    tokio::time::timeout(DEADLINE, rx.wait_for(|s| s.leader().is_some()))
        .await
        .expect("in time")
        .expect("alive");
    observer.simulate_connection(ConnectionState::Suspended);
    tokio::time::timeout(DEADLINE, rx.wait_for(|s| *s == LeaderState::Unknown))
        .await
        .expect("in time")
        .expect("alive");
    observer.simulate_connection(ConnectionState::Connected);
    tokio::time::timeout(DEADLINE, rx.wait_for(|s| s.leader().is_some()))
        .await
        .expect("re-read after reconnect")
        .expect("alive");
}
