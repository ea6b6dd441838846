//! The running jobs registry (Flink's pre-1.15 `RunningJobsRegistry`, replaced there by the job
//! result store): `running_job_registry/<job-id>` holding `PENDING`, `RUNNING` or `DONE` as
//! UTF-8, Flink's old ZooKeeper format.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::Writes;
use super::{
    MAX_CAS_ATTEMPTS, StoreError, delete_opts, ignore_not_found, persistent, too_much_contention,
};
use crate::ids::JobId;
use crate::kv::{FencingToken, KvError, VersionedKv};
use crate::layout::{HaKey, Layout, RUNNING_JOBS_DIR};

/// A job's scheduling status (Flink's `RunningJobsRegistry.JobSchedulingStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobSchedulingStatus {
    /// Submitted, not yet running.
    Pending,
    /// Running.
    Running,
    /// Done: must not be run again.
    Done,
}

impl JobSchedulingStatus {
    /// The stored form (`PENDING`, `RUNNING`, `DONE`).
    pub fn as_str(&self) -> &'static str {
        match self {
            JobSchedulingStatus::Pending => "PENDING",
            JobSchedulingStatus::Running => "RUNNING",
            JobSchedulingStatus::Done => "DONE",
        }
    }

    /// Decodes the value stored under `key`; anything else is [`StoreError::Corrupt`] naming it.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        match bytes {
            b"PENDING" => Ok(JobSchedulingStatus::Pending),
            b"RUNNING" => Ok(JobSchedulingStatus::Running),
            b"DONE" => Ok(JobSchedulingStatus::Done),
            other => Err(StoreError::corrupt(
                key,
                format!(
                    "unknown job scheduling status {:?}",
                    String::from_utf8_lossy(other)
                ),
            )),
        }
    }
}

impl fmt::Display for JobSchedulingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The running jobs registry (Flink's pre-1.15 `RunningJobsRegistry`): PENDING, RUNNING or
/// DONE per job.
///
/// ```
/// # use tenure_core::config::HaConfig;
/// # use tenure_core::embedded::EmbeddedCluster;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let services = EmbeddedCluster::new().services(&HaConfig::embedded())?;
/// use tenure_core::ids::JobId;
/// use tenure_core::store::JobSchedulingStatus;
///
/// let mut election = services.dispatcher_leader_election().await?;
/// let term = election.wait_for_leadership().await?;
/// let registry = services.leader_stores(&term).running_jobs();
/// let job = JobId::new_random();
/// registry.set_running(job).await?;
/// assert_eq!(registry.status(job).await?, Some(JobSchedulingStatus::Running));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RunningJobsRegistry {
    kv: Arc<dyn VersionedKv>,
    layout: Layout,
    fence: Option<FencingToken>,
}

impl RunningJobsRegistry {
    /// The registry on `kv`, writing fenced by `fence`.
    pub fn new(kv: Arc<dyn VersionedKv>, layout: Layout, writes: Writes) -> Self {
        let fence = writes.into_token();
        Self { kv, layout, fence }
    }

    /// Marks the job pending.
    pub async fn set_pending(&self, job: JobId) -> Result<(), StoreError> {
        self.set(job, JobSchedulingStatus::Pending).await
    }

    /// Marks the job running.
    pub async fn set_running(&self, job: JobId) -> Result<(), StoreError> {
        self.set(job, JobSchedulingStatus::Running).await
    }

    /// Marks the job done.
    pub async fn set_done(&self, job: JobId) -> Result<(), StoreError> {
        self.set(job, JobSchedulingStatus::Done).await
    }

