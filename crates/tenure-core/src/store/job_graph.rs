//! The job graph store (Flink's `JobGraphStore`, 2.x `ExecutionPlanStore`) with the lock scheme
//! of Flink's `ZooKeeperStateHandleStore`:
//!
//! ```text
//! <dir>/<job-id>                 the graph (a payload pointer)
//! <dir>/<job-id>/locks           exists while the graph is live; deleted = marked for deletion
//! <dir>/<job-id>/locks/<owner>   EPHEMERAL, one per process using the graph
//! ```
//!
//! A process only ever deletes its own lock; the graph goes only when no lock is left, so one
//! process's release never deletes data another process holds, and a crashed process's locks go
//! with its session.

use std::collections::{BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, SelectAll, Stream, StreamExt};

use super::Writes;
use super::payload::{EXECUTION_PLAN_BLOB_PREFIX, JOB_GRAPH_BLOB_PREFIX, Payload, PayloadCodec};
use super::{
    MAX_CAS_ATTEMPTS, StoreError, delete_opts, ephemeral, ignore_not_found, too_much_contention,
};
use crate::ids::JobId;
use crate::kv::{DeleteOptions, Entry, FencingToken, KvError, KvEvent, Txn, TxnOp, VersionedKv};
use crate::layout::{HaKey, Layout, NamingEra};

/// Job graphs of the cluster, with per-process locks (Flink's `ExecutionPlanStore`).
///
/// A put writes the graph (large ones to the blob store), its `locks` node and this process's
/// lock in one atomic write; a graph locked by any process is never removed, so one process's
/// release cannot delete what another still runs. Take it from a leader term's stores so every
/// write is fenced:
///
/// ```
/// # use tenure_core::config::HaConfig;
/// # use tenure_core::embedded::EmbeddedCluster;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let services = EmbeddedCluster::new().services(&HaConfig::embedded())?;
/// use bytes::Bytes;
/// use tenure_core::ids::JobId;
///
/// let mut election = services.dispatcher_leader_election().await?;
/// let term = election.wait_for_leadership().await?;
/// let graphs = services.leader_stores(&term).job_graphs();
/// let job = JobId::new_random();
/// graphs.put(job, Bytes::from_static(b"serialized job graph")).await?;
/// assert_eq!(graphs.recover(job).await?, Bytes::from_static(b"serialized job graph"));
/// graphs.release(job).await?; // this process no longer runs it
/// assert!(graphs.remove(job).await?); // nobody holds it: removed
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct JobGraphStore {
    kv: Arc<dyn VersionedKv>,
    layout: Layout,
    codec: PayloadCodec,
    owner: String,
    fence: Option<FencingToken>,
}

impl JobGraphStore {
    /// A store writing with `layout`'s names (reading both eras'), locking as `owner` (one UUID
    /// string per process, see [`JobGraphStore::new_owner_id`]) and fencing its writes with
    /// `writes`. `owner` must be one valid key segment.
    pub fn new(
        kv: Arc<dyn VersionedKv>,
        layout: Layout,
        codec: PayloadCodec,
        owner: impl Into<String>,
        writes: Writes,
    ) -> Result<Self, StoreError> {
        let owner = owner.into();
        if owner.contains('/') || crate::kv::validate_key(&owner).is_err() {
            return Err(StoreError::InvalidArgument(format!(
                "lock owner {owner:?} is not one key segment"
            )));
        }
        Ok(Self {
            kv,
            layout,
            codec,
            owner,
            fence: writes.into_token(),
        })
    }

    /// A store locking as `owner`, which the caller made with [`JobGraphStore::new_owner_id`].
    pub(crate) fn for_process(
        kv: Arc<dyn VersionedKv>,
        layout: Layout,
        codec: PayloadCodec,
        owner: Arc<str>,
        writes: Writes,
    ) -> Self {
        Self {
            kv,
            layout,
            codec,
            owner: owner.to_string(),
            fence: writes.into_token(),
        }
    }

    /// A fresh lock owner id (a random UUID, as Flink's `lockNode`).
    pub fn new_owner_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    /// The same store writing as `writes` (for a new leadership term).
    pub fn with_writes(&self, writes: Writes) -> Self {
        Self {
            fence: writes.into_token(),
            ..self.clone()
        }
    }

    /// The lock owner id of this store.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The layouts to read, this store's era first.
    fn layouts(&self) -> [Layout; 2] {
        let other = match self.layout.naming {
            NamingEra::Flink2 => NamingEra::Flink1,
            NamingEra::Flink1 => NamingEra::Flink2,
        };
        [self.layout, Layout::new(other)]
    }

