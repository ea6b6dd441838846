//! One job's cleanup on Kubernetes (fake API server): the job's own ConfigMap goes with its
//! last key, and nothing of another job or the cluster's ConfigMap is touched.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use tenure_core::blob::BlobStore;
use tenure_core::ids::{CheckpointId, JobId};
use tenure_core::job_cleanup::ResultMark;
use tenure_core::services::{HaServices, HaServicesOptions};
use tenure_core::store::{ApplicationStatus, CompletedCheckpoint, JobResultEntry};
use tenure_testkit::BackendFactory;
use tenure_testkit::kube_fake::{KubernetesFactory, Resource};

fn config_maps(f: &KubernetesFactory) -> Vec<String> {
    f.server()
        .objects(Resource::ConfigMaps, &f.settings().namespace)
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

async fn write_job(s: &HaServices, job: JobId) {
    let stores = s.admin_stores();
    stores
        .job_graphs()
        .put(job, Bytes::from(vec![1u8; 2048]))
        .await
        .unwrap();
    let counter = stores.checkpoint_id_counter(job);
    counter.start().await.unwrap();
    let id = counter.get_and_increment().await.unwrap();
    stores
        .checkpoints(job)
        .unwrap()
        .add(CompletedCheckpoint {
            job_id: job,
            id,
            timestamp_ms: 1,
            metadata: Bytes::from_static(b"metadata"),
        })
        .await
        .unwrap();
    assert_eq!(id, CheckpointId(1));
    stores.running_jobs().set_done(job).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_config_map_goes_with_its_last_key() {
    let f = KubernetesFactory::start().await;
    let options = HaServicesOptions {
        blobs: BlobStore::in_memory(),
        ..Default::default()
    };
    let s = HaServices::new(f.connect().await, options);
    let (job, other) = (JobId::new_random(), JobId::new_random());
    write_job(&s, job).await;
    write_job(&s, other).await;
    s.job_result_store()
        .create_dirty(&JobResultEntry::new(job, ApplicationStatus::Failed, 3))
        .await
        .unwrap();
    let cluster_id = f.settings().cluster_id;
    let job_cm = format!("{cluster_id}-{job}-config-map");
    let other_cm = format!("{cluster_id}-{other}-config-map");
    let before = config_maps(&f);
    assert!(
        before.contains(&job_cm) && before.contains(&other_cm),
        "{before:?}"
    );

    let report = s.cleanup_job(job).await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.result, ResultMark::MarkedClean);
    let after = config_maps(&f);
    assert!(!after.contains(&job_cm), "{after:?}");
    let mut expected: Vec<String> = before.into_iter().filter(|n| *n != job_cm).collect();
    expected.sort();
    let mut after_sorted = after.clone();
    after_sorted.sort();
    assert_eq!(after_sorted, expected);
    assert!(s.job_result_store().has_clean(job).await.unwrap());
    assert_eq!(
        s.admin_stores()
            .checkpoint_id_counter(other)
            .get()
            .await
            .unwrap(),
        CheckpointId(2)
    );
    s.close().await.unwrap();
}
