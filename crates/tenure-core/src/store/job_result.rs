//! The job result store (Flink's `JobResultStore`, FLIP-194): a *dirty* entry is written when a
//! job reaches a globally terminal state, before its HA data is cleaned up, and marked *clean*
//! once cleanup is done. A job with any entry is never recovered or re-run.
//!
//! Entries are Flink's JSON (`JsonJobResultEntry`, version 1), byte for byte as Flink writes it:
//!
//! ```text
//! {"result":{"id":"…","application-status":"SUCCEEDED","accumulator-results":{},"net-runtime":1961},"version":1}
//! ```
//!
//! Two stores: [`KvJobResultStore`] (keys `job-results/<job-id>[_DIRTY]`, clean entries kept) and
//! [`FileJobResultStore`](super::FileJobResultStore) (Flink's files in the storage directory).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Writes;
use super::job_result_file::FileJobResultStore;
use super::{StoreError, delete_opts, ignore_not_found, persistent};
use crate::ids::JobId;
use crate::kv::{DeleteOptions, FencingToken, KvError, VersionedKv};
use crate::layout::{HaKey, JOB_RESULTS_DIR, Layout};

/// How a job ended, as Flink's `ApplicationStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApplicationStatus {
    /// The job finished (`SUCCEEDED`).
    Succeeded,
    /// The job failed (`FAILED`).
    Failed,
    /// The job was cancelled (`CANCELED`).
    Canceled,
    /// The outcome is not known (`UNKNOWN`).
    Unknown,
}

impl ApplicationStatus {
    /// Flink's name of the status.
    pub fn as_str(&self) -> &'static str {
        match self {
            ApplicationStatus::Succeeded => "SUCCEEDED",
            ApplicationStatus::Failed => "FAILED",
            ApplicationStatus::Canceled => "CANCELED",
            ApplicationStatus::Unknown => "UNKNOWN",
        }
    }

    /// Parses Flink's name of a status.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SUCCEEDED" => Some(ApplicationStatus::Succeeded),
            "FAILED" => Some(ApplicationStatus::Failed),
            "CANCELED" => Some(ApplicationStatus::Canceled),
            "UNKNOWN" => Some(ApplicationStatus::Unknown),
            _ => None,
        }
    }
}

impl fmt::Display for ApplicationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job failed (Flink's serialized `SerializedThrowable`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureCause {
    /// The exception class name.
    pub class: String,
    /// The full stringified stack trace.
    pub stack_trace: String,
    /// Base64 of the Java-serialized `SerializedThrowable`, if written.
    pub serialized_throwable: Option<String>,
}

/// One job's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobResultEntry {
    /// The job.
    pub job_id: JobId,
    /// How the job ended.
    pub application_status: ApplicationStatus,
    /// Accumulator name → base64 of the Java-serialized value, as in Flink's JSON.
    pub accumulator_results: BTreeMap<String, String>,
    /// The job's run time in milliseconds.
    pub net_runtime_ms: i64,
    /// Why the job failed, if it did.
    pub failure_cause: Option<FailureCause>,
    /// The job's name (written by Flink 2.x).
    pub name: Option<String>,
    /// Start time, ms since the Unix epoch (Flink 2.x).
    pub start_time: Option<i64>,
    /// End time, ms since the Unix epoch (Flink 2.x).
    pub end_time: Option<i64>,
    /// The application the job belongs to (Flink 2.x).
    pub application_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireFailure {
    class: String,
    #[serde(rename = "stack-trace")]
    stack_trace: String,
    #[serde(
        rename = "serialized-throwable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    serialized_throwable: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireResult {
    id: String,
    #[serde(rename = "application-status")]
    application_status: String,
    #[serde(rename = "accumulator-results", default)]
    accumulator_results: BTreeMap<String, String>,
    #[serde(rename = "net-runtime")]
    net_runtime: i64,
    #[serde(
        rename = "failure-cause",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    failure_cause: Option<WireFailure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(
        rename = "application-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    application_id: Option<String>,
    #[serde(
        rename = "start-time",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    start_time: Option<i64>,
    #[serde(rename = "end-time", default, skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
}

#[derive(Serialize)]
struct WireOut {
    result: WireResult,
    version: u32,
}

#[derive(Deserialize)]
struct WireIn {
    result: WireResult,
}

impl JobResultEntry {
    /// A result without failure cause, accumulators or the optional Flink 2.x fields.
    pub fn new(job_id: JobId, application_status: ApplicationStatus, net_runtime_ms: i64) -> Self {
        Self {
            job_id,
            application_status,
            accumulator_results: BTreeMap::new(),
            net_runtime_ms,
            failure_cause: None,
            name: None,
            start_time: None,
            end_time: None,
            application_id: None,
        }
    }

    /// Flink's JSON of the entry (one line, `"version":1`, absent optional fields omitted).
    pub fn to_json(&self) -> Bytes {
        let out = WireOut {
            result: WireResult {
                id: self.job_id.to_string(),
                application_status: self.application_status.as_str().to_owned(),
                accumulator_results: self.accumulator_results.clone(),
                net_runtime: self.net_runtime_ms,
                failure_cause: self.failure_cause.as_ref().map(|f| WireFailure {
                    class: f.class.clone(),
                    stack_trace: f.stack_trace.clone(),
                    serialized_throwable: f.serialized_throwable.clone(),
                }),
                name: self.name.clone(),
                application_id: self.application_id.clone(),
                start_time: self.start_time,
                end_time: self.end_time,
            },
            version: 1,
        };
        // Only strings, integers and string-keyed maps: serialization cannot fail.
        Bytes::from(serde_json::to_vec(&out).unwrap_or_default())
    }

    /// Parses Flink's JSON read from `key` (a KV key or file name); unknown fields are ignored.
    /// Anything else is [`StoreError::Corrupt`] naming `key`.
    pub fn from_json(key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        let wire: WireIn = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::corrupt(key, format!("not a job result JSON: {e}")))?;
        let r = wire.result;
        let job_id = JobId::parse(&r.id).map_err(|e| StoreError::corrupt(key, e.to_string()))?;
        let application_status =
            ApplicationStatus::parse(&r.application_status).ok_or_else(|| {
                StoreError::corrupt(
                    key,
                    format!("unknown application status {:?}", r.application_status),
                )
            })?;
        Ok(Self {
            job_id,
            application_status,
            accumulator_results: r.accumulator_results,
            net_runtime_ms: r.net_runtime,
            failure_cause: r.failure_cause.map(|f| FailureCause {
                class: f.class,
                stack_trace: f.stack_trace,
                serialized_throwable: f.serialized_throwable,
            }),
            name: r.name,
            start_time: r.start_time,
            end_time: r.end_time,
            application_id: r.application_id,
        })
    }

    /// Parses the entry read from `key` and checks it is `job`'s.
    pub(crate) fn from_json_of(key: &str, bytes: &[u8], job: JobId) -> Result<Self, StoreError> {
        let entry = Self::from_json(key, bytes)?;
        if entry.job_id != job {
            return Err(StoreError::corrupt(
                key,
                format!("holds the result of job {}", entry.job_id),
            ));
        }
        Ok(entry)
    }
}

