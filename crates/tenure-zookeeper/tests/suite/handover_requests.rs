//! What a graceful handover costs the standby on a real ZooKeeper, counted by the server: the
//! second of the line leads as soon as the first's deletion arrives on its session's watch of
//! the latch root, without reading the line again; its only request is the `exists` that parks
//! its wait on its own node.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use common::{received, wait_for_parked};
use tenure_core::election::ElectionService;
use tenure_core::ids::{ComponentId, JobId};
use tenure_core::kv::VersionedKv;
use tenure_core::layout::Layout;
use tenure_testkit::DEADLINE;
use tenure_testkit::zookeeper::ZooKeeperFactory;
use tenure_zookeeper::{ZooKeeperBackend, latch_waits};

/// Waits until `backend` has woken more than `woken` waits and has exactly one parked: the new
/// leader's wait on its own node, set after the wake-up that granted it.
async fn parked_again(backend: &ZooKeeperBackend, woken: u64) {
    tenure_testkit::wait_until(
        "the new leader's wait on its own node",
        DEADLINE,
        || async {
            let w = latch_waits(backend);
            w.woken > woken && w.parked == 1
        },
    )
    .await;
}

/// The requests the server has received from `backend`'s session since it had received
/// `before`, once the new leader's `exists` is among them. A wait is parked just before its
/// `exists` is sent, so the count is read only once it has grown; then one read of the test's
/// own on the same session (a session's requests reach the server in order) lets everything
/// sent before it arrive, and is not counted.
async fn received_since(f: &ZooKeeperFactory, backend: &ZooKeeperBackend, before: u64) -> u64 {
    tenure_testkit::wait_until("the new leader's exists received", DEADLINE, || async {
        received(f, backend).await > before
    })
    .await;
    backend.get("flush").await.unwrap();
    received(f, backend).await - before - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_of_the_line_leads_when_the_first_stops_without_reading_the_line() {
    let f = ZooKeeperFactory::start().await;
    let a = Arc::new(f.connect_zk().await);
    let b = Arc::new(f.connect_zk().await);
    let layout = Layout::default();
    // Pings of the session may land between two readings: the fewest seen is the count.
    let mut fewest = u64::MAX;
    for _ in 0..3 {
        let job = ComponentId::JobMaster(JobId::new_random());
        let latch = layout.component_latch(&job);
        let mut leader = ElectionService::new(a.clone(), layout, latch.clone())
            .register(job.clone())
            .await
            .unwrap();
        let old = leader.wait_for_leadership().await.unwrap();
        let mut standby = ElectionService::new(b.clone(), layout, latch.clone())
            .register(job.clone())
            .await
            .unwrap();
        // The standby waits for the leader's node.
        wait_for_parked(&b, "the standby's wait on the leader's node", 1).await;
        assert!(
            standby.current().term().is_none(),
            "the standby does not lead"
        );

        let before = received(&f, &b).await;
        let woken = latch_waits(&b).woken;
        leader.stop().await.unwrap();
        let term = standby.wait_for_leadership().await.unwrap();
        parked_again(&b, woken).await;
        fewest = fewest.min(received_since(&f, &b, before).await);
        assert_ne!(term.session_id, old.session_id, "a new term");
        assert!(standby.has_leadership(term.session_id));

        standby.stop().await.unwrap();
        wait_for_parked(&b, "the standby's wait woken by its node's delete", 0).await;
    }
    assert_eq!(
        fewest, 1,
        "the exists of the new leader's own node; no get-children"
    );
}
