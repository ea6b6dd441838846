//! The completed checkpoint store of one job (Flink's `DefaultCompletedCheckpointStore`): retains
//! the newest N checkpoints, subsuming and discarding older ones oldest first.
//!
//! Each checkpoint is a key `jobs/<job-id>/checkpoints/<%019d id>` whose value is a payload
//! pointer ([`PayloadCodec`]) to the checkpoint encoded as:
//!
//! ```text
//! "TCP1" <job id: 16 bytes> <checkpoint id: u64 BE> <timestamp ms: u64 BE> <metadata bytes>
//! ```

use std::sync::Arc;

use bytes::Bytes;

use super::Writes;
use super::counter::CheckpointIdCounter;
use super::payload::{CHECKPOINT_BLOB_PREFIX, Payload, PayloadCodec};
use super::{JobStatus, StoreError, delete_opts, ignore_not_found, persistent};
use crate::ids::{CheckpointId, JobId};
use crate::kv::{DeleteOptions, Entry, FencingToken, KvError, Txn, TxnOp, VersionedKv};
use crate::layout::{HaKey, Layout};

const CHECKPOINT_MAGIC: &[u8; 4] = b"TCP1";
const HEADER_LEN: usize = 4 + 16 + 8 + 8;

/// One completed checkpoint as the HA store keeps it: its id, when it completed and the
/// checkpoint metadata (opaque to tenure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    /// The job the checkpoint belongs to.
    pub job_id: JobId,
    /// The checkpoint id.
    pub id: CheckpointId,
    /// Completion time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The checkpoint metadata.
    pub metadata: Bytes,
}

impl CompletedCheckpoint {
    /// A completed checkpoint of `job_id`. Checkpoint ids start at 1 (the first value of a
    /// [`CheckpointIdCounter`]), so id 0 is refused.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tenure_core::ids::{CheckpointId, JobId};
    /// use tenure_core::store::CompletedCheckpoint;
    ///
    /// let job = JobId::new_random();
    /// let cp = CompletedCheckpoint::new(job, CheckpointId(1), 1_700_000_000_000, Bytes::from_static(b"metadata"))?;
    /// assert_eq!(cp.id, CheckpointId(1));
    /// assert!(CompletedCheckpoint::new(job, CheckpointId(0), 0, Bytes::new()).is_err());
    /// # Ok::<(), tenure_core::store::StoreError>(())
    /// ```
    pub fn new(
        job_id: JobId,
        id: CheckpointId,
        timestamp_ms: u64,
        metadata: Bytes,
    ) -> Result<Self, StoreError> {
        check_id(id)?;
        Ok(Self {
            job_id,
            id,
            timestamp_ms,
            metadata,
        })
    }
}

/// Refuses checkpoint id 0: ids start at 1.
fn check_id(id: CheckpointId) -> Result<(), StoreError> {
    if id.0 == 0 {
        return Err(StoreError::InvalidArgument(
            "checkpoint id 0: checkpoint ids start at 1".into(),
        ));
    }
    Ok(())
}

/// Encodes a checkpoint in tenure's format (before it goes through the [`PayloadCodec`]).
pub fn encode_checkpoint(cp: &CompletedCheckpoint) -> Bytes {
    let mut out = Vec::with_capacity(HEADER_LEN + cp.metadata.len());
    out.extend_from_slice(CHECKPOINT_MAGIC);
    out.extend_from_slice(cp.job_id.as_bytes());
    out.extend_from_slice(&cp.id.0.to_be_bytes());
    out.extend_from_slice(&cp.timestamp_ms.to_be_bytes());
    out.extend_from_slice(&cp.metadata);
    Bytes::from(out)
}

/// Decodes a checkpoint read from `key`; [`StoreError::Corrupt`] naming `key` for anything that is
/// not an encoded checkpoint.
pub fn decode_checkpoint(key: &str, bytes: &[u8]) -> Result<CompletedCheckpoint, StoreError> {
    let corrupt = |reason: &str| StoreError::corrupt(key, reason);
    let rest = bytes
        .strip_prefix(CHECKPOINT_MAGIC.as_slice())
        .ok_or_else(|| corrupt("not a tenure checkpoint (missing \"TCP1\" header)"))?;
    let (job, rest) = rest
        .split_first_chunk::<16>()
        .ok_or_else(|| corrupt("truncated checkpoint header"))?;
    let (id, rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("truncated checkpoint header"))?;
    let (ts, metadata) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("truncated checkpoint header"))?;
    Ok(CompletedCheckpoint {
        job_id: JobId::from_bytes(*job),
        id: CheckpointId(u64::from_be_bytes(*id)),
        timestamp_ms: u64::from_be_bytes(*ts),
        metadata: Bytes::copy_from_slice(metadata),
    })
}

