//! Finished jobs in the demo: the leader writes a dirty job result, removes the job's HA data
//! (`HaStores::global_cleanup`, retried by the cleanup strategy) and marks the result clean; a
//! leader that crashes in between leaves the result dirty, and the next leader finishes the
//! cleanup on its grant (`HaStores::cleanup_dirty_results`).

use tenure::config::CleanupStrategy;
use tenure::election::LeaderTerm;
use tenure::ids::JobId;
use tenure::job_cleanup::GlobalCleanupOutcome;
use tenure::layout::{HaKey, Layout};
use tenure::store::{ApplicationStatus, JobResultEntry};

use super::jobmanager::JobManager;
use super::run::{Demo, short, store_err};
use super::timeline::Timeline;
use crate::exit::CliError;

/// The most retries the demo allows a cleanup, whatever the configuration says: a backend that
/// keeps failing must not hang the demo (the result then stays dirty and the verdict says so).
const MAX_DEMO_RETRIES: u32 = 3;

impl Demo {
    /// The configured cleanup strategy (Flink's `cleanup-strategy` keys), retries capped.
    fn cleanup_strategy(&self) -> CleanupStrategy {
        match self.config.cleanup_strategy {
            CleanupStrategy::None => CleanupStrategy::None,
            CleanupStrategy::FixedDelay { delay, attempts } => CleanupStrategy::FixedDelay {
                delay,
                attempts: attempts.min(MAX_DEMO_RETRIES),
            },
            CleanupStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                attempts,
            } => CleanupStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                attempts: attempts.min(MAX_DEMO_RETRIES),
            },
        }
    }

    /// `job` reached a globally terminal state: its dirty result is written first, and the job
    /// leaves the set the leader recovers and runs.
    pub(super) async fn job_finished(
        &mut self,
        jm: &JobManager,
        job: JobId,
    ) -> Result<(), CliError> {
        jm.services
            .job_result_store()
            .create_dirty(&JobResultEntry::new(
                job,
                ApplicationStatus::Succeeded,
                1000,
            ))
            .await
            .map_err(store_err(&jm.name, "job result"))?;
        self.jobs.retain(|j| *j != job);
        self.ledger.graphs.remove(&job);
        self.ledger.checkpoints.remove(&job);
        Ok(())
    }

    /// The leader removes `job`'s HA data and marks its result clean.
    pub(super) async fn clean_up(
        &mut self,
        jm: &JobManager,
        term: &LeaderTerm,
        job: JobId,
        tl: &mut Timeline,
    ) {
        let outcome = jm
            .services
            .leader_stores(term)
            .global_cleanup(job, &self.cleanup_strategy())
            .await;
        self.record(jm, outcome, false, tl).await;
    }

    /// What a new leader does on its grant: re-runs the cleanup of every dirty result (jobs
    /// that finished but whose cleanup did not).
    pub(super) async fn clean_up_dirty_results(
        &mut self,
        jm: &JobManager,
        term: &LeaderTerm,
        tl: &mut Timeline,
    ) -> Result<(), CliError> {
        let outcomes = jm
            .services
            .leader_stores(term)
            .cleanup_dirty_results(&self.cleanup_strategy())
            .await
            .map_err(|e| CliError::Other(format!("{}: dirty job results: {e}", jm.name)))?;
        for outcome in outcomes {
            self.record(jm, outcome, true, tl).await;
        }
        Ok(())
    }

    /// Puts a cleanup on the timeline and checks that nothing of the job is left and its result
    /// is not dirty.
    async fn record(
        &mut self,
        jm: &JobManager,
        outcome: GlobalCleanupOutcome,
        recovered: bool,
        tl: &mut Timeline,
    ) {
        let job = outcome.job_id;
        let how = if recovered {
            "dirty result recovered: cleanup re-run"
        } else {
            "cleanup"
        };
        let detail = match (&outcome.report, &outcome.error) {
            (Some(r), None) => format!(
                "job {}: {how}: removed {} keys and {} blobs; job result {} ({} attempt(s))",
                short(job),
                r.keys.len(),
                r.blobs.len(),
                r.result.as_str(),
                outcome.attempts
            ),
            (_, Some(e)) => format!(
                "job {}: {how} failed after {} attempt(s), result stays dirty: {e}",
                short(job),
                outcome.attempts
            ),
            (None, None) => format!("job {}: {how}: no report", short(job)),
        };
        tl.push(&jm.name, "job cleaned up", detail);
        let mut problems = Vec::new();
        if !outcome.is_clean() {
            problems.push(format!(
                "cleanup of job {job} did not finish: {}",
                outcome.error.as_deref().unwrap_or("incomplete")
            ));
        }
        match jm.services.kv().list("").await {
            Ok(entries) => {
                let left: Vec<String> = entries
                    .into_iter()
                    .map(|e| e.key)
                    .filter(|k| {
                        Layout::parse_any_era(k).is_some_and(|(_, key)| {
                            key.job() == Some(job) && !matches!(key, HaKey::JobResult { .. })
                        })
                    })
                    .collect();
                if !left.is_empty() {
                    problems.push(format!("job {job}: keys left after its cleanup: {left:?}"));
                }
            }
            Err(e) => problems.push(format!("job {job}: cannot list keys: {e}")),
        }
        match jm.services.job_result_store().has_dirty(job).await {
            Ok(false) => {}
            Ok(true) => problems.push(format!("job {job}: result still dirty")),
            Err(e) => problems.push(format!("job {job}: cannot read its result: {e}")),
        }
        self.ledger.cleaned(recovered, problems);
    }
}
