//! The HA services of one process (Flink's `HighAvailabilityServices`): elections and
//! retrievals for every component, the HA stores, the blob store, and the two ways to end.
//!
//! The services report what happens to them as typed [`HaEvent`]s: register an observer with
//! [`HaServices::observe`] (a callback) or [`HaServices::subscribe`] (a channel). Grants,
//! revocations and publications come from the elections, store operation latencies from the
//! KV the stores use ([`ObservedKv`]), connection state changes from the backend session.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::{CancellationToken, DropGuard};

use crate::blob::{BlobError, BlobStore};
use crate::cleanup::{CleanupOutcome, CleanupPlan, JobResultFiles};
use crate::config::{ConfigError, HaConfig, HaMode};
use crate::connect::ConnectError;
use crate::driver::HaBackend;
use crate::election::{ElectionError, ElectionService, LeaderElection, LeaderTerm};
use crate::ha_stores::HaStores;
use crate::ids::{ComponentId, JobId};
use crate::job_cleanup::JobCleanupReport;
use crate::kv::{KvError, VersionedKv};
use crate::layout::Layout;
use crate::observed_kv::ObservedKv;
use crate::observer::{Events, HaEvent, Observer, Subscription};
use crate::retrieval::LeaderRetriever;
use crate::store::JOB_RESULT_STORE_DIR;
use crate::store::{
    FileJobResultStore, JobGraphStore, JobResultStore, KvJobResultStore, PayloadCodec, StoreError,
    Writes,
};

/// Errors of the HA services as a whole.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The backend failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Election failed.
    #[error(transparent)]
    Election(#[from] ElectionError),
    /// The HA mode cannot be served by this build.
    #[error("{0}")]
    Unsupported(String),
    /// The backend could not be set up or connected: an invalid backend setting, no client
    /// configuration, unreachable servers or refused credentials.
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// How components are elected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ElectionMode {
    /// One election per process; every component is granted together (Flink 1.15+, default).
    #[default]
    ProcessWide,
    /// One election per component (Flink 1.14 and earlier); components may be led by different
    /// processes.
    PerComponent,
}

/// Where job results are kept.
#[derive(Clone, Debug)]
pub enum JobResultStorage {
    /// In the versioned KV (`job-results/`).
    Kv,
    /// As Flink's JSON files in this directory (`job-result-store.storage-path`).
    Files {
        /// The directory.
        dir: BlobStore,
        /// Delete the file on commit instead of renaming it (`job-result-store.delete-on-commit`).
        delete_on_commit: bool,
        /// Whether other clusters may keep their results here too: `job-result-store.storage-path`
        /// was set explicitly (Flink's default, `<storageDir>/job-result-store/<cluster-id>`, is
        /// the cluster's own). Cleanup removes only results it can attribute from a shared one.
        shared: bool,
    },
}

/// How the services are set up; [`HaServicesOptions::from_config`] derives it from Flink keys.
///
/// The default has no blob store (every blob operation fails saying so): a blob store is a
/// choice to make, never a silent in-memory one on a shared backend. With an
/// [`EmbeddedCluster`](crate::embedded::EmbeddedCluster), use its
/// [`services`](crate::embedded::EmbeddedCluster::services), which shares the cluster's
/// in-memory blobs.
#[derive(Clone, Debug)]
pub struct HaServicesOptions {
    /// The key layout (Flink naming era).
    pub layout: Layout,
    /// Blobs of this cluster (`<storageDir>/<cluster-id>`).
    pub blobs: BlobStore,
    /// Where job results go.
    pub job_results: JobResultStorage,
    /// Checkpoints retained per job (`execution.checkpointing.num-retained`).
    pub num_retained_checkpoints: usize,
    /// Process-wide or per-component elections.
    pub election_mode: ElectionMode,
}

impl Default for HaServicesOptions {
    fn default() -> Self {
        Self {
            layout: Layout::default(),
            blobs: BlobStore::unavailable(
                "HaServicesOptions::default() names no blob store: set its `blobs` (a \
                 BlobStore on high-availability.storageDir, or BlobStore::in_memory() when every \
                 process is in this one), or build the options from a configuration",
            ),
            job_results: JobResultStorage::Kv,
            num_retained_checkpoints: 1,
            election_mode: ElectionMode::default(),
        }
    }
}

