//! What joining a latch costs on a real ZooKeeper, counted by the server: a create with the
//! line read behind it where the latch directory exists, one multi making the directories and
//! the node where it does not (and no read: the node is first in a directory made with it), and
//! no failed create for a new job's latch. Once the session
//! watches the latch root, the leader's wait on its own node costs no request.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use common::{received, wait_for_parked};
use tenure_core::election::ElectionService;
use tenure_core::ids::{ComponentId, JobId};
use tenure_core::kv::VersionedKv;
use tenure_core::layout::Layout;
use tenure_testkit::zookeeper::ZooKeeperFactory;
use tenure_zookeeper::ZooKeeperBackend;

/// Requests of one election from `register` until the leader's wait for its own node's
/// deletion is parked (it follows the grant); the latch directory `latch` then holds that one
/// node. The election stops and its wait is woken before this returns.
async fn requests_of_one_election(
    f: &ZooKeeperFactory,
    backend: &Arc<ZooKeeperBackend>,
    service: &ElectionService,
    component: &ComponentId,
    latch: &str,
) -> u64 {
    let before = received(f, backend).await;
    let mut e = service.register(component.clone()).await.unwrap();
    e.wait_for_leadership().await.unwrap();
    wait_for_parked(backend, "the leader's wait on its own node", 1).await;
    let requests = received(f, backend).await - before;
    assert_eq!(backend.list(latch).await.unwrap().len(), 1, "one node");
    e.stop().await.unwrap();
    wait_for_parked(backend, "the leader's wait woken by its node's delete", 0).await;
    requests
}

/// The fewest requests of three elections of `component` in a row: pings of the session may
/// land between two readings, so the fewest seen is the count.
async fn fewest_of_three(
    f: &ZooKeeperFactory,
    backend: &Arc<ZooKeeperBackend>,
    service: &ElectionService,
    component: &ComponentId,
    latch: &str,
) -> u64 {
    let mut fewest = u64::MAX;
    for _ in 0..3 {
        let n = requests_of_one_election(f, backend, service, component, latch).await;
        fewest = fewest.min(n);
    }
    fewest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_latch_that_exists_is_a_create_and_a_read() {
    let f = ZooKeeperFactory::start().await;
    let a = Arc::new(f.connect_zk().await);
    let layout = Layout::default();
    let latch = layout.cluster_latch();
    let service = ElectionService::new(a.clone(), layout, latch.clone());
    // The first election makes the latch directory; later ones find it.
    requests_of_one_election(&f, &a, &service, &ComponentId::Dispatcher, &latch).await;
    let fewest = fewest_of_three(&f, &a, &service, &ComponentId::Dispatcher, &latch).await;
    // The leader's wait on its own node was set at its create: no `exists`.
    assert_eq!(fewest, 2, "create, get-children");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_jobs_latch_is_made_by_one_write_without_a_failed_create() {
    let f = ZooKeeperFactory::start().await;
    let a = Arc::new(f.connect_zk().await);
    let layout = Layout::default();
    let mut fewest = u64::MAX;
    for _ in 0..3 {
        let job = ComponentId::JobMaster(JobId::new_random());
        let latch = layout.component_latch(&job);
        let service = ElectionService::new(a.clone(), layout, latch.clone());
        let n = requests_of_one_election(&f, &a, &service, &job, &latch).await;
        fewest = fewest.min(n);
    }
    assert_eq!(
        fewest, 1,
        "one multi (job directory, latch directory, node), and no get-children"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latch_made_by_another_process_costs_one_failed_write_once() {
    let f = ZooKeeperFactory::start().await;
    let a = Arc::new(f.connect_zk().await);
    let b = Arc::new(f.connect_zk().await);
    let layout = Layout::default();
    let job = ComponentId::JobMaster(JobId::new_random());
    let latch = layout.component_latch(&job);
    // `b` makes the job's latch directory; `a` has never seen it.
    let service_b = ElectionService::new(b.clone(), layout, latch.clone());
    requests_of_one_election(&f, &b, &service_b, &job, &latch).await;
    let service_a = ElectionService::new(a.clone(), layout, latch.clone());
    let first = requests_of_one_election(&f, &a, &service_a, &job, &latch).await;
    let fewest = fewest_of_three(&f, &a, &service_a, &job, &latch).await;
    assert!(
        first >= 4,
        "the wrong guess is a failed multi, then create, get-children and (the session's \
         first wait, before its latch root is watched) an exists: {first}"
    );
    assert_eq!(
        fewest, 2,
        "after that the session knows the directory exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latch_directory_removed_after_it_was_seen_is_made_again() {
    let f = ZooKeeperFactory::start().await;
    let a = Arc::new(f.connect_zk().await);
    let layout = Layout::default();
    let job = ComponentId::JobMaster(JobId::new_random());
    let latch = layout.component_latch(&job);
    let service = ElectionService::new(a.clone(), layout, latch.clone());
    // The session has seen the job's latch directory exist...
    requests_of_one_election(&f, &a, &service, &job, &latch).await;
    // ...then someone removes it with its parent (a cleanup of the job).
    let raw = f.raw_client().await;
    let latch_path = format!("/flink/{}/{latch}", f.cluster_id());
    let job_dir = latch_path.rsplit_once('/').unwrap().0.to_owned();
    raw.delete(&latch_path, None).await.unwrap();
    raw.delete(&job_dir, None).await.unwrap();
    // The wrong guess costs a failed create; the directories are made and the election leads.
    let n = requests_of_one_election(&f, &a, &service, &job, &latch).await;
    assert!(
        n >= 3,
        "a failed create (and the read behind it), one multi (no read after it): {n}"
    );
    let fewest = fewest_of_three(&f, &a, &service, &job, &latch).await;
    assert_eq!(fewest, 2, "and the directory is known again");
}
