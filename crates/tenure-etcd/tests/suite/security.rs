//! Secured etcd on real servers: TLS (server CA, mutual TLS), username/password auth with a
//! role limited to the cluster's prefix, and the errors of a wrong CA, a plaintext client on a
//! TLS port and a wrong password: each fast, each naming the endpoint.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use tenure_core::config::etcd_security::USERNAME_KEY;
use tenure_core::connect::ConnectError;
use tenure_core::connection::ConnectionState;
use tenure_core::driver::{HaBackend, LatchEvent};
use tenure_core::kv::{CreateOptions, KvError, VersionedKv};
use tenure_etcd::{EtcdBackend, EtcdSettings};
use tenure_testkit::DEADLINE;
use tenure_testkit::etcd::{EtcdServer, test_settings};
use tenure_testkit::etcd_security::{EtcdOptions, EtcdPki};
use tokio::sync::mpsc;

/// How fast a refused connect must fail.
const FAST: Duration = Duration::from_secs(5);

fn cluster_id() -> String {
    format!("sec-{}", uuid::Uuid::new_v4().simple())
}

/// Joins the latch `leader/latch` and returns the latch with its event stream.
async fn join(
    backend: &EtcdBackend,
) -> (
    Box<dyn tenure_core::driver::Latch>,
    mpsc::UnboundedReceiver<LatchEvent>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let latch = backend.join_latch("leader/latch", tx).await.unwrap();
    (latch, rx)
}

async fn granted(
    events: &mut mpsc::UnboundedReceiver<LatchEvent>,
) -> tenure_core::kv::FencingToken {
    loop {
        match tokio::time::timeout(DEADLINE, events.recv()).await {
            Ok(Some(LatchEvent::Granted(token))) => return token,
            Ok(Some(LatchEvent::Revoked)) => {}
            Ok(Some(LatchEvent::Failed(e))) => panic!("the latch failed: {e}"),
            Ok(None) => panic!("the latch ended"),
            Err(_) => panic!("not granted within {DEADLINE:?}"),
        }
    }
}

/// Two sessions elect through the latch: the first leads and writes fenced, the second reads
/// it and leads once the first leaves.
async fn elect_and_round_trip(a: &EtcdBackend, b: &EtcdBackend) {
    let (latch_a, mut events_a) = join(a).await;
    let token = granted(&mut events_a).await;
    let fenced = CreateOptions {
        ephemeral: true,
        fence: Some(token),
    };
    a.create("leader/info", Bytes::from_static(b"a"), fenced)
        .await
        .unwrap();
    let seen = b.get("leader/info").await.unwrap().unwrap();
    assert_eq!(seen.value, Bytes::from_static(b"a"));
    let (_latch_b, mut events_b) = join(b).await;
    latch_a.close().await.unwrap();
    let token_b = granted(&mut events_b).await;
    b.create(
        "leader/next",
        Bytes::from_static(b"b"),
        CreateOptions {
            ephemeral: false,
            fence: Some(token_b),
        },
    )
    .await
    .unwrap();
    assert!(a.get("leader/next").await.unwrap().is_some());
}