impl HaServicesOptions {
    /// Options from a configuration: blobs under `<storageDir>/<cluster-id>`, Flink's job
    /// result files under `job-result-store.storage-path` or
    /// `<storageDir>/job-result-store/<cluster-id>` (the KV without either), the naming era and
    /// the number of retained checkpoints.
    ///
    /// Without `high-availability.storageDir`, only the embedded mode (`NONE`, every "process"
    /// in this one) keeps blobs in memory. A shared backend (ZooKeeper, Kubernetes, etcd or a
    /// custom one) gets [`BlobStore::unavailable`]: reads of the KV and writes small enough to
    /// stay inline work (what read-only tools need), and a write that needs a blob (a job graph
    /// or checkpoint above 1 KiB) fails with [`BlobError::Unavailable`] naming
    /// `high-availability.storageDir` before anything is written. Blobs in this process's
    /// memory would be lost with it, and no other process could read them. This is checked
    /// here, where the services are built, so an `HaConfig` built by hand gets it too.
    pub fn from_config(config: &HaConfig) -> Result<Self, HaError> {
        // Built segment by segment from the validated cluster id, never by parsing a joined
        // string: `<storageDir>/<cluster-id>` and `<storageDir>/job-result-store/<cluster-id>`.
        let cluster = config.cluster_segments()?.joined();
        let storage = match &config.storage_dir {
            Some(dir) => Some(BlobStore::open(dir, "")?),
            None => None,
        };
        let blobs = match (&storage, &config.mode) {
            (Some(dir), _) => dir.child(&cluster),
            (None, HaMode::None) => BlobStore::in_memory(),
            (None, mode) => BlobStore::unavailable(format!(
                "high-availability.storageDir is not set; with high-availability.type {mode}, \
                 payloads above 1 KiB (job graphs, checkpoint metadata) are kept there for every \
                 process to read, so set it to a directory or object store all processes share"
            )),
        };
        let job_results = match (&config.job_result_store_path, &storage) {
            (Some(path), _) => JobResultStorage::Files {
                dir: BlobStore::open(path, "")?,
                delete_on_commit: config.job_result_delete_on_commit,
                shared: true,
            },
            (None, Some(dir)) => JobResultStorage::Files {
                dir: dir.child(JOB_RESULT_STORE_DIR).child(&cluster),
                delete_on_commit: config.job_result_delete_on_commit,
                shared: false,
            },
            (None, None) => JobResultStorage::Kv,
        };
        Ok(Self {
            layout: Layout::new(config.naming),
            blobs,
            job_results,
            num_retained_checkpoints: config.num_retained_checkpoints,
            election_mode: ElectionMode::default(),
        })
    }
}

/// The HA services of one process.
///
/// Clones are handles on the same services (one backend session, one process-wide election,
/// one lock owner id), so they can be shared between tasks; [`close`](Self::close) on any handle
/// closes them for all.
#[derive(Clone)]
pub struct HaServices {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn HaBackend>,
    options: HaServicesOptions,
    codec: PayloadCodec,
    owner: Arc<str>,
    cluster_election: OnceLock<ElectionService>,
    job_results: JobResultStore,
    observer: Observer,
    /// The backend's KV, observed: what the stores use.
    kv: Arc<dyn VersionedKv>,
    /// Stops the task reporting connection state changes.
    _connection_events: Option<DropGuard>,
}

impl fmt::Debug for HaServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HaServices")
            .field("backend", &self.inner.backend.kind())
            .field("blobs", &self.inner.options.blobs)
            .field("owner", &self.inner.owner)
            .finish()
    }
}

impl HaServices {
    /// The services of this process on `backend`.
    pub fn new(backend: Arc<dyn HaBackend>, options: HaServicesOptions) -> Self {
        let codec = PayloadCodec::new(options.blobs.clone());
        let observer = Observer::new();
        let kv: Arc<dyn VersionedKv> = Arc::new(ObservedKv::new(backend.kv(), observer.clone()));
        let job_results: JobResultStore = match &options.job_results {
            JobResultStorage::Kv => {
                KvJobResultStore::new(kv.clone(), options.layout, Writes::Unfenced).into()
            }
            JobResultStorage::Files {
                dir,
                delete_on_commit,
                ..
            } => FileJobResultStore::new(dir.clone(), *delete_on_commit).into(),
        };
        let connection_events = report_connection_changes(&backend, &observer);
        Self {
            inner: Arc::new(Inner {
                backend,
                options,
                codec,
                owner: JobGraphStore::new_owner_id().into(),
                cluster_election: OnceLock::new(),
                job_results,
                observer,
                kv,
                _connection_events: connection_events,
            }),
        }
    }

    /// The hub the services report their [`HaEvent`]s to; clones share it.
    pub fn observer(&self) -> &Observer {
        &self.inner.observer
    }

    /// Calls `callback` with every [`HaEvent`] of these services from now on, until the
    /// returned [`Subscription`] is dropped (or for the services' lifetime after
    /// [`Subscription::detach`]). The callback runs on the emitting task and must not block.
    pub fn observe(&self, callback: impl Fn(&HaEvent) + Send + Sync + 'static) -> Subscription {
        self.inner.observer.subscribe(callback)
    }

