//! The typed HA stores, written once over [`VersionedKv`](crate::kv::VersionedKv) with Flink's
//! semantics.
//!
//! - [`JobGraphStore`]: job graphs (Flink's `JobGraphStore`, 2.x `ExecutionPlanStore`) with
//!   per-process locks, so one process's release never deletes data another process holds;
//! - [`CompletedCheckpointStore`] and [`CheckpointIdCounter`], created per job by a
//!   [`CheckpointRecoveryFactory`];
//! - [`JobResultStore`] with a KV form ([`KvJobResultStore`]) and Flink's file form
//!   ([`FileJobResultStore`]);
//! - [`RunningJobsRegistry`] (Flink's pre-1.15 registry).
//!
//! Large values go to the blob store through a [`PayloadCodec`]; the KV holds small pointers.
//! Values written by Flink itself (Java serialization) are recognised and reported as
//! [`StoreError::Foreign`]; the stores never overwrite or delete them.

mod checkpoint;
mod counter;
mod foreign;
mod job_graph;
mod job_result;
mod job_result_file;
mod payload;
mod registry;
mod writes;

use crate::blob::BlobError;
use crate::kv::{CreateOptions, DeleteOptions, FencingToken, KvError};

pub use checkpoint::{
    CheckpointRecoveryFactory, CompletedCheckpoint, CompletedCheckpointStore, decode_checkpoint,
    encode_checkpoint,
};
pub use counter::{CheckpointIdCounter, decode_counter, encode_counter};
pub use foreign::{foreign_detail, is_foreign};
pub use job_graph::{JobGraphEvent, JobGraphStore, JobGraphWatch};
pub use job_result::{
    ApplicationStatus, FailureCause, JobResultEntry, JobResultStore, KvJobResultStore,
};
pub use job_result_file::{FileJobResultStore, JOB_RESULT_STORE_DIR};
pub use payload::{
    CHECKPOINT_BLOB_PREFIX, DEFAULT_INLINE_THRESHOLD, EXECUTION_PLAN_BLOB_PREFIX,
    JOB_GRAPH_BLOB_PREFIX, Payload, PayloadCodec, fnv1a64,
};
pub use registry::{JobSchedulingStatus, RunningJobsRegistry};
pub use writes::Writes;

/// Errors of the typed stores. Every variant about stored data names the key (or file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The versioned KV failed; [`KvError::NotLeader`] means a fenced write was refused because
    /// the writer's leadership term is over (see [`StoreError::is_not_leader`]).
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Stored bytes could not be decoded.
    #[error("corrupt data under {key:?}: {reason}")]
    Corrupt {
        /// The key (or file name) holding the bytes.
        key: String,
        /// What is wrong with them.
        reason: String,
    },
    /// The value was written by Flink itself (a Java-serialized state handle). tenure cannot read
    /// it and never overwrites or deletes it.
    #[error("{key:?} holds data written by Flink ({detail}); tenure leaves it untouched")]
    Foreign {
        /// The key holding the bytes.
        key: String,
        /// What the bytes are, with the file they name if one was found.
        detail: String,
    },
    /// The entry does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The entry exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl StoreError {
    /// Whether a fenced write was refused because the writer's leadership term is over (nothing
    /// was written).
    pub fn is_not_leader(&self) -> bool {
        matches!(self, StoreError::Kv(KvError::NotLeader { .. }))
    }

    /// Whether this is [`StoreError::NotFound`] or a KV `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound(_) | StoreError::Kv(KvError::NotFound { .. })
        )
    }

    pub(crate) fn corrupt(key: &str, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A job's status as far as HA data is concerned (the subset of Flink's `JobStatus` that
/// decides what a store's `shutdown` keeps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// The job finished successfully (globally terminal).
    Finished,
    /// The job failed (globally terminal).
    Failed,
    /// The job was cancelled (globally terminal).
    Canceled,
    /// The job master shut down or lost leadership; the job continues elsewhere.
    Suspended,
}

impl JobStatus {
    /// Whether the job is over for the whole cluster: its HA data may then be removed. Only
    /// `Suspended` keeps everything (Flink's `isGloballyTerminalState`).
    pub fn is_globally_terminal(&self) -> bool {
        !matches!(self, JobStatus::Suspended)
    }
}

/// Create options for a persistent key, fenced by `fence`.
pub(crate) fn persistent(fence: &Option<FencingToken>) -> CreateOptions {
    CreateOptions {
        ephemeral: false,
        fence: fence.clone(),
    }
}

/// Create options for an ephemeral key, fenced by `fence`.
pub(crate) fn ephemeral(fence: &Option<FencingToken>) -> CreateOptions {
    CreateOptions {
        ephemeral: true,
        fence: fence.clone(),
    }
}

