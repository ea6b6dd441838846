//! Conformance of elections by name (`HaServices::election("my-cron")`): handover, retrieval by
//! name, refused names, independence from the process-wide election, and cleanup.

use tenure_core::election::{ElectionError, LeaderElection, LeaderTerm, Leadership};
use tenure_core::ids::{ComponentId, IdError};
use tenure_core::layout::Layout;
use tenure_core::retrieval::LeaderRetriever;
use tenure_core::services::HaServices;

use super::election::wait_leader;
use super::stores::Processes;
use crate::{BackendFactory, DEADLINE, wait_for};

/// The service every case elects.
const NAME: &str = "my-cron";

async fn elect(p: &HaServices, who: &str) -> LeaderElection {
    p.election(NAME)
        .await
        .unwrap_or_else(|e| panic!("{who}: election({NAME:?}): {e}"))
}

async fn follows(r: &LeaderRetriever, address: &str, term: &LeaderTerm) {
    let mut rx = r.leader();
    wait_for(
        &mut rx,
        &format!("{NAME} led at {address}"),
        DEADLINE,
        |s| {
            s.leader()
                .is_some_and(|l| l.address == address && l.session_id == term.session_id)
        },
    )
    .await;
}

/// Two processes elect `my-cron`: one leads; the other takes over when it stops; a retriever
/// by name in a third process follows both; the leader information is at
/// `leader/my-cron/connection_info`.
pub async fn named_election_hands_over_and_is_retrieved(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let (a, b, observer) = (
        procs.start().await,
        procs.start().await,
        procs.start().await,
    );
    let retriever = observer.retriever(NAME).expect("retriever");
    assert_eq!(
        retriever.component(),
        ComponentId::parse(NAME).expect("name")
    );

    let ea = elect(&a, "a").await;
    let ta = wait_leader(&mut ea.leadership()).await;
    assert!(ea.confirm(ta.session_id, "a:1").await.expect("confirm a"));
    let eb = elect(&b, "b").await;
    assert!(matches!(eb.current(), Leadership::NotLeader));
    follows(&retriever, "a:1", &ta).await;
    let key = Layout::default().leader_info(&retriever.component());
    assert_eq!(key, "leader/my-cron/connection_info");
    assert!(
        observer.kv().get(&key).await.expect("get").is_some(),
        "{key} is published"
    );

    ea.stop().await.expect("stop a");
    let tb = wait_leader(&mut eb.leadership()).await;
    assert_ne!(ta.session_id, tb.session_id);
    assert!(eb.confirm(tb.session_id, "b:1").await.expect("confirm b"));
    follows(&retriever, "b:1", &tb).await;
    eb.stop().await.expect("stop b");
}

/// Names that are not service names are refused by both the election and the retriever, and
/// the error names the name.
pub async fn invalid_service_names_are_rejected(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let p = procs.start().await;
    for bad in ["My-Cron", "my_cron", "a/b", "", "latch", "dispatcher", "-x"] {
        match p.election(bad).await {
            Err(ElectionError::InvalidName(IdError::InvalidServiceName { name, .. })) => {
                assert_eq!(name, bad);
            }
            Err(other) => panic!("{bad:?}: wrong error {other}"),
            Ok(_) => panic!("{bad:?} was accepted"),
        }
        let Err(err) = p.retriever(bad) else {
            panic!("{bad:?} was accepted by the retriever")
        };
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    // Nothing was written for them.
    let keys: Vec<String> = p
        .kv()
        .list("leader")
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert!(keys.is_empty(), "{keys:?}");
}

/// A named election and the process-wide election do not interfere: the process leading the
/// cluster's latch does not lead `my-cron` by that, another process does, and each election's
/// leader information is its own.
pub async fn named_and_process_wide_elections_are_independent(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let (a, b, observer) = (
        procs.start().await,
        procs.start().await,
        procs.start().await,
    );
    let dispatcher_a = a.dispatcher_leader_election().await.expect("dispatcher a");
    let td = wait_leader(&mut dispatcher_a.leadership()).await;
    assert!(
        dispatcher_a
            .confirm(td.session_id, "a:dispatcher")
            .await
            .expect("confirm")
    );

    let named_b = elect(&b, "b").await;
    let tn = wait_leader(&mut named_b.leadership()).await;
    assert!(
        named_b
            .confirm(tn.session_id, "b:cron")
            .await
            .expect("confirm")
    );
    let dispatcher_b = b.dispatcher_leader_election().await.expect("dispatcher b");
    let named_a = elect(&a, "a").await;
    assert!(matches!(named_a.current(), Leadership::NotLeader));
    assert!(matches!(dispatcher_b.current(), Leadership::NotLeader));
    assert_ne!(td.fencing_token, tn.fencing_token);

    let cron = observer.retriever(NAME).expect("retriever");
    let dispatcher = observer.dispatcher_leader_retriever();
    follows(&cron, "b:cron", &tn).await;
    let mut rx = dispatcher.leader();
    wait_for(&mut rx, "dispatcher led by a", DEADLINE, |s| {
        s.leader()
            .is_some_and(|l| l.address == "a:dispatcher" && l.session_id == td.session_id)
    })
    .await;

    // Stopping the named election hands it to a and leaves both dispatcher contenders as they
    // were.
    named_b.stop().await.expect("stop named b");
    let tn2 = wait_leader(&mut named_a.leadership()).await;
    assert!(
        named_a
            .confirm(tn2.session_id, "a:cron")
            .await
            .expect("confirm")
    );
    follows(&cron, "a:cron", &tn2).await;
    assert!(dispatcher_a.has_leadership(td.session_id));
    assert!(matches!(dispatcher_b.current(), Leadership::NotLeader));
    named_a.stop().await.expect("stop named a");
    assert!(dispatcher_a.has_leadership(td.session_id));
    dispatcher_a.stop().await.expect("stop dispatcher a");
    dispatcher_b.stop().await.expect("stop dispatcher b");
}

/// A named service's leader data is the cluster's: `close_and_cleanup_all_data()` removes it
/// with the rest.
pub async fn named_leader_data_is_cleaned_up(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    let e = elect(&a, "a").await;
    let term = wait_leader(&mut e.leadership()).await;
    assert!(e.confirm(term.session_id, "a:1").await.expect("confirm"));
    drop(e);
    super::cleanup::assert_cleanup_leaves_no_key(f, &a).await;
}
