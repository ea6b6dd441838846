//! A [`VersionedKv`] that times every operation and reports it to an [`Observer`] as
//! [`HaEvent::StoreOp`]; the HA services hand it to their stores.
//!
//! While nobody observes, an operation costs one atomic load more than the wrapped one.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use crate::kv::{
    CreateOptions, DeleteOptions, Entry, FencingToken, KvError, KvWatch, Txn, TxnResult, Version,
    VersionedKv,
};
use crate::layout::{HaKey, Layout};
use crate::observer::{HaEvent, KeyKind, KvOp, Observer};

/// The kind of HA data under `key` (a key or prefix relative to the namespace), by its place in
/// the layout; see [`KeyKind`].
pub fn key_kind(key: &str) -> KeyKind {
    if key.is_empty() {
        return KeyKind::Namespace;
    }
    let Some((_, k)) = Layout::parse_any_era(key) else {
        return KeyKind::Other;
    };
    match k {
        HaKey::ClusterLatch
        | HaKey::ClusterLatchNode(_)
        | HaKey::LeaderLatch(_)
        | HaKey::LeaderLatchNode(..)
        | HaKey::LegacyJobLeaderLatch(_)
        | HaKey::LegacyJobLeaderLatchNode(..) => KeyKind::LeaderLatch,
        HaKey::LeaderRoot
        | HaKey::LeaderDir(_)
        | HaKey::LeaderInfo(_)
        | HaKey::LegacyJobLeaderDir(_)
        | HaKey::LegacyJobLeaderInfo(_) => KeyKind::LeaderInfo,
        HaKey::ExecutionPlans | HaKey::ExecutionPlan(_) => KeyKind::JobGraph,
        HaKey::ExecutionPlanLocks(_) | HaKey::ExecutionPlanLock(..) => KeyKind::JobGraphLock,
        HaKey::Checkpoints(_)
        | HaKey::Checkpoint(..)
        | HaKey::LegacyCheckpointsRoot
        | HaKey::LegacyCheckpoints(_)
        | HaKey::LegacyCheckpoint(..) => KeyKind::Checkpoint,
        HaKey::CheckpointCounter(_)
        | HaKey::LegacyCheckpointCountersRoot
        | HaKey::LegacyCheckpointCounter(_) => KeyKind::CheckpointCounter,
        HaKey::Jobs | HaKey::JobDir(_) => KeyKind::Namespace,
        HaKey::RunningJobs | HaKey::RunningJob(_) => KeyKind::RunningJob,
        HaKey::JobResults | HaKey::JobResult { .. } => KeyKind::JobResult,
    }
}

/// Wraps a [`VersionedKv`]: every operation is passed through unchanged and, when the observer
/// has subscribers, reported with its duration and whether it succeeded.
#[derive(Debug, Clone)]
pub struct ObservedKv {
    inner: Arc<dyn VersionedKv>,
    observer: Observer,
}

impl ObservedKv {
    /// Wraps `inner`, reporting to `observer`.
    pub fn new(inner: Arc<dyn VersionedKv>, observer: Observer) -> Self {
        Self { inner, observer }
    }

    /// The wrapped KV.
    pub fn inner(&self) -> &Arc<dyn VersionedKv> {
        &self.inner
    }

    async fn timed<T>(
        &self,
        op: KvOp,
        key: &str,
        f: impl Future<Output = Result<T, KvError>>,
    ) -> Result<T, KvError> {
        if !self.observer.is_observed() {
            return f.await;
        }
        let start = Instant::now();
        let result = f.await;
        let duration = start.elapsed();
        let ok = result.is_ok();
        self.observer.emit(|| HaEvent::StoreOp {
            op,
            key: key_kind(key),
            duration,
            ok,
        });
        result
    }
}