/// The retained completed checkpoints of one job (Flink's `CompletedCheckpointStore`): an add
/// keeps the newest `max_retained` and subsumes older ones (their blobs discarded), never the
/// newest.
///
/// ```
/// # use tenure_core::config::HaConfig;
/// # use tenure_core::embedded::EmbeddedCluster;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let services = EmbeddedCluster::new().services(&HaConfig::embedded())?;
/// use bytes::Bytes;
/// use tenure_core::ids::{CheckpointId, JobId};
/// use tenure_core::store::CompletedCheckpoint;
///
/// let mut election = services.dispatcher_leader_election().await?;
/// let term = election.wait_for_leadership().await?;
/// let stores = services.leader_stores(&term);
/// let job = JobId::new_random();
/// let checkpoints = stores.checkpoints(job)?; // retains 1 by default
/// let ids = stores.checkpoint_id_counter(job);
/// ids.start().await?;
/// for _ in 0..3 {
///     let id = ids.get_and_increment().await?;
///     checkpoints.add(CompletedCheckpoint::new(job, id, 0, Bytes::from_static(b"meta"))?).await?;
/// }
/// let latest = checkpoints.latest().await?.expect("retained");
/// assert_eq!(latest.id, CheckpointId(3));
/// assert_eq!(checkpoints.recover().await?.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CompletedCheckpointStore {
    kv: Arc<dyn VersionedKv>,
    layout: Layout,
    codec: PayloadCodec,
    job: JobId,
    max_retained: usize,
    fence: Option<FencingToken>,
    /// tenure's own retained checkpoints as this store (and its clones) last saw them, so an add
    /// needs no listing (Flink's store lists only at recovery, too). Held for the whole of an
    /// add, so concurrent adds through clones are serialized and none is lost from the view.
    /// Only the leader writes (fenced), so the view stays exact; without a fence a stale view
    /// only ever retains too many.
    view: Arc<tokio::sync::Mutex<View>>,
}

/// What the store knows between operations.
#[derive(Debug, Default)]
struct View {
    /// tenure's retained checkpoints, ascending by id; `None`: list before the next add.
    retained: Option<Retained>,
    /// Subsumed checkpoints whose key is deleted but whose blob could not be discarded yet;
    /// retried at the next add.
    orphans: Vec<Entry>,
}

/// tenure's own retained checkpoint entries, ascending by id.
type Retained = Vec<Held>;

/// One retained checkpoint entry as the store last saw it.
#[derive(Clone, Debug)]
struct Held {
    id: CheckpointId,
    entry: Entry,
    /// Whether the checkpoint was decoded (written or recovered by this store); only a decoded
    /// checkpoint is counted as retained and ever subsumed.
    decoded: bool,
}

impl CompletedCheckpointStore {
    /// The store of `job`, retaining the newest `max_retained` (at least 1) checkpoints, writing
    /// as `writes`.
    pub fn new(
        kv: Arc<dyn VersionedKv>,
        layout: Layout,
        codec: PayloadCodec,
        job: JobId,
        max_retained: usize,
        writes: Writes,
    ) -> Result<Self, StoreError> {
        let fence = writes.into_token();
        if max_retained < 1 {
            return Err(StoreError::InvalidArgument(
                "at least one checkpoint must be retained".into(),
            ));
        }
        Ok(Self {
            kv,
            layout,
            codec,
            job,
            max_retained,
            fence,
            view: Arc::new(tokio::sync::Mutex::new(View::default())),
        })
    }

    /// The stored checkpoints that are tenure pointers (not Flink's, not garbage), ascending by
    /// id; not yet decoded, so a pointer to a corrupt payload is among them.
    async fn ours(&self) -> Result<Retained, StoreError> {
        Ok(self
            .entries()
            .await?
            .into_iter()
            .filter(|(_, e)| Payload::decode(&e.key, &e.value).is_ok())
            .map(|(id, entry)| Held {
                id,
                entry,
                decoded: false,
            })
            .collect())
    }

