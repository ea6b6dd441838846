//! Fault tests on etcd, separate processes: network partitions between the leading
//! `tenure-contender` and etcd, made by a [`FaultProxy`] in front of the leader only (the
//! standby reaches etcd directly).
//!
//! - Longer than the lease TTL, either policy: the leader's renewals fail (suspended), then its
//!   TTL passes (lost); the standby is granted once etcd expires the lease, and nothing the old
//!   leader issued after the cut is accepted. Healed, the old leader joins the latch again under
//!   a new lease, behind the new leader, and leads once that one leaves.
//! - Shorter than the TTL, default policy: the suspension revokes the leader at once, but its
//!   lease (and so its latch key, first in line) lives on: once renewals are confirmed again it
//!   reads the line and is granted again, in a new term with the same fencing epoch; the standby
//!   is never granted and the terms do not overlap.
//! - Shorter than the TTL, `tolerate-suspended-connections: true`: the leader keeps its term.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::faults::{
    HistoryExt, Scenario, Settings, assert_term_holds, assert_terms_disjoint, figure, now_ms,
    wait_histories, wait_leading,
};
use tenure_testkit::etcd::EtcdServer;
use tenure_testkit::history::EventKind;
use tenure_testkit::proxy::FaultProxy;

/// What a contender's etcd session logs when a renewal fails inside the TTL (suspended).
const SUSPENDED: &str = "etcd lease renewal failed; connection suspended";
/// ... when the TTL passes without a confirmed renewal (lost).
const LOST: &str = "no etcd lease renewal confirmed within the TTL; the lease is lost";
/// ... when the server says the lease is gone (lost).
const GONE: &str = "the etcd lease is gone";
/// ... when it has a new lease after a loss.
const NEW_LEASE: &str = "new etcd lease granted";
/// What a contender's latch logs when it gives its leadership up.
const LATCH_REVOKED: &str = "tenure_core::driver::participation: leadership revoked";
/// How soon after `black_hole()` returns no byte gets through any more.
const CUT_MARGIN_MS: u64 = 200;

/// The endpoint URL of a proxy.
fn via(proxy: &FaultProxy) -> String {
    format!("http://{}", proxy.addr())
}

/// The first line number in `lines` after the first `skip` ones.
fn first_after(lines: &[usize], skip: usize, what: &str) -> usize {
    *lines
        .get(skip)
        .unwrap_or_else(|| panic!("no new {what:?} line"))
}

