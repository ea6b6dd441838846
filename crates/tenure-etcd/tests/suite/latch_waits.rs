//! The latch waits of an etcd session share one watch stream: many elections open one stream
//! between them, each wait is one watch on it, and a wait that ends (its key deleted, its
//! election stopped) cancels its watch on the server, so none is left behind. A stream broken
//! by a server restart wakes its waits, which wait again on a new one.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tenure_core::election::{ElectionService, LeaderElection};
use tenure_core::ids::{ComponentId, JobId};
use tenure_core::layout::Layout;
use tenure_etcd::{EtcdBackend, latch_waits};
use tenure_testkit::etcd::EtcdFactory;
use tenure_testkit::{DEADLINE, wait_until};

const STREAMS_OPENED: &str = "grpc_server_started_total{grpc_method=\"Watch\"";
const WATCHERS: &str = "etcd_debugging_mvcc_watcher_total";

/// Per-job elections of the session `backend`.
async fn elect(backend: &Arc<EtcdBackend>, job: &ComponentId) -> LeaderElection {
    let layout = Layout::default();
    let service = ElectionService::new(backend.clone(), layout, layout.component_latch(job));
    service.register(job.clone()).await.unwrap()
}

async fn wait_parked(backend: &EtcdBackend, what: &str, parked: usize) {
    wait_until(what, DEADLINE, || async {
        latch_waits(backend).parked == parked
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elections_of_a_session_wait_on_one_stream_and_cancel_their_watches() {
    const N: usize = 40;
    let f = EtcdFactory::start().await;
    let a = Arc::new(f.connect_etcd().await);
    let b = Arc::new(f.connect_etcd().await);
    let server = f.server();
    let watchers = || async { server.counter(WATCHERS).await as usize };
    let (streams0, watchers0) = (server.counter(STREAMS_OPENED).await, watchers().await);

    let jobs: Vec<ComponentId> = (0..N)
        .map(|_| ComponentId::JobMaster(JobId::new_random()))
        .collect();
    let mut leaders = Vec::new();
    for job in &jobs {
        let mut e = elect(&a, job).await;
        tokio::time::timeout(DEADLINE, e.wait_for_leadership())
            .await
            .unwrap()
            .unwrap();
        leaders.push(e);
    }
    // Every leader waits for its own key's deletion: N watches on one stream.
    wait_parked(&a, "every leader's wait parked", N).await;
    assert_eq!(
        server.counter(STREAMS_OPENED).await - streams0,
        1.0,
        "one watch stream for the session's {N} waits"
    );
    wait_until("a watch per wait on the server", DEADLINE, || async {
        watchers().await == watchers0 + N
    })
    .await;

    // A standby of the first job in another session waits on the leader's key; the leader
    // stops, its key's delete wakes the standby, and both sessions cancel the spent watches.
    let mut standby = elect(&b, &jobs[0]).await;
    wait_parked(&b, "the standby's wait parked", 1).await;
    leaders.remove(0).stop().await.unwrap();
    tokio::time::timeout(DEADLINE, standby.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    wait_parked(&a, "the stopped leader's wait gone", N - 1).await;
    wait_parked(&b, "the new leader waits on its own key", 1).await;
    wait_until("spent watches cancelled", DEADLINE, || async {
        watchers().await == watchers0 + N
    })
    .await;

    for e in leaders {
        e.stop().await.unwrap();
    }
    wait_parked(&a, "no wait left in the stopped session", 0).await;
    wait_until(
        "every stopped election's watch cancelled",
        DEADLINE,
        || async { watchers().await == watchers0 + 1 },
    )
    .await;
    assert_eq!(
        server.counter(STREAMS_OPENED).await - streams0,
        2.0,
        "one stream per session"
    );
    standby.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_wait_again_on_a_new_stream_after_the_server_restarts() {
    let mut f = EtcdFactory::start().await;
    // A lease that outlives the restart: the same keys, the same line.
    let settings = f.settings().with_lease_ttl(Duration::from_secs(15));
    let a = Arc::new(f.connect_with(settings.clone()).await);
    let b = Arc::new(f.connect_with(settings).await);
    let job = ComponentId::JobMaster(JobId::new_random());
    let mut leader = elect(&a, &job).await;
    tokio::time::timeout(DEADLINE, leader.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    let mut standby = elect(&b, &job).await;
    wait_parked(&a, "the leader's wait", 1).await;
    wait_parked(&b, "the standby's wait", 1).await;

    f.server_mut().stop();
    f.server_mut().restart().await;
    // The restarted server's watchers are the waits set again on new streams: the leader's on
    // its own key, the standby's on the range of the leader's key and its own (the leader is
    // the first of the line), nothing left of the broken streams.
    let server = f.server();
    wait_until("both waits watched again", DEADLINE, || async {
        server.counter(WATCHERS).await as usize == 2
    })
    .await;
    tokio::time::timeout(DEADLINE, leader.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();

    // The delete still reaches the standby through its new watch.
    leader.stop().await.unwrap();
    tokio::time::timeout(DEADLINE, standby.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    wait_until("the spent watches cancelled", DEADLINE, || async {
        server.counter(WATCHERS).await as usize == 1
    })
    .await;
    standby.stop().await.unwrap();
}

/// Someone deletes the key of the second of the line (an operator's mistake), a third
/// contender joins behind the leader, and the leader leaves: one of the two leads, never both.
/// The second must not take the leader's deletion as its turn: its own key is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_whose_key_was_deleted_is_not_granted_when_the_leader_leaves() {
    let f = EtcdFactory::start().await;
    let mut raw = etcd_client::Client::connect([f.server().endpoint()], None)
        .await
        .unwrap();
    let dir = format!("/flink/{}/leader/latch/", f.cluster_id());
    let join = || async {
        let b = f.connect_etcd().await;
        let (latch, rx) = tenure_testkit::join(&b, "leader/latch").await;
        (b, latch, rx)
    };
    let l = f.connect_etcd().await;
    let (leader, _leader_events, _) = tenure_testkit::lead_alone(&l, "leader/latch").await;
    let (s, _s_latch, mut s_rx) = join().await;
    wait_parked(&s, "the second waiting on the leader's key", 1).await;
    let s_key = format!("{dir}{:x}", s.lease_id());
    let deleted = raw.delete(s_key.clone(), None).await.unwrap();
    assert_eq!(deleted.deleted(), 1, "{s_key}");

    let (t, _t_latch, mut t_rx) = join().await;
    wait_parked(&t, "the third waiting", 1).await;
    leader.close().await.unwrap();

    // Every grant of both, from the leader's leaving until the line settles: one leader, the
    // other waiting on it, two keys.
    let keys = {
        let raw = raw.clone();
        let dir = dir.clone();
        move || {
            let (mut raw, dir) = (raw.clone(), dir.clone());
            async move {
                let opts = etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_keys_only();
                let resp = raw.get(dir, Some(opts)).await.unwrap();
                let mut keys: Vec<String> = resp
                    .kvs()
                    .iter()
                    .map(|kv| kv.key_str().unwrap().to_owned())
                    .collect();
                keys.sort();
                keys
            }
        }
    };
    let mut want = vec![
        format!("{dir}{:x}", s.lease_id()),
        format!("{dir}{:x}", t.lease_id()),
    ];
    want.sort();
    let grants = tenure_testkit::grants_until_settled(&mut s_rx, &mut t_rx, || async {
        keys().await == want && latch_waits(&s).parked == 1 && latch_waits(&t).parked == 1
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

/// Someone puts the leader's latch key again without its lease (`etcdctl put` by hand): the key
/// is no participant any more, and its fence fails. The leader's wait sees the put, reads the
/// line and gives its leadership up instead of leading on unaware.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_key_is_put_again_without_its_lease_is_revoked() {
    use tenure_core::driver::LatchEvent;

    let f = EtcdFactory::start().await;
    let l = f.connect_etcd().await;
    let (_latch, mut rx, token) = tenure_testkit::lead_alone(&l, "leader/latch").await;
    wait_parked(&l, "the leader's wait on its own key", 1).await;
    let mut raw = etcd_client::Client::connect([f.server().endpoint()], None)
        .await
        .unwrap();
    raw.put(token.lock(), "", None).await.unwrap();
    let next = tokio::time::timeout(DEADLINE, rx.recv()).await;
    assert!(
        matches!(next, Ok(Some(LatchEvent::Revoked))),
        "revoked: {next:?}"
    );
}