/// Job results, dirty until the job's HA data is cleaned up (Flink's `JobResultStore`): in the
/// versioned KV ([`KvJobResultStore`]) or as Flink's JSON files ([`FileJobResultStore`]), as the
/// configuration says. Cheap to clone.
///
/// ```
/// use tenure_core::embedded::EmbeddedCluster;
/// use tenure_core::ids::JobId;
/// use tenure_core::services::{HaServices, HaServicesOptions};
/// use tenure_core::store::{ApplicationStatus, JobResultEntry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let services = HaServices::new(
///     std::sync::Arc::new(EmbeddedCluster::new().connect()),
///     HaServicesOptions::default(),
/// );
/// let results = services.job_result_store();
/// let job = JobId::new_random();
/// // The job finished: its result is dirty until its HA data is cleaned up.
/// results.create_dirty(&JobResultEntry::new(job, ApplicationStatus::Succeeded, 1)).await?;
/// assert!(results.has_dirty(job).await?);
/// results.mark_clean(job).await?;
/// assert!(results.has_clean(job).await?);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct JobResultStore {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Kv(KvJobResultStore),
    Files(FileJobResultStore),
}

impl From<KvJobResultStore> for JobResultStore {
    fn from(store: KvJobResultStore) -> Self {
        Self {
            inner: Inner::Kv(store),
        }
    }
}

impl From<FileJobResultStore> for JobResultStore {
    fn from(store: FileJobResultStore) -> Self {
        Self {
            inner: Inner::Files(store),
        }
    }
}

/// Runs `$call` on whichever store is inside.
macro_rules! on_inner {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.inner {
            Inner::Kv($s) => $call.await,
            Inner::Files($s) => $call.await,
        }
    };
}

impl JobResultStore {
    /// Writes a dirty entry; [`StoreError::AlreadyExists`] if the job has any entry.
    pub async fn create_dirty(&self, entry: &JobResultEntry) -> Result<(), StoreError> {
        on_inner!(self, s => s.create_dirty(entry))
    }

    /// Marks the job's entry clean; [`StoreError::NotFound`] if there is no dirty entry (a job
    /// already marked clean is fine when clean entries are kept).
    pub async fn mark_clean(&self, job: JobId) -> Result<(), StoreError> {
        on_inner!(self, s => s.mark_clean(job))
    }

    /// Whether the job has a dirty entry.
    pub async fn has_dirty(&self, job: JobId) -> Result<bool, StoreError> {
        on_inner!(self, s => s.has_dirty(job))
    }

    /// Whether the job has a clean entry.
    pub async fn has_clean(&self, job: JobId) -> Result<bool, StoreError> {
        on_inner!(self, s => s.has_clean(job))
    }

    /// Whether the job has any entry (such a job must not be recovered or re-run).
    pub async fn has_entry(&self, job: JobId) -> Result<bool, StoreError> {
        on_inner!(self, s => s.has_entry(job))
    }