/// The leader is cut off past its lease TTL: the standby leads, nothing the old leader issued
/// after the cut is accepted, and once healed it is a standby under a new lease.
async fn long_partition(tolerate_suspended: bool, figure_name: &str) {
    let server = EtcdServer::start().await;
    let endpoint = server.endpoint();
    let pa = FaultProxy::start(server.addr()).await.unwrap();
    let s = Scenario::new(Settings {
        tolerate_suspended,
        ..Settings::default()
    });
    let ttl = s.settings.session_timeout;
    let bound = ttl + Duration::from_secs(10);

    let mut a = s.spawn("a", &via(&pa));
    let first = wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &endpoint);
    s.wait_latch_participants(&endpoint, 2).await;
    let before = s.etcd_latch(&endpoint).await;
    let old_lease = before[0].lease;
    assert_eq!(
        before[0].create_revision,
        first.epoch.unwrap(),
        "{before:?}"
    );

    let seen = |needle| a.stderr_lines_with(needle).len();
    let (suspended, revoked, lost, new_lease) = (
        seen(SUSPENDED),
        seen(LATCH_REVOKED),
        seen(LOST),
        seen(NEW_LEASE),
    );
    let cut = now_ms();
    pa.black_hole();
    let second = wait_leading(&[&a, &b], "b", cut).await;
    let failover = second.t_ms - cut;
    figure(figure_name, failover);
    assert!(
        Duration::from_millis(failover) < bound,
        "b took over {failover} ms after the cut; bound {bound:?}"
    );
    assert!(second.epoch > first.epoch);

    // a noticed on its own, while still cut off: suspended, then lost (revoked on the
    // suspension under the default policy, on the loss when tolerating it).
    a.wait_stderr(LOST, lost).await;
    let line_of = |needle, skip| first_after(&a.stderr_lines_with(needle), skip, needle);
    let (sus_at, rev_at, lost_at) = (
        line_of(SUSPENDED, suspended),
        line_of(LATCH_REVOKED, revoked),
        line_of(LOST, lost),
    );
    if tolerate_suspended {
        assert!(sus_at < lost_at && lost_at < rev_at, "{}", a.stderr_tail());
    } else {
        assert!(sus_at < rev_at && rev_at < lost_at, "{}", a.stderr_tail());
    }
    let h = wait_histories(&[&a, &b], "a to log its revocation", |h| {
        !h.of("a").since(EventKind::Revoked, cut).is_empty()
    })
    .await;
    let accepted = h.of("a").acked_since(cut + CUT_MARGIN_MS);
    assert!(
        accepted.is_empty(),
        "a's writes after the cut were accepted: {accepted:?}"
    );
    let refused = h
        .of("a")
        .events()
        .iter()
        .filter(|e| {
            matches!(e.event, EventKind::WriteRejected | EventKind::WriteFailed) && e.t_ms >= cut
        })
        .count();
    println!("a's writes refused or failed after the cut: {refused}");
    assert_eq!(seen(NEW_LEASE), new_lease, "a got a lease while cut off");

    // Healed: a joins again under a new lease, behind b.
    pa.heal();
    a.wait_stderr(NEW_LEASE, new_lease).await;
    let line = s
        .wait_etcd_latch(&endpoint, "a behind b under a new lease", |l| {
            l.len() == 2 && l.iter().all(|k| k.lease != old_lease)
        })
        .await;
    assert_eq!(line[0].create_revision, second.epoch.unwrap(), "{line:?}");
    assert_eq!(seen(GONE), 0, "{}", a.stderr_tail());
    let h = wait_histories(&[&a, &b], "histories", |_| true).await;
    assert!(!h.of("a").leads(), "a leads again while b holds its term");
    assert!(h.of("b").leads());

    // a campaigns in its new lease: when b leaves, a leads.
    let left = now_ms();
    b.terminate().await;
    let third = wait_leading(&[&a, &b], "a", left).await;
    assert!(third.epoch > second.epoch);

    let done = s.finish(&mut [&mut a, &mut b], &endpoint).await;
    assert_eq!(done.report.terms, 3);
    assert_terms_disjoint(&[&a, &b], &done.histories);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_partition_deposes_the_leader_under_the_default_policy() {
    long_partition(false, "etcd_partition_failover_default").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_partition_deposes_the_leader_when_suspension_is_tolerated() {
    long_partition(true, "etcd_partition_failover_tolerate").await;
}

/// A TTL long enough that a partition healed as soon as the leader is suspended ends well
/// inside it: the suspension shows after at most 2/3 of the TTL (a renewal every TTL/3, each
/// given TTL/3), which leaves the lease 5/3 s.
const SHORT_TTL: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_partition_revokes_and_regrants_the_leader_under_the_default_policy() {
    let server = EtcdServer::start().await;
    let endpoint = server.endpoint();
    let pa = FaultProxy::start(server.addr()).await.unwrap();
    let s = Scenario::new(Settings {
        session_timeout: SHORT_TTL,
        ..Settings::default()
    });

    let mut a = s.spawn("a", &via(&pa));
    let first = wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &endpoint);
    s.wait_latch_participants(&endpoint, 2).await;
    let before = s.etcd_latch(&endpoint).await;

    let revoked = a.stderr_count(LATCH_REVOKED);
    let cut = a
        .cut_until_suspended(
            &pa,
            SUSPENDED,
            "etcd_partition_short_pause",
            SHORT_TTL,
            "the TTL",
        )
        .await;

    // Revoked on the suspension, granted again once renewals are confirmed: same key, so the
    // same fencing epoch, in a new term (a new leader session id).
    a.wait_stderr(LATCH_REVOKED, revoked).await;
    let again = wait_leading(&[&a, &b], "a", cut).await;
    figure("etcd_partition_short_regrant", again.t_ms - cut);
    assert_eq!(again.epoch, first.epoch);
    assert_ne!(again.session, first.session);
    assert_eq!(a.stderr_count(LOST) + a.stderr_count(GONE), 0);
    assert_eq!(s.etcd_latch(&endpoint).await, before, "the latch changed");

    let done = s.finish(&mut [&mut a, &mut b], &endpoint).await;
    assert_eq!(done.report.terms, 2, "a's two terms only");
    assert!(
        done.histories.of("b").last_grant().is_none(),
        "b was granted"
    );
    let revoked_at = done.histories.of("a").since(EventKind::Revoked, cut)[0].t_ms;
    assert!(revoked_at <= again.t_ms);
    assert_terms_disjoint(&[&a, &b], &done.histories);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_partition_keeps_the_term_when_suspension_is_tolerated() {
    let server = EtcdServer::start().await;
    let endpoint = server.endpoint();
    let pa = FaultProxy::start(server.addr()).await.unwrap();
    let s = Scenario::new(Settings {
        session_timeout: SHORT_TTL,
        tolerate_suspended: true,
        ..Settings::default()
    });

    let mut a = s.spawn("a", &via(&pa));
    let grant = wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &endpoint);
    s.wait_latch_participants(&endpoint, 2).await;

    let cut = a
        .cut_until_suspended(
            &pa,
            SUSPENDED,
            "etcd_partition_tolerated_pause",
            SHORT_TTL,
            "the TTL",
        )
        .await;

    // The term holds across the pause and past the TTL after the cut.
    assert_term_holds(
        &[&a, &b],
        &grant,
        cut,
        SHORT_TTL + Duration::from_millis(500),
    )
    .await;
    assert_eq!(a.stderr_count(LOST) + a.stderr_count(GONE), 0);

    let done = s.finish(&mut [&mut a, &mut b], &endpoint).await;
    assert_eq!(done.report.terms, 1);
}
