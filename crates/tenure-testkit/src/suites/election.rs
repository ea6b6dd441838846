//! Leader election conformance: grants, fresh sessions, handover, fencing, confirmations.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tenure_core::driver::HaBackend;
use tenure_core::election::{
    ElectionError, ElectionService, LeaderContender, LeaderElection, LeaderTerm, Leadership,
};
use tenure_core::ids::{ComponentId, JobId, LeaderSessionId};
use tenure_core::kv::{CreateOptions, KvError};
use tenure_core::layout::Layout;
use tenure_core::retrieval::{LeaderRetriever, LeaderState};
use tokio::sync::{mpsc, watch};

use crate::{BackendFactory, DEADLINE, wait_for};

fn cluster_service(backend: &Arc<dyn HaBackend>) -> ElectionService {
    let layout = Layout::default();
    ElectionService::new(backend.clone(), layout, layout.cluster_latch())
}

/// Registers `component` on `backend`'s process-wide election.
async fn contend(
    backend: &Arc<dyn HaBackend>,
    component: ComponentId,
    who: &str,
) -> LeaderElection {
    cluster_service(backend)
        .register(component)
        .await
        .unwrap_or_else(|e| panic!("{who}: register: {e}"))
}

async fn leader(e: &mut LeaderElection) -> LeaderTerm {
    tokio::time::timeout(DEADLINE, e.wait_for_leadership())
        .await
        .expect("granted in time")
        .expect("election works")
}

async fn retriever_sees(
    backend: &Arc<dyn HaBackend>,
    component: ComponentId,
    address: &str,
    session: LeaderSessionId,
) {
    let r = LeaderRetriever::start(backend.clone(), Layout::default(), component.clone(), None);
    let mut rx = r.leader();
    wait_for(&mut rx, &format!("{component} leader {address}"), DEADLINE, |s| {
        matches!(s, LeaderState::Leader { address: a, session_id } if a == address && *session_id == session)
    })
    .await;
}

/// A single contender is granted, confirms, and another process retrieves its information.
pub async fn single_contender_is_granted_and_published(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let service = cluster_service(&a);
    let mut e = service
        .register(ComponentId::Dispatcher)
        .await
        .expect("register");
    let term = leader(&mut e).await;
    assert!(e.has_leadership(term.session_id));
    assert!(e.confirm(term.session_id, "addr-a").await.expect("confirm"));
    let other = f.connect().await;
    retriever_sees(&other, ComponentId::Dispatcher, "addr-a", term.session_id).await;
}

/// Every term has a new session id; the old one no longer has leadership.
pub async fn fresh_session_id_every_term(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let service = cluster_service(&a);
    let mut e1 = service
        .register(ComponentId::Dispatcher)
        .await
        .expect("register");
    let t1 = leader(&mut e1).await;
    let checker = e1.confirmer();
    e1.stop().await.expect("stop");
    assert!(t1.is_over());
    assert!(!checker.has_leadership(t1.session_id));
    let mut e2 = service
        .register(ComponentId::Dispatcher)
        .await
        .expect("register again");
    let t2 = leader(&mut e2).await;
    assert_ne!(t1.session_id, t2.session_id);
    assert!(e2.has_leadership(t2.session_id));
    assert!(!e2.has_leadership(t1.session_id));
}

/// A leader that stops hands leadership to the next contender, whose information replaces its.
pub async fn stopping_leader_hands_over(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let b = f.connect().await;
    let mut ea = contend(&a, ComponentId::ResourceManager, "a").await;
    let ta = leader(&mut ea).await;
    ea.confirm(ta.session_id, "addr-a")
        .await
        .expect("confirm a");
    let mut eb = contend(&b, ComponentId::ResourceManager, "b").await;
    assert!(matches!(eb.current(), Leadership::NotLeader));
    ea.stop().await.expect("stop a");
    let tb = leader(&mut eb).await;
    assert_ne!(ta.session_id, tb.session_id);
    assert!(
        eb.confirm(tb.session_id, "addr-b")
            .await
            .expect("confirm b")
    );
    let observer = f.connect().await;
    retriever_sees(
        &observer,
        ComponentId::ResourceManager,
        "addr-b",
        tb.session_id,
    )
    .await;
}

