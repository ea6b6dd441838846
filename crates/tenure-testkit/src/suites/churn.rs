//! A careless user's churn on two processes' drivers: many tasks register, confirm, follow, stop
//! or just drop their elections at once, stop while a confirmation is in flight, and register
//! and drop components of the shared process-wide election again and again. Every call
//! returns, and once everything is stopped or dropped each driver holds nothing and no leader
//! information is left.

use std::sync::Arc;

use tenure_core::driver::{DriverStats, HaBackend};
use tenure_core::election::ElectionService;
use tenure_core::ids::{ComponentId, JobId};
use tenure_core::layout::Layout;
use tenure_core::retrieval::LeaderRetriever;

use crate::{BackendFactory, DEADLINE};

const TASKS: u32 = 8;
const ROUNDS: u32 = 4;

/// One task's rounds on `backend`.
async fn rounds(backend: Arc<dyn HaBackend>, shared: ElectionService, task: u32) {
    let layout = Layout::default();
    for round in 0..ROUNDS {
        // A per-job election: its own latch; confirm, follow, then stop or drop.
        let job = ComponentId::JobMaster(JobId::new_random());
        let service = ElectionService::new(backend.clone(), layout, layout.component_latch(&job));
        let mut e = service.register(job.clone()).await.expect("register");
        let term = e.wait_for_leadership().await.expect("granted");
        let retriever = LeaderRetriever::start(backend.clone(), layout, job, None);
        if round % 2 == 0 {
            let published = e
                .confirm(term.session_id, format!("addr-{task}-{round}"))
                .await
                .expect("confirm");
            assert!(published, "the current term's confirmation is published");
            e.stop().await.expect("stop");
        } else {
            // Stop (or drop) with a confirmation in flight: both calls return.
            let confirmer = e.confirmer();
            let late =
                tokio::spawn(
                    async move { confirmer.confirm(term.session_id, "late".to_owned()).await },
                );
            if round % 4 == 1 {
                e.stop().await.expect("stop");
            } else {
                drop(e);
            }
            let _ = late.await.expect("the confirming task ends");
        }
        drop(retriever);
        // A component of the process-wide election every task of the process shares.
        let e = shared
            .register(ComponentId::JobMaster(JobId::new_random()))
            .await
            .expect("register on the shared election");
        if round % 3 == 0 {
            e.stop().await.expect("stop");
        } else {
            drop(e);
        }
    }
}

/// Churn on two processes leaves nothing in their drivers and no leader information behind.
pub async fn churn_leaves_nothing_in_the_driver(f: &dyn BackendFactory) {
    let layout = Layout::default();
    let processes = [f.connect().await, f.connect().await];
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let backend = processes[(task % 2) as usize].clone();
        let shared = ElectionService::new(backend.clone(), layout, layout.cluster_latch());
        tasks.push(tokio::spawn(rounds(backend, shared, task)));
    }
    tokio::time::timeout(DEADLINE * 3, async {
        for t in tasks {
            t.await.expect("a churn task panicked");
        }
    })
    .await
    .expect("every call returned in time");

    for backend in &processes {
        let driver = backend.driver().expect("driver");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let stats = driver.stats().await.expect("the driver runs");
            if stats == DriverStats::default() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the driver still holds {stats:?}"
            );
            tokio::task::yield_now().await;
        }
    }
    let left: Vec<String> = processes[0]
        .kv()
        .list("leader")
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .filter(|k| k.ends_with("connection_info"))
        .collect();
    assert!(left.is_empty(), "leader information left behind: {left:?}");
}
