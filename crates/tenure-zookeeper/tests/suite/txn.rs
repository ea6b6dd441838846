//! Transactions and fencing against a real ZooKeeper: one `multi` per transaction, exact
//! fencing tokens.

#![allow(clippy::unwrap_used)]

use crate::common;

use bytes::Bytes;
use common::{granted, received};
use tenure_core::blob::BlobStore;
use tenure_core::driver::HaBackend;
use tenure_core::ids::JobId;
use tenure_core::kv::{CreateOptions, FencingToken, KvError, Txn, TxnOp, VersionedKv};
use tenure_core::layout::Layout;
use tenure_core::store::{JobGraphStore, PayloadCodec, Writes};
use tenure_testkit::zookeeper::{ZooKeeperFactory, test_settings};
use tokio::sync::mpsc;

fn create(key: &str) -> TxnOp {
    TxnOp::Create {
        key: key.into(),
        value: Bytes::from_static(b"v"),
        ephemeral: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_one_request_and_a_job_graph_put_one_write() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    // Parents exist already: the transaction is exactly one request. Pings of the session may
    // land between two readings, so the fewest seen over a few tries is the count.
    a.create("t/p", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    let mut fewest = u64::MAX;
    for i in 0..5 {
        let before = received(&f, &a).await;
        let txn = Txn::new(None)
            .op(create(&format!("t/p/{i}")))
            .op(TxnOp::CheckExists { key: "t/p".into() })
            .op(create(&format!("t/p/{i}/c")));
        a.txn(txn).await.unwrap();
        fewest = fewest.min(received(&f, &a).await - before);
    }
    assert_eq!(fewest, 1, "requests per transaction");

    let store = JobGraphStore::new(
        a.kv(),
        Layout::default(),
        PayloadCodec::new(BlobStore::in_memory()),
        "owner-a",
        Writes::Unfenced,
    )
    .unwrap();
    store
        .put(JobId::new_random(), Bytes::from_static(b"first"))
        .await
        .unwrap();
    let mut fewest = u64::MAX;
    for _ in 0..5 {
        let before = received(&f, &a).await;
        store
            .put(JobId::new_random(), Bytes::from_static(b"graph"))
            .await
            .unwrap();
        fewest = fewest.min(received(&f, &a).await - before);
    }
    // Two reads (this era's key and the other era's), then ONE multi for graph, locks and lock.
    assert_eq!(fewest, 3, "requests per job graph put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_other_namespaces_and_non_latch_nodes_are_refused() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    let other = f
        .connect_with(test_settings(
            f.server(),
            &format!("{}-other", f.cluster_id()),
        ))
        .await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _latch = other.join_latch("leader/latch", tx).await.unwrap();
    // A live latch node at version 0, but of another cluster's namespace.
    let foreign = granted(&mut rx).await;
    // A znode of this namespace with a well-formed latch name whose data was set: not a latch
    // node at version 0.
    let fake = "fake/_c_00000000-0000-0000-0000-000000000000-latch-0000000007";
    let v = a
        .create(fake, Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    a.compare_and_set(fake, Bytes::from_static(b"x"), v, None)
        .await
        .unwrap();
    let fake_path = format!("/flink/{}/{fake}", f.cluster_id());
    for token in [foreign, FencingToken::new(fake_path.as_str(), 7)] {
        let opts = CreateOptions {
            fence: Some(token.clone()),
            ..Default::default()
        };
        let err = a.create("w", Bytes::new(), opts).await.unwrap_err();
        assert!(matches!(err, KvError::NotLeader { .. }), "{token}: {err}");
        let err = a
            .txn(Txn::new(Some(token.clone())).op(create("w")))
            .await
            .unwrap_err();
        assert!(matches!(err, KvError::NotLeader { .. }), "{token}: {err}");
    }
    assert!(a.get("w").await.unwrap().is_none());
}

/// A leader of the process-wide election that stops removes its published leader information
/// and its latch node in one write: the node's delete fences the information's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_is_one_write_that_removes_information_and_node() {
    use std::sync::Arc;
    use tenure_core::election::ElectionService;
    use tenure_core::ids::ComponentId;

    let f = ZooKeeperFactory::start().await;
    let a = Arc::new(f.connect_zk().await);
    let layout = Layout::default();
    let service = ElectionService::new(a.clone(), layout, layout.cluster_latch());
    let mut fewest = u64::MAX;
    for _ in 0..3 {
        let mut e = service.register(ComponentId::Dispatcher).await.unwrap();
        let term = e.wait_for_leadership().await.unwrap();
        assert!(e.confirm(term.session_id, "addr").await.unwrap());
        let info = layout.leader_info(&ComponentId::Dispatcher);
        assert!(a.get(&info).await.unwrap().is_some());
        let before = received(&f, &a).await;
        e.stop().await.unwrap();
        fewest = fewest.min(received(&f, &a).await - before);
        assert!(a.get(&info).await.unwrap().is_none(), "information removed");
        assert!(
            a.get(&layout.leader_dir(&ComponentId::Dispatcher))
                .await
                .unwrap()
                .is_none(),
            "its directory removed"
        );
        assert!(
            a.list("leader/latch").await.unwrap().is_empty(),
            "the latch node removed"
        );
    }
    assert_eq!(fewest, 1, "requests per graceful stop");
}

/// Many per-job elections that confirm, are followed and stop leave nothing behind in the
/// session's driver: no election, no participation, no retrieval, no request in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_elections_and_dropped_retrievers_leave_nothing_in_the_driver() {
    use std::sync::Arc;
    use std::time::Duration;
    use tenure_core::election::ElectionService;
    use tenure_core::ids::ComponentId;
    use tenure_core::retrieval::{LeaderRetriever, LeaderState};

    let f = ZooKeeperFactory::start().await;
    let a = Arc::new(f.connect_zk().await);
    let layout = Layout::default();
    for _ in 0..20 {
        let job = ComponentId::JobMaster(JobId::new_random());
        let service = ElectionService::new(a.clone(), layout, layout.component_latch(&job));
        let mut e = service.register(job.clone()).await.unwrap();
        let term = e.wait_for_leadership().await.unwrap();
        assert!(e.confirm(term.session_id, "addr").await.unwrap());
        let retriever = LeaderRetriever::start(a.clone(), layout, job, None);
        let mut leader = retriever.leader();
        tokio::time::timeout(
            Duration::from_secs(10),
            leader.wait_for(|l| matches!(l, LeaderState::Leader { .. })),
        )
        .await
        .expect("the retriever sees the leader in time")
        .unwrap();
        drop(retriever);
        e.stop().await.unwrap();
    }
    let driver = a.driver().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = driver.stats().await.unwrap();
        if stats == tenure_core::driver::DriverStats::default() {
            break;
        }
        // A stopped leader's own-node watch fires with its delete; a dropped retriever's watch
        // is cancelled: both leave the driver soon after.
        assert!(
            tokio::time::Instant::now() < deadline,
            "the driver still holds {stats:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// The first publication of a process-wide election's component creates its leader directory
/// and the information in one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_publication_is_one_request() {
    use std::sync::Arc;
    use tenure_core::election::ElectionService;
    use tenure_core::ids::ComponentId;

    let f = ZooKeeperFactory::start().await;
    let a = Arc::new(f.connect_zk().await);
    let layout = Layout::default();
    let service = ElectionService::new(a.clone(), layout, layout.cluster_latch());
    let mut fewest = u64::MAX;
    for _ in 0..3 {
        let job = ComponentId::JobMaster(JobId::new_random());
        let mut e = service.register(job.clone()).await.unwrap();
        let term = e.wait_for_leadership().await.unwrap();
        assert!(a.get(&layout.leader_dir(&job)).await.unwrap().is_none());
        let before = received(&f, &a).await;
        assert!(e.confirm(term.session_id, "addr").await.unwrap());
        fewest = fewest.min(received(&f, &a).await - before);
        let info = a.get(&layout.leader_info(&job)).await.unwrap().unwrap();
        assert_eq!(info.ephemeral_owner, Some(a.session_id()));
        e.stop().await.unwrap();
    }
    assert_eq!(fewest, 1, "requests per first publication");
}
