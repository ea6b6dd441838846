//! A ZooKeeper cluster without `high-availability.storageDir` has no blob store: large writes
//! are refused naming the key, small writes and reads work. Never a private in-memory store.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use tenure_core::blob::BlobError;
use tenure_core::config::{HaConfig, HaMode, ZooKeeperConfig};
use tenure_core::ids::{CheckpointId, JobId};
use tenure_core::services::{HaServices, HaServicesOptions};
use tenure_core::store::{CompletedCheckpoint, StoreError};
use tenure_testkit::zookeeper::ZooKeeperFactory;

fn checkpoint(job: JobId, id: u64, size: usize) -> CompletedCheckpoint {
    CompletedCheckpoint {
        job_id: job,
        id: CheckpointId(id),
        timestamp_ms: id,
        metadata: Bytes::from(vec![b'x'; size]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_needing_a_blob_is_refused_naming_the_storage_dir_and_small_ones_work() {
    let f = ZooKeeperFactory::start().await;
    // Built by hand, as code may: the parser's storage-dir check is not on this path, the
    // services' is.
    let config = HaConfig {
        mode: HaMode::ZooKeeper,
        cluster_id: f.cluster_id().to_owned(),
        zookeeper: ZooKeeperConfig {
            quorum: Some(f.server().connect_string()),
            ..Default::default()
        },
        ..HaConfig::default()
    };
    let options = HaServicesOptions::from_config(&config).unwrap();
    assert!(!options.blobs.is_available(), "{:?}", options.blobs);
    let writer = HaServices::new(Arc::new(f.connect_zk().await), options);
    let job = JobId::new_random();
    let store = writer
        .admin_stores()
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, 1)
        .unwrap();

    let err = store.add(checkpoint(job, 1, 4096)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Blob(BlobError::Unavailable { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("high-availability.storageDir"), "{text}");
    assert!(!text.contains("memory"), "{text}");
    // Nothing half-written: no key for the refused checkpoint.
    let key = writer.layout().checkpoint(&job, CheckpointId(1));
    assert!(writer.kv().get(&key).await.unwrap().is_none());
    assert_eq!(store.latest().await.unwrap(), None);

    // A checkpoint small enough to stay inline is written, and another process (configured
    // from Flink keys for reading, also without a storage dir) reads it.
    let small = checkpoint(job, 2, 64);
    store.add(small.clone()).await.unwrap();
    let reader_config = HaConfig::zookeeper(f.server().connect_string())
        .cluster_id(f.cluster_id())
        .build_for_reading()
        .unwrap();
    let reader = HaServices::new(
        Arc::new(f.connect_zk().await),
        HaServicesOptions::from_config(&reader_config).unwrap(),
    );
    let read = reader
        .admin_stores()
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, 1)
        .unwrap()
        .recover()
        .await
        .unwrap();
    assert_eq!(read, vec![small]);
    reader.close().await.unwrap();
    writer.close().await.unwrap();
}
