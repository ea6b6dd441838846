//! TLS to a real server's TLS-only port (feature `tls`): sessions, elections and KV work over
//! TLS, with and without a client certificate; a plaintext client and a wrong CA fail within the
//! connection timeout with errors that say what is wrong.

#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tenure_core::config::ZooKeeperTls;
use tenure_core::connect::ConnectError;
use tenure_core::election::ElectionService;
use tenure_core::ids::ComponentId;
use tenure_core::kv::{CreateOptions, VersionedKv};
use tenure_core::layout::Layout;
use tenure_testkit::DEADLINE;
use tenure_testkit::zookeeper::pki::TestPki;
use tenure_testkit::zookeeper::{ServerSecurity, ServerTls, ZooKeeperServer, test_settings};
use tenure_zookeeper::{ZooKeeperBackend, ZooKeeperSettings};

async fn tls_server(pki: &TestPki, need_client_auth: bool) -> ZooKeeperServer {
    ZooKeeperServer::start_with(ServerSecurity {
        tls: Some(ServerTls::from_pki(pki, need_client_auth)),
        ..ServerSecurity::default()
    })
    .await
}

fn path(p: std::path::PathBuf) -> Option<String> {
    Some(p.to_string_lossy().into_owned())
}

/// Settings for the TLS port, verifying the server with `ca`.
fn secure(server: &ZooKeeperServer, ca: std::path::PathBuf) -> ZooKeeperSettings {
    ZooKeeperSettings {
        quorum: server.secure_connect_string().unwrap(),
        ..test_settings(server, "tls")
    }
    .with_tls(ZooKeeperTls {
        ca_file: path(ca),
        ..ZooKeeperTls::default()
    })
}

async fn election_and_kv_round_trip(backend: ZooKeeperBackend) {
    let backend = Arc::new(backend);
    let layout = Layout::default();
    let service = ElectionService::new(backend.clone(), layout, layout.cluster_latch());
    let mut election = service.register(ComponentId::Dispatcher).await.unwrap();
    let term = tokio::time::timeout(DEADLINE, election.wait_for_leadership())
        .await
        .expect("leadership in time")
        .unwrap();
    election
        .confirm(
            term.session_id,
            "pekko.tcp://flink@host:6123/user/rpc/dispatcher_1",
        )
        .await
        .unwrap();
    backend
        .create("tls/k", Bytes::from_static(b"v"), CreateOptions::default())
        .await
        .unwrap();
    assert_eq!(
        backend.get("tls/k").await.unwrap().unwrap().value,
        Bytes::from_static(b"v")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_election_and_kv_work_over_tls() {
    let pki = TestPki::generate();
    let server = tls_server(&pki, false).await;
    let backend = ZooKeeperBackend::connect(secure(&server, pki.ca_pem()))
        .await
        .unwrap();
    election_and_kv_round_trip(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_certificate() {
    let pki = TestPki::generate();
    let server = tls_server(&pki, true).await;
    let mut settings = secure(&server, pki.ca_pem());
    settings.tls.cert_file = path(pki.client_cert_pem());
    settings.tls.key_file = path(pki.client_key_pem());
    let backend = ZooKeeperBackend::connect(settings).await.unwrap();
    election_and_kv_round_trip(backend).await;
    // Without a certificate the server refuses the handshake, and the error says so.
    let started = Instant::now();
    let err = ZooKeeperBackend::connect(secure(&server, pki.ca_pem()))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_on_the_tls_port_fails_within_the_connection_timeout() {
    let pki = TestPki::generate();
    let server = tls_server(&pki, false).await;
    let quorum = server.secure_connect_string().unwrap();
    let settings = ZooKeeperSettings {
        quorum: quorum.clone(),
        ..test_settings(&server, "plain")
    }
    .with_connection_timeout(Duration::from_secs(3));
    let started = Instant::now();
    let err = ZooKeeperBackend::connect(settings).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&quorum) && text.contains("TLS"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_fails_fast_saying_certificate_verification_failed() {
    let pki = TestPki::generate();
    let server = tls_server(&pki, false).await;
    let settings =
        secure(&server, pki.other_ca_pem()).with_connection_timeout(Duration::from_secs(10));
    let started = Instant::now();
    let err = ZooKeeperBackend::connect(settings).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("certificate verification failed")
            && text.contains(&server.secure_connect_string().unwrap()),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_pem_files_name_the_key_and_the_path() {
    let pki = TestPki::generate();
    let server = tls_server(&pki, false).await;
    let mut settings = secure(&server, pki.ca_pem());
    settings.tls.cert_file = path(pki.client_cert_pem());
    settings.tls.key_file = Some("/nonexistent/client.key".into());
    let err = ZooKeeperBackend::connect(settings).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("high-availability.zookeeper.client.tls.key-file")
            && text.contains("/nonexistent/client.key"),
        "{text}"
    );
}