#[async_trait]
impl VersionedKv for ObservedKv {
    async fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        self.timed(KvOp::Get, key, self.inner.get(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, KvError> {
        self.timed(KvOp::List, prefix, self.inner.list(prefix))
            .await
    }

    async fn watch(&self, prefix: &str) -> Result<KvWatch, KvError> {
        self.timed(KvOp::Watch, prefix, self.inner.watch(prefix))
            .await
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        opts: CreateOptions,
    ) -> Result<Version, KvError> {
        self.timed(KvOp::Create, key, self.inner.create(key, value, opts))
            .await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        value: Bytes,
        expected: Version,
        fence: Option<FencingToken>,
    ) -> Result<Version, KvError> {
        self.timed(
            KvOp::CompareAndSet,
            key,
            self.inner.compare_and_set(key, value, expected, fence),
        )
        .await
    }

    async fn delete(&self, key: &str, opts: DeleteOptions) -> Result<(), KvError> {
        self.timed(KvOp::Delete, key, self.inner.delete(key, opts))
            .await
    }

    async fn remove_empty_namespace(&self) -> Result<Vec<String>, KvError> {
        self.timed(
            KvOp::RemoveEmptyNamespace,
            "",
            self.inner.remove_empty_namespace(),
        )
        .await
    }

    async fn txn(&self, txn: Txn) -> Result<Vec<TxnResult>, KvError> {
        let key = txn
            .ops
            .first()
            .map(|op| op.key().to_owned())
            .unwrap_or_default();
        self.timed(KvOp::Txn, &key, self.inner.txn(txn)).await
    }

    fn parents_are_keys(&self) -> bool {
        self.inner.parents_are_keys()
    }

    fn latch_place(&self, node: &str, entry: &Entry) -> Option<i64> {
        self.inner.latch_place(node, entry)
    }

    fn session_id(&self) -> u64 {
        self.inner.session_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::HaBackend;
    use crate::embedded::EmbeddedCluster;

    #[test]
    fn keys_are_classified_by_their_place_in_the_layout() {
        let job = "58c7b669261b7be65fa686cc039885b6";
        for (key, kind) in [
            ("", KeyKind::Namespace),
            ("leader/latch", KeyKind::LeaderLatch),
            ("leader/latch/_c_x-latch-0000000001", KeyKind::LeaderLatch),
            ("leader/dispatcher/latch", KeyKind::LeaderLatch),
            ("leader/dispatcher/connection_info", KeyKind::LeaderInfo),
            ("leader/dispatcher", KeyKind::LeaderInfo),
            (&format!("execution-plans/{job}"), KeyKind::JobGraph),
            (&format!("jobgraphs/{job}/locks/o"), KeyKind::JobGraphLock),
            (
                &format!("jobs/{job}/checkpoints/0000000000000000001"),
                KeyKind::Checkpoint,
            ),
            (
                &format!("jobs/{job}/checkpoint_id_counter"),
                KeyKind::CheckpointCounter,
            ),
            (&format!("running_job_registry/{job}"), KeyKind::RunningJob),
            (&format!("job-results/{job}_DIRTY"), KeyKind::JobResult),
            ("foreign/thing", KeyKind::Other),
        ] {
            assert_eq!(key_kind(key), kind, "{key}");
        }
    }

    #[tokio::test]
    async fn each_operation_is_reported_with_its_kind_and_outcome() {
        let backend = EmbeddedCluster::new().connect();
        let observer = Observer::new();
        let kv = ObservedKv::new(backend.kv(), observer.clone());
        let running = "running_job_registry/58c7b669261b7be65fa686cc039885b6";
        kv.create(running, Bytes::new(), CreateOptions::default())
            .await
            .expect("create");
        let mut events = observer.events();
        kv.get(running).await.expect("get");
        assert!(
            kv.delete(
                "leader/dispatcher/connection_info",
                DeleteOptions::default()
            )
            .await
            .is_err()
        );
        let mut seen = Vec::new();
        while let Some(HaEvent::StoreOp { op, key, ok, .. }) = events.try_recv() {
            seen.push((op, key, ok));
        }
        assert_eq!(
            seen,
            [
                (KvOp::Get, KeyKind::RunningJob, true),
                (KvOp::Delete, KeyKind::LeaderInfo, false),
            ]
        );
    }
}
