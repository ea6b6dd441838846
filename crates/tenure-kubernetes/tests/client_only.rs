//! A client-only reader on the fake API server: it follows a leader change with GETs, lists and
//! watches by ConfigMap name only, creates no session ConfigMap, and session renewals of the
//! other processes never reach it.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tenure_core::driver::HaBackend;
use tenure_core::election::{ElectionService, LeaderElection};
use tenure_core::ids::ComponentId;
use tenure_core::kv::{CreateOptions, KvError, VersionedKv};
use tenure_core::layout::Layout;
use tenure_core::retrieval::LeaderRetriever;
use tenure_core::services::HaServicesOptions;
use tenure_core::services_client::ClientHaServices;
use tenure_kubernetes::KubernetesBackend;
use tenure_testkit::kube_fake::{KubernetesFactory, Resource, WatchStats};
use tenure_testkit::suites::election::wait_leader;
use tenure_testkit::{DEADLINE, wait_for, wait_until};

const CLIENT: &str = "(client-only)";
const PROCESS: &str = "(process)";

/// Starts `backend` campaigning for the dispatcher, waits for the grant and confirms `address`.
async fn lead(backend: &KubernetesBackend, address: &str) -> LeaderElection {
    let layout = Layout::default();
    let dynamic: Arc<dyn HaBackend> = Arc::new(backend.clone());
    let e = ElectionService::new(dynamic, layout, layout.cluster_latch())
        .register(ComponentId::Dispatcher)
        .await
        .unwrap();
    let t = wait_leader(&mut e.leadership()).await;
    e.confirm(t.session_id, address).await.unwrap();
    e
}

/// Client-only services on a new client-only backend.
async fn reader(f: &KubernetesFactory) -> (KubernetesBackend, ClientHaServices) {
    let backend = f.connect_client_k8s().await;
    let client = ClientHaServices::new(Arc::new(backend.clone()), HaServicesOptions::default());
    (backend, client)
}

async fn follow(retriever: &LeaderRetriever, address: &str) {
    let mut rx = retriever.leader();
    wait_for(&mut rx, address, DEADLINE, |s| {
        s.leader().is_some_and(|l| l.address == address)
    })
    .await;
}

