//! The HA stores of one writer: a leader term's (every write fenced by its token) or an
//! operator's (unfenced, asked for by name).

use std::fmt;
use std::sync::Arc;

use crate::ids::JobId;
use crate::kv::VersionedKv;
use crate::layout::Layout;
use crate::store::{
    CheckpointIdCounter, CheckpointRecoveryFactory, CompletedCheckpointStore, JobGraphStore,
    JobResultStore, PayloadCodec, RunningJobsRegistry, StoreError, Writes,
};

/// The HA stores as one writer sees them; every store it hands out writes as
/// [`HaStores::writes`] says.
///
/// Obtained from [`HaServices::leader_stores`](crate::services::HaServices::leader_stores) with a
/// [`LeaderTerm`](crate::election::LeaderTerm) — every write then carries that term's fencing
/// token, so a deposed leader's write is refused by the backend — or from
/// [`HaServices::admin_stores`](crate::services::HaServices::admin_stores) for unfenced operator
/// access. Reads are the same in both. Cheap to clone.
#[derive(Clone)]
pub struct HaStores {
    pub(crate) kv: Arc<dyn VersionedKv>,
    pub(crate) layout: Layout,
    pub(crate) codec: PayloadCodec,
    pub(crate) owner: Arc<str>,
    pub(crate) writes: Writes,
    pub(crate) num_retained_checkpoints: usize,
    pub(crate) job_results: JobResultStore,
}

impl fmt::Debug for HaStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HaStores")
            .field("writes", &self.writes)
            .field("owner", &self.owner)
            .finish()
    }
}

impl HaStores {
    /// How the stores write: fenced by a term's token, or unfenced (the admin view).
    pub fn writes(&self) -> &Writes {
        &self.writes
    }

    /// The job graph store (Flink's `ExecutionPlanStore`), locking graphs as this process
    /// ([`HaServices::owner_id`](crate::services::HaServices::owner_id)).
    pub fn job_graphs(&self) -> JobGraphStore {
        JobGraphStore::for_process(
            self.kv.clone(),
            self.layout,
            self.codec.clone(),
            self.owner.clone(),
            self.writes.clone(),
        )
    }

    /// The running jobs registry.
    pub fn running_jobs(&self) -> RunningJobsRegistry {
        RunningJobsRegistry::new(self.kv.clone(), self.layout, self.writes.clone())
    }

    /// The factory of per-job checkpoint stores and counters (Flink's
    /// `CheckpointRecoveryFactory`).
    pub fn checkpoint_recovery_factory(&self) -> CheckpointRecoveryFactory {
        CheckpointRecoveryFactory::new(
            self.kv.clone(),
            self.layout,
            self.codec.clone(),
            self.writes.clone(),
        )
    }

    /// The completed checkpoint store of `job`, retaining as many checkpoints as configured
    /// (`execution.checkpointing.num-retained`).
    pub fn checkpoints(&self, job: JobId) -> Result<CompletedCheckpointStore, StoreError> {
        self.checkpoint_recovery_factory()
            .create_completed_checkpoint_store(job, self.num_retained_checkpoints)
    }

    /// The checkpoint id counter of `job`.
    pub fn checkpoint_id_counter(&self, job: JobId) -> CheckpointIdCounter {
        self.checkpoint_recovery_factory()
            .create_checkpoint_id_counter(job)
    }

    /// The job result store. Job results are not fenced on any writer (Flink writes them once
    /// per job, and Flink's own processes read them), so this is the same store in both views.
    pub fn job_results(&self) -> JobResultStore {
        self.job_results.clone()
    }
}
