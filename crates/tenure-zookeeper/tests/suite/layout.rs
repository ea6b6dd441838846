//! What tenure writes to ZooKeeper is what Flink 2.x writes: paths, leader information bytes,
//! cleanup; plus the znode size limit and ACLs.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use tenure_core::codec::encode_leader_info;
use tenure_core::config::{Configuration, HaConfig, ZooKeeperAcl};
use tenure_core::election::ElectionService;
use tenure_core::ids::{ComponentId, JobId};
use tenure_core::kv::{CreateOptions, DeleteOptions, KvError, VersionedKv};
use tenure_core::layout::Layout;
use tenure_core::leader_info::LeaderInformation;
use tenure_testkit::DEADLINE;
use tenure_testkit::zookeeper::ZooKeeperFactory;
use tenure_zookeeper::{MAX_VALUE_BYTES, ZooKeeperBackend, ZooKeeperSettings, zk};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_information_is_flinks_exact_bytes_at_flinks_paths() {
    let f = ZooKeeperFactory::start().await;
    let backend = Arc::new(f.connect_zk().await);
    let layout = Layout::default();
    let service = ElectionService::new(backend.clone(), layout, layout.cluster_latch());
    let job = JobId::new_random();
    let mut dispatcher = service.register(ComponentId::Dispatcher).await.unwrap();
    let jm = service.register(ComponentId::JobMaster(job)).await.unwrap();
    let term = tokio::time::timeout(DEADLINE, dispatcher.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    let address = "pekko.tcp://flink@localhost:36123/user/rpc/dispatcher_1";
    assert!(dispatcher.confirm(term.session_id, address).await.unwrap());
    assert!(
        jm.confirm(
            term.session_id,
            "pekko.tcp://flink@localhost:36123/user/rpc/jobmanager_2"
        )
        .await
        .unwrap()
    );

    let raw = f.raw_client().await;
    let ns = format!("/flink/{}", f.cluster_id());
    let (data, stat) = raw
        .get_data(&format!("{ns}/leader/dispatcher/connection_info"))
        .await
        .unwrap();
    let expected = encode_leader_info(&LeaderInformation::new(term.session_id, address));
    assert_eq!(data, expected, "Flink's writeUTF + java.util.UUID bytes");
    assert_eq!(
        stat.ephemeral_owner,
        backend.session_info().unwrap().id().0,
        "connection_info is ephemeral, owned by the leader's session"
    );
    // Flink 2.x names: job masters under `job-<id>`, one latch per process under leader/latch.
    let leaders = raw.list_children(&format!("{ns}/leader")).await.unwrap();
    assert!(leaders.contains(&format!("job-{job}")), "{leaders:?}");
    let latch = raw
        .list_children(&format!("{ns}/leader/latch"))
        .await
        .unwrap();
    assert_eq!(latch.len(), 1);
    assert!(
        latch[0].starts_with("_c_") && latch[0].ends_with("-latch-0000000000"),
        "{latch:?}"
    );
    assert_eq!(
        term.fencing_token.lock(),
        format!("{ns}/leader/latch/{}", latch[0]),
        "/flink/<cluster>/leader/latch/_c_…-latch-0000000000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_follows_flinks_root_and_cluster_id() {
    let f = ZooKeeperFactory::start().await;
    let c = Configuration::from_pairs([
        ("high-availability.type", "zookeeper"),
        ("high-availability.storageDir", "file:///tmp/unused"),
        (
            "high-availability.zookeeper.quorum",
            f.server().connect_string().as_str(),
        ),
        ("high-availability.zookeeper.path.root", "/flink-root/"),
        ("high-availability.cluster-id", "/peer1/"),
        ("high-availability.zookeeper.client.session-timeout", "4 s"),
    ]);
    let ha = HaConfig::from_configuration(&c).unwrap();
    let b = ZooKeeperBackend::from_config(&ha).await.unwrap();
    assert_eq!(b.namespace(), "/flink-root/peer1");
    b.create(
        "leader/x",
        Bytes::from_static(b"1"),
        CreateOptions::default(),
    )
    .await
    .unwrap();
    let raw = f.raw_client().await;
    assert!(
        raw.check_stat("/flink-root/peer1/leader/x")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_empty_dataless_namespace_node_is_removed_never_its_parents() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    let other = f
        .connect_with(ZooKeeperSettings::new(
            f.server().connect_string(),
            "/flink",
            "other-cluster",
        ))
        .await;
    a.create("leader", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    let raw = f.raw_client().await;
    let ns = format!("/flink/{}", f.cluster_id());

    assert!(
        a.remove_empty_namespace().await.unwrap().is_empty(),
        "a child is left"
    );
    a.delete("leader", DeleteOptions::default()).await.unwrap();
    assert_eq!(a.remove_empty_namespace().await.unwrap(), vec![ns.clone()]);
    assert!(raw.check_stat(&ns).await.unwrap().is_none());
    assert!(
        raw.check_stat("/flink").await.unwrap().is_some(),
        "the root stays"
    );

    // A namespace node holding data is not ours to remove.
    other
        .create("k", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    other.delete("k", DeleteOptions::default()).await.unwrap();
    raw.set_data("/flink/other-cluster", b"13 bytes here", None)
        .await
        .unwrap();
    assert!(other.remove_empty_namespace().await.unwrap().is_empty());
    assert!(
        raw.check_stat("/flink/other-cluster")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_implicit_parents_with_empty_values() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    a.create("a/b/c", Bytes::from_static(b"v"), CreateOptions::default())
        .await
        .unwrap();
    let listed: Vec<(String, Bytes)> = a
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("a".to_owned(), Bytes::new()),
            ("a/b".to_owned(), Bytes::new()),
            ("a/b/c".to_owned(), Bytes::from_static(b"v")),
        ]
    );
    let err = a.delete("a", DeleteOptions::default()).await.unwrap_err();
    assert!(
        matches!(err, KvError::NotEmpty { ref key } if key == "a"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_above_the_znode_limit_are_refused_before_sending() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    let at_limit = Bytes::from(vec![7u8; MAX_VALUE_BYTES]);
    let key = format!("big/{}", "k".repeat(200));
    a.create(&key, at_limit.clone(), CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(a.get(&key).await.unwrap().unwrap().value, at_limit);
    let too_big = Bytes::from(vec![7u8; MAX_VALUE_BYTES + 1]);
    let err = a
        .create("big/2", too_big.clone(), CreateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, KvError::TooLarge { ref key, size, limit } if key == "big/2" && size == MAX_VALUE_BYTES + 1 && limit == MAX_VALUE_BYTES),
        "{err}"
    );
    let v = a.get(&key).await.unwrap().unwrap().version;
    let err = a.compare_and_set(&key, too_big, v, None).await.unwrap_err();
    assert!(matches!(err, KvError::TooLarge { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creator_acl_with_digest_keeps_other_identities_out() {
    let f = ZooKeeperFactory::start().await;
    let settings = f
        .settings()
        .with_acl(ZooKeeperAcl::Creator, Some("tenure:secret".to_owned()));
    let a = f.connect_with(settings.clone()).await;
    a.create(
        "secured/k",
        Bytes::from_static(b"v"),
        CreateOptions::default(),
    )
    .await
    .unwrap();
    // The same identity in another session reads it.
    let b = f.connect_with(settings).await;
    assert_eq!(
        b.get("secured/k").await.unwrap().unwrap().value,
        Bytes::from_static(b"v")
    );
    // Anyone else is refused by the ACL.
    let raw = f.raw_client().await;
    let path = a.znode_path("secured/k").unwrap();
    assert_eq!(raw.get_data(&path).await.unwrap_err(), zk::Error::NoAuth);
    let (acl, _) = a.client().unwrap().get_acl(&path).await.unwrap();
    assert!(
        !acl.is_empty() && acl.iter().all(|a| a.scheme() == "digest"),
        "{acl:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_settings_fail_at_start_up_naming_the_key() {
    let s = ZooKeeperSettings::new("host:notaport", "/flink", "c");
    let err = ZooKeeperBackend::connect(s).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("high-availability.zookeeper.quorum"),
        "{err}"
    );
}