    /// Every [`HaEvent`] of these services from now on, on an unbounded channel.
    pub fn subscribe(&self) -> Events {
        self.inner.observer.events()
    }

    /// The versioned KV the stores use: the backend's, with every operation reported to the
    /// observer as [`HaEvent::StoreOp`].
    pub fn kv(&self) -> Arc<dyn VersionedKv> {
        self.inner.kv.clone()
    }

    /// The backend session of this process.
    pub fn backend(&self) -> &Arc<dyn HaBackend> {
        &self.inner.backend
    }

    /// The key layout.
    pub fn layout(&self) -> Layout {
        self.inner.options.layout
    }

    /// The options the services were built with.
    pub fn options(&self) -> &HaServicesOptions {
        &self.inner.options
    }

    /// This process's lock owner id on job graphs.
    pub fn owner_id(&self) -> &str {
        &self.inner.owner
    }

    /// The process-wide election service (created on first use).
    pub fn cluster_election(&self) -> &ElectionService {
        self.inner.cluster_election.get_or_init(|| {
            ElectionService::new(
                self.inner.backend.clone(),
                self.inner.options.layout,
                self.inner.options.layout.cluster_latch(),
            )
            .with_observer(self.inner.observer.clone())
        })
    }

    /// Starts campaigning for `component`: on the process-wide election, or on the component's
    /// own latch in [`ElectionMode::PerComponent`]. A [`ComponentId::Named`] service always
    /// campaigns on its own latch (see [`HaServices::election`]).
    pub async fn leader_election(
        &self,
        component: ComponentId,
    ) -> Result<LeaderElection, ElectionError> {
        if let ComponentId::Named(name) = &component {
            // A named service always campaigns on its own latch, in either mode.
            return self
                .named_election_service(name.clone())
                .register(component)
                .await;
        }
        match self.inner.options.election_mode {
            ElectionMode::ProcessWide => self.cluster_election().register(component).await,
            ElectionMode::PerComponent => {
                let layout = self.inner.options.layout;
                ElectionService::new(
                    self.inner.backend.clone(),
                    layout,
                    layout.component_latch(&component),
                )
                .with_observer(self.inner.observer.clone())
                .register(component)
                .await
            }
        }
    }

    /// Election of the resource manager.
    pub async fn resource_manager_leader_election(&self) -> Result<LeaderElection, ElectionError> {
        self.leader_election(ComponentId::ResourceManager).await
    }

    /// Election of the dispatcher.
    pub async fn dispatcher_leader_election(&self) -> Result<LeaderElection, ElectionError> {
        self.leader_election(ComponentId::Dispatcher).await
    }

    /// Election of the REST endpoint (Flink's cluster REST endpoint / web monitor).
    pub async fn rest_endpoint_leader_election(&self) -> Result<LeaderElection, ElectionError> {
        self.leader_election(ComponentId::RestServer).await
    }

    /// Election of a job's job master.
    pub async fn job_master_leader_election(
        &self,
        job: JobId,
    ) -> Result<LeaderElection, ElectionError> {
        self.leader_election(ComponentId::JobMaster(job)).await
    }

    /// Follows `component`'s leader.
    pub fn leader_retriever(&self, component: ComponentId) -> LeaderRetriever {
        LeaderRetriever::start(
            self.inner.backend.clone(),
            self.inner.options.layout,
            component,
            None,
        )
    }

    /// Follows the resource manager's leader.
    pub fn resource_manager_leader_retriever(&self) -> LeaderRetriever {
        self.leader_retriever(ComponentId::ResourceManager)
    }

    /// Follows the dispatcher's leader.
    pub fn dispatcher_leader_retriever(&self) -> LeaderRetriever {
        self.leader_retriever(ComponentId::Dispatcher)
    }

    /// Follows the REST endpoint's leader.
    pub fn rest_endpoint_leader_retriever(&self) -> LeaderRetriever {
        self.leader_retriever(ComponentId::RestServer)
    }

    /// Follows a job master's leader; `default_address` is shown while none is published.
    pub fn job_master_leader_retriever(
        &self,
        job: JobId,
        default_address: Option<String>,
    ) -> LeaderRetriever {
        LeaderRetriever::start(
            self.inner.backend.clone(),
            self.inner.options.layout,
            ComponentId::JobMaster(job),
            default_address,
        )
    }

    /// The stores of a leader term: every write they make carries `term`'s fencing token, so it
    /// is refused by the backend once the term is over (revoked, stopped, or its session lost).
    /// Take new stores for each term.
    pub fn leader_stores(&self, term: &LeaderTerm) -> HaStores {
        self.stores(Writes::from(term))
    }