fn session_cms(f: &KubernetesFactory) -> Vec<String> {
    f.server()
        .objects(Resource::ConfigMaps, &f.settings().namespace)
        .iter()
        .filter_map(|o| o.pointer("/metadata/name").and_then(|n| n.as_str()))
        .filter(|n| n.contains("-tenure-session-"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_only_reader_follows_a_leader_change_without_writing() {
    let f = KubernetesFactory::start().await;
    let a = f.connect_k8s().await;
    let b = f.connect_k8s().await;
    let ea = lead(&a, "a:1").await;
    let (reader, client) = reader(&f).await;
    let retriever = client.dispatcher_leader_retriever();
    follow(&retriever, "a:1").await;
    ea.stop().await.unwrap();
    let _eb = lead(&b, "b:1").await;
    follow(&retriever, "b:1").await;

    // Writes are refused before any request.
    let e = reader
        .create("x", Bytes::from_static(b"x"), CreateOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, KvError::Unauthorized { .. }), "{e}");
    let layout = Layout::default();
    let dynamic: Arc<dyn HaBackend> = Arc::new(reader.clone());
    match ElectionService::new(dynamic, layout, layout.cluster_latch())
        .register(ComponentId::Dispatcher)
        .await
    {
        Err(e) => assert!(e.to_string().contains("client-only"), "{e}"),
        Ok(mut election) => {
            let e = tokio::time::timeout(DEADLINE, election.next_error())
                .await
                .expect("the refused latch is reported in time")
                .expect("an error");
            assert!(e.to_string().contains("client-only"), "{e}");
            assert!(election.current().term().is_none());
        }
    }
    drop(retriever);
    client.close().await.unwrap();

    let served = f.server().served();
    let mine: Vec<_> = served
        .iter()
        .filter(|r| r.user_agent.contains(CLIENT))
        .collect();
    assert!(
        !mine.is_empty(),
        "no request carried the client-only user agent"
    );
    let writes: Vec<_> = mine.iter().filter(|r| r.writes()).collect();
    assert!(writes.is_empty(), "the reader wrote: {writes:?}");
    let cluster_cm = a.names().cluster_cm();
    for w in f.server().watches() {
        if w.watch.user_agent.contains(CLIENT) {
            assert_eq!(
                w.watch.field_selector,
                format!("metadata.name={cluster_cm}"),
                "a client-only watch not by name: {w:?}"
            );
        }
    }
    let sessions = session_cms(&f);
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(
        !sessions.contains(&a.names().session_cm(reader.session_id())),
        "the reader has a session ConfigMap"
    );
}

/// How long the idle cluster's watch events are counted.
const WINDOW: Duration = Duration::from_secs(2);
/// The default retry period (`high-availability.kubernetes.leader-election.retry-period`).
const DEFAULT_RETRY: Duration = Duration::from_secs(5);

/// Events per minute at the default retry period, from `n` events counted over [`WINDOW`] at
/// retry period `retry` (every source here changes once per retry period).
fn per_minute(n: u64, retry: Duration) -> f64 {
    let periods = WINDOW.as_secs_f64() / retry.as_secs_f64();
    n as f64 / periods * (60.0 / DEFAULT_RETRY.as_secs_f64())
}

/// Events a watch sent since `before`, split into (session ConfigMaps, others).
fn delta(now: &WatchStats, before: Option<&WatchStats>) -> (u64, u64) {
    let empty = BTreeMap::new();
    let old = before.map_or(&empty, |b| &b.by_object);
    let mut sessions = 0;
    let mut others = 0;
    for (name, n) in &now.by_object {
        let d = n - old.get(name).copied().unwrap_or(0);
        if name.contains("-tenure-session-") {
            sessions += d;
        } else {
            others += d;
        }
    }
    (sessions, others)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_renewals_never_reach_a_client_only_retriever() {
    let f = KubernetesFactory::start().await;
    let retry = f.settings().retry_period;
    let a = f.connect_k8s().await;
    let _b = f.connect_k8s().await;
    let _c = f.connect_k8s().await;
    let _ea = lead(&a, "a:1").await;
    let (_reader, client) = reader(&f).await;
    let retriever = client.dispatcher_leader_retriever();
    follow(&retriever, "a:1").await;
    let server = f.server();
    wait_until("the reader's watch is open", DEADLINE, || async {
        server
            .watches()
            .iter()
            .any(|w| w.watch.user_agent.contains(CLIENT))
    })
    .await;

    // A measurement, not a synchronisation: count what an idle cluster sends over the window.
    let before = f.server().watches();
    tokio::time::sleep(WINDOW).await;
    let after = f.server().watches();

    let mut client_events = (0, 0);
    let mut process_events = Vec::new();
    for (i, w) in after.iter().enumerate() {
        let d = delta(w, before.get(i));
        if w.watch.user_agent.contains(CLIENT) {
            client_events.0 += d.0;
            client_events.1 += d.1;
        } else if w.watch.user_agent.contains(PROCESS) {
            process_events.push(d);
        }
    }
    let process = process_events.iter().max().copied().unwrap_or_default();
    println!(
        "over {WINDOW:?} at retry period {retry:?} with 3 processes and an idle leader: \
         client-only retriever {} session + {} other events (~{:.0}/min at the default 5 s), \
         one full process {} session + {} other events (~{:.0}/min)",
        client_events.0,
        client_events.1,
        per_minute(client_events.0 + client_events.1, retry),
        process.0,
        process.1,
        per_minute(process.0 + process.1, retry),
    );
    assert_eq!(client_events.0, 0, "session renewals reached the reader");
    assert!(
        process.0 > 0,
        "the full processes' label watch saw no session renewal: {process_events:?}"
    );
    // The reader sees the leader's lease renewals of the cluster ConfigMap (one per retry
    // period), nothing more.
    let periods = (WINDOW.as_secs_f64() / retry.as_secs_f64()).ceil() as u64;
    assert!(
        client_events.1 <= periods + 2,
        "{} events over {periods} retry periods",
        client_events.1
    );
}
