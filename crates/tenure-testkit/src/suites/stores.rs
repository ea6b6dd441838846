//! Typed store conformance: every store over the backend's KV, used by several processes.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use tenure_core::blob::BlobStore;
use tenure_core::ids::{CheckpointId, ComponentId, JobId};
use tenure_core::services::{HaServices, HaServicesOptions};
use tenure_core::store::{
    ApplicationStatus, CompletedCheckpoint, JobGraphEvent, JobResultEntry, JobSchedulingStatus,
    JobStatus,
};

use super::election::wait_leader;
use crate::{BackendFactory, DEADLINE};

/// Services of several simulated processes sharing one backend cluster and one blob store.
pub struct Processes<'a> {
    factory: &'a dyn BackendFactory,
    options: HaServicesOptions,
}

impl<'a> Processes<'a> {
    /// Processes on `factory`'s cluster, retaining `retain` checkpoints per job.
    pub fn new(factory: &'a dyn BackendFactory, retain: usize) -> Self {
        Self {
            factory,
            options: HaServicesOptions {
                blobs: BlobStore::in_memory(),
                num_retained_checkpoints: retain,
                ..Default::default()
            },
        }
    }

    /// Starts one more process.
    pub async fn start(&self) -> HaServices {
        HaServices::new(self.factory.connect().await, self.options.clone())
    }

    /// The shared blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.options.blobs
    }
}

fn graph(n: usize) -> Bytes {
    Bytes::from(vec![b'g'; n])
}

fn checkpoint(job: JobId, id: u64, size: usize) -> CompletedCheckpoint {
    CompletedCheckpoint {
        job_id: job,
        id: CheckpointId(id),
        timestamp_ms: id * 1000,
        metadata: Bytes::from(vec![id as u8; size]),
    }
}

/// Job graphs: another process recovers them; release and remove never delete a graph another
/// process holds; removal succeeds once nobody else holds it.
pub async fn job_graph_locks_protect_other_processes(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    let b = procs.start().await;
    let job = JobId::new_random();
    let ga = a.admin_stores().job_graphs();
    let gb = b.admin_stores().job_graphs();
    ga.put(job, graph(4096)).await.expect("put");
    assert_eq!(gb.job_ids().await.expect("ids"), vec![job]);
    assert_eq!(gb.recover(job).await.expect("recover"), graph(4096));
    ga.release(job).await.expect("release a");
    assert!(
        gb.get(job).await.expect("get").is_some(),
        "release by a kept b's graph"
    );
    ga.recover(job).await.expect("a locks again");
    assert!(
        !ga.remove(job).await.expect("remove a"),
        "b still holds a lock"
    );
    assert!(gb.get(job).await.expect("get").is_some());
    assert!(
        gb.remove(job).await.expect("remove b"),
        "nobody else holds it"
    );
    assert!(ga.get(job).await.expect("get").is_none());
    assert!(ga.job_ids().await.expect("ids").is_empty());
}

/// A crashed process's locks go with its session, so the graph can be removed.
pub async fn crashed_process_locks_vanish(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a_backend = f.connect().await;
    let a = HaServices::new(a_backend.clone(), procs.options.clone());
    let b = procs.start().await;
    let job = JobId::new_random();
    a.admin_stores()
        .job_graphs()
        .put(job, graph(10))
        .await
        .expect("put");
    let gb = b.admin_stores().job_graphs();
    gb.recover(job).await.expect("b locks");
    f.crash(&a_backend).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    // The crash removes a's ephemeral lock; removal then succeeds (retried while the backend
    // propagates the session's end).
    loop {
        if gb.remove(job).await.expect("remove") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a's lock never vanished"
        );
        gb.recover(job).await.expect("relock");
        tokio::task::yield_now().await;
    }
    assert!(gb.get(job).await.expect("get").is_none());
}

/// A job graph watch sees graphs added and removed by another process.
pub async fn job_graph_watch_sees_other_processes(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    let b = procs.start().await;
    let mut watch = b.admin_stores().job_graphs().watch().await.expect("watch");
    let ga = a.admin_stores().job_graphs();
    let job = JobId::new_random();
    ga.put(job, graph(8)).await.expect("put");
    let ev = tokio::time::timeout(DEADLINE, watch.next())
        .await
        .expect("added in time");
    assert_eq!(ev, Some(JobGraphEvent::Added(job)));
    assert!(ga.remove(job).await.expect("remove"));
    let ev = tokio::time::timeout(DEADLINE, watch.next())
        .await
        .expect("removed in time");
    assert_eq!(ev, Some(JobGraphEvent::Removed(job)));
}