/// Delete options, fenced by `fence`.
pub(crate) fn delete_opts(fence: &Option<FencingToken>, recursive: bool) -> DeleteOptions {
    DeleteOptions {
        expected: None,
        fence: fence.clone(),
        recursive,
    }
}

/// Maps a KV `NotFound` on a delete to success (deletes are idempotent).
pub(crate) fn ignore_not_found(r: Result<(), KvError>) -> Result<(), KvError> {
    match r {
        Err(KvError::NotFound { .. }) => Ok(()),
        other => other,
    }
}

/// How often a compare-and-set loop retries on concurrent modification before giving up.
pub(crate) const MAX_CAS_ATTEMPTS: usize = 1000;

/// The error after [`MAX_CAS_ATTEMPTS`] lost races on `key`.
pub(crate) fn too_much_contention(key: &str) -> StoreError {
    StoreError::Kv(KvError::Backend(format!(
        "gave up on {key:?} after {MAX_CAS_ATTEMPTS} concurrent modifications"
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_util {
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use crate::driver::{HaBackend, Latch, LatchEvent};
    use crate::embedded::EmbeddedSession;
    use crate::kv::{FencingToken, KvError, VersionedKv};

    /// Joins `latch` on `session` and waits for the grant; the latch must be free.
    pub async fn lead(session: &EmbeddedSession, latch: &str) -> (FencingToken, Box<dyn Latch>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let l = session.join_latch(latch, tx).await.unwrap();
        match rx.recv().await {
            Some(LatchEvent::Granted(token)) => (token, l),
            other => panic!("not granted: {other:?}"),
        }
    }

    /// A token of a term that is over: granted to a session that was then killed.
    pub async fn stale_token(cluster: &crate::embedded::EmbeddedCluster) -> FencingToken {
        let s = cluster.connect();
        let (token, _l) = lead(&s, "leader/latch").await;
        s.kill();
        token
    }

    /// The session as the KV trait object the stores take.
    pub fn kv(session: &EmbeddedSession) -> Arc<dyn crate::kv::VersionedKv> {
        Arc::new(session.clone())
    }

    /// Counts the calls that reach the backend, by kind; every call yields to the scheduler
    /// first, so concurrent callers interleave as they do over a network.
    #[derive(Debug)]
    pub struct CountingKv {
        inner: Arc<dyn VersionedKv>,
        reads: std::sync::atomic::AtomicUsize,
        writes: std::sync::atomic::AtomicUsize,
    }

    impl CountingKv {
        pub fn new(inner: Arc<dyn VersionedKv>) -> Arc<Self> {
            Arc::new(Self {
                inner,
                reads: Default::default(),
                writes: Default::default(),
            })
        }

        /// `(reads, writes)` since the last call.
        pub fn take(&self) -> (usize, usize) {
            use std::sync::atomic::Ordering::SeqCst;
            (self.reads.swap(0, SeqCst), self.writes.swap(0, SeqCst))
        }

        async fn read(&self) {
            tokio::task::yield_now().await;
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }

        async fn write(&self) {
            tokio::task::yield_now().await;
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[async_trait::async_trait]
    impl VersionedKv for CountingKv {
        async fn get(&self, key: &str) -> Result<Option<crate::kv::Entry>, KvError> {
            self.read().await;
            self.inner.get(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<crate::kv::Entry>, KvError> {
            self.read().await;
            self.inner.list(prefix).await
        }
        async fn watch(&self, prefix: &str) -> Result<crate::kv::KvWatch, KvError> {
            self.inner.watch(prefix).await
        }
        async fn create(
            &self,
            key: &str,
            value: bytes::Bytes,
            opts: crate::kv::CreateOptions,
        ) -> Result<crate::kv::Version, KvError> {
            self.write().await;
            self.inner.create(key, value, opts).await
        }
        async fn compare_and_set(
            &self,
            key: &str,
            value: bytes::Bytes,
            expected: crate::kv::Version,
            fence: Option<FencingToken>,
        ) -> Result<crate::kv::Version, KvError> {
            self.write().await;
            self.inner
                .compare_and_set(key, value, expected, fence)
                .await
        }
        async fn delete(&self, key: &str, opts: crate::kv::DeleteOptions) -> Result<(), KvError> {
            self.write().await;
            self.inner.delete(key, opts).await
        }
        async fn txn(&self, txn: crate::kv::Txn) -> Result<Vec<crate::kv::TxnResult>, KvError> {
            self.write().await;
            self.inner.txn(txn).await
        }
        async fn remove_empty_namespace(&self) -> Result<Vec<String>, KvError> {
            self.inner.remove_empty_namespace().await
        }
        fn session_id(&self) -> u64 {
            self.inner.session_id()
        }
    }
}
