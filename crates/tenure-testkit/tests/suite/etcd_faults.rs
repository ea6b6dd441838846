//! The etcd backend under faults, on a real etcd: a leader cut off past its lease TTL loses
//! the latch to the standby, and its fenced writes are rejected once it can reach etcd again.

use std::time::Duration;

use bytes::Bytes;
use tenure_core::connection::ConnectionState;
use tenure_core::driver::{HaBackend, LatchEvent};
use tenure_core::kv::{CreateOptions, KvError, VersionedKv};
use tenure_testkit::etcd::EtcdFactory;
use tenure_testkit::{DEADLINE, wait_for};
use tokio::sync::mpsc;

async fn granted(
    events: &mut mpsc::UnboundedReceiver<LatchEvent>,
    who: &str,
) -> tenure_core::kv::FencingToken {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match events.recv().await {
                Some(LatchEvent::Granted(t)) => return t,
                Some(_) => {}
                None => panic!("{who}: the latch ended"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{who} granted in time"))
}

fn fenced(token: &tenure_core::kv::FencingToken) -> CreateOptions {
    CreateOptions {
        fence: Some(token.clone()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_loses_the_latch_after_the_ttl_and_its_writes_are_rejected() {
    let f = EtcdFactory::start().await;
    let proxy = f.start_proxy().await;
    let a = f.connect_with(f.settings_via(&proxy)).await;
    let b = f.connect_etcd().await;
    let (atx, mut arx) = mpsc::unbounded_channel();
    let (btx, mut brx) = mpsc::unbounded_channel();
    let _la = a.join_latch("leader/latch", atx).await.expect("a joins");
    let ta = granted(&mut arx, "a").await;
    let _lb = b.join_latch("leader/latch", btx).await.expect("b joins");
    a.create("w/1", Bytes::from_static(b"a"), fenced(&ta))
        .await
        .expect("the leader writes");

    let started = tokio::time::Instant::now();
    proxy.black_hole();
    let mut state = a.connection_state();
    wait_for(&mut state, "a suspended", DEADLINE, |s| {
        *s != ConnectionState::Connected
    })
    .await;
    let tb = granted(&mut brx, "b").await;
    let failover = started.elapsed();
    assert!(
        failover >= Duration::from_secs(1),
        "the standby was granted {failover:?} after the partition, before the lease could expire"
    );
    assert_ne!(ta, tb);
    wait_for(&mut state, "a lost", DEADLINE, |s| {
        *s == ConnectionState::Lost
    })
    .await;

    proxy.heal();
    wait_for(&mut state, "a connected under a new lease", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    assert_eq!(a.lease_generation(), 2);
    let err = a
        .create("w/2", Bytes::from_static(b"a"), fenced(&ta))
        .await
        .expect_err("the deposed leader's write");
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    b.create("w/2", Bytes::from_static(b"b"), fenced(&tb))
        .await
        .expect("the new leader writes");
}
