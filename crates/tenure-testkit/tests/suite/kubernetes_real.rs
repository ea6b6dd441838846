//! A smoke test against a real Kubernetes cluster. It runs only when
//! `TENURE_K8S_SMOKE_NAMESPACE` names a namespace to use; the client configuration is found as
//! `kubectl` finds it (`$KUBECONFIG`, `~/.kube/config`, or the in-cluster service account),
//! and needs the RBAC Role documented in `tenure-kubernetes` (get, list, watch, create, update,
//! delete on ConfigMaps). It uses a fresh cluster id and deletes its ConfigMaps at the end:
//!
//! ```text
//! TENURE_K8S_SMOKE_NAMESPACE=flink KUBECONFIG=~/.kube/config \
//!     cargo test -p tenure-testkit --test kubernetes_real -- --nocapture
//! ```
//!
//! Without the variable it passes after printing that it was skipped.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use tenure_core::driver::HaBackend;
use tenure_core::election::ElectionService;
use tenure_core::ids::{CheckpointId, ComponentId, JobId};
use tenure_core::layout::Layout;
use tenure_core::services::{HaServices, HaServicesOptions};
use tenure_core::store::CompletedCheckpoint;
use tenure_kubernetes::{KubernetesBackend, KubernetesSettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_test_on_a_real_cluster() {
    let Ok(namespace) = std::env::var("TENURE_K8S_SMOKE_NAMESPACE") else {
        println!(
            "skipped: set TENURE_K8S_SMOKE_NAMESPACE (and KUBECONFIG) to run the Kubernetes smoke \
             test against a real cluster"
        );
        return;
    };
    let cluster_id = format!(
        "tenure-smoke-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let settings = KubernetesSettings::new(namespace, cluster_id.clone());
    let backend = Arc::new(KubernetesBackend::connect_inferred(settings).await.unwrap());
    let layout = Layout::default();
    let service = ElectionService::new(backend.clone(), layout, layout.cluster_latch());
    let mut e = service.register(ComponentId::Dispatcher).await.unwrap();
    let term = e.wait_for_leadership().await.unwrap();
    assert!(e.confirm(term.session_id, "smoke://leader").await.unwrap());
    let services = HaServices::new(backend.clone(), HaServicesOptions::default());
    let job = JobId::new_random();
    let store = services
        .leader_stores(&term)
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, 1)
        .unwrap();
    store
        .add(CompletedCheckpoint {
            job_id: job,
            id: CheckpointId(1),
            timestamp_ms: 1,
            metadata: Bytes::from_static(b"smoke"),
        })
        .await
        .unwrap();
    assert_eq!(store.recover().await.unwrap().len(), 1);
    println!("cluster id {cluster_id}: elected, published and wrote a checkpoint");
    e.stop().await.unwrap();
    services.close_and_cleanup_all_data().await.unwrap();
    let _ = backend.close().await;
}