    /// The layout of the era under which `job`'s graph exists (this store's era if none).
    async fn layout_for(&self, job: &JobId) -> Result<(Layout, Option<Entry>), StoreError> {
        for layout in self.layouts() {
            if let Some(entry) = self.kv.get(&layout.job_graph(job)).await? {
                return Ok((layout, Some(entry)));
            }
        }
        Ok((self.layout, None))
    }

    fn blob_prefix(&self) -> &'static str {
        match self.layout.naming {
            NamingEra::Flink2 => EXECUTION_PLAN_BLOB_PREFIX,
            NamingEra::Flink1 => JOB_GRAPH_BLOB_PREFIX,
        }
    }

    /// Stores `graph` as the job's graph and locks it for this process (Flink's `putJobGraph`:
    /// add-and-lock, or replace if the graph exists). The graph, its `locks` key and this
    /// process's lock are written in ONE transaction, so no crash leaves a graph without its
    /// lock. A leftover of an interrupted removal is removed first. A graph written by Flink
    /// ([`StoreError::Foreign`]) or one that cannot be decoded ([`StoreError::Corrupt`]) is
    /// never replaced.
    #[tracing::instrument(level = "debug", skip_all, fields(job = %job))]
    pub async fn put(&self, job: JobId, graph: Bytes) -> Result<(), StoreError> {
        // Which keys are known to exist already (learnt from a failed transaction).
        let mut locks_exist = false;
        // Unknown at first: a process replacing a graph usually holds its lock already.
        let mut locked: Option<bool> = None;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (layout, existing) = self.layout_for(&job).await?;
            let key = layout.job_graph(&job);
            let locks = layout.job_graph_locks(&job);
            let lock = layout.job_graph_lock(&job, &self.owner);
            if let Some(entry) = &existing {
                Payload::decode(&key, &entry.value)?;
            }
            let pointer = self.codec.store(self.blob_prefix(), graph.clone()).await?;
            let mut txn = Txn::new(self.fence.clone());
            txn.ops.push(match &existing {
                None => TxnOp::Create {
                    key: key.clone(),
                    value: pointer.clone(),
                    ephemeral: false,
                },
                Some(entry) => TxnOp::Set {
                    key: key.clone(),
                    value: pointer.clone(),
                    expected: Some(entry.version),
                },
            });
            txn.ops.push(if existing.is_some() || locks_exist {
                // Present while the graph is live; gone means marked for deletion.
                TxnOp::CheckExists { key: locks }
            } else {
                TxnOp::Create {
                    key: locks,
                    value: Bytes::new(),
                    ephemeral: false,
                }
            });
            txn.ops.push(if locked.unwrap_or(existing.is_some()) {
                TxnOp::CheckExists { key: lock }
            } else {
                TxnOp::Create {
                    key: lock,
                    value: Bytes::new(),
                    ephemeral: true,
                }
            });
            let failure = match self.kv.txn(txn).await {
                Ok(_) => {
                    if let Some(entry) = &existing
                        && let Err(e) = self.codec.discard(&key, &entry.value).await
                    {
                        tracing::warn!(%key, "could not discard the replaced job graph: {e}");
                    }
                    return Ok(());
                }
                Err(e) => e,
            };
            let Some((index, cause)) = failure.failed_op() else {
                return Err(self.discard_after(&key, &pointer, failure).await);
            };
            self.codec.discard(&key, &pointer).await?;
            match (index, cause, &existing) {
                // The graph appeared or changed meanwhile: read again.
                (0, KvError::AlreadyExists { .. }, None)
                | (0, KvError::VersionConflict { .. } | KvError::NotFound { .. }, Some(_)) => {}
                (1, KvError::AlreadyExists { .. }, None) => locks_exist = true,
                (1, KvError::NotFound { .. }, Some(entry)) => {
                    // Marked for deletion: finish that removal, then add afresh.
                    self.finish_removal(&key, entry).await?;
                    locks_exist = false;
                    locked = None;
                }
                (1, KvError::NotFound { .. }, None) => locks_exist = false,
                (2, KvError::AlreadyExists { .. }, _) => locked = Some(true),
                (2, KvError::NotFound { .. }, _) => locked = Some(false),
                _ => return Err(failure.into()),
            }
        }
        Err(too_much_contention(&self.layout.job_graph(&job)))
    }

    /// After a failed write of `pointer`: discards its blob unless the write may have happened.
    async fn discard_after(&self, key: &str, pointer: &[u8], e: KvError) -> StoreError {
        if !matches!(e, KvError::OutcomeUnknown { .. })
            && let Err(d) = self.codec.discard(key, pointer).await
        {
            tracing::warn!(%key, "could not discard an unwritten payload: {d}");
        }
        e.into()
    }

    /// Creates this process's lock on the job's graph (already holding it is fine).
    async fn lock(&self, layout: &Layout, job: &JobId) -> Result<(), StoreError> {
        let lock = layout.job_graph_lock(job, &self.owner);
        match self
            .kv
            .create(&lock, Bytes::new(), ephemeral(&self.fence))
            .await
        {
            Ok(_) | Err(KvError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Completes the removal of a graph whose `locks` key is gone: discards its blob, then
    /// deletes it (if it is still the version seen).
    async fn finish_removal(&self, key: &str, entry: &Entry) -> Result<(), StoreError> {
        self.codec.discard(key, &entry.value).await?;
        let opts = DeleteOptions {
            expected: Some(entry.version),
            fence: self.fence.clone(),
            recursive: true,
        };
        match self.kv.delete(key, opts).await {
            Ok(()) | Err(KvError::NotFound { .. } | KvError::VersionConflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The job's graph, read without locking; `None` if there is none.
    pub async fn get(&self, job: JobId) -> Result<Option<Bytes>, StoreError> {
        let (layout, entry) = self.layout_for(&job).await?;
        match entry {
            None => Ok(None),
            Some(e) => Ok(Some(
                self.codec.load(&layout.job_graph(&job), &e.value).await?,
            )),
        }
    }

    /// Locks the job's graph for this process and reads it (Flink's `recoverJobGraph`,
    /// `getAndLock`). [`StoreError::NotFound`] if it does not exist or is being removed; the lock
    /// is released again if the graph cannot be read.
    #[tracing::instrument(level = "debug", skip_all, fields(job = %job))]
    pub async fn recover(&self, job: JobId) -> Result<Bytes, StoreError> {
        let (layout, entry) = self.layout_for(&job).await?;
        let key = layout.job_graph(&job);
        let not_found = || StoreError::NotFound(format!("job graph {key:?}"));
        let Some(entry) = entry else {
            return Err(not_found());
        };
        // Never lock Flink's own graphs.
        Payload::decode(&key, &entry.value)?;
        match self.lock(&layout, &job).await {
            Err(StoreError::Kv(KvError::NotFound { .. })) => return Err(not_found()),
            other => other?,
        }
        let result = async {
            let graph = self.kv.get(&key).await?.ok_or_else(not_found)?;
            if self.kv.get(&layout.job_graph_locks(&job)).await?.is_none() {
                return Err(not_found());
            }
            self.codec.load(&key, &graph.value).await
        }
        .await;
        if result.is_err() {
            let lock = layout.job_graph_lock(&job, &self.owner);
            if let Err(e) = ignore_not_found(self.kv.delete(&lock, Default::default()).await) {
                tracing::warn!(%lock, "could not release the lock after a failed recovery: {e}");
            }
        }
        result
    }

    /// The ids of all stored job graphs (both eras' directories).
    pub async fn job_ids(&self) -> Result<Vec<JobId>, StoreError> {
        let mut ids = BTreeSet::new();
        for dir in self.layout.all_job_graph_dirs() {
            for entry in self.kv.list(dir).await? {
                if let Some(job) = parse_graph_key(&entry.key) {
                    ids.insert(job);
                }
            }
        }
        Ok(ids.into_iter().collect())
    }

    /// Releases this process's lock on the job's graph; the graph stays (Flink's local cleanup).
    /// Not fenced: giving up one's own lock is safe, and needed after leadership is lost.
    pub async fn release(&self, job: JobId) -> Result<(), StoreError> {
        for layout in self.layouts() {
            let lock = layout.job_graph_lock(&job, &self.owner);
            ignore_not_found(self.kv.delete(&lock, Default::default()).await)?;
        }
        Ok(())
    }

    /// Releases this process's locks on every graph.
    pub async fn release_all(&self) -> Result<(), StoreError> {
        for job in self.job_ids().await? {
            self.release(job).await?;
        }
        Ok(())
    }

    /// Releases this process's lock and removes the graph if no other process holds one (Flink's
    /// `releaseAndTryRemove`): `Ok(false)` if another process still holds a lock (the graph
    /// stays), `Ok(true)` once it is gone. Refuses Flink's own graphs ([`StoreError::Foreign`])
    /// and undecodable ones.
    #[tracing::instrument(level = "debug", skip_all, fields(job = %job))]
    pub async fn remove(&self, job: JobId) -> Result<bool, StoreError> {
        let (layout, entry) = self.layout_for(&job).await?;
        let key = layout.job_graph(&job);
        let lock = layout.job_graph_lock(&job, &self.owner);
        let Some(entry) = entry else {
            ignore_not_found(self.kv.delete(&lock, delete_opts(&self.fence, false)).await)?;
            return Ok(true);
        };
        Payload::decode(&key, &entry.value)?;
        ignore_not_found(self.kv.delete(&lock, delete_opts(&self.fence, false)).await)?;
        // Deleting `locks` is the commit point: it fails while anyone else holds a lock.
        let locks = layout.job_graph_locks(&job);
        match self
            .kv
            .delete(&locks, delete_opts(&self.fence, false))
            .await
        {
            Ok(()) | Err(KvError::NotFound { .. }) => {}
            Err(KvError::NotEmpty { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.codec.discard(&key, &entry.value).await?;
        ignore_not_found(self.kv.delete(&key, delete_opts(&self.fence, true)).await)?;
        Ok(true)
    }

    /// Follows graphs added and removed by any process. Graphs present when the watch starts are
    /// not reported as added; [`JobGraphWatch::known`] lists them.
    pub async fn watch(&self) -> Result<JobGraphWatch, StoreError> {
        let mut streams = SelectAll::new();
        for dir in self.layout.all_job_graph_dirs() {
            let w = self.kv.watch(dir).await?;
            let s: EventStream = Box::pin(stream::unfold(w, |mut w| async move {
                w.next().await.map(|e| (e, w))
            }));
            streams.push(s);
        }
        let known = self.job_ids().await?.into_iter().collect();
        Ok(JobGraphWatch {
            store: self.clone(),
            streams,
            known,
            pending: VecDeque::new(),
        })
    }
}

/// `<dir>/<job-id>` of either era, else `None`.
fn parse_graph_key(key: &str) -> Option<JobId> {
    match Layout::parse_any_era(key)?.1 {
        HaKey::ExecutionPlan(job) => Some(job),
        _ => None,
    }
}

type EventStream = Pin<Box<dyn Stream<Item = KvEvent> + Send>>;

/// A change of the set of stored job graphs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobGraphEvent {
    /// A graph was added (by any process).
    Added(JobId),
    /// A graph was removed (by any process).
    Removed(JobId),
}

/// Follows the job graphs (Flink's `JobGraphStoreWatcher`); see [`JobGraphStore::watch`].
pub struct JobGraphWatch {
    store: JobGraphStore,
    streams: SelectAll<EventStream>,
    known: BTreeSet<JobId>,
    pending: VecDeque<JobGraphEvent>,
}

impl std::fmt::Debug for JobGraphWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobGraphWatch")
            .field("known", &self.known)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl JobGraphWatch {
    /// The graphs known to exist as of the events returned so far: right after
    /// [`JobGraphStore::watch`], every graph present when the watch started, so that nothing
    /// added concurrently is missed.
    pub fn known(&self) -> impl Iterator<Item = JobId> + '_ {
        self.known.iter().copied()
    }

    /// The next addition or removal; `None` once the backend session is closed. Replacing a
    /// graph and lock changes are not reported. After the backend reports missed events, the
    /// difference to a fresh listing is reported.
    pub async fn next(&mut self) -> Option<JobGraphEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            match self.streams.next().await? {
                KvEvent::Put(entry) => {
                    if let Some(job) = parse_graph_key(&entry.key)
                        && self.known.insert(job)
                    {
                        return Some(JobGraphEvent::Added(job));
                    }
                }
                KvEvent::Deleted { key } => {
                    if let Some(job) = parse_graph_key(&key)
                        && self.known.remove(&job)
                    {
                        return Some(JobGraphEvent::Removed(job));
                    }
                }
                KvEvent::Reset => match self.store.job_ids().await {
                    Ok(ids) => {
                        let now: BTreeSet<JobId> = ids.into_iter().collect();
                        for job in self.known.difference(&now) {
                            self.pending.push_back(JobGraphEvent::Removed(*job));
                        }
                        for job in now.difference(&self.known) {
                            self.pending.push_back(JobGraphEvent::Added(*job));
                        }
                        self.known = now;
                    }
                    Err(e) => tracing::warn!("could not re-read job graphs after a reset: {e}"),
                },
            }
        }
    }
}

#[cfg(test)]
#[path = "job_graph_tests.rs"]
mod tests;
