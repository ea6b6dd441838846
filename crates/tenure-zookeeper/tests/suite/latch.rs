//! The leader latch against a real ZooKeeper: Curator's node names and ordering, no herd
//! effect, fencing on the latch node.

#![allow(clippy::unwrap_used)]

use crate::common;

use bytes::Bytes;
use common::{granted, next_event, wait_for_parked};
use tenure_core::driver::{HaBackend, LatchEvent};
use tenure_core::kv::{CreateOptions, KvError, VersionedKv};
use tenure_testkit::zookeeper::ZooKeeperFactory;
use tenure_zookeeper::latch_waits;
use tenure_zookeeper::zk;
use tokio::sync::mpsc;

fn is_curator_latch_name(name: &str) -> bool {
    // _c_<uuid>-latch-<10 digits>
    let Some(rest) = name.strip_prefix("_c_") else {
        return false;
    };
    let Some((uuid, seq)) = rest.split_once("-latch-") else {
        return false;
    };
    uuid::Uuid::parse_str(uuid).is_ok()
        && seq.len() == 10
        && seq.bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latch_nodes_have_curators_protected_names_and_flinks_path() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _latch = a.join_latch("leader/latch", tx).await.unwrap();
    let token = granted(&mut rx).await;

    let raw = f.raw_client().await;
    let dir = format!("/flink/{}/leader/latch", f.cluster_id());
    let children = raw.list_children(&dir).await.unwrap();
    assert_eq!(children.len(), 1, "{children:?}");
    let name = &children[0];
    assert!(is_curator_latch_name(name), "{name}");
    assert!(
        name.ends_with("-latch-0000000000"),
        "first node of the latch: {name}"
    );
    let path = format!("{dir}/{name}");
    assert_eq!(token.lock(), path, "the token names the latch node");
    assert_eq!(token.epoch(), 0, "the token's epoch is the sequence number");
    let (data, stat) = raw.get_data(&path).await.unwrap();
    assert!(data.is_empty(), "Curator's default participant id is empty");
    assert_eq!(stat.ephemeral_owner, a.session_info().unwrap().id().0);
    assert_eq!(stat.version, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_is_the_smallest_sequence_not_the_smallest_name() {
    let f = ZooKeeperFactory::start().await;
    let raw = f.raw_client().await;
    let dir = format!("/flink/{}/leader/latch", f.cluster_id());
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    raw.mkdir(&dir, &open).await.unwrap();
    // A foreign (Flink) participant whose name sorts last but whose sequence is first.
    let foreign_prefix = format!("{dir}/_c_ffffffff-ffff-ffff-ffff-ffffffffffff-latch-");
    let eph = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let (_, seq) = raw.create(&foreign_prefix, &[], &eph).await.unwrap();
    let foreign = format!("{foreign_prefix}{seq}");

    let a = f.connect_zk().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _latch = a.join_latch("leader/latch", tx).await.unwrap();
    // Once a waits on the foreign node, it has looked at the line and found itself second.
    wait_for_parked(&a, "a waiting on the foreign node", 1).await;
    assert!(
        rx.try_recv().is_err(),
        "not granted while the foreign node is first"
    );

    raw.delete(&foreign, None).await.unwrap();
    let token = granted(&mut rx).await;
    assert_eq!(token.epoch(), seq.into_i64() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_waiter_waits_only_on_its_predecessor() {
    let f = ZooKeeperFactory::start().await;
    let mut members = Vec::new();
    for _ in 0..4 {
        let b = f.connect_zk().await;
        let (tx, rx) = mpsc::unbounded_channel();
        let latch = b.join_latch("leader/latch", tx).await.unwrap();
        members.push((b, latch, rx));
    }
    let raw = f.raw_client().await;
    let dir = format!("/flink/{}/leader/latch", f.cluster_id());
    let line = |mut children: Vec<String>| {
        children.sort_by_key(|c| c.rsplit("latch-").next().unwrap().to_owned());
        children
            .into_iter()
            .map(|c| format!("{dir}/{c}"))
            .collect::<Vec<_>>()
    };
    tenure_testkit::wait_until("four latch nodes", tenure_testkit::DEADLINE, || async {
        raw.list_children(&dir).await.map(|c| c.len()).unwrap_or(0) == 4
    })
    .await;
    let sessions: Vec<i64> = members
        .iter()
        .map(|(b, _, _)| b.session_info().unwrap().id().0)
        .collect();
    // The owner of each node, in line order.
    let mut owners = Vec::new();
    let mut nodes = Vec::new();
    for path in line(raw.list_children(&dir).await.unwrap()) {
        let (_, stat) = raw.get_data(&path).await.unwrap();
        owners.push(
            sessions
                .iter()
                .position(|s| *s == stat.ephemeral_owner)
                .unwrap(),
        );
        nodes.push(path);
    }
    assert_eq!(nodes.len(), 4);
    // Every member waits on one node: the leader on its own, every other on one before it.
    for (b, _, _) in &members {
        wait_for_parked(b, "one wait per member", 1).await;
    }
    let leader = owners[0];
    assert!(matches!(
        members[leader].2.try_recv(),
        Ok(LatchEvent::Granted(_))
    ));
    for &m in &owners[1..] {
        assert!(
            members[m].2.try_recv().is_err(),
            "member {m} is not granted"
        );
    }
    let backends: Vec<_> = members.iter().map(|(b, _, _)| b.clone()).collect();
    let woken = |m: usize| latch_waits(&backends[m]).woken;
    let before: Vec<u64> = (0..4).map(woken).collect();

    // The leader leaves: exactly the next in line is woken and granted.
    members[leader].1.close().await.unwrap();
    let next = owners[1];
    granted(&mut members[next].2).await;
    wait_for_parked(&backends[next], "the new leader waiting on its own node", 1).await;
    assert_eq!(
        woken(next),
        before[next] + 1,
        "the next in line was woken once"
    );
    for &m in &owners[2..] {
        assert!(
            members[m].2.try_recv().is_err(),
            "member {m} was not granted"
        );
        assert_eq!(woken(m), before[m], "member {m} was not woken");
        assert_eq!(
            latch_waits(&backends[m]).parked,
            1,
            "member {m} still waits"
        );
    }

    // The middle one leaves: only the last, which waited on its node, is woken; it waits on
    // the leader now and is not granted.
    let (middle, last) = (owners[2], owners[3]);
    members[middle].1.close().await.unwrap();
    tenure_testkit::wait_until(
        "the last member woken",
        tenure_testkit::DEADLINE,
        || async { woken(last) == before[last] + 1 },
    )
    .await;
    wait_for_parked(&backends[last], "the last member waiting again", 1).await;
    assert!(
        members[last].2.try_recv().is_err(),
        "the last member is not granted"
    );
    assert_eq!(woken(next), before[next] + 1, "the leader was not woken");
    assert_eq!(nodes.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_writes_fail_once_the_latch_node_is_deleted() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _latch = a.join_latch("leader/latch", tx).await.unwrap();
    let t1 = granted(&mut rx).await;
    let fenced = |t: &tenure_core::kv::FencingToken| CreateOptions {
        fence: Some(t.clone()),
        ..Default::default()
    };
    a.create("jobs/j/x", Bytes::from_static(b"1"), fenced(&t1))
        .await
        .unwrap();
    // Someone deletes the latch node (an operator, or the session's end seen elsewhere).
    let raw = f.raw_client().await;
    raw.delete(t1.lock(), None).await.unwrap();
    let err = a
        .create("jobs/j/y", Bytes::from_static(b"1"), fenced(&t1))
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    assert!(
        a.get("jobs/j/y").await.unwrap().is_none(),
        "nothing was written"
    );
    // The latch notices, revokes, joins again and (alone) leads with a new token.
    assert_eq!(next_event(&mut rx).await, LatchEvent::Revoked);
    let t2 = granted(&mut rx).await;
    assert_ne!(t1, t2);
    assert!(t2.epoch() > t1.epoch());
    a.create("jobs/j/y", Bytes::from_static(b"2"), fenced(&t2))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_create_makes_missing_parents_and_stays_atomic() {
    let f = ZooKeeperFactory::start().await;
    let a = f.connect_zk().await;
    let b = f.connect_zk().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let latch = a.join_latch("leader/latch", tx).await.unwrap();
    let t = granted(&mut rx).await;
    let opts = CreateOptions {
        fence: Some(t.clone()),
        ephemeral: true,
    };
    a.create("deep/ly/nested/key", Bytes::from_static(b"v"), opts.clone())
        .await
        .unwrap();
    let e = b.get("deep/ly/nested/key").await.unwrap().unwrap();
    assert_eq!(
        e.ephemeral_owner,
        Some(a.session_info().unwrap().id().0 as u64)
    );
    assert!(
        b.get("deep/ly").await.unwrap().unwrap().value.is_empty(),
        "implicit parent"
    );
    latch.close().await.unwrap();
    let err = a
        .create("other/new/key", Bytes::from_static(b"v"), opts)
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    assert!(b.get("other/new/key").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_racing_to_make_a_new_latch_elect_one() {
    // The session whose multi makes a new latch's directories leads without reading the line;
    // the other's multi fails, and it joins behind with a create and a read.
    let f = ZooKeeperFactory::start().await;
    let raw = f.raw_client().await;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    raw.mkdir(&format!("/flink/{}/leader", f.cluster_id()), &open)
        .await
        .unwrap();
    let (a, b) = (f.connect_zk().await, f.connect_zk().await);
    let key = "leader/new-job/latch";
    let ((tx_a, mut rx_a), (tx_b, mut rx_b)) =
        (mpsc::unbounded_channel(), mpsc::unbounded_channel());
    let (latch_a, latch_b) = tokio::join!(a.join_latch(key, tx_a), b.join_latch(key, tx_b));
    let (latch_a, latch_b) = (latch_a.unwrap(), latch_b.unwrap());
    // Each session parks one wait: the leader on its own node, the other on the leader's.
    wait_for_parked(&a, "a's wait", 1).await;
    wait_for_parked(&b, "b's wait", 1).await;
    let (first, mut second_rx, leader_latch) = match (rx_a.try_recv(), rx_b.try_recv()) {
        (Ok(LatchEvent::Granted(t)), Err(_)) => (t, rx_b, latch_a),
        (Err(_), Ok(LatchEvent::Granted(t))) => (t, rx_a, latch_b),
        other => panic!("exactly one grant expected, got {other:?}"),
    };
    assert_eq!(
        first.epoch(),
        0,
        "the leader's node is the new directory's first"
    );
    let dir = format!("/flink/{}/{key}", f.cluster_id());
    assert_eq!(raw.list_children(&dir).await.unwrap().len(), 2);
    // The leader leaves; the other leads with the next node.
    leader_latch.close().await.unwrap();
    let next = granted(&mut second_rx).await;
    assert_eq!(next.epoch(), 1);
}

/// The latch nodes of `dir` owned by `session`.
async fn nodes_of(raw: &zk::Client, dir: &str, session: i64) -> Vec<String> {
    let mut out = Vec::new();
    for child in raw.list_children(dir).await.unwrap() {
        let path = format!("{dir}/{child}");
        if let Ok((_, stat)) = raw.get_data(&path).await
            && stat.ephemeral_owner == session
        {
            out.push(path);
        }
    }
    out
}

/// Someone deletes the node of the second of the line (an operator's mistake), a third
/// contender joins behind the leader, and the leader leaves: one of the two leads, never both.
/// The second must not take the leader's deletion as its turn: its own node is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_whose_node_was_deleted_is_not_granted_when_the_leader_leaves() {
    let f = ZooKeeperFactory::start().await;
    let raw = f.raw_client().await;
    let dir = format!("/flink/{}/leader/latch", f.cluster_id());
    let join = || async {
        let b = f.connect_zk().await;
        let (latch, rx) = tenure_testkit::join(&b, "leader/latch").await;
        (b, latch, rx)
    };
    let l = f.connect_zk().await;
    let (leader, _leader_events, _) = tenure_testkit::lead_alone(&l, "leader/latch").await;
    let (s, _s_latch, mut s_rx) = join().await;
    wait_for_parked(&s, "the second waiting on the leader's node", 1).await;
    let s_session = s.session_info().unwrap().id().0;
    let s_nodes = nodes_of(&raw, &dir, s_session).await;
    assert_eq!(s_nodes.len(), 1, "{s_nodes:?}");
    raw.delete(&s_nodes[0], None).await.unwrap();

    let (t, _t_latch, mut t_rx) = join().await;
    wait_for_parked(&t, "the third waiting", 1).await;
    leader.close().await.unwrap();

    // Every grant of both, from the leader's leaving until the line settles: one leader, the
    // other waiting on it, two nodes.
    let t_session = t.session_info().unwrap().id().0;
    let grants = tenure_testkit::grants_until_settled(&mut s_rx, &mut t_rx, || async {
        nodes_of(&raw, &dir, s_session).await.len() == 1
            && nodes_of(&raw, &dir, t_session).await.len() == 1
            && raw.list_children(&dir).await.unwrap().len() == 2
            && latch_waits(&s).parked == 1
            && latch_waits(&t).parked == 1
    })
    .await;
    assert_eq!(
        grants[0] + grants[1],
        1,
        "one grant after the leader left: second {}, third {}",
        grants[0],
        grants[1]
    );
}
