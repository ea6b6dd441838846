//! Flink 1.20's Curator client keys against a real ZooKeeper: `client.authorization` (a digest
//! entry authenticates the creator ACL), `client.max-close-wait` (closing is bounded by it),
//! `client.simulated-session-expiration-percent` (a disconnected session is lost after that
//! share of its timeout) and `client.ensemble-tracker` (later sessions use the ensemble's
//! client addresses).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use tenure_core::config::ZooKeeperAcl;
use tenure_core::connection::ConnectionState;
use tenure_core::driver::HaBackend;
use tenure_core::kv::{CreateOptions, VersionedKv};
use tenure_testkit::zookeeper::ZooKeeperFactory;
use tenure_testkit::{DEADLINE, wait_for};
use zookeeper_client as zk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_digest_owns_creator_znodes() {
    let f = ZooKeeperFactory::start().await;
    let owner = f
        .connect_with(
            f.settings()
                .with_acl(ZooKeeperAcl::Creator, None)
                .with_authorization("digest", "alice:s3cret"),
        )
        .await;
    owner
        .create("owned", Bytes::from_static(b"v"), CreateOptions::default())
        .await
        .unwrap();
    let path = owner.znode_path("owned").unwrap();
    let connect = f.server().connect_string();

    // No credentials, or other ones: the ACL denies reading.
    let anonymous = f.raw_client().await;
    let err = anonymous.get_data(&path).await.unwrap_err();
    assert!(matches!(err, zk::Error::NoAuth), "{err}");
    let mallory = zk::Client::connector()
        .with_auth("digest", b"mallory:guess")
        .connect(&connect)
        .await
        .unwrap();
    let err = mallory.get_data(&path).await.unwrap_err();
    assert!(matches!(err, zk::Error::NoAuth), "{err}");
    // The same digest reads it: the entry was sent as the session's addAuth.
    let alice = zk::Client::connector()
        .with_auth("digest", b"alice:s3cret")
        .connect(&connect)
        .await
        .unwrap();
    assert_eq!(alice.get_data(&path).await.unwrap().0, b"v");
    // And a second backend with that entry uses the znode through the KV.
    let again = f
        .connect_with(
            f.settings()
                .with_acl(ZooKeeperAcl::Creator, None)
                .with_authorization("digest", "alice:s3cret"),
        )
        .await;
    let got = again.get("owned").await.unwrap().unwrap();
    assert_eq!(got.value, Bytes::from_static(b"v"));
    owner.close().await.unwrap();
    again.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_waits_at_most_max_close_wait() {
    let f = ZooKeeperFactory::start().await;
    // A healthy session closes at once, its ephemeral znode with it.
    let a = f
        .connect_with(f.settings().with_max_close_wait(Duration::from_secs(5)))
        .await;
    let eph = CreateOptions {
        ephemeral: true,
        ..Default::default()
    };
    a.create("e/a", Bytes::new(), eph.clone()).await.unwrap();
    let path = a.znode_path("e/a").unwrap();
    let started = Instant::now();
    a.close().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let raw = f.raw_client().await;
    assert!(raw.check_stat(&path).await.unwrap().is_none());

    // A session whose server does not answer: close gives up after max-close-wait.
    let proxy = f.start_proxy().await;
    let wait = Duration::from_millis(700);
    let b = f
        .connect_with(
            f.settings_via(&proxy)
                .with_session_timeout(Duration::from_secs(20))
                .with_max_close_wait(wait),
        )
        .await;
    b.create("e/b", Bytes::new(), eph).await.unwrap();
    proxy.black_hole();
    let started = Instant::now();
    b.close().await.unwrap();
    let took = started.elapsed();
    assert!(took < wait + Duration::from_secs(3), "close took {took:?}");
    assert_eq!(*b.connection_state().borrow(), ConnectionState::Lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_disconnected_past_the_simulated_share_is_lost_and_replaced() {
    let f = ZooKeeperFactory::start().await;
    let proxy = f.start_proxy().await;
    let timeout = Duration::from_secs(6);
    let a = f
        .connect_with(
            f.settings_via(&proxy)
                .with_session_timeout(timeout)
                .with_simulated_expiration_percent(20)
                // A new session's attempt that began inside the partition fails at the heal;
                // the next one then follows within a second, not after `retry-wait` (5 s)
                // doubling, which a loaded machine could stretch past the deadline.
                .with_max_retry_wait(Duration::from_secs(1)),
        )
        .await;
    let negotiated = a.client().unwrap().session_timeout();
    let old = a.session_info().unwrap();
    let mut conn = a.connection_state();
    proxy.black_hole();
    wait_for(&mut conn, "suspended", DEADLINE, |s| {
        *s == ConnectionState::Suspended
    })
    .await;
    let suspended = Instant::now();
    wait_for(&mut conn, "lost", DEADLINE, |s| *s == ConnectionState::Lost).await;
    let lost_after = suspended.elapsed();
    // 20 % of the negotiated timeout, well before the client's own expiry (at least the whole
    // timeout after the disconnect).
    assert!(
        lost_after >= negotiated / 5 - Duration::from_millis(100),
        "{lost_after:?}"
    );
    assert!(lost_after < negotiated * 3 / 4, "{lost_after:?}");
    proxy.heal();
    wait_for(&mut conn, "connected on a new session", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    assert_eq!(a.session_generation(), 2);
    assert_ne!(a.session_info().unwrap().id(), old.id());
    a.close().await.unwrap();
}

/// Settings for a session on `quorum` that notices a dead server quickly.
fn ensemble_settings(quorum: &str, track: bool) -> tenure_zookeeper::ZooKeeperSettings {
    tenure_zookeeper::ZooKeeperSettings::new(quorum, "/flink", "tracker")
        .with_session_timeout(Duration::from_secs(4))
        .with_connection_timeout(Duration::from_secs(5))
        .with_ensemble_tracker(track)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ensemble_tracker_moves_the_next_session_to_the_ensembles_servers() {
    use tenure_testkit::ensemble::ZooKeeperEnsemble;
    use tenure_zookeeper::ZooKeeperBackend;

    let mut ensemble = ZooKeeperEnsemble::start_advertising_clients(3).await;
    let first = ensemble.connect_string_of(&[0]);
    let all: Vec<String> = (0..3).map(|i| ensemble.connect_string_of(&[i])).collect();

    // Without the tracker, only the configured server.
    let fixed = ZooKeeperBackend::connect(ensemble_settings(&first, false))
        .await
        .unwrap();
    assert_eq!(fixed.next_session_quorum(), first);
    fixed.close().await.unwrap();

    // With it, the ensemble's client addresses from /zookeeper/config.
    let a = ZooKeeperBackend::connect(ensemble_settings(&first, true))
        .await
        .unwrap();
    let mut tracked: Vec<String> = a
        .next_session_quorum()
        .split(',')
        .map(str::to_owned)
        .collect();
    tracked.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(tracked, expected);

    // The configured server dies: the session cannot reconnect, is lost, and the next one is
    // opened on the servers the tracker found.
    let mut conn = a.connection_state();
    ensemble.kill(0);
    wait_for(&mut conn, "lost", DEADLINE, |s| *s == ConnectionState::Lost).await;
    wait_for(&mut conn, "connected on another server", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    assert_eq!(a.session_generation(), 2);
    a.create("after", Bytes::from_static(b"1"), CreateOptions::default())
        .await
        .unwrap();
    a.close().await.unwrap();
}