    /// Every dirty entry (jobs whose cleanup must be re-run).
    pub async fn dirty_results(&self) -> Result<Vec<JobResultEntry>, StoreError> {
        on_inner!(self, s => s.dirty_results())
    }

    /// Every clean entry that is kept.
    pub async fn clean_results(&self) -> Result<Vec<JobResultEntry>, StoreError> {
        on_inner!(self, s => s.clean_results())
    }

    /// Removes any entry of the job (for cleanup tools); no entry is fine.
    pub async fn remove(&self, job: JobId) -> Result<(), StoreError> {
        on_inner!(self, s => s.remove(job))
    }
}

/// The job result store in the versioned KV: `job-results/<job-id>_DIRTY`, then
/// `job-results/<job-id>` once clean (clean entries are kept).
#[derive(Clone, Debug)]
pub struct KvJobResultStore {
    kv: Arc<dyn VersionedKv>,
    layout: Layout,
    fence: Option<FencingToken>,
}

impl KvJobResultStore {
    /// The store on `kv`, writing as `writes`.
    pub fn new(kv: Arc<dyn VersionedKv>, layout: Layout, writes: Writes) -> Self {
        Self {
            kv,
            layout,
            fence: writes.into_token(),
        }
    }

    async fn exists(&self, job: JobId, dirty: bool) -> Result<bool, StoreError> {
        Ok(self
            .kv
            .get(&self.layout.job_result(&job, dirty))
            .await?
            .is_some())
    }

    async fn results(&self, dirty: bool) -> Result<Vec<JobResultEntry>, StoreError> {
        let mut out = Vec::new();
        for e in self.kv.list(JOB_RESULTS_DIR).await? {
            let Some((job, is_dirty)) = self.parse_key(&e.key) else {
                continue;
            };
            if is_dirty == dirty {
                out.push(JobResultEntry::from_json_of(&e.key, &e.value, job)?);
            }
        }
        Ok(out)
    }

    /// `(job, dirty)` of a result key, else `None`.
    fn parse_key(&self, key: &str) -> Option<(JobId, bool)> {
        match self.layout.parse(key)? {
            HaKey::JobResult { job, dirty } => Some((job, dirty)),
            _ => None,
        }
    }
}

/// The operations behind [`JobResultStore`].
impl KvJobResultStore {
    pub(crate) async fn create_dirty(&self, entry: &JobResultEntry) -> Result<(), StoreError> {
        let job = entry.job_id;
        let key = self.layout.job_result(&job, true);
        if self.has_entry(job).await? {
            return Err(StoreError::AlreadyExists(format!("job result of {job}")));
        }
        match self
            .kv
            .create(&key, entry.to_json(), persistent(&self.fence))
            .await
        {
            Ok(_) => Ok(()),
            Err(KvError::AlreadyExists { .. }) => {
                Err(StoreError::AlreadyExists(format!("job result {key:?}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn mark_clean(&self, job: JobId) -> Result<(), StoreError> {
        let dirty_key = self.layout.job_result(&job, true);
        let Some(dirty) = self.kv.get(&dirty_key).await? else {
            if self.has_clean(job).await? {
                return Ok(());
            }
            return Err(StoreError::NotFound(format!("dirty job result of {job}")));
        };
        // Clean first, then drop the dirty one: an interrupted mark leaves both, and repeating it
        // completes it.
        let clean_key = self.layout.job_result(&job, false);
        match self
            .kv
            .create(&clean_key, dirty.value, persistent(&self.fence))
            .await
        {
            Ok(_) | Err(KvError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let opts = DeleteOptions {
            expected: Some(dirty.version),
            fence: self.fence.clone(),
            recursive: false,
        };
        Ok(ignore_not_found(self.kv.delete(&dirty_key, opts).await)?)
    }

    pub(crate) async fn has_dirty(&self, job: JobId) -> Result<bool, StoreError> {
        self.exists(job, true).await
    }

    pub(crate) async fn has_clean(&self, job: JobId) -> Result<bool, StoreError> {
        self.exists(job, false).await
    }

    pub(crate) async fn dirty_results(&self) -> Result<Vec<JobResultEntry>, StoreError> {
        self.results(true).await
    }

    pub(crate) async fn clean_results(&self) -> Result<Vec<JobResultEntry>, StoreError> {
        self.results(false).await
    }

    pub(crate) async fn remove(&self, job: JobId) -> Result<(), StoreError> {
        for dirty in [true, false] {
            let key = self.layout.job_result(&job, dirty);
            ignore_not_found(self.kv.delete(&key, delete_opts(&self.fence, false)).await)?;
        }
        Ok(())
    }

    /// Whether the job has any entry.
    pub(crate) async fn has_entry(&self, job: JobId) -> Result<bool, StoreError> {
        Ok(self.has_dirty(job).await? || self.has_clean(job).await?)
    }
}

#[cfg(test)]
#[path = "job_result_tests.rs"]
pub(super) mod tests;
