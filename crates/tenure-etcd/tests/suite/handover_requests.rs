//! What a graceful handover costs the standby on a real etcd, counted by the server: the second
//! of the line leads as soon as the first's key is deleted, without reading the line again (no
//! `Range` between the leader's stop and the standby's grant).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use tenure_core::election::ElectionService;
use tenure_core::ids::{ComponentId, JobId};
use tenure_core::layout::Layout;
use tenure_etcd::latch_waits;
use tenure_testkit::etcd::EtcdFactory;
use tenure_testkit::{DEADLINE, wait_until};

const RANGES: &str = "grpc_server_msg_received_total{grpc_method=\"Range\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_of_the_line_leads_when_the_first_stops_without_reading_the_line() {
    let f = EtcdFactory::start().await;
    let a = Arc::new(f.connect_etcd().await);
    let b = Arc::new(f.connect_etcd().await);
    let server = f.server();
    let layout = Layout::default();
    // Nothing else reads here, but a retry of either session could: the fewest seen counts.
    let mut fewest = f64::MAX;
    for _ in 0..3 {
        let job = ComponentId::JobMaster(JobId::new_random());
        let latch = layout.component_latch(&job);
        let mut leader = ElectionService::new(a.clone(), layout, latch.clone())
            .register(job.clone())
            .await
            .unwrap();
        let old = leader.wait_for_leadership().await.unwrap();
        let mut standby = ElectionService::new(b.clone(), layout, latch)
            .register(job.clone())
            .await
            .unwrap();
        wait_until(
            "the standby's wait on the leader's key",
            DEADLINE,
            || async { latch_waits(&b).parked == 1 },
        )
        .await;
        assert!(
            standby.current().term().is_none(),
            "the standby does not lead"
        );

        let before = server.counter(RANGES).await;
        leader.stop().await.unwrap();
        let term = tokio::time::timeout(DEADLINE, standby.wait_for_leadership())
            .await
            .unwrap()
            .unwrap();
        fewest = fewest.min(server.counter(RANGES).await - before);
        assert_ne!(term.session_id, old.session_id, "a new term");
        assert!(standby.has_leadership(term.session_id));
        standby.stop().await.unwrap();
    }
    assert_eq!(fewest, 0.0, "no line read between the stop and the grant");
}
