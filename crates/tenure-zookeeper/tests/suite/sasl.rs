//! SASL DIGEST-MD5 against a real server that refuses unauthenticated sessions: the right
//! credentials work and own their znodes (`acl: creator` ⇒ a `sasl` ACL id), other credentials
//! cannot touch them, a wrong password fails at once with an authentication error.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use tenure_core::config::{ZooKeeperAcl, ZooKeeperSasl};
use tenure_core::connect::ConnectError;
use tenure_core::kv::{CreateOptions, KvError, VersionedKv};
use tenure_testkit::zookeeper::{ServerSecurity, ZooKeeperServer, test_settings};
use tenure_zookeeper::{ZooKeeperBackend, ZooKeeperSettings};

async fn sasl_server() -> ZooKeeperServer {
    ZooKeeperServer::start_with(ServerSecurity {
        sasl_users: vec![
            ("alice".into(), "alice-secret".into()),
            ("bob".into(), "bob-secret".into()),
        ],
        require_sasl: true,
        ..ServerSecurity::default()
    })
    .await
}

fn as_user(server: &ZooKeeperServer, user: &str, password: &str) -> ZooKeeperSettings {
    test_settings(server, "sasl")
        .with_sasl(ZooKeeperSasl {
            username: Some(user.into()),
            password: Some(password.into()),
            ..ZooKeeperSasl::default()
        })
        .with_acl(ZooKeeperAcl::Creator, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creator_acl_is_the_sasl_identity_and_keeps_others_out() {
    let server = sasl_server().await;
    let alice = ZooKeeperBackend::connect(as_user(&server, "alice", "alice-secret"))
        .await
        .unwrap();
    alice
        .create(
            "owned/k",
            Bytes::from_static(b"v"),
            CreateOptions::default(),
        )
        .await
        .unwrap();
    let path = alice.znode_path("owned/k").unwrap();
    let (acl, _) = alice.client().unwrap().get_acl(&path).await.unwrap();
    assert!(
        !acl.is_empty()
            && acl
                .iter()
                .all(|a| a.scheme() == "sasl" && a.id() == "alice"),
        "{acl:?}"
    );
    // The same identity in another session reads it.
    let again = ZooKeeperBackend::connect(as_user(&server, "alice", "alice-secret"))
        .await
        .unwrap();
    assert_eq!(
        again.get("owned/k").await.unwrap().unwrap().value,
        Bytes::from_static(b"v")
    );
    // Bob authenticates, and the ACL gives him nothing.
    let bob = ZooKeeperBackend::connect(as_user(&server, "bob", "bob-secret"))
        .await
        .unwrap();
    let err = bob.get("owned/k").await.unwrap_err();
    assert!(matches!(err, KvError::Unauthorized { .. }), "{err}");
    let err = bob.delete("owned/k", Default::default()).await.unwrap_err();
    assert!(matches!(err, KvError::Unauthorized { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_fast_naming_the_credentials() {
    let server = sasl_server().await;
    let settings =
        as_user(&server, "alice", "wrong").with_connection_timeout(Duration::from_secs(10));
    let started = Instant::now();
    let err = ZooKeeperBackend::connect(settings).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, ConnectError::AuthFailed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("high-availability.zookeeper.client.sasl.username")
            && text.contains(&server.connect_string()),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_a_jaas_file() {
    let server = sasl_server().await;
    let dir = tempfile::tempdir().unwrap();
    let jaas = dir.path().join("client.jaas");
    std::fs::write(
        &jaas,
        "// as a JVM client reads it\nZkClient {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  username=\"bob\"\n  password=\"bob-secret\";\n};\n",
    )
    .unwrap();
    let settings = test_settings(&server, "jaas").with_sasl(ZooKeeperSasl {
        jaas_file: Some(jaas.to_string_lossy().into_owned()),
        login_context: "ZkClient".into(),
        ..ZooKeeperSasl::default()
    });
    let backend = ZooKeeperBackend::connect(settings).await.unwrap();
    backend
        .create("k", Bytes::from_static(b"v"), CreateOptions::default())
        .await
        .unwrap();
}
