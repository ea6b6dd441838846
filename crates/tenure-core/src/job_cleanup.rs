//! Removing what one finished job left behind (Flink's `globalCleanupAsync(JobID)`), with the
//! job result store as the driver.
//!
//! When a job reaches a globally terminal state its leader writes a *dirty* job result, then
//! removes the job's HA data, retried as the [`CleanupStrategy`] says, then marks the result
//! *clean*. A new leader re-runs the cleanup of every dirty result it recovers
//! ([`HaStores::cleanup_dirty_results`]); the job is not run again.
//!
//! What belongs to the job, planned before anything is deleted ([`JobCleanupPlan`]):
//!
//! - every key of the HA layout naming the job, in either naming era: its execution plan
//!   (`execution-plans/<id>`, Flink 1.x `jobgraphs/<id>`) and `locks` below it, its checkpoints
//!   and checkpoint id counter (`jobs/<id>/…`, Flink ≤ 1.14's `checkpoints/<id>/…` and
//!   `checkpoint-counter/<id>`), its running-jobs-registry entry and its job master's leader keys
//!   (`leader/<job>/…`, latch and connection info). On Kubernetes these live in the job's own
//!   ConfigMap, which the backend removes with its last key;
//! - the blobs those keys point to, and Flink's blob server files `blob/job_<id>/blob_…`.
//!
//! Left alone and reported: keys that are not of the layout (and every key they lie below), keys
//! holding values Flink wrote (and every key above and below them), other jobs' data, the
//! cluster's shared directories. The job result itself is not deleted; it is marked clean.
//! Each key is deleted at the version it was planned with — fenced by the leader's term when the
//! stores are a leader's, so a deposed leader deletes nothing — and then the blob it pointed to.
//! Running the cleanup again, or after a partial run, finishes what is left.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::blob::BlobStore;
use crate::cleanup::{
    Blocker, KeyDeletion, LeftAlone, PlannedKey, delete_planned_key, is_ha_blob, plan_keys,
};
use crate::config::CleanupStrategy;
use crate::ha_stores::HaStores;
use crate::ids::JobId;
use crate::kv::{Entry, KvError, VersionedKv};
use crate::layout::{HaKey, Layout, is_layout_key, job_dir_of};
use crate::services::HaError;
use crate::store::{Payload, StoreError, is_foreign};

/// What a job's cleanup deletes and what it leaves alone; computed before anything is deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobCleanupPlan {
    /// The job.
    pub job_id: JobId,
    /// Keys to delete, deepest first, each at its planned version.
    pub keys: Vec<PlannedKey>,
    /// The blob each planned key points to (by key), deleted after the key.
    pub key_blobs: BTreeMap<String, String>,
    /// Flink's blob server files of the job (`blob/job_<id>/blob_…`).
    pub job_blobs: Vec<String>,
    /// Keys of the job left alone, and why.
    pub kept_keys: Vec<LeftAlone>,
}

/// What happened to the job's result in the job result store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultMark {
    /// The dirty result was marked clean.
    MarkedClean,
    /// The result was clean already.
    CleanAlready,
    /// The job has no result (nothing to mark).
    NoResult,
    /// The cleanup is not complete; the result stays dirty (or absent) for the next attempt.
    LeftDirty,
}

impl ResultMark {
    /// How the mark reads in tables: `marked clean`, `clean already`, `no result`, `left dirty`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ResultMark::MarkedClean => "marked clean",
            ResultMark::CleanAlready => "clean already",
            ResultMark::NoResult => "no result",
            ResultMark::LeftDirty => "left dirty",
        }
    }
}

/// What one attempt of a job's cleanup did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobCleanupReport {
    /// The job.
    pub job_id: JobId,
    /// Keys deleted (or found gone already), in deletion order.
    pub keys: Vec<String>,
    /// Blobs deleted.
    pub blobs: Vec<String>,
    /// Planned keys not deleted because they changed since planning: the cleanup is incomplete
    /// and a retry plans again.
    pub changed_keys: Vec<LeftAlone>,
    /// Keys of the job left alone (not of the layout, or written by Flink).
    pub kept_keys: Vec<LeftAlone>,
    /// What happened to the job result.
    pub result: ResultMark,
}