    /// Decodes every entry of `held` not decoded yet. An entry that cannot be decoded (corrupt,
    /// its blob missing or damaged, Flink's) is logged with its key and left out: kept in the
    /// KV, never counted, never subsumed. `Err` if one could not be read at all (the backend or
    /// blob store failed): nothing can be subsumed safely then.
    async fn decoded(&self, held: Retained) -> Result<Retained, StoreError> {
        let mut out = Vec::with_capacity(held.len());
        for mut h in held {
            if !h.decoded {
                match self.read(h.id, &h.entry).await {
                    Ok(_) => h.decoded = true,
                    Err(e @ (StoreError::Corrupt { .. } | StoreError::Foreign { .. })) => {
                        tracing::warn!(
                            key = %h.entry.key,
                            "keeping a checkpoint that cannot be decoded; it is not counted \
                             as retained and never subsumed: {e}"
                        );
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            out.push(h);
        }
        Ok(out)
    }

    /// The job whose checkpoints these are.
    pub fn job_id(&self) -> JobId {
        self.job
    }

    /// How many checkpoints are retained.
    pub fn max_retained(&self) -> usize {
        self.max_retained
    }

    /// The stored checkpoint entries, ascending by id (other keys below the directory ignored).
    async fn entries(&self) -> Result<Vec<(CheckpointId, Entry)>, StoreError> {
        let mut out: Vec<(CheckpointId, Entry)> = self
            .kv
            .list(&self.layout.checkpoints_dir(&self.job))
            .await?
            .into_iter()
            .filter_map(|e| self.parse_key(&e.key).map(|id| (id, e)))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// The id of `<checkpoints dir>/<19 digits>`, else `None`.
    fn parse_key(&self, key: &str) -> Option<CheckpointId> {
        match self.layout.parse(key)? {
            HaKey::Checkpoint(job, id) if job == self.job => Some(id),
            _ => None,
        }
    }

    async fn read(
        &self,
        id: CheckpointId,
        entry: &Entry,
    ) -> Result<CompletedCheckpoint, StoreError> {
        let data = self.codec.load(&entry.key, &entry.value).await?;
        let cp = decode_checkpoint(&entry.key, &data)?;
        if cp.id != id || cp.job_id != self.job {
            return Err(StoreError::corrupt(
                &entry.key,
                format!("holds checkpoint {} of job {}", cp.id, cp.job_id),
            ));
        }
        Ok(cp)
    }

    /// All retained checkpoints, ascending by id. Fails, naming the key, if any of them cannot
    /// be read (as Flink's recovery does) rather than silently recovering from an older one.
    pub async fn recover(&self) -> Result<Vec<CompletedCheckpoint>, StoreError> {
        let mut view = self.view.lock().await;
        let mut out = Vec::new();
        let entries = self.entries().await?;
        for (id, entry) in &entries {
            out.push(self.read(*id, entry).await?);
        }
        view.retained = Some(
            entries
                .into_iter()
                .map(|(id, entry)| Held {
                    id,
                    entry,
                    decoded: true,
                })
                .collect(),
        );
        Ok(out)
    }

    /// The newest checkpoint, if any.
    pub async fn latest(&self) -> Result<Option<CompletedCheckpoint>, StoreError> {
        match self.entries().await?.pop() {
            None => Ok(None),
            Some((id, entry)) => Ok(Some(self.read(id, &entry).await?)),
        }
    }

    /// Adds a checkpoint ([`StoreError::AlreadyExists`] if its id is stored), then subsumes the
    /// oldest ones while more than `max_retained` are stored, never the newest. Returns the ids
    /// subsumed and discarded, oldest first. Only checkpoints this store can decode are counted
    /// and subsumed: values it cannot decode (Flink's, corrupt ones, pointers to missing or
    /// damaged blobs) are logged with their key and kept. The new key and the deletion of the
    /// subsumed keys are one transaction (one round trip); their blobs are discarded after it.
    /// A failed discard, or a checkpoint that could not be read to decide, is logged and retried
    /// at the next add. Adds through clones of one store are serialized.
    #[tracing::instrument(level = "debug", skip_all, fields(job = %self.job, id = %cp.id))]
    pub async fn add(&self, cp: CompletedCheckpoint) -> Result<Vec<CheckpointId>, StoreError> {
        if cp.job_id != self.job {
            return Err(StoreError::InvalidArgument(format!(
                "checkpoint of job {} added to the store of job {}",
                cp.job_id, self.job
            )));
        }
        check_id(cp.id)?;
        let mut view = self.view.lock().await;
        for orphan in std::mem::take(&mut view.orphans) {
            if let Err(e) = self.discard_blob(&orphan).await {
                tracing::warn!(key = %orphan.key, "could not discard subsumed checkpoint: {e}");
                view.orphans.push(orphan);
            }
        }
        let key = self.layout.checkpoint(&self.job, cp.id);
        let pointer = self
            .codec
            .store(CHECKPOINT_BLOB_PREFIX, encode_checkpoint(&cp))
            .await?;
        let known = match view.retained.take() {
            Some(known) => known,
            None => match self.ours().await {
                Ok(ours) => ours,
                Err(e) => return Err(self.unwritten(&key, &pointer, e).await),
            },
        };
        let mut ours: Retained = known.into_iter().filter(|h| h.id != cp.id).collect();
        let added = Held {
            id: cp.id,
            entry: Entry {
                key: key.clone(),
                value: pointer.clone(),
                version: crate::kv::Version(0),
                ephemeral_owner: None,
            },
            decoded: true,
        };
        ours.push(added);
        ours.sort_by_key(|h| h.id);
        let mut decided = true;
        if ours.len() > self.max_retained {
            match self.decoded(ours.clone()).await {
                Ok(d) => ours = d,
                Err(e) => {
                    tracing::warn!(
                        "could not read the retained checkpoints to subsume the oldest; \
                         retried at the next add: {e}"
                    );
                    decided = false;
                }
            }
        }
        let excess = if decided {
            ours.len().saturating_sub(self.max_retained)
        } else {
            0
        };
        let doomed: Vec<Held> = ours.drain(..excess).collect();
        let mut txn = Txn::new(self.fence.clone()).op(TxnOp::Create {
            key: key.clone(),
            value: pointer.clone(),
            ephemeral: false,
        });
        for d in &doomed {
            let expected = (d.id != cp.id).then_some(d.entry.version);
            txn.ops.push(TxnOp::Delete {
                key: d.entry.key.clone(),
                expected,
            });
        }
        let results = match self.kv.txn(txn).await {
            Ok(results) => results,
            Err(e) => match e.failed_op() {
                Some((0, KvError::AlreadyExists { .. })) => {
                    let e = StoreError::AlreadyExists(format!("checkpoint {key:?}"));
                    return Err(self.unwritten(&key, &pointer, e).await);
                }
                // A subsumed key changed or has children: add alone, then subsume one by one.
                Some((i, _)) if i > 0 => {
                    return self.add_then_subsume(&mut view, &cp, &pointer).await;
                }
                _ => return Err(self.unwritten_kv(&key, &pointer, e).await),
            },
        };
        let version = results
            .first()
            .and_then(|r| r.version())
            .unwrap_or(crate::kv::Version(0));
        for h in ours.iter_mut().filter(|h| h.id == cp.id) {
            h.entry.version = version;
        }
        let mut subsumed = Vec::new();
        for d in doomed {
            if let Err(e) = self.discard_blob(&d.entry).await {
                tracing::warn!(key = %d.entry.key, "could not discard subsumed checkpoint: {e}");
                view.orphans.push(d.entry);
            }
            subsumed.push(d.id);
        }
        view.retained = decided.then_some(ours);
        Ok(subsumed)
    }

    /// After a failed add: discards the unwritten blob and forgets the view (it is listed again
    /// at the next add).
    async fn unwritten(&self, key: &str, pointer: &[u8], e: StoreError) -> StoreError {
        if let Err(d) = self.codec.discard(key, pointer).await {
            tracing::warn!(%key, "could not discard an unwritten checkpoint: {d}");
        }
        e
    }

    /// As [`Self::unwritten`] for a KV error; the blob stays if the write may have happened.
    async fn unwritten_kv(&self, key: &str, pointer: &[u8], e: KvError) -> StoreError {
        if matches!(e, KvError::OutcomeUnknown { .. }) {
            return e.into();
        }
        self.unwritten(key, pointer, e.into()).await
    }

    /// The add of a checkpoint whose subsumption could not be one transaction: creates its key,
    /// then lists and subsumes the oldest one by one.
    async fn add_then_subsume(
        &self,
        view: &mut View,
        cp: &CompletedCheckpoint,
        pointer: &Bytes,
    ) -> Result<Vec<CheckpointId>, StoreError> {
        view.retained = None;
        let key = self.layout.checkpoint(&self.job, cp.id);
        if let Err(e) = self
            .kv
            .create(&key, pointer.clone(), persistent(&self.fence))
            .await
        {
            return Err(match e {
                KvError::AlreadyExists { .. } => {
                    let e = StoreError::AlreadyExists(format!("checkpoint {key:?}"));
                    self.unwritten(&key, pointer, e).await
                }
                e => self.unwritten_kv(&key, pointer, e).await,
            });
        }
        let mut ours = self.decoded(self.ours().await?).await?;
        let mut subsumed = Vec::new();
        while ours.len() > self.max_retained {
            let oldest = ours.remove(0);
            if let Err(e) = self.discard(&oldest.entry).await {
                tracing::warn!(key = %oldest.entry.key, "could not discard subsumed checkpoint: {e}");
                ours.insert(0, oldest);
                break;
            }
            subsumed.push(oldest.id);
        }
        view.retained = Some(ours);
        Ok(subsumed)
    }

    /// Discards the blob of a subsumed checkpoint whose key is deleted (a corrupt pointer has
    /// nothing to discard).
    async fn discard_blob(&self, entry: &Entry) -> Result<(), StoreError> {
        match self.codec.discard(&entry.key, &entry.value).await {
            Ok(()) | Err(StoreError::Corrupt { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes one checkpoint's key (fenced, only at the version read), then its blob.
    async fn discard(&self, entry: &Entry) -> Result<(), StoreError> {
        let mut opts = DeleteOptions {
            expected: Some(entry.version),
            fence: self.fence.clone(),
            recursive: false,
        };
        // tenure's checkpoints have no children; one written with lock children is deleted
        // recursively.
        match self.kv.delete(&entry.key, opts.clone()).await {
            Err(KvError::NotEmpty { .. }) => {
                opts.recursive = true;
                ignore_not_found(self.kv.delete(&entry.key, opts).await)?;
            }
            other => ignore_not_found(other)?,
        }
        self.discard_blob(entry).await
    }

    /// Shuts the store down. A globally terminal job's checkpoints and their blobs are deleted
    /// (then the directory); a suspended job's are all kept for the next leader. Checkpoints
    /// written by Flink are never deleted: they are left and reported as [`StoreError::Foreign`].
    #[tracing::instrument(level = "debug", skip_all, fields(job = %self.job, ?status))]
    pub async fn shutdown(&self, status: JobStatus) -> Result<(), StoreError> {
        if !status.is_globally_terminal() {
            return Ok(());
        }
        let mut view = self.view.lock().await;
        view.retained = None;
        let mut foreign = None;
        for (_, entry) in self.entries().await? {
            match Payload::decode(&entry.key, &entry.value) {
                Err(e @ StoreError::Foreign { .. }) => foreign = Some(e),
                _ => self.discard(&entry).await?,
            }
        }
        if let Some(e) = foreign {
            return Err(e);
        }
        let dir = self.layout.checkpoints_dir(&self.job);
        ignore_not_found(self.kv.delete(&dir, delete_opts(&self.fence, true)).await)?;
        Ok(())
    }
}

/// Creates the per-job checkpoint stores and counters (Flink's `CheckpointRecoveryFactory`).
#[derive(Clone, Debug)]
pub struct CheckpointRecoveryFactory {
    kv: Arc<dyn VersionedKv>,
    layout: Layout,
    codec: PayloadCodec,
    writes: Writes,
}

impl CheckpointRecoveryFactory {
    /// A factory for stores on `kv` with `layout`, large payloads through `codec`, every store
    /// writing as `writes`.
    pub fn new(
        kv: Arc<dyn VersionedKv>,
        layout: Layout,
        codec: PayloadCodec,
        writes: Writes,
    ) -> Self {
        Self {
            kv,
            layout,
            codec,
            writes,
        }
    }

    /// How the stores of this factory write.
    pub fn writes(&self) -> &Writes {
        &self.writes
    }

    /// The completed checkpoint store of `job`, retaining the newest `max_retained` (at least 1).
    pub fn create_completed_checkpoint_store(
        &self,
        job: JobId,
        max_retained: usize,
    ) -> Result<CompletedCheckpointStore, StoreError> {
        CompletedCheckpointStore::new(
            self.kv.clone(),
            self.layout,
            self.codec.clone(),
            job,
            max_retained,
            self.writes.clone(),
        )
    }

    /// The checkpoint id counter of `job`.
    pub fn create_checkpoint_id_counter(&self, job: JobId) -> CheckpointIdCounter {
        CheckpointIdCounter::new(self.kv.clone(), self.layout, job, self.writes.clone())
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
