//! `high-availability.zookeeper.path.jobgraphs`: a Flink 1.x cluster's job graphs are read and
//! written in the znode the key names, a `jobgraphs` znode beside it is left alone, and cleanup
//! removes the configured directory only.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use tenure_core::config::{Configuration, HaConfig};
use tenure_core::ids::JobId;
use tenure_core::services::{HaServices, HaServicesOptions};
use tenure_testkit::zookeeper::ZooKeeperFactory;
use tenure_zookeeper::{ZooKeeperBackend, zk};

async fn services(f: &ZooKeeperFactory, storage: &tempfile::TempDir) -> HaServices {
    let quorum = f.server().connect_string();
    let storage = format!("file://{}", storage.path().display());
    let c = Configuration::from_pairs([
        ("high-availability.storageDir", storage.as_str()),
        ("high-availability.type", "zookeeper"),
        ("high-availability.zookeeper.quorum", quorum.as_str()),
        ("high-availability.cluster-id", f.cluster_id()),
        ("high-availability.tenure.flink-naming", "1"),
        (
            "high-availability.zookeeper.path.jobgraphs",
            "/submitted-graphs/",
        ),
        ("high-availability.zookeeper.client.session-timeout", "10 s"),
    ]);
    let ha = HaConfig::from_configuration(&c).unwrap();
    assert_eq!(ha.zookeeper.job_graphs_path, "submitted-graphs");
    let backend = ZooKeeperBackend::from_config(&ha).await.unwrap();
    HaServices::new(
        Arc::new(backend),
        HaServicesOptions::from_config(&ha).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_graphs_live_where_path_jobgraphs_says_and_a_decoy_is_untouched() {
    let f = ZooKeeperFactory::start().await;
    let ns = format!("/flink/{}", f.cluster_id());
    let raw = f.raw_client().await;
    // A Flink 1.x process of the same cluster wrote a graph into the configured directory;
    // something else keeps a `jobgraphs` znode beside it.
    let flinks = JobId::new_random();
    let decoy = JobId::new_random();
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    raw.mkdir(&format!("{ns}/submitted-graphs"), &open)
        .await
        .unwrap();
    raw.create(
        &format!("{ns}/submitted-graphs/{flinks}"),
        b"flink-graph",
        &open,
    )
    .await
    .unwrap();
    raw.mkdir(&format!("{ns}/jobgraphs/{decoy}"), &open)
        .await
        .unwrap();

    let storage = tempfile::tempdir().unwrap();
    let ha = services(&f, &storage).await;
    let graphs = ha.admin_stores().job_graphs();
    assert_eq!(graphs.job_ids().await.unwrap(), vec![flinks]);

    // A graph tenure writes goes to the same directory, with its lock.
    let ours = JobId::new_random();
    graphs
        .put(ours, Bytes::from_static(b"tenure-graph"))
        .await
        .unwrap();
    assert!(
        raw.check_stat(&format!("{ns}/submitted-graphs/{ours}/locks"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        graphs.get(ours).await.unwrap(),
        Some(Bytes::from_static(b"tenure-graph"))
    );
    let mut ids = graphs.job_ids().await.unwrap();
    ids.sort();
    let mut expected = vec![flinks, ours];
    expected.sort();
    assert_eq!(ids, expected);

    // Cleanup removes the cluster's data and keeps the znode it cannot claim.
    ha.close_and_cleanup_all_data().await.unwrap();
    assert!(
        raw.check_stat(&format!("{ns}/submitted-graphs"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        raw.check_stat(&format!("{ns}/jobgraphs/{decoy}"))
            .await
            .unwrap()
            .is_some(),
        "the decoy is not this configuration's job graph directory"
    );
}

#[test]
fn a_nested_or_taken_directory_is_refused_naming_the_key() {
    for bad in ["/a/b", "/leader", "execution-plans", "/"] {
        let c = Configuration::from_pairs([
            ("high-availability.type", "zookeeper"),
            ("high-availability.zookeeper.quorum", "127.0.0.1:2181"),
            ("high-availability.zookeeper.path.jobgraphs", bad),
        ]);
        let err = HaConfig::from_configuration(&c).unwrap_err().to_string();
        assert!(
            err.contains("high-availability.zookeeper.path.jobgraphs"),
            "{bad:?}: {err}"
        );
    }
}