    /// The stores with unfenced writes, for operator tools, migrations and tests. Nothing stops
    /// these writes from racing a leader's; a leader uses [`leader_stores`](Self::leader_stores).
    pub fn admin_stores(&self) -> HaStores {
        self.stores(Writes::Unfenced)
    }

    fn stores(&self, writes: Writes) -> HaStores {
        HaStores {
            kv: self.kv(),
            layout: self.inner.options.layout,
            codec: self.inner.codec.clone(),
            owner: self.inner.owner.clone(),
            writes,
            num_retained_checkpoints: self.inner.options.num_retained_checkpoints,
            job_results: self.inner.job_results.clone(),
        }
    }

    /// The job result store (not fenced on any writer: job results are written once per job
    /// and read by Flink too).
    pub fn job_result_store(&self) -> JobResultStore {
        self.inner.job_results.clone()
    }

    /// The blob store of this cluster.
    pub fn blob_store(&self) -> &BlobStore {
        &self.inner.options.blobs
    }

    /// Closes the services: elections end (leadership is given up), the backend session closes,
    /// and all HA data is kept for a later recovery.
    ///
    /// Every clone of these services is closed with it; closing again is harmless.
    pub async fn close(&self) -> Result<(), HaError> {
        self.inner.backend.close().await?;
        Ok(())
    }

    /// Where the job result files are, for cleanup (`None` when results are kept in the KV).
    pub fn job_result_files(&self) -> Option<JobResultFiles> {
        match &self.inner.options.job_results {
            JobResultStorage::Kv => None,
            JobResultStorage::Files { dir, shared, .. } => Some(JobResultFiles {
                dir: dir.clone(),
                shared: *shared,
            }),
        }
    }

    /// Plans the removal of the cluster's HA data (see [`crate::cleanup`]): what
    /// [`close_and_cleanup_all_data`](Self::close_and_cleanup_all_data) would delete and what it
    /// would leave alone. Reads only. `force` adds foreign keys and blobs inside the cluster's
    /// namespace and blob directory.
    pub async fn cleanup_plan(&self, force: bool) -> Result<CleanupPlan, HaError> {
        let files = self.job_result_files();
        CleanupPlan::compute(
            self.kv().as_ref(),
            &self.inner.options.blobs,
            files.as_ref(),
            force,
        )
        .await
    }

    /// Deletes exactly `plan` (computed by [`cleanup_plan`](Self::cleanup_plan)) and reports
    /// what was removed; the services stay open.
    pub async fn execute_cleanup(&self, plan: &CleanupPlan) -> Result<CleanupOutcome, HaError> {
        let files = self.job_result_files();
        plan.execute(
            self.kv().as_ref(),
            &self.inner.options.blobs,
            files.as_ref(),
        )
        .await
    }

    /// One attempt at removing everything the finished `job` left on the backend and in the
    /// blob store, then marking its job result clean if it has one (see [`crate::job_cleanup`]).
    /// Unfenced, for operators; a leader uses
    /// [`HaStores::global_cleanup`](crate::ha_stores::HaStores::global_cleanup) on its term's
    /// stores, which retries and is fenced.
    pub async fn cleanup_job(&self, job: JobId) -> Result<JobCleanupReport, HaError> {
        self.admin_stores().cleanup_job(job).await
    }

    /// Closes the services and removes the cluster's HA data: the keys of the HA layout in the
    /// cluster's namespace, the HA blobs under `<storageDir>/<cluster-id>` and the job result
    /// files (see [`crate::cleanup`] for exactly what counts as the cluster's). Anything foreign
    /// found there is left in place and logged. Use when the cluster is globally terminated.
    pub async fn close_and_cleanup_all_data(&self) -> Result<(), HaError> {
        let result = match self.cleanup_plan(false).await {
            Ok(plan) => {
                for kept in plan
                    .kept_keys
                    .iter()
                    .chain(&plan.kept_blobs)
                    .chain(&plan.kept_job_result_files)
                {
                    tracing::warn!(name = ?kept.name, reason = %kept.reason, "cleanup leaves this in place");
                }
                self.execute_cleanup(&plan).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        let closed = self.inner.backend.close().await.map_err(HaError::from);
        result.and(closed)
    }
}

/// Reports every change of `backend`'s connection state to `observer` while the returned guard
/// lives. Outside a tokio runtime nothing is reported. A change that is undone before the task
/// runs may be seen once, as the latest state.
fn report_connection_changes(
    backend: &Arc<dyn HaBackend>,
    observer: &Observer,
) -> Option<DropGuard> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let mut states = backend.connection_state();
    states.borrow_and_update();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let observer = observer.clone();
    runtime.spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.cancelled() => return,
                changed = states.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let state = *states.borrow_and_update();
                    observer.emit(|| HaEvent::Connection(state));
                }
            }
        }
    });
    Some(stop.drop_guard())
}
