//! Lifecycle conformance: `close()` keeps data; `close_and_cleanup_all_data()` removes it all.

use bytes::Bytes;
use tenure_core::ids::{CheckpointId, JobId};
use tenure_core::store::{ApplicationStatus, CompletedCheckpoint, JobResultEntry};

use super::election::wait_leader;
use super::stores::Processes;
use crate::BackendFactory;

async fn write_everything(p: &tenure_core::services::HaServices, job: JobId) {
    let e = p.dispatcher_leader_election().await.expect("election");
    let term = wait_leader(&mut e.leadership()).await;
    e.confirm(term.session_id, "addr").await.expect("confirm");
    let stores = p.leader_stores(&term);
    stores
        .job_graphs()
        .put(job, Bytes::from(vec![1u8; 4096]))
        .await
        .expect("graph");
    let factory = stores.checkpoint_recovery_factory();
    let counter = factory.create_checkpoint_id_counter(job);
    counter.start().await.expect("counter");
    let id = counter.get_and_increment().await.expect("id");
    factory
        .create_completed_checkpoint_store(job, 1)
        .expect("cps")
        .add(CompletedCheckpoint {
            job_id: job,
            id,
            timestamp_ms: 1,
            metadata: Bytes::from(vec![2u8; 4096]),
        })
        .await
        .expect("checkpoint");
    stores
        .running_jobs()
        .set_running(job)
        .await
        .expect("registry");
    p.job_result_store()
        .create_dirty(&JobResultEntry::new(job, ApplicationStatus::Succeeded, 5))
        .await
        .expect("result");
    // The election is dropped here; leadership is given up, data stays.
    drop(e);
}

/// `close()` keeps every piece of HA data for a later process to recover.
pub async fn close_keeps_data_for_recovery(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    let job = JobId::new_random();
    write_everything(&a, job).await;
    a.close().await.expect("close");
    let b = procs.start().await;
    let graphs = b.admin_stores().job_graphs();
    assert_eq!(
        graphs.recover(job).await.expect("graph"),
        Bytes::from(vec![1u8; 4096])
    );
    let cps = b
        .admin_stores()
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, 1)
        .expect("cps")
        .recover()
        .await
        .expect("recover");
    assert_eq!(cps.len(), 1);
    assert_eq!(
        b.admin_stores()
            .checkpoint_recovery_factory()
            .create_checkpoint_id_counter(job)
            .get()
            .await
            .expect("counter"),
        CheckpointId(2)
    );
    assert!(b.job_result_store().has_dirty(job).await.expect("result"));
    assert!(
        b.admin_stores()
            .running_jobs()
            .status(job)
            .await
            .expect("registry")
            .is_some()
    );
}

/// Runs `close_and_cleanup_all_data()` on `services` and asserts that another process sees no
/// key of the cluster left.
pub(crate) async fn assert_cleanup_leaves_no_key(
    f: &dyn BackendFactory,
    services: &tenure_core::services::HaServices,
) {
    services
        .close_and_cleanup_all_data()
        .await
        .expect("cleanup");
    let observer = f.connect().await;
    let left: Vec<String> = observer
        .kv()
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert!(left.is_empty(), "keys left after cleanup: {left:?}");
}

/// `close_and_cleanup_all_data()` leaves no key of the cluster and no blob behind.
pub async fn cleanup_removes_all_data(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    write_everything(&a, JobId::new_random()).await;
    write_everything(&a, JobId::new_random()).await;
    assert!(!procs.blobs().list("").await.expect("blobs").is_empty());
    assert_cleanup_leaves_no_key(f, &a).await;
    assert!(procs.blobs().list("").await.expect("blobs").is_empty());
}
