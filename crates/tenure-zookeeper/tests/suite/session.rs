//! Session and connection faults against a real ZooKeeper: expiry, suspension under both
//! policies, writes whose outcome is unknown.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::{granted, next_event};
use tenure_core::connection::{ConnectionState, SuspendedPolicy};
use tenure_core::driver::{HaBackend, LatchEvent};
use tenure_core::kv::{CreateOptions, KvError, KvEvent, VersionedKv};
use tenure_testkit::zookeeper::{ZooKeeperFactory, expire_session};
use tenure_testkit::{DEADLINE, wait_for};
use tokio::sync::mpsc;

fn fenced(t: &tenure_core::kv::FencingToken) -> CreateOptions {
    CreateOptions {
        fence: Some(t.clone()),
        ..Default::default()
    }
}

async fn next_kv(w: &mut tenure_core::kv::KvWatch) -> KvEvent {
    tokio::time::timeout(DEADLINE, w.next())
        .await
        .expect("a watch event in time")
        .expect("the watch is alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_revokes_and_a_new_session_campaigns_again() {
    let f = ZooKeeperFactory::start().await;
    let proxy = f.start_proxy().await;
    let a = f
        .connect_with(
            f.settings_via(&proxy)
                .with_session_timeout(Duration::from_secs(2)),
        )
        .await;
    let mut conn = a.connection_state();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _latch = a.join_latch("leader/latch", tx).await.unwrap();
    let t1 = granted(&mut rx).await;
    let eph = CreateOptions {
        ephemeral: true,
        ..Default::default()
    };
    a.create("e/mine", Bytes::from_static(b"1"), eph)
        .await
        .unwrap();
    let mut w = a.watch("e").await.unwrap();
    let old = a.session_info().unwrap();

    // The client hears nothing any more: suspended (revoked at once), then its session expires.
    proxy.black_hole();
    wait_for(&mut conn, "suspended", DEADLINE, |s| {
        *s == ConnectionState::Suspended
    })
    .await;
    assert_eq!(next_event(&mut rx).await, LatchEvent::Revoked);
    wait_for(&mut conn, "lost", DEADLINE, |s| *s == ConnectionState::Lost).await;
    proxy.heal();

    // A new session is opened by itself, and the latch campaigns there.
    wait_for(&mut conn, "connected on a new session", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    let t2 = granted(&mut rx).await;
    assert_ne!(t1, t2, "a new term on a new latch node");
    assert_eq!(a.session_generation(), 2);
    let new = a.session_info().unwrap();
    assert_ne!(old.id(), new.id());
    assert_eq!(a.session_id(), new.id().0 as u64);
    // The old term cannot write; the new one can.
    let err = a
        .create("f/x", Bytes::from_static(b"1"), fenced(&t1))
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    a.create("f/x", Bytes::from_static(b"1"), fenced(&t2))
        .await
        .unwrap();
    // The old session's ephemeral key is gone; the watch was re-established and said so.
    assert!(a.get("e/mine").await.unwrap().is_none());
    let mut saw_reset = false;
    a.create("e/after", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    loop {
        match next_kv(&mut w).await {
            KvEvent::Reset => saw_reset = true,
            KvEvent::Put(e) if e.key == "e/after" => break,
            _ => {}
        }
    }
    assert!(saw_reset, "the watch reported a reset before later events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_revokes_under_the_default_policy() {
    let mut f = ZooKeeperFactory::start().await;
    let a = f
        .connect_with(f.settings().with_session_timeout(Duration::from_secs(8)))
        .await;
    let mut conn = a.connection_state();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _latch = a.join_latch("leader/latch", tx).await.unwrap();
    let t1 = granted(&mut rx).await;
    a.create("kept", Bytes::from_static(b"1"), CreateOptions::default())
        .await
        .unwrap();

    f.server_mut().stop();
    wait_for(&mut conn, "suspended", DEADLINE, |s| {
        *s == ConnectionState::Suspended
    })
    .await;
    // Revoked at once, before the session is known to be alive or gone.
    assert_eq!(next_event(&mut rx).await, LatchEvent::Revoked);
    f.server_mut().restart().await;
    wait_for(&mut conn, "reconnected", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    assert_eq!(a.session_generation(), 1, "the session survived");
    let kept = a.get("kept").await.unwrap().unwrap();
    assert_eq!(
        kept.value,
        Bytes::from_static(b"1"),
        "the restart kept the data"
    );
    // Curator's reset: the old node is deleted and a new one created.
    let t2 = granted(&mut rx).await;
    assert_ne!(t1, t2);
    let err = a.create("x", Bytes::new(), fenced(&t1)).await.unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    a.create("x", Bytes::new(), fenced(&t2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tolerate_suspended_keeps_leadership_through_a_reconnect() {
    let mut f = ZooKeeperFactory::start_with_policy(SuspendedPolicy::TolerateSuspended).await;
    let a = f
        .connect_with(f.settings().with_session_timeout(Duration::from_secs(8)))
        .await;
    assert_eq!(a.suspended_policy(), SuspendedPolicy::TolerateSuspended);
    let mut conn = a.connection_state();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _latch = a.join_latch("leader/latch", tx).await.unwrap();
    let t1 = granted(&mut rx).await;

    f.server_mut().stop();
    wait_for(&mut conn, "suspended", DEADLINE, |s| {
        *s == ConnectionState::Suspended
    })
    .await;
    f.server_mut().restart().await;
    wait_for(&mut conn, "reconnected", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    assert_eq!(a.session_generation(), 1, "the session survived");
    // The term held all along: its token still writes, and no revocation was reported.
    a.create("x", Bytes::new(), fenced(&t1)).await.unwrap();
    assert!(rx.try_recv().is_err(), "leadership was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tolerate_suspended_revokes_when_the_session_is_lost() {
    let f = ZooKeeperFactory::start_with_policy(SuspendedPolicy::TolerateSuspended).await;
    let proxy = f.start_proxy().await;
    // A long session: it ends because it is expired on demand, not by waiting.
    let a = f
        .connect_with(
            f.settings_via(&proxy)
                .with_session_timeout(Duration::from_secs(30)),
        )
        .await;
    let mut conn = a.connection_state();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _latch = a.join_latch("leader/latch", tx).await.unwrap();
    let t1 = granted(&mut rx).await;

    proxy.black_hole();
    proxy.cut();
    wait_for(&mut conn, "suspended", DEADLINE, |s| {
        *s == ConnectionState::Suspended
    })
    .await;
    expire_session(&f.server().connect_string(), a.session_info().unwrap()).await;
    assert!(rx.try_recv().is_err(), "suspension alone does not revoke");
    proxy.heal();
    assert_eq!(next_event(&mut rx).await, LatchEvent::Revoked);
    let t2 = granted(&mut rx).await;
    assert_ne!(t1, t2);
    assert_eq!(a.session_generation(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_reply_is_lost_is_outcome_unknown_and_resolved_by_reading_back() {
    let f = ZooKeeperFactory::start().await;
    let a = f
        .connect_with(f.settings().with_session_timeout(Duration::from_secs(6)))
        .await;
    a.create("k", Bytes::from_static(b"0"), CreateOptions::default())
        .await
        .unwrap();
    // A frozen server keeps the connection open and answers nothing: the client gives the
    // connection up after its idle timeout, and the write in flight has no known outcome.
    f.server().pause();
    let write = a
        .create("u/new", Bytes::from_static(b"1"), CreateOptions::default())
        .await;
    f.server().resume();
    match write {
        Err(KvError::OutcomeUnknown { key, .. }) => assert_eq!(key, "u/new"),
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
    // Read back to learn what happened; either way the KV is consistent.
    let mut conn = a.connection_state();
    wait_for(&mut conn, "reconnected", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    match a.get("u/new").await.unwrap() {
        Some(e) => assert_eq!(e.value, Bytes::from_static(b"1")),
        None => {
            a.create("u/new", Bytes::from_static(b"1"), CreateOptions::default())
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_removes_ephemerals_at_once_and_later_calls_fail_closed() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    let b = f.connect_zk().await;
    let eph = CreateOptions {
        ephemeral: true,
        ..Default::default()
    };
    a.create(
        "leader/dispatcher/connection_info",
        Bytes::from_static(b"x"),
        eph,
    )
    .await
    .unwrap();
    a.close().await.unwrap();
    assert!(
        b.get("leader/dispatcher/connection_info")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(a.get("x").await.unwrap_err(), KvError::Closed);
    assert_eq!(*a.connection_state().borrow(), ConnectionState::Lost);
    let (tx, _rx) = mpsc::unbounded_channel();
    assert!(matches!(
        a.join_latch("leader/latch", tx).await,
        Err(KvError::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_resets_watches() {
    let f = ZooKeeperFactory::start().await;
    let proxy = f.start_proxy().await;
    let a = f.connect_with(f.settings_via(&proxy)).await;
    let writer = f.connect_zk().await;
    let mut w = a.watch("r").await.unwrap();
    proxy.cut();
    // Events that happen while the connection is down may be missed (ZOOKEEPER-4698): the
    // watch says so with a reset, then goes on.
    assert_eq!(next_kv(&mut w).await, KvEvent::Reset);
    writer
        .create("r/k", Bytes::from_static(b"1"), CreateOptions::default())
        .await
        .unwrap();
    match next_kv(&mut w).await {
        KvEvent::Put(e) => assert_eq!((e.key.as_str(), &e.value[..]), ("r/k", &b"1"[..])),
        other => panic!("expected the put, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieval_survives_suspension_and_session_expiry() {
    use std::sync::Arc;
    use tenure_core::election::ElectionService;
    use tenure_core::ids::ComponentId;
    use tenure_core::layout::Layout;
    use tenure_core::retrieval::{LeaderRetriever, LeaderState};

    let f = ZooKeeperFactory::start().await;
    let proxy = f.start_proxy().await;
    let layout = Layout::default();
    let leader = Arc::new(f.connect_zk().await);
    let service = ElectionService::new(leader.clone(), layout, layout.cluster_latch());
    let e = service.register(ComponentId::Dispatcher).await.unwrap();
    let t1 = tenure_testkit::suites::election::wait_leader(&mut e.leadership()).await;
    assert!(e.confirm(t1.session_id, "addr-1").await.unwrap());

    let observer = Arc::new(
        f.connect_with(
            f.settings_via(&proxy)
                .with_session_timeout(Duration::from_secs(2)),
        )
        .await,
    );
    let r = LeaderRetriever::start(observer.clone(), layout, ComponentId::Dispatcher, None);
    let mut shown = r.leader();
    let is =
        |addr: &'static str| move |s: &LeaderState| s.leader().is_some_and(|l| l.address == addr);
    wait_for(&mut shown, "addr-1", DEADLINE, is("addr-1")).await;

    // Partitioned: the observer stops showing a leader it cannot vouch for, and its session
    // expires.
    let mut conn = observer.connection_state();
    proxy.black_hole();
    wait_for(&mut shown, "no leader shown while cut off", DEADLINE, |s| {
        s.leader().is_none()
    })
    .await;
    wait_for(&mut conn, "lost", DEADLINE, |s| *s == ConnectionState::Lost).await;
    // Meanwhile the leader changes.
    let other = Arc::new(f.connect_zk().await);
    let service2 = ElectionService::new(other.clone(), layout, layout.cluster_latch());
    let e2 = service2.register(ComponentId::Dispatcher).await.unwrap();
    e.stop().await.unwrap();
    let t2 = tenure_testkit::suites::election::wait_leader(&mut e2.leadership()).await;
    assert!(e2.confirm(t2.session_id, "addr-2").await.unwrap());

    // Healed: a new session re-reads and follows the current leader, never the stale one.
    proxy.heal();
    wait_for(
        &mut shown,
        "addr-2 after the new session",
        DEADLINE,
        is("addr-2"),
    )
    .await;
    assert_eq!(observer.session_generation(), 2);
    // And the watch lives on in the new session.
    e2.stop().await.unwrap();
    let e3 = service.register(ComponentId::Dispatcher).await.unwrap();
    let t3 = tenure_testkit::suites::election::wait_leader(&mut e3.leadership()).await;
    assert!(e3.confirm(t3.session_id, "addr-3").await.unwrap());
    wait_for(&mut shown, "addr-3", DEADLINE, is("addr-3")).await;
}
