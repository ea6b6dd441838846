//! Per-job cleanup conformance (Flink's `globalCleanupAsync`): one finished job's HA data goes,
//! its result is marked clean, and nothing else is touched; a crash mid-cleanup is finished by
//! the next leader; a second run is a no-op; a deposed leader deletes nothing.

use bytes::Bytes;
use tenure_core::codec::encode_leader_info;
use tenure_core::config::CleanupStrategy;
use tenure_core::election::LeaderTerm;
use tenure_core::ids::{ComponentId, JobId, LeaderSessionId};
use tenure_core::job_cleanup::{GlobalCleanupOutcome, ResultMark};
use tenure_core::kv::CreateOptions;
use tenure_core::layout::{HaKey, Layout};
use tenure_core::leader_info::LeaderInformation;
use tenure_core::services::HaServices;
use tenure_core::store::{ApplicationStatus, CompletedCheckpoint, JobResultEntry};

use super::election::wait_leader;
use super::stores::Processes;
use crate::BackendFactory;

/// A key of no HA layout, at the top of the namespace.
const DECOY: &str = "tenure-conformance-decoy";

/// Writes everything a job leaves behind as `term`'s leader: graph and checkpoint in blobs,
/// counter, registry entry, and a job master's leader information (as a crashed job master
/// leaves it).
async fn write_job(p: &HaServices, term: &LeaderTerm, job: JobId) {
    let stores = p.leader_stores(term);
    stores
        .job_graphs()
        .put(job, Bytes::from(vec![3u8; 4096]))
        .await
        .expect("graph");
    let counter = stores.checkpoint_id_counter(job);
    counter.start().await.expect("counter");
    let id = counter.get_and_increment().await.expect("id");
    stores
        .checkpoints(job)
        .expect("checkpoint store")
        .add(CompletedCheckpoint {
            job_id: job,
            id,
            timestamp_ms: 1,
            metadata: Bytes::from(vec![4u8; 4096]),
        })
        .await
        .expect("checkpoint");
    stores.running_jobs().set_done(job).await.expect("registry");
    let info = LeaderInformation::new(LeaderSessionId::new_random(), "jm:6123");
    p.kv()
        .create(
            &p.layout()
                .key(&HaKey::LeaderInfo(ComponentId::JobMaster(job))),
            Bytes::from(encode_leader_info(&info)),
            CreateOptions::default(),
        )
        .await
        .expect("job master leader information");
}

/// Marks `job` finished: its dirty result.
async fn finish(p: &HaServices, job: JobId) {
    p.job_result_store()
        .create_dirty(&JobResultEntry::new(job, ApplicationStatus::Succeeded, 5))
        .await
        .expect("dirty result");
}

/// `(key, version)` of every key naming `job` except its job result, and of `extra` keys.
async fn snapshot(p: &HaServices, job: JobId, extra: &[&str]) -> Vec<(String, i64)> {
    p.kv()
        .list("")
        .await
        .expect("list")
        .into_iter()
        .filter(|e| {
            extra.contains(&e.key.as_str())
                || Layout::parse_any_era(&e.key).is_some_and(|(_, k)| {
                    k.job() == Some(job) && !matches!(k, HaKey::JobResult { .. })
                })
        })
        .map(|e| (e.key, e.version.0))
        .collect()
}

/// The leader's term of a new process.
async fn lead(p: &HaServices) -> (tenure_core::election::LeaderElection, LeaderTerm) {
    let e = p.dispatcher_leader_election().await.expect("election");
    let term = wait_leader(&mut e.leadership()).await;
    (e, term)
}

/// (a) + (c): one job's cleanup removes its graph, locks, checkpoints and their blobs, counter,
/// registry entry and job master leader data, and marks its result clean; another job's data
/// and keys outside the layout (one at the top, one inside the job's own directory) are
/// untouched. A second run is a successful no-op.
pub async fn job_cleanup_removes_exactly_the_jobs_data(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    let (_e, term) = lead(&a).await;
    let (job, other) = (JobId::new_random(), JobId::new_random());
    write_job(&a, &term, job).await;
    write_job(&a, &term, other).await;
    finish(&a, job).await;
    let kv = a.kv();
    kv.create(DECOY, Bytes::from_static(b"x"), CreateOptions::default())
        .await
        .expect("decoy");
    let inner_decoy = format!("jobs/{job}/notes");
    kv.create(
        &inner_decoy,
        Bytes::from_static(b"y"),
        CreateOptions::default(),
    )
    .await
    .expect("decoy in the job's directory");
    let theirs = snapshot(&a, other, &[DECOY, &inner_decoy]).await;
    let blobs_before = procs.blobs().list("").await.expect("blobs").len();
    assert!(snapshot(&a, job, &[]).await.len() >= 5);

    let stores = a.leader_stores(&term);
    let outcome = stores.global_cleanup(job, &CleanupStrategy::None).await;
    assert!(outcome.is_clean(), "{outcome:?}");
    let report = outcome.report.expect("report");
    assert_eq!(report.result, ResultMark::MarkedClean);
    assert_eq!(
        report.blobs.len(),
        2,
        "graph and checkpoint blobs: {report:?}"
    );
    assert!(
        report.kept_keys.iter().any(|k| k.name == inner_decoy),
        "{report:?}"
    );
    let left: Vec<String> = snapshot(&a, job, &[])
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let job_dir = format!("jobs/{job}");
    assert!(
        left.iter().all(|k| *k == job_dir || *k == inner_decoy),
        "keys of the job left: {left:?}"
    );
    assert_eq!(snapshot(&a, other, &[DECOY, &inner_decoy]).await, theirs);
    assert_eq!(
        procs.blobs().list("").await.expect("blobs").len(),
        blobs_before - 2
    );
    let results = a.job_result_store();
    assert!(results.has_clean(job).await.expect("clean"));
    assert!(!results.has_dirty(job).await.expect("dirty"));
    assert_eq!(
        a.admin_stores()
            .job_graphs()
            .recover(other)
            .await
            .expect("the other job's graph"),
        Bytes::from(vec![3u8; 4096])
    );

    let again = stores.cleanup_job(job).await.expect("second run");
    assert!(again.is_complete() && again.removed_nothing(), "{again:?}");
    assert_eq!(again.result, ResultMark::CleanAlready);
    assert_eq!(snapshot(&a, other, &[DECOY, &inner_decoy]).await, theirs);
}