impl JobCleanupReport {
    /// Whether every planned key is gone (the result was then marked clean, if there is one).
    pub fn is_complete(&self) -> bool {
        self.changed_keys.is_empty()
    }

    /// Whether the attempt found nothing of the job to delete.
    pub fn removed_nothing(&self) -> bool {
        self.keys.is_empty() && self.blobs.is_empty()
    }
}

/// How a retried cleanup ended ([`HaStores::global_cleanup`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GlobalCleanupOutcome {
    /// The job.
    pub job_id: JobId,
    /// Attempts made (at least 1).
    pub attempts: u32,
    /// The last attempt's report, if it ran to the end.
    pub report: Option<JobCleanupReport>,
    /// Why the last attempt failed, if it did (the result then stays dirty).
    pub error: Option<String>,
    /// Whether it stopped because the leader's term is over (a deposed leader never retries).
    pub not_leader: bool,
}

impl GlobalCleanupOutcome {
    /// Whether the job's data is gone and its result (if any) marked clean.
    pub fn is_clean(&self) -> bool {
        self.report
            .as_ref()
            .is_some_and(JobCleanupReport::is_complete)
    }
}

/// Whether `entry` belongs to `job` and is cleanup's to delete: a key of the layout naming the
/// job, other than its job result (which is marked clean, not deleted).
fn job_key(key: &str, job: JobId) -> bool {
    Layout::parse_any_era(key).is_some_and(|(_, k)| {
        k.is_ha_data() && k.job() == Some(job) && !matches!(k, HaKey::JobResult { .. })
    })
}

/// Whether `key` holds a state handle (a job graph or a checkpoint): the values Flink writes as
/// Java-serialized handles, which tenure never deletes. Leader information is Flink's format by
/// design and is not one.
fn holds_state_handle(key: &str) -> bool {
    matches!(
        Layout::parse_any_era(key),
        Some((
            _,
            HaKey::ExecutionPlan(_) | HaKey::Checkpoint(..) | HaKey::LegacyCheckpoint(..)
        ))
    )
}

