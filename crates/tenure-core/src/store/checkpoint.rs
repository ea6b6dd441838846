//! The completed checkpoint store of one job (Flink's `DefaultCompletedCheckpointStore`): retains
//! the newest N checkpoints, subsuming and discarding older ones oldest first.
//!
//! Each checkpoint is a key `jobs/<job-id>/checkpoints/<%019d id>` whose value is a payload
//! pointer ([`PayloadCodec`]) to the checkpoint encoded as:
//!
//! ```text
//! "TCP1" <job id: 16 bytes> <checkpoint id: u64 BE> <timestamp ms: u64 BE> <metadata bytes>
//! ```

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::counter::CheckpointIdCounter;
use super::payload::{CHECKPOINT_BLOB_PREFIX, Payload, PayloadCodec};
use super::{JobStatus, StoreError, delete_opts, ignore_not_found, persistent};
use crate::ids::{CheckpointId, JobId};
use crate::kv::{DeleteOptions, Entry, FencingToken, KvError, VersionedKv};
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

/// The retained completed checkpoints of one job.
#[derive(Clone, Debug)]
pub struct CompletedCheckpointStore {
    kv: Arc<dyn VersionedKv>,
    layout: Layout,
    codec: PayloadCodec,
    job: JobId,
    max_retained: usize,
    fence: Option<FencingToken>,
    /// tenure's own retained checkpoints as this store last saw them, ascending, so an add needs
    /// no listing (Flink's store lists only at recovery, too). Only the leader writes (fenced),
    /// so the view stays exact; without a fence a stale view only ever retains too many.
    retained: Arc<Mutex<Option<Retained>>>,
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
    /// fenced by `fence`.
    pub fn new(
        kv: Arc<dyn VersionedKv>,
        layout: Layout,
        codec: PayloadCodec,
        job: JobId,
        max_retained: usize,
        fence: Option<FencingToken>,
    ) -> Result<Self, StoreError> {
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
            retained: Arc::new(Mutex::new(None)),
        })
    }

    fn cached(&self) -> Option<Retained> {
        self.retained
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_cached(&self, value: Option<Retained>) {
        *self.retained.lock().unwrap_or_else(|p| p.into_inner()) = value;
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
        let mut out = Vec::new();
        let entries = self.entries().await?;
        for (id, entry) in &entries {
            out.push(self.read(*id, entry).await?);
        }
        self.set_cached(Some(
            entries
                .into_iter()
                .map(|(id, entry)| Held {
                    id,
                    entry,
                    decoded: true,
                })
                .collect(),
        ));
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
    /// damaged blobs) are logged with their key and kept. A failed discard, or a checkpoint that
    /// could not be read to decide, is logged and retried at the next add.
    #[tracing::instrument(level = "debug", skip_all, fields(job = %self.job, id = %cp.id))]
    pub async fn add(&self, cp: CompletedCheckpoint) -> Result<Vec<CheckpointId>, StoreError> {
        if cp.job_id != self.job {
            return Err(StoreError::InvalidArgument(format!(
                "checkpoint of job {} added to the store of job {}",
                cp.job_id, self.job
            )));
        }
        let key = self.layout.checkpoint(&self.job, cp.id);
        let pointer = self
            .codec
            .store(CHECKPOINT_BLOB_PREFIX, encode_checkpoint(&cp))
            .await?;
        let known = self.cached();
        let version = match self
            .kv
            .create(&key, pointer.clone(), persistent(&self.fence))
            .await
        {
            Ok(v) => v,
            Err(e) => {
                if !matches!(e, KvError::OutcomeUnknown { .. })
                    && let Err(d) = self.codec.discard(&key, &pointer).await
                {
                    tracing::warn!(%key, "could not discard an unwritten checkpoint: {d}");
                }
                self.set_cached(None);
                return Err(match e {
                    KvError::AlreadyExists { .. } => {
                        StoreError::AlreadyExists(format!("checkpoint {key:?}"))
                    }
                    e => e.into(),
                });
            }
        };
        let added = Held {
            id: cp.id,
            entry: Entry {
                key,
                value: pointer,
                version,
                ephemeral_owner: None,
            },
            decoded: true,
        };
        let mut ours = match known {
            Some(mut ours) => {
                ours.push(added);
                ours.sort_by_key(|h| h.id);
                ours
            }
            None => {
                let mut ours = self.ours().await?;
                if let Some(h) = ours.iter_mut().find(|h| h.id == cp.id) {
                    *h = added;
                }
                ours
            }
        };
        if ours.len() > self.max_retained {
            ours = match self.decoded(ours).await {
                Ok(ours) => ours,
                Err(e) => {
                    tracing::warn!(
                        "could not read the retained checkpoints to subsume the oldest; \
                         retried at the next add: {e}"
                    );
                    self.set_cached(None);
                    return Ok(Vec::new());
                }
            };
        }
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
        self.set_cached(Some(ours));
        Ok(subsumed)
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
        match self.codec.discard(&entry.key, &entry.value).await {
            Ok(()) | Err(StoreError::Corrupt { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Shuts the store down. A globally terminal job's checkpoints and their blobs are deleted
    /// (then the directory); a suspended job's are all kept for the next leader. Checkpoints
    /// written by Flink are never deleted: they are left and reported as [`StoreError::Foreign`].
    #[tracing::instrument(level = "debug", skip_all, fields(job = %self.job, ?status))]
    pub async fn shutdown(&self, status: JobStatus) -> Result<(), StoreError> {
        if !status.is_globally_terminal() {
            return Ok(());
        }
        self.set_cached(None);
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
}

impl CheckpointRecoveryFactory {
    /// A factory for stores on `kv` with `layout`, large payloads through `codec`.
    pub fn new(kv: Arc<dyn VersionedKv>, layout: Layout, codec: PayloadCodec) -> Self {
        Self { kv, layout, codec }
    }

    /// The completed checkpoint store of `job`.
    pub fn create_completed_checkpoint_store(
        &self,
        job: JobId,
        max_retained: usize,
        fence: Option<FencingToken>,
    ) -> Result<CompletedCheckpointStore, StoreError> {
        CompletedCheckpointStore::new(
            self.kv.clone(),
            self.layout,
            self.codec.clone(),
            job,
            max_retained,
            fence,
        )
    }

    /// The checkpoint id counter of `job`.
    pub fn create_checkpoint_id_counter(
        &self,
        job: JobId,
        fence: Option<FencingToken>,
    ) -> CheckpointIdCounter {
        CheckpointIdCounter::new(self.kv.clone(), self.layout, job, fence)
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