/// A leader whose process crashes is replaced; its leader information goes with its session.
pub async fn crashed_leader_hands_over(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let b = f.connect().await;
    let mut ea = contend(&a, ComponentId::Dispatcher, "a").await;
    let ta = leader(&mut ea).await;
    ea.confirm(ta.session_id, "addr-a")
        .await
        .expect("confirm a");
    let mut eb = contend(&b, ComponentId::Dispatcher, "b").await;
    f.crash(&a).await;
    let tb = leader(&mut eb).await;
    assert_ne!(ta.session_id, tb.session_id);
    eb.confirm(tb.session_id, "addr-b")
        .await
        .expect("confirm b");
    retriever_sees(&b, ComponentId::Dispatcher, "addr-b", tb.session_id).await;
}

/// A deposed leader (alive, still connected) cannot write with its old term.
pub async fn deposed_leader_cannot_write(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let b = f.connect().await;
    let mut ea = contend(&a, ComponentId::Dispatcher, "a").await;
    let ta = leader(&mut ea).await;
    let mut eb = contend(&b, ComponentId::Dispatcher, "b").await;
    ea.stop().await.expect("stop a");
    let tb = leader(&mut eb).await;
    let opts = CreateOptions {
        fence: Some(ta.fencing_token.clone()),
        ..Default::default()
    };
    let err = a
        .kv()
        .create("deposed", Bytes::from_static(b"x"), opts)
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    assert!(b.kv().get("deposed").await.expect("get").is_none());
    let ok = CreateOptions {
        fence: Some(tb.fencing_token),
        ..Default::default()
    };
    b.kv()
        .create("current", Bytes::from_static(b"x"), ok)
        .await
        .expect("leader writes");
}

/// A confirmation with a stale session id publishes nothing.
pub async fn stale_confirm_is_ignored(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let b = f.connect().await;
    let sa = cluster_service(&a);
    let mut ea = sa.register(ComponentId::RestServer).await.expect("a");
    let ta = leader(&mut ea).await;
    let mut eb = contend(&b, ComponentId::RestServer, "b").await;
    ea.stop().await.expect("stop a");
    let tb = leader(&mut eb).await;
    eb.confirm(tb.session_id, "http://b")
        .await
        .expect("confirm b");
    // Process a contends again and tries to confirm with its old session.
    let ea2 = sa.register(ComponentId::RestServer).await.expect("a again");
    assert!(
        !ea2.confirm(ta.session_id, "http://stale")
            .await
            .expect("confirm")
    );
    let observer = f.connect().await;
    retriever_sees(
        &observer,
        ComponentId::RestServer,
        "http://b",
        tb.session_id,
    )
    .await;
}

/// One process-wide election grants every component the same session; each confirms its own
/// address.
pub async fn process_wide_election_grants_every_component(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let service = cluster_service(&a);
    let job = JobId::new_random();
    let components = [
        ComponentId::ResourceManager,
        ComponentId::Dispatcher,
        ComponentId::RestServer,
        ComponentId::JobMaster(job),
    ];
    let mut elections = Vec::new();
    for c in &components {
        elections.push(service.register(c.clone()).await.expect("register"));
    }
    let mut sessions = Vec::new();
    for e in &mut elections {
        let t = leader(e).await;
        sessions.push(t.session_id);
        assert!(
            e.confirm(t.session_id, format!("addr-{}", e.component()))
                .await
                .expect("confirm")
        );
    }
    assert!(
        sessions.windows(2).all(|w| w[0] == w[1]),
        "one session for all: {sessions:?}"
    );
    let observer = f.connect().await;
    for c in components {
        let address = format!("addr-{c}");
        retriever_sees(&observer, c, &address, sessions[0]).await;
    }
}