/// (b): a leader crashes in the middle of a cleanup (part of the plan deleted); the next leader
/// re-runs the cleanup of every dirty result it recovers and finishes it.
pub async fn a_crash_mid_cleanup_is_finished_by_the_next_leader(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    let b = procs.start().await;
    let (_ea, ta) = lead(&a).await;
    let (j1, j2) = (JobId::new_random(), JobId::new_random());
    for job in [j1, j2] {
        write_job(&a, &ta, job).await;
        finish(&a, job).await;
    }
    let stores = a.leader_stores(&ta);
    // j1: the first two planned keys are gone, then the process dies.
    let mut partial = stores.plan_job_cleanup(j1).await.expect("plan");
    assert!(partial.keys.len() > 2, "{partial:?}");
    partial.keys.truncate(2);
    partial.job_blobs.clear();
    partial.execute(&stores).await.expect("part of the plan");
    f.crash(a.backend()).await;

    let (_eb, tb) = lead(&b).await;
    let outcomes = b
        .leader_stores(&tb)
        .cleanup_dirty_results(&CleanupStrategy::None)
        .await
        .expect("dirty results");
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(
        outcomes.iter().all(GlobalCleanupOutcome::is_clean),
        "{outcomes:?}"
    );
    for job in [j1, j2] {
        assert!(
            snapshot(&b, job, &[]).await.is_empty(),
            "{job}: {:?}",
            snapshot(&b, job, &[]).await
        );
        assert!(b.job_result_store().has_clean(job).await.expect("clean"));
    }
    assert!(
        procs.blobs().list("").await.expect("blobs").is_empty(),
        "blobs left: {:?}",
        procs.blobs().list("").await
    );
    // Nothing dirty is left for a third leader.
    assert!(
        b.leader_stores(&tb)
            .cleanup_dirty_results(&CleanupStrategy::None)
            .await
            .expect("dirty results")
            .is_empty()
    );
}

/// (c): a cleanup after a partial one by other means (the graph removed alone), and again,
/// succeeds; the second run removes nothing.
pub async fn job_cleanup_is_idempotent(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    let (_e, term) = lead(&a).await;
    let job = JobId::new_random();
    write_job(&a, &term, job).await;
    finish(&a, job).await;
    assert!(
        a.leader_stores(&term)
            .job_graphs()
            .remove(job)
            .await
            .expect("graph removed alone")
    );
    let first = a.cleanup_job(job).await.expect("first");
    assert!(first.is_complete() && !first.removed_nothing(), "{first:?}");
    assert_eq!(first.result, ResultMark::MarkedClean);
    assert!(snapshot(&a, job, &[]).await.is_empty());
    let second = a.cleanup_job(job).await.expect("second");
    assert!(
        second.is_complete() && second.removed_nothing(),
        "{second:?}"
    );
    assert!(procs.blobs().list("").await.expect("blobs").is_empty());
}

/// (d): a deposed leader's fenced cleanup is refused before it deletes anything, and is not
/// retried; the new leader's succeeds.
pub async fn a_deposed_leaders_cleanup_is_refused(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    let b = procs.start().await;
    let (ea, ta) = lead(&a).await;
    let eb = b.dispatcher_leader_election().await.expect("b");
    let job = JobId::new_random();
    write_job(&a, &ta, job).await;
    finish(&a, job).await;
    ea.stop().await.expect("a steps down");
    let tb = wait_leader(&mut eb.leadership()).await;
    assert_ne!(ta.session_id, tb.session_id);

    let before = snapshot(&a, job, &[]).await;
    let blobs = procs.blobs().list("").await.expect("blobs");
    let refused = a
        .leader_stores(&ta)
        .global_cleanup(job, &CleanupStrategy::default())
        .await;
    assert!(refused.not_leader, "{refused:?}");
    assert_eq!(refused.attempts, 1);
    assert!(!refused.is_clean());
    assert_eq!(snapshot(&a, job, &[]).await, before);
    assert_eq!(procs.blobs().list("").await.expect("blobs"), blobs);
    assert!(a.job_result_store().has_dirty(job).await.expect("dirty"));

    let done = b
        .leader_stores(&tb)
        .global_cleanup(job, &CleanupStrategy::None)
        .await;
    assert!(done.is_clean(), "{done:?}");
    assert!(snapshot(&b, job, &[]).await.is_empty());
}
