//! Leader retrieval conformance.

use std::sync::Arc;

use tenure_core::driver::HaBackend;
use tenure_core::election::ElectionService;
use tenure_core::ids::{ComponentId, JobId};
use tenure_core::layout::Layout;
use tenure_core::retrieval::{DEFAULT_LEADER_ID, LeaderRetriever, LeaderState};

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
    let ea = service(&a)
        .register(ComponentId::Dispatcher)
        .await
        .expect("a");
    let ta = wait_leader(&mut ea.leadership()).await;
    ea.confirm(ta.session_id, "a:1").await.expect("confirm");
    wait_for(&mut rx, "leader a", DEADLINE, |s| {
        s.leader()
            .is_some_and(|l| l.address == "a:1" && l.session_id == ta.session_id)
    })
    .await;

    let eb = service(&b)
        .register(ComponentId::Dispatcher)
        .await
        .expect("b");
    ea.stop().await.expect("stop a");
    let tb = wait_leader(&mut eb.leadership()).await;
    eb.confirm(tb.session_id, "b:1").await.expect("confirm");
    wait_for(&mut rx, "leader b", DEADLINE, |s| {
        s.leader()
            .is_some_and(|l| l.address == "b:1" && l.session_id == tb.session_id)
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
        job,
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
    let e = service(&a).register(job).await.expect("register");
    let t = wait_leader(&mut e.leadership()).await;
    e.confirm(t.session_id, "jm:7000").await.expect("confirm");
    wait_for(&mut rx, "published job master", DEADLINE, |s| {
        s.leader().is_some_and(|l| l.address == "jm:7000")
    })
    .await;
}
