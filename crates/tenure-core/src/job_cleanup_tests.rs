//! Unit tests of one job's cleanup on the embedded backend: what it removes, and how a failed
//! attempt is retried (paused tokio time: no real waits).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;

use super::*;
use crate::config::HaConfig;
use crate::embedded::EmbeddedCluster;
use crate::ids::CheckpointId;
use crate::kv::{CreateOptions, DeleteOptions, FencingToken, KvWatch, Txn, TxnResult, Version};
use crate::services::HaServices;
use crate::store::{ApplicationStatus, CompletedCheckpoint, JobResultEntry};

/// A KV that fails the first `failures` deletes with a backend error, then passes through.
#[derive(Debug)]
struct FlakyDeletes {
    inner: Arc<dyn VersionedKv>,
    failures: AtomicU32,
}

#[async_trait::async_trait]
impl VersionedKv for FlakyDeletes {
    async fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, KvError> {
        self.inner.list(prefix).await
    }
    async fn watch(&self, prefix: &str) -> Result<KvWatch, KvError> {
        self.inner.watch(prefix).await
    }
    async fn create(&self, key: &str, value: Bytes, o: CreateOptions) -> Result<Version, KvError> {
        self.inner.create(key, value, o).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        value: Bytes,
        expected: Version,
        fence: Option<FencingToken>,
    ) -> Result<Version, KvError> {
        self.inner
            .compare_and_set(key, value, expected, fence)
            .await
    }
    async fn delete(&self, key: &str, opts: DeleteOptions) -> Result<(), KvError> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(KvError::Backend(format!("injected failure deleting {key}")));
        }
        self.inner.delete(key, opts).await
    }
    async fn txn(&self, txn: Txn) -> Result<Vec<TxnResult>, KvError> {
        self.inner.txn(txn).await
    }
    async fn remove_empty_namespace(&self) -> Result<Vec<String>, KvError> {
        self.inner.remove_empty_namespace().await
    }
    fn session_id(&self) -> u64 {
        self.inner.session_id()
    }
}

fn services(cluster: &EmbeddedCluster) -> HaServices {
    cluster.services(&HaConfig::embedded()).unwrap()
}

/// Writes a graph, two checkpoints (one in a blob), a counter and a registry entry of `job`, and
/// a dirty result.
async fn finished_job(s: &HaServices, job: JobId) {
    let stores = s.admin_stores();
    stores
        .job_graphs()
        .put(job, Bytes::from(vec![7u8; 4096]))
        .await
        .unwrap();
    let cps = stores.checkpoints(job).unwrap();
    for id in [1, 2] {
        let meta = Bytes::from(vec![id as u8; 2048]);
        cps.add(CompletedCheckpoint::new(job, CheckpointId(id), id, meta).unwrap())
            .await
            .unwrap();
    }
    stores.checkpoint_id_counter(job).start().await.unwrap();
    stores.running_jobs().set_done(job).await.unwrap();
    s.job_result_store()
        .create_dirty(&JobResultEntry::new(job, ApplicationStatus::Succeeded, 5))
        .await
        .unwrap();
}

async fn keys_of(s: &HaServices, job: JobId) -> Vec<String> {
    let id = job.to_string();
    s.kv()
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .filter(|k| k.contains(&id) && !k.starts_with("job-results"))
        .collect()
}

