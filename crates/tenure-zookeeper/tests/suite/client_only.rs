//! A client-only reader (`ClientHaServices` on a ZooKeeper session) follows a leader change and
//! leaves no trace on the server: the whole znode tree is unchanged by its connecting,
//! following and closing, and no ephemeral node is owned by its session.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use tenure_core::driver::HaBackend;
use tenure_core::election::ElectionService;
use tenure_core::ids::ComponentId;
use tenure_core::layout::Layout;
use tenure_core::services::HaServicesOptions;
use tenure_core::services_client::ClientHaServices;
use tenure_testkit::suites::election::wait_leader;
use tenure_testkit::zookeeper::{ZooKeeperFactory, four_letter_word};
use tenure_testkit::{DEADLINE, wait_for};
use tenure_zookeeper::zk;

/// Every znode of the server (but `/zookeeper`) with its creation, modification and child
/// zxids and its ephemeral owner.
async fn tree(c: &zk::Client) -> BTreeMap<String, (i64, i64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut todo = vec!["/".to_owned()];
    while let Some(path) = todo.pop() {
        let (children, stat) = match c.get_children(&path).await {
            Ok(r) => r,
            Err(zk::Error::NoNode) => continue,
            Err(e) => panic!("listing {path}: {e}"),
        };
        out.insert(
            path.clone(),
            (stat.czxid, stat.mzxid, stat.pzxid, stat.ephemeral_owner),
        );
        for child in children {
            let p = if path == "/" {
                format!("/{child}")
            } else {
                format!("{path}/{child}")
            };
            if p != "/zookeeper" {
                todo.push(p);
            }
        }
    }
    out
}

/// The part of the server's `dump` listing the sessions that own ephemeral nodes (between
/// `ephemeral nodes dump:` and `Connections dump:`).
async fn sessions_with_ephemerals(port: u16) -> String {
    let dump = four_letter_word(port, "dump").await.unwrap();
    let (_, rest) = dump
        .split_once("ephemeral nodes dump:")
        .expect("dump has an ephemeral nodes section");
    rest.split("Connections dump:")
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_only_reader_creates_no_znode_and_owns_no_ephemeral() {
    let f = ZooKeeperFactory::start().await;
    let layout = Layout::default();
    let raw = f.raw_client().await;
    let a: Arc<dyn HaBackend> = Arc::new(f.connect_zk().await);
    let b: Arc<dyn HaBackend> = Arc::new(f.connect_zk().await);
    let service = |backend: &Arc<dyn HaBackend>| {
        ElectionService::new(backend.clone(), layout, layout.cluster_latch())
    };
    let ea = service(&a).register(ComponentId::Dispatcher).await.unwrap();
    let ta = wait_leader(&mut ea.leadership()).await;
    ea.confirm(ta.session_id, "a:1").await.unwrap();
    let before = tree(&raw).await;

    let reader = f.connect_zk().await;
    let reader_session = reader.session_info().unwrap().id().0;
    let client = ClientHaServices::new(Arc::new(reader.clone()), HaServicesOptions::default());
    let retriever = client.dispatcher_leader_retriever();
    let mut rx = retriever.leader();
    wait_for(&mut rx, "leader a", DEADLINE, |s| {
        s.leader().is_some_and(|l| l.address == "a:1")
    })
    .await;
    assert_eq!(
        tree(&raw).await,
        before,
        "connecting a reader and following a leader changed the znode tree"
    );

    let eb = service(&b).register(ComponentId::Dispatcher).await.unwrap();
    ea.stop().await.unwrap();
    let tb = wait_leader(&mut eb.leadership()).await;
    eb.confirm(tb.session_id, "b:1").await.unwrap();
    wait_for(&mut rx, "leader b", DEADLINE, |s| {
        s.leader()
            .is_some_and(|l| l.address == "b:1" && l.session_id == tb.session_id)
    })
    .await;

    let after = tree(&raw).await;
    let owned: Vec<&String> = after
        .iter()
        .filter(|(_, (_, _, _, owner))| *owner == reader_session)
        .map(|(p, _)| p)
        .collect();
    assert!(owned.is_empty(), "znodes owned by the reader: {owned:?}");
    let own = reader.client().unwrap().list_ephemerals("/").await.unwrap();
    assert!(own.is_empty(), "the reader's ephemerals: {own:?}");
    let dumped = sessions_with_ephemerals(f.server().port()).await;
    assert!(
        !dumped.contains(&format!("{reader_session:#x}")),
        "dump lists the reader's session with ephemerals: {dumped}"
    );

    drop(retriever);
    client.close().await.unwrap();
    assert_eq!(
        tree(&raw).await,
        after,
        "closing the reader changed the znode tree"
    );
}