impl JobCleanupPlan {
    /// Plans the removal of `job`'s HA data from what the backend and the blob store hold now.
    /// Reads only.
    pub async fn compute(
        kv: &dyn VersionedKv,
        blobs: &BlobStore,
        job: JobId,
    ) -> Result<Self, HaError> {
        let entries = kv.list("").await?;
        let mine: Vec<&Entry> = entries.iter().filter(|e| job_key(&e.key, job)).collect();
        // State handles Flink wrote are never deleted, nor anything above or below them.
        let flink: Vec<&str> = mine
            .iter()
            .filter(|e| holds_state_handle(&e.key) && is_foreign(&e.value))
            .map(|e| e.key.as_str())
            .collect();
        let mut blockers: Vec<Blocker<'_>> = entries
            .iter()
            .map(|e| e.key.as_str())
            .filter(|k| !is_layout_key(k))
            .map(|key| Blocker {
                key,
                reason: "not a key of the HA layout".into(),
            })
            .collect();
        blockers.extend(flink.iter().map(|&key| Blocker {
            key,
            reason: "holds data written by Flink, which tenure never deletes".into(),
        }));
        let (keys, mut kept_keys) = plan_keys(mine.iter().copied(), &blockers);
        let (keys, below_flink): (Vec<PlannedKey>, Vec<PlannedKey>) = keys
            .into_iter()
            .partition(|k| !flink.iter().any(|f| crate::kv::is_below(f, &k.key)));
        kept_keys.extend(below_flink.into_iter().map(|k| LeftAlone {
            reason: "lies below data written by Flink".into(),
            name: k.key,
        }));
        // Foreign keys inside the job's own directories are reported too (and stay).
        kept_keys.extend(
            entries
                .iter()
                .map(|e| e.key.as_str())
                .filter(|k| !is_layout_key(k))
                .filter(|k| {
                    job_dir_of(k) == Some(job)
                        || mine.iter().any(|m| crate::kv::is_below(&m.key, k))
                })
                .map(|k| LeftAlone {
                    name: k.to_owned(),
                    reason: "not a key of the HA layout".into(),
                }),
        );
        kept_keys.sort_by(|a, b| a.name.cmp(&b.name));
        kept_keys.dedup_by(|a, b| a.name == b.name);

        let mut key_blobs = BTreeMap::new();
        for k in &keys {
            let Some(e) = mine.iter().find(|e| e.key == k.key) else {
                continue;
            };
            // Parent nodes and undecodable values point nowhere; only a pointer names a blob.
            if let Ok(Payload::Blob { name, .. }) = Payload::decode(&e.key, &e.value) {
                key_blobs.insert(k.key.clone(), name);
            }
        }
        let job_blobs = if blobs.is_available() {
            blobs
                .list(&format!("blob/job_{job}"))
                .await?
                .into_iter()
                .filter(|n| is_ha_blob(n))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            job_id: job,
            keys,
            key_blobs,
            job_blobs,
            kept_keys,
        })
    }

    /// Whether the plan deletes nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.job_blobs.is_empty()
    }

    /// Deletes exactly the plan as `stores`' writer: each key at its planned version (fenced by
    /// the stores' term, if any), then the blob it pointed to; then the job's blob server files.
    /// A refused fence is [`KvError::NotLeader`] and stops at once. The job result is not
    /// touched (see [`HaStores::cleanup_job`]).
    pub async fn execute(&self, stores: &HaStores) -> Result<JobCleanupReport, HaError> {
        let kv = stores.kv.as_ref();
        let blobs = stores.codec.blobs();
        let fence = stores.writes.token();
        let mut report = JobCleanupReport {
            job_id: self.job_id,
            keys: Vec::new(),
            blobs: Vec::new(),
            changed_keys: Vec::new(),
            kept_keys: self.kept_keys.clone(),
            result: ResultMark::LeftDirty,
        };
        for k in &self.keys {
            match delete_planned_key(kv, k, fence).await? {
                KeyDeletion::Deleted | KeyDeletion::Gone => {
                    report.keys.push(k.key.clone());
                    if let Some(blob) = self.key_blobs.get(&k.key) {
                        blobs.delete(blob).await?;
                        report.blobs.push(blob.clone());
                    }
                }
                KeyDeletion::Changed(reason) => report.changed_keys.push(LeftAlone {
                    name: k.key.clone(),
                    reason: reason.into(),
                }),
            }
        }
        for blob in &self.job_blobs {
            blobs.delete(blob).await?;
            report.blobs.push(blob.clone());
        }
        Ok(report)
    }
}

impl HaStores {
    /// Plans the removal of `job`'s HA data (see [`crate::job_cleanup`]). Reads only.
    pub async fn plan_job_cleanup(&self, job: JobId) -> Result<JobCleanupPlan, HaError> {
        JobCleanupPlan::compute(self.kv.as_ref(), self.codec.blobs(), job).await
    }

    /// One attempt at removing everything `job` left on the backend and in the blob store,
    /// then marking its job result clean (if it has one). Idempotent: a second run, or a run
    /// after a partial one, finishes what is left. Leader stores fence every delete with their
    /// term, so a deposed leader's attempt fails with [`KvError::NotLeader`] before deleting
    /// anything. If keys changed since planning the attempt is incomplete
    /// ([`JobCleanupReport::is_complete`]) and the result stays dirty.
    pub async fn cleanup_job(&self, job: JobId) -> Result<JobCleanupReport, HaError> {
        let plan = self.plan_job_cleanup(job).await?;
        for kept in &plan.kept_keys {
            tracing::warn!(%job, name = %kept.name, reason = %kept.reason, "job cleanup leaves this in place");
        }
        let mut report = plan.execute(self).await?;
        if !report.is_complete() {
            return Ok(report);
        }
        let results = &self.job_results;
        report.result = if results.has_dirty(job).await? {
            results.mark_clean(job).await?;
            ResultMark::MarkedClean
        } else if results.has_clean(job).await? {
            ResultMark::CleanAlready
        } else {
            ResultMark::NoResult
        };
        Ok(report)
    }

