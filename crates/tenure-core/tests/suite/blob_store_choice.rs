//! Which blob store the services get: a durable one under the storage dir, memory only for the
//! embedded mode, and no blob store (never a private in-memory one) for a shared backend
//! without a storage dir — however the `HaConfig` was built.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use tenure_core::blob::BlobError;
use tenure_core::config::{HaConfig, HaMode};
use tenure_core::services::HaServicesOptions;

#[tokio::test]
async fn shared_modes_without_a_storage_dir_get_no_blob_store() {
    for mode in [
        HaMode::ZooKeeper,
        HaMode::Kubernetes,
        HaMode::Etcd,
        HaMode::Custom("mine".into()),
    ] {
        let config = HaConfig {
            mode: mode.clone(),
            ..HaConfig::default()
        };
        let blobs = HaServicesOptions::from_config(&config).unwrap().blobs;
        assert!(!blobs.is_available(), "{mode:?}");
        let err = blobs.put("x", Bytes::from_static(b"1")).await.unwrap_err();
        assert!(
            matches!(err, BlobError::Unavailable { .. }),
            "{mode:?}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("high-availability.storageDir"), "{text}");
        assert!(
            text.contains(&format!("high-availability.type {mode}")),
            "{text}"
        );
    }
}

#[tokio::test]
async fn the_embedded_mode_keeps_blobs_in_memory_and_a_storage_dir_wins_everywhere() {
    let blobs = HaServicesOptions::from_config(&HaConfig::embedded())
        .unwrap()
        .blobs;
    assert!(blobs.is_available());
    blobs.put("x", Bytes::from_static(b"1")).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = HaConfig {
        mode: HaMode::ZooKeeper,
        storage_dir: Some(dir.path().to_str().unwrap().to_owned()),
        ..HaConfig::default()
    };
    let blobs = HaServicesOptions::from_config(&config).unwrap().blobs;
    blobs.put("x", Bytes::from_static(b"1")).await.unwrap();
    assert!(dir.path().join("default/x").exists());
}
