//! Backend selection from configuration.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tenure::driver::HaBackend;
use tenure::embedded::EmbeddedCluster;
use tenure::ids::ComponentId;
use tenure::{BackendFactory, BackendRegistry, Configuration, HaConfig, HaError, HaMode};

#[tokio::test]
async fn none_mode_runs_the_embedded_backend() {
    let services = tenure::connect(&HaConfig::embedded())
        .await
        .expect("connect");
    assert_eq!(services.backend().kind(), "embedded");
    let e = services
        .leader_election(ComponentId::Dispatcher)
        .await
        .expect("election");
    let term = e
        .leadership()
        .wait_for(|l| l.term().is_some())
        .await
        .expect("granted")
        .term()
        .cloned();
    assert!(term.is_some());
    services.close().await.expect("close");
}

struct Counting {
    cluster: EmbeddedCluster,
    connects: AtomicUsize,
}

#[async_trait]
impl BackendFactory for Counting {
    async fn connect(&self, _config: &HaConfig) -> Result<Arc<dyn HaBackend>, HaError> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(self.cluster.connect()))
    }
}

#[tokio::test]
async fn a_registered_factory_is_selected_by_name() {
    let factory = Arc::new(Counting {
        cluster: EmbeddedCluster::new(),
        connects: AtomicUsize::new(0),
    });
    let mut registry = BackendRegistry::new();
    registry.register("my-backend", factory.clone());
    let conf = Configuration::from_pairs([("high-availability.type", "my-backend")]);
    let config = HaConfig::from_configuration(&conf).expect("config");
    assert_eq!(config.mode, HaMode::Custom("my-backend".into()));
    let services = tenure::connect_with(&config, &registry)
        .await
        .expect("connect");
    assert_eq!(factory.connects.load(Ordering::SeqCst), 1);
    services.close().await.expect("close");
}

#[tokio::test]
async fn an_unknown_mode_name_is_a_clear_error() {
    let conf = Configuration::from_pairs([("high-availability.type", "com.example.MyFactory")]);
    let config = HaConfig::from_configuration(&conf).expect("config");
    let err = tenure::connect(&config).await.expect_err("no such factory");
    assert!(err.to_string().contains("com.example.MyFactory"), "{err}");
}

#[tokio::test]
async fn storage_dir_puts_blobs_and_job_results_in_flinks_places() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = Configuration::from_pairs([
        (
            "high-availability.storageDir",
            dir.path().to_str().expect("utf-8 path"),
        ),
        ("high-availability.cluster-id", "/my-cluster"),
    ]);
    let config = HaConfig::from_configuration(&conf).expect("config");
    let services = tenure::connect(&config).await.expect("connect");
    let job = tenure::ids::JobId::new_random();
    services
        .job_result_store()
        .create_dirty(&tenure::store::JobResultEntry::new(
            job,
            tenure::store::ApplicationStatus::Succeeded,
            7,
        ))
        .await
        .expect("dirty result");
    let file = dir
        .path()
        .join("job-result-store/my-cluster")
        .join(format!("{job}_DIRTY.json"));
    assert!(file.exists(), "{file:?}");
    for name in ["completedCheckpoint0123456789ab", "notes.txt"] {
        services
            .blob_store()
            .put(name, bytes::Bytes::from_static(b"1"))
            .await
            .expect("blob");
        assert!(dir.path().join("my-cluster").join(name).exists());
    }
    services
        .close_and_cleanup_all_data()
        .await
        .expect("cleanup");
    assert!(!file.exists());
    assert!(
        !dir.path()
            .join("my-cluster/completedCheckpoint0123456789ab")
            .exists()
    );
    assert!(
        dir.path().join("my-cluster/notes.txt").exists(),
        "a file not named like an HA blob is not the cluster's to delete"
    );
}

/// The first connect to an unreachable quorum gives up after the connection timeout (not after
/// retries × timeouts) with an `Unreachable` error naming the servers.
#[cfg(feature = "zookeeper")]
#[tokio::test]
async fn an_unreachable_quorum_fails_within_the_connection_timeout() {
    // A loopback port nothing listens on, reserved while the test runs (bound, never
    // listening: another test's server cannot take it, and connections are refused).
    let reserved = tokio::net::TcpSocket::new_v4().expect("socket");
    reserved.bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let quorum = reserved.local_addr().expect("addr").to_string();
    let conf = Configuration::from_pairs([
        ("high-availability.type", "zookeeper"),
        ("high-availability.zookeeper.quorum", quorum.as_str()),
        ("high-availability.storageDir", "/tmp/tenure-unreachable"),
        (
            "high-availability.zookeeper.client.connection-timeout",
            "1s",
        ),
        // Flink's defaults: 3 retries 5 s apart would be 4 × 1 s + 35 s without the bound.
        ("high-availability.zookeeper.client.max-retry-attempts", "3"),
        ("high-availability.zookeeper.client.retry-wait", "100ms"),
    ]);
    let config = HaConfig::from_configuration(&conf).expect("config");
    let started = std::time::Instant::now();
    let err = tenure::connect(&config).await.expect_err("nothing listens");
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            HaError::Connect(tenure::ConnectError::Unreachable { attempts: 1.., .. })
        ),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    assert!(err.to_string().contains(&quorum), "{err}");
    assert!(err.to_string().contains("connection-timeout"), "{err}");
    // Generous: the bound is 1 s.
    assert!(took < std::time::Duration::from_secs(8), "took {took:?}");
}