    /// Removes `job`'s HA data and marks its result clean, retrying a failed or incomplete
    /// attempt as `strategy` says (Flink's `cleanup-strategy`; waits with tokio's timer, so a
    /// test with paused time runs every retry at once). Giving up is not fatal: the outcome
    /// names the last error and the result stays dirty for the next leader. A refused fence
    /// (the term is over) ends it at once. Cancel by dropping the future.
    pub async fn global_cleanup(
        &self,
        job: JobId,
        strategy: &CleanupStrategy,
    ) -> GlobalCleanupOutcome {
        let mut outcome = GlobalCleanupOutcome {
            job_id: job,
            attempts: 0,
            report: None,
            error: None,
            not_leader: false,
        };
        loop {
            outcome.attempts += 1;
            match self.cleanup_job(job).await {
                Ok(report) if report.is_complete() => {
                    outcome.report = Some(report);
                    outcome.error = None;
                    return outcome;
                }
                Ok(report) => {
                    outcome.error = Some(format!(
                        "{} key(s) of job {job} changed while it was cleaned up: {}",
                        report.changed_keys.len(),
                        report
                            .changed_keys
                            .iter()
                            .map(|k| format!("{} ({})", k.name, k.reason))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    outcome.report = Some(report);
                }
                Err(e) => {
                    outcome.not_leader = is_not_leader(&e);
                    outcome.error = Some(e.to_string());
                    outcome.report = None;
                    if outcome.not_leader {
                        tracing::info!(%job, error = %e, "job cleanup stopped: the leader's term is over");
                        return outcome;
                    }
                }
            }
            let Some(wait) = strategy.wait_before_retry(outcome.attempts - 1) else {
                tracing::warn!(
                    %job,
                    attempts = outcome.attempts,
                    error = outcome.error.as_deref().unwrap_or(""),
                    "job cleanup gave up; the job result stays dirty and the next leader retries"
                );
                return outcome;
            };
            tracing::debug!(%job, attempt = outcome.attempts, ?wait, error = outcome.error.as_deref().unwrap_or(""), "job cleanup failed; retrying");
            sleep(wait).await;
        }
    }

    /// Re-runs the cleanup of every job whose result is dirty (what a new leader does on grant:
    /// those jobs finished, but their cleanup did not), one job after the other, each retried as
    /// `strategy` says. Fails only if the dirty results cannot be listed. Stops early once the
    /// term is over.
    pub async fn cleanup_dirty_results(
        &self,
        strategy: &CleanupStrategy,
    ) -> Result<Vec<GlobalCleanupOutcome>, HaError> {
        let dirty = self.job_results.dirty_results().await?;
        let mut out = Vec::with_capacity(dirty.len());
        for entry in dirty {
            let outcome = self.global_cleanup(entry.job_id, strategy).await;
            let deposed = outcome.not_leader;
            out.push(outcome);
            if deposed {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "job_cleanup_tests.rs"]
mod tests;

/// Whether `e` is a fenced write refused because the writer's term is over.
fn is_not_leader(e: &HaError) -> bool {
    matches!(
        e,
        HaError::Kv(KvError::NotLeader { .. })
            | HaError::Store(StoreError::Kv(KvError::NotLeader { .. }))
    )
}

/// Waits `wait` on tokio's timer (instant under paused time); zero does not wait.
async fn sleep(wait: Duration) {
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}