#[tokio::test]
async fn one_call_removes_the_job_and_its_blobs_and_marks_the_result_clean() {
    let cluster = EmbeddedCluster::new();
    let s = services(&cluster);
    let (job, other) = (JobId::new_random(), JobId::new_random());
    finished_job(&s, job).await;
    finished_job(&s, other).await;
    let blobs_before = s.blob_store().list("").await.unwrap().len();
    let theirs = keys_of(&s, other).await;

    let report = s.cleanup_job(job).await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.result, ResultMark::MarkedClean);
    assert!(keys_of(&s, job).await.is_empty());
    // The graph's blob and the retained checkpoint's blob went with their keys.
    assert_eq!(report.blobs.len(), 2, "{report:?}");
    assert_eq!(
        s.blob_store().list("").await.unwrap().len(),
        blobs_before - 2
    );
    assert_eq!(keys_of(&s, other).await, theirs);
    assert!(s.job_result_store().has_clean(job).await.unwrap());
    assert!(s.job_result_store().has_dirty(other).await.unwrap());

    // Idempotent: nothing left, nothing removed, success.
    let again = s.cleanup_job(job).await.unwrap();
    assert!(again.is_complete() && again.removed_nothing(), "{again:?}");
    assert_eq!(again.result, ResultMark::CleanAlready);
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_are_retried_on_the_strategys_schedule() {
    let cluster = EmbeddedCluster::new();
    let s = services(&cluster);
    let job = JobId::new_random();
    finished_job(&s, job).await;
    let mut stores = s.admin_stores();
    stores.kv = Arc::new(FlakyDeletes {
        inner: s.kv(),
        failures: AtomicU32::new(3),
    });
    let strategy = CleanupStrategy::ExponentialDelay {
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(3),
        attempts: 10,
    };
    let start = tokio::time::Instant::now();
    let outcome = stores.global_cleanup(job, &strategy).await;
    assert!(outcome.is_clean(), "{outcome:?}");
    assert_eq!(outcome.attempts, 4);
    assert_eq!(outcome.error, None);
    // 1 s + 2 s + 3 s (capped), on the paused clock.
    assert_eq!(start.elapsed(), Duration::from_secs(6));
    assert!(s.job_result_store().has_clean(job).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_leave_the_result_dirty_and_report_the_error() {
    let cluster = EmbeddedCluster::new();
    let s = services(&cluster);
    let job = JobId::new_random();
    finished_job(&s, job).await;
    let mut stores = s.admin_stores();
    stores.kv = Arc::new(FlakyDeletes {
        inner: s.kv(),
        failures: AtomicU32::new(u32::MAX),
    });
    let strategy = CleanupStrategy::FixedDelay {
        delay: Duration::from_secs(60),
        attempts: 2,
    };
    let start = tokio::time::Instant::now();
    let outcome = stores.global_cleanup(job, &strategy).await;
    assert!(!outcome.is_clean());
    assert_eq!(outcome.attempts, 3);
    assert!(
        outcome
            .error
            .as_deref()
            .is_some_and(|e| e.contains("injected failure")),
        "{outcome:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(120));
    assert!(s.job_result_store().has_dirty(job).await.unwrap());

    // No retry at all with `none`.
    let outcome = stores.global_cleanup(job, &CleanupStrategy::None).await;
    assert_eq!(outcome.attempts, 1);
}

#[tokio::test]
async fn a_new_leader_finishes_every_dirty_result_and_a_deposed_one_deletes_nothing() {
    let cluster = EmbeddedCluster::new();
    let (a, b) = (services(&cluster), services(&cluster));
    let (j1, j2) = (JobId::new_random(), JobId::new_random());
    finished_job(&a, j1).await;
    finished_job(&a, j2).await;
    let ea = a.dispatcher_leader_election().await.unwrap();
    let mut eb = b.dispatcher_leader_election().await.unwrap();
    let ta = ea
        .leadership()
        .wait_for(|l| l.term().is_some())
        .await
        .unwrap()
        .term()
        .cloned()
        .unwrap();
    drop(ea);
    let tb = eb.wait_for_leadership().await.unwrap();

    // The deposed leader's fenced cleanup is refused and removes nothing.
    let before = keys_of(&a, j1).await;
    let refused = a
        .leader_stores(&ta)
        .global_cleanup(j1, &CleanupStrategy::default())
        .await;
    assert!(refused.not_leader && refused.attempts == 1, "{refused:?}");
    assert_eq!(keys_of(&a, j1).await, before);

    let outcomes = b
        .leader_stores(&tb)
        .cleanup_dirty_results(&CleanupStrategy::None)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(GlobalCleanupOutcome::is_clean));
    for job in [j1, j2] {
        assert!(keys_of(&b, job).await.is_empty());
        assert!(b.job_result_store().has_clean(job).await.unwrap());
    }
}

/// Creates `key` holding `value`, unfenced.
async fn raw(s: &HaServices, key: &str, value: &[u8]) {
    s.kv()
        .create(key, Bytes::copy_from_slice(value), CreateOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn flink_1x_names_and_flink_1_14_keys_are_cleaned_up_too() {
    let cluster = EmbeddedCluster::new();
    let mut config = HaConfig::embedded();
    config.naming = crate::layout::NamingEra::Flink1;
    let s = cluster.services(&config).unwrap();
    let job = JobId::new_random();
    finished_job(&s, job).await;
    for key in [
        format!("leader/{job}/connection_info"),
        format!("checkpoints/{job}/0000000000000000007"),
        format!("checkpoint-counter/{job}"),
        format!("jobs/{job}/leader/connection_info"),
        format!("jobs/{job}/leader/latch/_c_1-latch-0000000001"),
    ] {
        raw(&s, &key, b"x").await;
    }
    assert!(
        keys_of(&s, job).await.contains(&format!("jobgraphs/{job}")),
        "Flink 1.x names: {:?}",
        keys_of(&s, job).await
    );
    let report = s.cleanup_job(job).await.unwrap();
    assert!(
        report.is_complete() && report.kept_keys.is_empty(),
        "{report:?}"
    );
    assert!(
        keys_of(&s, job).await.is_empty(),
        "{:?}",
        keys_of(&s, job).await
    );
    assert_eq!(report.result, ResultMark::MarkedClean);
}

#[tokio::test]
async fn flinks_state_handles_and_foreign_keys_stay_and_are_reported() {
    let cluster = EmbeddedCluster::new();
    let s = services(&cluster);
    let job = JobId::new_random();
    let graph = format!("execution-plans/{job}");
    let lock = format!("{graph}/locks/flink-jm");
    let notes = format!("jobs/{job}/notes");
    raw(&s, &graph, &[0xAC, 0xED, 0x00, 0x05, 0x73]).await;
    raw(&s, &lock, b"").await;
    raw(&s, &notes, b"mine").await;
    s.admin_stores().running_jobs().set_done(job).await.unwrap();
    let report = s.cleanup_job(job).await.unwrap();
    assert_eq!(report.keys, [format!("running_job_registry/{job}")]);
    let kept: Vec<&str> = report.kept_keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(kept, [graph.as_str(), lock.as_str(), notes.as_str()]);
    assert!(report.kept_keys[0].reason.contains("Flink"), "{report:?}");
    assert_eq!(report.result, ResultMark::NoResult);
    let mut left = keys_of(&s, job).await;
    left.sort();
    let mut want = vec![graph, lock, notes];
    want.sort();
    assert_eq!(left, want);
}