/// Per-component elections are separate latches: different processes can lead them.
pub async fn per_component_elections_are_independent(f: &dyn BackendFactory) {
    let layout = Layout::default();
    let a = f.connect().await;
    let b = f.connect().await;
    let job1 = ComponentId::JobMaster(JobId::new_random());
    let job2 = ComponentId::JobMaster(JobId::new_random());
    let sa = ElectionService::new(a.clone(), layout, layout.component_latch(&job1));
    let sb = ElectionService::new(b.clone(), layout, layout.component_latch(&job2));
    let mut ea = sa.register(job1).await.expect("a");
    let mut eb = sb.register(job2).await.expect("b");
    let ta = leader(&mut ea).await;
    let tb = leader(&mut eb).await;
    assert_ne!(ta.fencing_token, tb.fencing_token);
    assert!(ea.confirm(ta.session_id, "a").await.expect("confirm a"));
    assert!(eb.confirm(tb.session_id, "b").await.expect("confirm b"));
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    tx: Mutex<Option<mpsc::UnboundedSender<String>>>,
}

impl Recorder {
    fn push(&self, s: String) {
        if let Ok(mut ev) = self.events.lock() {
            ev.push(s.clone());
        }
        if let Ok(tx) = self.tx.lock()
            && let Some(tx) = tx.as_ref()
        {
            let _ = tx.send(s);
        }
    }
}

impl LeaderContender for Recorder {
    fn grant_leadership(&self, session: LeaderSessionId) {
        self.push(format!("grant {session}"));
    }
    fn revoke_leadership(&self) {
        self.push("revoke".into());
    }
    fn handle_error(&self, error: ElectionError) {
        self.push(format!("error {error}"));
    }
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("event in time")
        .expect("contender alive")
}

/// The callback API sees grant, then revoke when the contender stops; confirmation works from
/// inside the callbacks' world.
pub async fn contender_callbacks_follow_leadership(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let rec = Arc::new(Recorder {
        tx: Mutex::new(Some(tx)),
        ..Default::default()
    });
    let e = contend(&a, ComponentId::Dispatcher, "register").await;
    let handle = e.run_contender(rec.clone());
    let granted = next_event(&mut rx).await;
    let session: LeaderSessionId = granted
        .strip_prefix("grant ")
        .expect("grant first")
        .parse()
        .expect("session id");
    assert!(handle.confirmer().has_leadership(session));
    assert!(
        handle
            .confirmer()
            .confirm(session, "cb")
            .await
            .expect("confirm")
    );
    handle.stop().await;
    assert_eq!(next_event(&mut rx).await, "revoke");
}

/// Errors of the backend reach the contender's `handle_error`.
pub async fn backend_errors_reach_handle_error(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let service = cluster_service(&a);
    a.close().await.expect("close session");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let rec = Arc::new(Recorder {
        tx: Mutex::new(Some(tx)),
        ..Default::default()
    });
    match service.register(ComponentId::Dispatcher).await {
        Ok(e) => {
            let _handle = e.run_contender(rec.clone());
            let ev = next_event(&mut rx).await;
            assert!(ev.starts_with("error "), "{ev}");
        }
        Err(err) => assert!(
            matches!(err, ElectionError::Closed | ElectionError::Backend(_)),
            "{err}"
        ),
    }
}

/// A leader whose session was closed under it can still be stopped: `stop()` returns, and the
/// term is over.
pub async fn stop_after_the_session_closed_returns(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let mut e = contend(&a, ComponentId::Dispatcher, "a").await;
    let term = leader(&mut e).await;
    a.close().await.expect("close session");
    let stopped = tokio::time::timeout(DEADLINE, e.stop()).await;
    assert!(stopped.is_ok(), "stop() returned after the session closed");
    assert!(term.is_over(), "the term is over");
}

/// Waits until `rx` shows leadership (helper for other suites).
pub async fn wait_leader(rx: &mut watch::Receiver<Leadership>) -> LeaderTerm {
    let l = wait_for(rx, "leadership", DEADLINE, |l| l.term().is_some()).await;
    l.term().cloned().expect("leader")
}