async fn connect_err(settings: EtcdSettings) -> (ConnectError, Duration) {
    let started = Instant::now();
    let err = EtcdBackend::connect(settings)
        .await
        .expect_err("the connect must fail");
    (err, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sessions_elect_and_round_trip() {
    let pki = EtcdPki::generate();
    let server = EtcdServer::start_with(EtcdOptions::tls(&pki)).await;
    assert!(server.endpoint().starts_with("https://"));
    let id = cluster_id();
    let settings = test_settings(vec![server.endpoint()], &id).with_tls(pki.client_tls());
    let a = EtcdBackend::connect(settings.clone()).await.unwrap();
    let b = EtcdBackend::connect(settings).await.unwrap();
    elect_and_round_trip(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = EtcdPki::generate();
    let server = EtcdServer::start_with(EtcdOptions::mutual_tls(&pki)).await;
    let id = cluster_id();
    let with_cert =
        test_settings(vec![server.endpoint()], &id).with_tls(pki.client_tls_with_cert());
    let a = EtcdBackend::connect(with_cert.clone()).await.unwrap();
    let b = EtcdBackend::connect(with_cert).await.unwrap();
    elect_and_round_trip(&a, &b).await;

    let without = test_settings(vec![server.endpoint()], &id).with_tls(pki.client_tls());
    let (err, took) = connect_err(without).await;
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&server.endpoint()), "{text}");
    assert!(
        text.contains("high-availability.etcd.tls.cert-file"),
        "{text}"
    );
    assert!(took < FAST, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_does_not_verify_the_server_fails_fast_naming_the_endpoint() {
    let pki = EtcdPki::generate();
    let server = EtcdServer::start_with(EtcdOptions::tls(&pki)).await;
    let mut tls = pki.client_tls();
    tls.ca_file = Some(pki.other_ca_file());
    let settings = test_settings(vec![server.endpoint()], &cluster_id()).with_tls(tls);
    let (err, took) = connect_err(settings).await;
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&server.endpoint()) && text.contains("certificate verification failed"),
        "{text}"
    );
    assert!(took < FAST, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_on_a_tls_port_fails_fast_naming_the_endpoint() {
    let pki = EtcdPki::generate();
    let server = EtcdServer::start_with(EtcdOptions::tls(&pki)).await;
    let plain = format!("http://127.0.0.1:{}", server.port());
    let settings = test_settings(vec![plain.clone()], &cluster_id());
    let (err, took) = connect_err(settings).await;
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&plain) && text.contains("speaks TLS"),
        "{text}"
    );
    assert!(took < FAST, "took {took:?}");
}

const ROOT_PASSWORD: &str = "root-secret";
const USER: &str = "flink";
const PASSWORD: &str = "flink-secret";

/// A plaintext server with auth on and the user `flink` whose one role is readwrite on
/// `/flink/<id>/`.
async fn auth_server(options: EtcdOptions, id: &str) -> EtcdServer {
    let server = EtcdServer::start_with(options).await;
    server
        .enable_auth(
            None,
            ROOT_PASSWORD,
            USER,
            PASSWORD,
            &format!("/flink/{id}/"),
        )
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_only_the_prefix_role_elects_and_writes() {
    let id = cluster_id();
    let server = auth_server(EtcdOptions::default(), &id).await;
    let settings = test_settings(vec![server.endpoint()], &id).with_user(USER, PASSWORD);
    // The lease is granted without any permission on the lease itself.
    let a = EtcdBackend::connect(settings.clone()).await.unwrap();
    let b = EtcdBackend::connect(settings).await.unwrap();
    elect_and_round_trip(&a, &b).await;
    // The role covers the prefix and nothing else.
    let mut raw = a.client().unwrap();
    let outside = raw.put(format!("/flink/{id}-other/x"), "v", None).await;
    assert!(
        outside.is_err(),
        "a write outside the prefix must be refused"
    );
    // Closing revokes the lease (etcd checks write permission on the lease's keys).
    b.create(
        "e/b",
        Bytes::new(),
        CreateOptions {
            ephemeral: true,
            fence: None,
        },
    )
    .await
    .unwrap();
    b.close().await.unwrap();
    assert!(
        a.get("e/b").await.unwrap().is_none(),
        "the lease was revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_fast_naming_the_endpoint_and_the_key() {
    let id = cluster_id();
    let server = auth_server(EtcdOptions::default(), &id).await;
    let settings = test_settings(vec![server.endpoint()], &id).with_user(USER, "wrong");
    let (err, took) = connect_err(settings).await;
    assert!(matches!(err, ConnectError::AuthFailed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&server.endpoint()) && text.contains(USERNAME_KEY),
        "{text}"
    );
    assert!(!text.contains("wrong"), "the password is not shown: {text}");
    assert!(took < FAST, "took {took:?}");
    // No credentials: etcd 3.4 grants an anonymous lease, and refuses the first key access.
    let anonymous = test_settings(vec![server.endpoint()], &id);
    let b = EtcdBackend::connect(anonymous).await.unwrap();
    let err = b.get("leader/info").await.unwrap_err();
    assert!(matches!(err, KvError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_outlives_several_auth_token_ttls() {
    let id = cluster_id();
    let ttl = Duration::from_secs(2);
    let server = auth_server(EtcdOptions::default().with_auth_token_ttl(ttl), &id).await;
    let settings = test_settings(vec![server.endpoint()], &id).with_user(USER, PASSWORD);
    let a = EtcdBackend::connect(settings.clone()).await.unwrap();
    let b = EtcdBackend::connect(settings).await.unwrap();
    let (_latch_a, mut events_a) = join(&a).await;
    let token = granted(&mut events_a).await;
    // What is tested is time passing: three token TTLs without a request of the test.
    tokio::time::sleep(3 * ttl + Duration::from_millis(500)).await;
    assert_eq!(a.lease_generation(), 1, "the lease was never lost");
    assert_eq!(*a.connection_state().borrow(), ConnectionState::Connected);
    // A watch is the first request after the idle time. etcd cancels a watch opened with an
    // expired token (etcd-client refreshes tokens only for refused requests), so this holds
    // because the session keeps its token in use.
    let mut watch = a.watch("w").await.unwrap();
    b.create("w/x", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    let first = tokio::time::timeout(DEADLINE, watch.next()).await.unwrap();
    assert!(
        matches!(first, Some(tenure_core::kv::KvEvent::Put(_))),
        "{first:?}"
    );
    a.create(
        "leader/info",
        Bytes::from_static(b"a"),
        CreateOptions {
            ephemeral: true,
            fence: Some(token),
        },
    )
    .await
    .unwrap();
    // A watch opened now (b's latch watches a's key) still works: b leads when a leaves.
    let (_latch_b, mut events_b) = join(&b).await;
    tokio::time::sleep(3 * ttl).await;
    a.close().await.unwrap();
    granted(&mut events_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_authenticate_again_after_a_server_restart_forgets_their_tokens() {
    let id = cluster_id();
    let mut server = auth_server(EtcdOptions::default(), &id).await;
    let settings = test_settings(vec![server.endpoint()], &id)
        .with_user(USER, PASSWORD)
        .with_lease_ttl(Duration::from_secs(10));
    let a = EtcdBackend::connect(settings.clone()).await.unwrap();
    let b = EtcdBackend::connect(settings).await.unwrap();
    let mut watch = a.watch("w").await.unwrap();
    let (latch_a, mut events_a) = join(&a).await;
    granted(&mut events_a).await;
    let (_latch_b, mut events_b) = join(&b).await;
    // etcd 3.4 keeps simple tokens in memory: after the restart every token is unknown.
    server.restart().await;
    // a's watch of `w` comes back: a key b writes after the restart reaches it.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut n = 0;
    'seen: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a's watch never saw b's writes"
        );
        n += 1;
        if b.create(&format!("w/k{n}"), Bytes::new(), CreateOptions::default())
            .await
            .is_err()
        {
            continue;
        }
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(500), watch.next()).await
        {
            if matches!(event, tenure_core::kv::KvEvent::Put(_)) {
                break 'seen;
            }
        }
    }
    // b's latch follows a's key through the restart and leads once a leaves.
    latch_a.close().await.unwrap();
    let token = granted(&mut events_b).await;
    b.create(
        "leader/info",
        Bytes::from_static(b"b"),
        CreateOptions {
            ephemeral: true,
            fence: Some(token),
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_over_mutual_tls_elects_and_a_wrong_password_is_still_auth_failed() {
    let pki = EtcdPki::generate();
    let id = cluster_id();
    let server = EtcdServer::start_with(EtcdOptions::mutual_tls(&pki)).await;
    server
        .enable_auth(
            Some(&pki),
            ROOT_PASSWORD,
            USER,
            PASSWORD,
            &format!("/flink/{id}/"),
        )
        .await;
    let settings = test_settings(vec![server.endpoint()], &id).with_tls(pki.client_tls_with_cert());
    let a = EtcdBackend::connect(settings.clone().with_user(USER, PASSWORD))
        .await
        .unwrap();
    let b = EtcdBackend::connect(settings.clone().with_user(USER, PASSWORD))
        .await
        .unwrap();
    elect_and_round_trip(&a, &b).await;
    let (err, took) = connect_err(settings.with_user(USER, "wrong")).await;
    assert!(matches!(err, ConnectError::AuthFailed { .. }), "{err:?}");
    assert!(err.to_string().contains(&server.endpoint()), "{err}");
    assert!(took < FAST, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_without_a_ca_file_verifies_against_the_system_roots() {
    let pki = EtcdPki::generate();
    let server = EtcdServer::start_with(EtcdOptions::tls(&pki)).await;
    // The test CA is not a system root: the server is not trusted, and the error says so.
    let settings = test_settings(vec![server.endpoint()], &cluster_id());
    let (err, took) = connect_err(settings).await;
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&server.endpoint()) && text.contains("certificate verification failed"),
        "{text}"
    );
    assert!(took < FAST, "took {took:?}");
}