    /// Sets the job's status (creating or replacing the entry).
    pub async fn set(&self, job: JobId, status: JobSchedulingStatus) -> Result<(), StoreError> {
        let key = self.layout.running_job(&job);
        let value = Bytes::from_static(status.as_str().as_bytes());
        for _ in 0..MAX_CAS_ATTEMPTS {
            let result = match self.kv.get(&key).await? {
                None => self
                    .kv
                    .create(&key, value.clone(), persistent(&self.fence))
                    .await
                    .map(|_| ()),
                Some(e) => self
                    .kv
                    .compare_and_set(&key, value.clone(), e.version, self.fence.clone())
                    .await
                    .map(|_| ()),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(
                    KvError::AlreadyExists { .. }
                    | KvError::VersionConflict { .. }
                    | KvError::NotFound { .. },
                ) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(too_much_contention(&key))
    }

    /// The job's status, `None` if it has no entry.
    pub async fn status(&self, job: JobId) -> Result<Option<JobSchedulingStatus>, StoreError> {
        let key = self.layout.running_job(&job);
        match self.kv.get(&key).await? {
            None => Ok(None),
            Some(e) => JobSchedulingStatus::decode(&key, &e.value).map(Some),
        }
    }

    /// Removes the job's entry (no entry is fine).
    pub async fn clear(&self, job: JobId) -> Result<(), StoreError> {
        let key = self.layout.running_job(&job);
        Ok(ignore_not_found(
            self.kv.delete(&key, delete_opts(&self.fence, true)).await,
        )?)
    }

    /// Every job with an entry and its status, by job id.
    pub async fn all(&self) -> Result<Vec<(JobId, JobSchedulingStatus)>, StoreError> {
        let mut out = Vec::new();
        for e in self.kv.list(RUNNING_JOBS_DIR).await? {
            let Some(HaKey::RunningJob(job)) = self.layout.parse(&e.key) else {
                continue;
            };
            out.push((job, JobSchedulingStatus::decode(&e.key, &e.value)?));
        }
        out.sort_by_key(|(job, _)| *job);
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedCluster;
    use crate::store::test_util::{kv, lead, stale_token};

    #[tokio::test]
    async fn statuses_round_trip_in_flink_format() {
        let cluster = EmbeddedCluster::new();
        let s = cluster.connect();
        let r = RunningJobsRegistry::new(kv(&s), Layout::default(), Writes::Unfenced);
        let (a, b) = (JobId::new_random(), JobId::new_random());
        assert_eq!(r.status(a).await.unwrap(), None);
        r.set_pending(a).await.unwrap();
        r.set_running(a).await.unwrap();
        r.set_done(b).await.unwrap();
        assert_eq!(
            r.status(a).await.unwrap(),
            Some(JobSchedulingStatus::Running)
        );
        let key = Layout::default().running_job(&b);
        assert_eq!(&s.get(&key).await.unwrap().unwrap().value[..], b"DONE");
        let mut expected = vec![
            (a, JobSchedulingStatus::Running),
            (b, JobSchedulingStatus::Done),
        ];
        expected.sort_by_key(|(j, _)| *j);
        assert_eq!(r.all().await.unwrap(), expected);
        r.clear(a).await.unwrap();
        r.clear(a).await.unwrap();
        r.clear(b).await.unwrap();
        assert!(r.all().await.unwrap().is_empty());
        assert!(cluster.all_keys().is_empty());
    }

    #[tokio::test]
    async fn corrupt_status_names_the_key_and_fencing_holds() {
        let cluster = EmbeddedCluster::new();
        let s = cluster.connect();
        let stale = stale_token(&cluster).await;
        let (good, _latch) = lead(&s, "leader/latch").await;
        let job = JobId::new_random();
        let key = Layout::default().running_job(&job);
        s.create(&key, Bytes::from_static(b"\xFFrunning"), Default::default())
            .await
            .unwrap();
        let r = RunningJobsRegistry::new(kv(&s), Layout::default(), Writes::Fenced(stale));
        let err = r.status(job).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { key: k, .. } if *k == key),
            "{err}"
        );
        assert!(r.all().await.is_err());
        assert!(r.set_done(job).await.unwrap_err().is_not_leader());
        assert!(r.clear(job).await.unwrap_err().is_not_leader());
        let leader = RunningJobsRegistry::new(kv(&s), Layout::default(), Writes::Fenced(good));
        leader.set_done(job).await.unwrap();
        assert_eq!(
            r.status(job).await.unwrap(),
            Some(JobSchedulingStatus::Done)
        );
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32)) {
            let _ = JobSchedulingStatus::decode("running_job_registry/x", &bytes);
        }
    }
}
