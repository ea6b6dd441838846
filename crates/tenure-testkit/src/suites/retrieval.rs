//! Leader retrieval conformance.

use std::sync::Arc;

use tenure_core::driver::HaBackend;
use tenure_core::election::{ElectionService, LeaderElection, LeaderTerm};
use tenure_core::ids::{ComponentId, JobId};
use tenure_core::layout::Layout;
use tenure_core::retrieval::{DEFAULT_LEADER_ID, LeaderRetriever, LeaderState};

use tokio::sync::watch;

use super::election::wait_leader;
use crate::{BackendFactory, DEADLINE, wait_for};

fn service(backend: &Arc<dyn HaBackend>) -> ElectionService {
    let layout = Layout::default();
    ElectionService::new(backend.clone(), layout, layout.cluster_latch())
}

/// A retriever in another process shows no leader, then the leader, then the next leader.
pub async fn retriever_follows_leader_changes(f: &dyn BackendFactory) {
    let observer = f.connect().await;
    let r = LeaderRetriever::start(
        observer.clone(),
        Layout::default(),
        ComponentId::Dispatcher,
        None,
    );
    let mut rx = r.leader();
    wait_for(&mut rx, "no leader", DEADLINE, |s| {
        *s == LeaderState::NoLeader
    })
    .await;

    let a = f.connect().await;
    let b = f.connect().await;
    let (ea, ta) = confirmed_dispatcher(&a, "a:1").await;
    wait_retrieved(&mut rx, "a:1", &ta).await;
    let (_eb, tb) = take_over(ea, &b, "b:1").await;
    wait_retrieved(&mut rx, "b:1", &tb).await;
}

/// A dispatcher election of `backend`'s process, granted and confirmed at `address`.
pub(crate) async fn confirmed_dispatcher(
    backend: &Arc<dyn HaBackend>,
    address: &str,
) -> (LeaderElection, LeaderTerm) {
    let e = service(backend)
        .register(ComponentId::Dispatcher)
        .await
        .expect("register");
    let term = wait_leader(&mut e.leadership()).await;
    e.confirm(term.session_id, address).await.expect("confirm");
    (e, term)
}

/// `backend`'s process takes the dispatcher over from `leader`: it registers, `leader` stops,
/// it is granted and confirms `address`.
pub(crate) async fn take_over(
    leader: LeaderElection,
    backend: &Arc<dyn HaBackend>,
    address: &str,
) -> (LeaderElection, LeaderTerm) {
    let e = service(backend)
        .register(ComponentId::Dispatcher)
        .await
        .expect("register");
    leader.stop().await.expect("stop the leader");
    let term = wait_leader(&mut e.leadership()).await;
    e.confirm(term.session_id, address).await.expect("confirm");
    (e, term)
}

/// Waits until `rx` shows the leader of `term` at `address`.
pub(crate) async fn wait_retrieved(
    rx: &mut watch::Receiver<LeaderState>,
    address: &str,
    term: &LeaderTerm,
) {
    wait_for(rx, &format!("leader {address}"), DEADLINE, |s| {
        s.leader()
            .is_some_and(|l| l.address == address && l.session_id == term.session_id)
    })
    .await;
}

/// A job master retriever with a default address shows it until a leader is published.
pub async fn job_master_retriever_uses_default_address(f: &dyn BackendFactory) {
    let job = ComponentId::JobMaster(JobId::new_random());
    let observer = f.connect().await;
    let r = LeaderRetriever::start(
        observer.clone(),
        Layout::default(),
        job.clone(),
        Some("jm:6123".into()),
    );
    let mut rx = r.leader();
    wait_for(&mut rx, "default address", DEADLINE, |s| {
        *s == LeaderState::Leader {
            address: "jm:6123".into(),
            session_id: DEFAULT_LEADER_ID,
        }
    })
    .await;
    let a = f.connect().await;
    let e = service(&a).register(job.clone()).await.expect("register");
    let t = wait_leader(&mut e.leadership()).await;
    e.confirm(t.session_id, "jm:7000").await.expect("confirm");
    wait_for(&mut rx, "published job master", DEADLINE, |s| {
        s.leader().is_some_and(|l| l.address == "jm:7000")
    })
    .await;
}
