//! Fault tests on etcd, separate processes: the single etcd node is stopped (SIGKILL by its
//! process id) and restarted on the same port with its data while `tenure-contender` processes
//! run. The contenders retain every checkpoint, so the checker's "no acknowledged write lost"
//! covers every one written before the restart, and the checkpoint id counter is read back.
//!
//! - Back within the lease TTL: the leases live on (renewals are confirmed again before the
//!   TTL passes), the latch is unchanged, and the leader, revoked while suspended under the
//!   default policy, is granted again with the same fencing epoch; the standby never leads.
//! - Down past the TTL: both contenders give their leases up and take new ones once the server
//!   is back. etcd itself keeps the old leases across the restart: a node that becomes raft
//!   leader extends every lease by its TTL (plus the election timeout), so the old latch keys
//!   hold the line until those leases expire, a TTL after the restart; then the first new key
//!   leads.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::faults::{
    Contender, HistoryExt, PROOF_WRITES, Scenario, Settings, assert_terms_disjoint, etcd_lease_ttl,
    figure, now_ms, wait_acked_since, wait_any_leading, wait_leading,
};
use tenure_testkit::etcd::EtcdServer;
use tenure_testkit::history::EventKind;

/// Keep every checkpoint: then no acknowledged one may be missing at the end.
const RETAIN_ALL: usize = 100_000;
/// What a contender's etcd session logs when the TTL passes without a confirmed renewal.
const LOST: &str = "no etcd lease renewal confirmed within the TTL; the lease is lost";
/// ... when the server says the lease is gone.
const GONE: &str = "the etcd lease is gone";

/// The newest checkpoint id acknowledged so far.
fn newest_acked(contenders: &[&Contender]) -> u64 {
    contenders
        .iter()
        .flat_map(|c| c.history().acknowledged_ids())
        .max()
        .unwrap()
}

/// After the scenario: every acknowledged checkpoint is recovered and the counter hands out
/// ids past all of them.
async fn check_data(s: &Scenario, endpoint: &str, done: &common::faults::Finished) {
    let acked = done.merged.acknowledged_ids();
    for id in &acked {
        assert!(done.recovered.contains(id), "checkpoint {id} lost");
    }
    let newest = acked.iter().copied().max().unwrap();
    let next = s.read_counter(endpoint).await;
    assert!(
        next > newest,
        "the counter hands out {next}, {newest} was acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_within_the_ttl_keeps_the_leases_and_the_data() {
    // Long enough for a restart (about a second) and the clients' reconnection.
    let ttl = Duration::from_secs(5);
    let mut server = EtcdServer::start().await;
    let endpoint = server.endpoint();
    let s = Scenario::new(Settings {
        session_timeout: ttl,
        retain: RETAIN_ALL,
        ..Settings::default()
    });

    let mut a = s.spawn("a", &endpoint);
    let first = wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &endpoint);
    s.wait_latch_participants(&endpoint, 2).await;
    let line = s.etcd_latch(&endpoint).await;

    let stopped = now_ms();
    server.stop();
    let before = newest_acked(&[&a, &b]);
    server.restart().await;
    let restarted = now_ms();
    println!("etcd was down {} ms", restarted - stopped);
    assert!(
        u128::from(restarted - stopped) < ttl.as_millis(),
        "the restart took longer than the TTL"
    );

    // a keeps leading (granted again after its suspension under the default policy, or never
    // revoked if no renewal fell into the outage) in the same latch key: the same epoch.
    let acked = wait_acked_since(&[&a, &b], restarted, PROOF_WRITES).await;
    figure("etcd_restart_within_ttl_write_gap", acked[0].t_ms - stopped);
    assert!(
        acked
            .iter()
            .all(|w| w.process == "a" && w.epoch == first.epoch),
        "{acked:?}"
    );
    assert!(
        acked[0].id.unwrap() > before,
        "{:?} after {before}",
        acked[0]
    );
    let regrants = a.history().since(EventKind::Granted, stopped).len();
    println!("a was granted {regrants} time(s) again after the restart");
    assert_eq!(s.etcd_latch(&endpoint).await, line, "the latch changed");
    for k in &line {
        assert!(
            etcd_lease_ttl(&endpoint, k.lease).await > 0,
            "{k:?} expired"
        );
    }
    for c in [&a, &b] {
        assert_eq!(
            c.stderr_count(LOST) + c.stderr_count(GONE),
            0,
            "{}",
            c.stderr_tail()
        );
    }

    let done = s.finish(&mut [&mut a, &mut b], &endpoint).await;
    assert!(
        done.histories.of("b").last_grant().is_none(),
        "b was granted"
    );
    assert_terms_disjoint(&[&a, &b], &done.histories);
    check_data(&s, &endpoint, &done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_past_the_ttl_keeps_the_old_leases_until_a_ttl_after_the_restart() {
    let mut server = EtcdServer::start().await;
    let endpoint = server.endpoint();
    let s = Scenario::new(Settings {
        retain: RETAIN_ALL,
        ..Settings::default()
    });
    let ttl = s.settings.session_timeout;

    let mut a = s.spawn("a", &endpoint);
    wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &endpoint);
    s.wait_latch_participants(&endpoint, 2).await;
    let old = s.etcd_latch(&endpoint).await;

    let lost = (a.stderr_count(LOST), b.stderr_count(LOST));
    let stopped = now_ms();
    server.stop();
    let before = newest_acked(&[&a, &b]);
    // The outage lasts until both contenders gave their leases up.
    a.wait_stderr(LOST, lost.0).await;
    b.wait_stderr(LOST, lost.1).await;
    server.restart().await;
    let restarted = now_ms();
    println!("etcd was down {} ms", restarted - stopped);

    // The server kept the leases nobody renewed for longer than their TTL.
    for k in &old {
        let left = etcd_lease_ttl(&endpoint, k.lease).await;
        println!("lease {:x}: {left} s left after the restart", k.lease);
        assert!(left > 0, "{k:?} did not survive the restart");
    }

    let leader = wait_any_leading(&[&a, &b], stopped).await;
    let after_restart = leader.t_ms - restarted;
    figure("etcd_outage_recovery", after_restart);
    // The old keys held the line until their leases expired, a TTL after the restart.
    assert!(
        u128::from(after_restart) >= ttl.as_millis(),
        "{} led {after_restart} ms after the restart, before the old leases expired",
        leader.process
    );
    for k in &old {
        assert_eq!(etcd_lease_ttl(&endpoint, k.lease).await, -1, "{k:?} lives");
    }
    let line = s.etcd_latch(&endpoint).await;
    assert!(line.iter().all(|k| !old.contains(k)), "{line:?}");
    assert_eq!(line[0].create_revision, leader.epoch.unwrap(), "{line:?}");
    let new_leader = if leader.process == "a" { &a } else { &b };
    let first_new = new_leader.history().acked_since(leader.t_ms)[0].id.unwrap();
    assert!(
        first_new > before,
        "checkpoint {first_new} written after the restart, {before} before"
    );

    let done = s.finish(&mut [&mut a, &mut b], &endpoint).await;
    assert_eq!(done.report.terms, 2);
    assert_terms_disjoint(&[&a, &b], &done.histories);
    check_data(&s, &endpoint, &done).await;
}