/// Retention: after each successful add the oldest checkpoints beyond the retained number are
/// discarded (with their blobs); another process recovers the newest ones in id order.
pub async fn checkpoint_retention_and_recovery(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 3);
    let a = procs.start().await;
    let job = JobId::new_random();
    let store = a
        .admin_stores()
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, 3)
        .expect("store");
    let mut subsumed = Vec::new();
    for id in 1..=5 {
        subsumed.extend(store.add(checkpoint(job, id, 2048)).await.expect("add"));
    }
    assert_eq!(subsumed, vec![CheckpointId(1), CheckpointId(2)]);
    let b = procs.start().await;
    let recovered = b
        .admin_stores()
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, 3)
        .expect("store b")
        .recover()
        .await
        .expect("recover");
    let ids: Vec<u64> = recovered.iter().map(|c| c.id.0).collect();
    assert_eq!(ids, vec![3, 4, 5]);
    assert_eq!(recovered[2], checkpoint(job, 5, 2048));
    let blobs = procs.blobs().list("").await.expect("blobs");
    assert_eq!(
        blobs.len(),
        3,
        "blobs of discarded checkpoints are gone: {blobs:?}"
    );
}

/// Concurrent adds through clones of one checkpoint store lose nothing from its retained view:
/// every id is either retained or subsumed exactly once, the backend holds exactly the newest
/// ones, and a later add subsumes exactly the oldest of them.
pub async fn concurrent_checkpoint_adds_keep_the_retained_view(f: &dyn BackendFactory) {
    const RETAIN: usize = 3;
    const ADDS: u64 = 24;
    let procs = Processes::new(f, RETAIN);
    let a = procs.start().await;
    let job = JobId::new_random();
    let store = a
        .admin_stores()
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, RETAIN)
        .expect("store");
    // Ids in an interleaved order, so that late adds of old ids race with new ones.
    let ids: Vec<u64> = (1..=ADDS / 2).flat_map(|i| [ADDS + 1 - i, i]).collect();
    let tasks: Vec<_> = ids
        .iter()
        .map(|&id| {
            let store = store.clone();
            tokio::spawn(async move { store.add(checkpoint(job, id, 2048)).await })
        })
        .collect();
    let mut subsumed = Vec::new();
    for t in tasks {
        subsumed.extend(t.await.expect("task").expect("add"));
    }
    let newest: Vec<u64> = (ADDS + 1 - RETAIN as u64..=ADDS).collect();
    let recovered: Vec<u64> = procs
        .start()
        .await
        .admin_stores()
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, RETAIN)
        .expect("reader")
        .recover()
        .await
        .expect("recover")
        .iter()
        .map(|c| c.id.0)
        .collect();
    assert_eq!(recovered, newest, "the backend holds the newest");
    let mut seen: Vec<u64> = subsumed.iter().map(|c| c.0).chain(newest.clone()).collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=ADDS).collect::<Vec<_>>(),
        "each id subsumed once"
    );
    // The view is exact: the next add subsumes exactly the oldest retained one.
    let next = store
        .add(checkpoint(job, ADDS + 1, 2048))
        .await
        .expect("add");
    assert_eq!(next, vec![CheckpointId(newest[0])]);
    let ids: Vec<u64> = store
        .recover()
        .await
        .expect("recover")
        .iter()
        .map(|c| c.id.0)
        .collect();
    assert_eq!(
        ids,
        (ADDS + 2 - RETAIN as u64..=ADDS + 1).collect::<Vec<_>>()
    );
    let blobs = procs.blobs().list("").await.expect("blobs");
    assert_eq!(blobs.len(), RETAIN, "subsumed blobs are gone: {blobs:?}");
}

/// Shutdown with a suspended status keeps the checkpoints; a terminal status discards them.
pub async fn checkpoint_shutdown_keeps_or_discards(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 2);
    let a = procs.start().await;
    let job = JobId::new_random();
    let factory = a.admin_stores().checkpoint_recovery_factory();
    let store = factory
        .create_completed_checkpoint_store(job, 2)
        .expect("store");
    let counter = factory.create_checkpoint_id_counter(job);
    counter.start().await.expect("start");
    for _ in 0..2 {
        let id = counter.get_and_increment().await.expect("id");
        store.add(checkpoint(job, id.0, 2048)).await.expect("add");
    }
    store.shutdown(JobStatus::Suspended).await.expect("suspend");
    counter
        .shutdown(JobStatus::Suspended)
        .await
        .expect("suspend counter");
    assert_eq!(store.recover().await.expect("recover").len(), 2);
    assert_eq!(counter.get().await.expect("get"), CheckpointId(3));
    store.shutdown(JobStatus::Canceled).await.expect("terminal");
    counter
        .shutdown(JobStatus::Canceled)
        .await
        .expect("terminal counter");
    assert!(store.recover().await.expect("recover").is_empty());
    assert_eq!(counter.get().await.expect("get"), CheckpointId::INITIAL);
    assert!(procs.blobs().list("").await.expect("blobs").is_empty());
}

