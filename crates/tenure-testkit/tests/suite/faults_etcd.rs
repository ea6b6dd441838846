//! Fault tests on etcd, separate processes: SIGKILL of the leading `tenure-contender` (a
//! standby leads once the killed process's lease expires), and the zombie leader (frozen with
//! SIGSTOP past its lease TTL, then resumed: none of its writes after the resume is accepted).
//! The merged histories pass the checker.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::faults::{
    HistoryExt, Scenario, Settings, figure, now_ms, wait_any_leading, wait_histories, wait_leading,
};
use tenure_testkit::etcd::EtcdServer;
use tenure_testkit::history::EventKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leaders_are_replaced_after_the_lease_ttl() {
    let server = EtcdServer::start().await;
    let endpoint = server.endpoint();
    let s = Scenario::new(Settings::default());
    let ttl = s.settings.session_timeout;
    let bound = ttl + Duration::from_secs(10);

    let mut a = s.spawn("a", &endpoint);
    wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &endpoint);
    s.wait_latch_participants(&endpoint, 2).await;

    let killed = now_ms();
    a.kill();
    let second = wait_any_leading(&[&a, &b], killed).await;
    assert_eq!(second.process, "b");
    let failover = second.t_ms - killed;
    figure("etcd_failover_sigkill", failover);
    assert!(
        Duration::from_millis(failover) < bound,
        "b took over {failover} ms after the kill; bound {bound:?}"
    );

    let done = s.finish(&mut [&mut a, &mut b], &endpoint).await;
    assert_eq!(done.report.terms, 2, "one term per leader");
    let ids = done.merged.acknowledged_ids();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_past_its_lease_is_deposed_and_cannot_write_after_resuming() {
    let server = EtcdServer::start().await;
    let endpoint = server.endpoint();
    let s = Scenario::new(Settings::default());
    let bound = s.settings.session_timeout + Duration::from_secs(10);

    let mut a = s.spawn("a", &endpoint);
    let first = wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &endpoint);
    s.wait_latch_participants(&endpoint, 2).await;

    let stopped = now_ms();
    a.sigstop();
    let second = wait_leading(&[&a, &b], "b", stopped).await;
    let failover = second.t_ms - stopped;
    figure("etcd_failover_sigstop", failover);
    assert!(
        Duration::from_millis(failover) < bound,
        "b took over {failover} ms after the stop; bound {bound:?}"
    );
    assert!(second.epoch > first.epoch);

    let resumed = now_ms();
    a.sigcont();
    let h = wait_histories(&[&a, &b], "a to log its revocation", |h| {
        !h.of("a").since(EventKind::Revoked, resumed).is_empty()
    })
    .await;
    assert!(h.of("b").leads(), "b kept its term");
    assert!(h.granted_since(stopped).iter().all(|g| g.process == "b"));

    let done = s.finish(&mut [&mut a, &mut b], &endpoint).await;
    let old = done.histories.of("a");
    assert_eq!(
        old.acked_in_term_since(first.epoch.unwrap_or_default(), resumed),
        0,
        "the zombie's writes after resuming were accepted"
    );
}