/// The counter starts at 1 and hands out every id once, across processes and tasks.
pub async fn counter_hands_out_each_id_once(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let job = JobId::new_random();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let p = procs.start().await;
        let counter = Arc::new(
            p.admin_stores()
                .checkpoint_recovery_factory()
                .create_checkpoint_id_counter(job),
        );
        counter.start().await.expect("start");
        for _ in 0..4 {
            let c = counter.clone();
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..5 {
                    ids.push(c.get_and_increment().await.expect("increment").0);
                }
                ids
            }));
        }
    }
    let mut all = BTreeSet::new();
    for t in tasks {
        for id in t.await.expect("task") {
            assert!(all.insert(id), "id {id} handed out twice");
        }
    }
    assert_eq!(all, (1..=40).collect::<BTreeSet<u64>>());
}

/// Store writes fenced by a term that is over are rejected and change nothing.
pub async fn deposed_leader_store_writes_are_rejected(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    let b = procs.start().await;
    let ea = a.leader_election(ComponentId::Dispatcher).await.expect("a");
    let ta = wait_leader(&mut ea.leadership()).await;
    let eb = b.leader_election(ComponentId::Dispatcher).await.expect("b");
    let job = JobId::new_random();
    let stores = a.leader_stores(&ta);
    let graphs = stores.job_graphs();
    graphs.put(job, graph(16)).await.expect("leader writes");
    let factory = stores.checkpoint_recovery_factory();
    let cps = factory
        .create_completed_checkpoint_store(job, 1)
        .expect("cps");
    let counter = factory.create_checkpoint_id_counter(job);
    counter.start().await.expect("start");
    let registry = stores.running_jobs();
    ea.stop().await.expect("stop a");
    let tb = wait_leader(&mut eb.leadership()).await;
    assert_ne!(tb.session_id, ta.session_id);
    let e = graphs.put(job, graph(32)).await.expect_err("graph write");
    assert!(e.is_not_leader(), "{e}");
    let e = cps
        .add(checkpoint(job, 1, 8))
        .await
        .expect_err("checkpoint");
    assert!(e.is_not_leader(), "{e}");
    let e = counter.get_and_increment().await.expect_err("counter");
    assert!(e.is_not_leader(), "{e}");
    let e = registry.set_done(job).await.expect_err("registry");
    assert!(e.is_not_leader(), "{e}");
    let gb = b.admin_stores().job_graphs();
    assert_eq!(gb.get(job).await.expect("get"), Some(graph(16)));
    assert!(cps.recover().await.expect("recover").is_empty());
    assert_eq!(counter.get().await.expect("get"), CheckpointId::INITIAL);
    assert_eq!(registry.status(job).await.expect("status"), None);
}

/// Job results: a dirty entry written by one process drives cleanup in another, which marks
/// it clean.
pub async fn job_results_go_from_dirty_to_clean(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    let b = procs.start().await;
    let job = JobId::new_random();
    let entry = JobResultEntry::new(job, ApplicationStatus::Failed, 1234);
    a.job_result_store()
        .create_dirty(&entry)
        .await
        .expect("dirty");
    let rb = b.job_result_store();
    assert!(rb.has_dirty(job).await.expect("has dirty"));
    assert_eq!(
        rb.dirty_results().await.expect("dirty results"),
        vec![entry.clone()]
    );
    let e = rb.create_dirty(&entry).await.expect_err("duplicate");
    assert!(
        matches!(e, tenure_core::store::StoreError::AlreadyExists(_)),
        "{e}"
    );
    rb.mark_clean(job).await.expect("clean");
    assert!(
        !a.job_result_store()
            .has_dirty(job)
            .await
            .expect("has dirty")
    );
    assert!(
        a.job_result_store()
            .has_clean(job)
            .await
            .expect("has clean")
    );
    assert!(
        a.job_result_store()
            .dirty_results()
            .await
            .expect("dirty")
            .is_empty()
    );
    let e = rb
        .mark_clean(JobId::new_random())
        .await
        .expect_err("unknown job");
    assert!(e.is_not_found(), "{e}");
}

/// The running jobs registry moves through PENDING, RUNNING and DONE, and clears.
pub async fn running_jobs_registry_tracks_status(f: &dyn BackendFactory) {
    let procs = Processes::new(f, 1);
    let a = procs.start().await;
    let b = procs.start().await;
    let job = JobId::new_random();
    let ra = a.admin_stores().running_jobs();
    let rb = b.admin_stores().running_jobs();
    assert_eq!(rb.status(job).await.expect("status"), None);
    for (set, want) in [
        (JobSchedulingStatus::Pending, JobSchedulingStatus::Pending),
        (JobSchedulingStatus::Running, JobSchedulingStatus::Running),
        (JobSchedulingStatus::Done, JobSchedulingStatus::Done),
    ] {
        ra.set(job, set).await.expect("set");
        assert_eq!(rb.status(job).await.expect("status"), Some(want));
    }
    assert_eq!(
        rb.all().await.expect("all"),
        vec![(job, JobSchedulingStatus::Done)]
    );
    rb.clear(job).await.expect("clear");
    assert_eq!(ra.status(job).await.expect("status"), None);
}
