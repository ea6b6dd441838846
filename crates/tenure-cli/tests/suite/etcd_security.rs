//! `tenure` against an auth-enabled etcd: refused credentials exit 7 naming the endpoint and
//! the credentials' key; the right password (from a password file) works.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{assert_error, stderr, tenure};
use tenure_testkit::etcd::EtcdServer;
use tenure_testkit::etcd_security::EtcdOptions;

/// `tenure leaders` on etcd as the user `flink`, with `extra` `-D` settings.
fn leaders(endpoint: &str, cluster: &str, extra: &[String]) -> std::process::Output {
    let mut args = vec![
        "leaders".to_owned(),
        "--ha-type".to_owned(),
        "etcd".to_owned(),
        "--storage-dir".to_owned(),
        "/tmp/tenure-test-none".to_owned(),
        "-D".to_owned(),
        format!("high-availability.etcd.endpoints={endpoint}"),
        "-D".to_owned(),
        format!("high-availability.cluster-id={cluster}"),
        "-D".to_owned(),
        "high-availability.etcd.username=flink".to_owned(),
    ];
    for setting in extra {
        args.push("-D".to_owned());
        args.push(setting.clone());
    }
    tenure().args(&args).output().expect("run tenure")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_on_an_auth_enabled_etcd_needs_the_right_password() {
    let cluster = format!("cli-{}", uuid::Uuid::new_v4().simple());
    let server = EtcdServer::start_with(EtcdOptions::default()).await;
    server
        .enable_auth(
            None,
            "root-secret",
            "flink",
            "flink-secret",
            &format!("/flink/{cluster}/"),
        )
        .await;
    let endpoint = server.endpoint();

    let wrong = vec!["high-availability.etcd.password=not-it".to_owned()];
    let out = {
        let (e, c) = (endpoint.clone(), cluster.clone());
        tokio::task::spawn_blocking(move || leaders(&e, &c, &wrong))
            .await
            .unwrap()
    };
    assert_error(&out, 7, &endpoint);
    let err = stderr(&out);
    assert!(err.contains("high-availability.etcd.username"), "{err}");
    assert!(!err.contains("not-it"), "the password is not shown: {err}");

    // A leader of the cluster, connected with the right password through the library.
    let dir = tempfile::tempdir().unwrap();
    let config = tenure::HaConfig::from_configuration(&tenure::Configuration::from_pairs([
        ("high-availability.type", "etcd"),
        ("high-availability.etcd.endpoints", endpoint.as_str()),
        ("high-availability.cluster-id", cluster.as_str()),
        (
            "high-availability.storageDir",
            &dir.path().display().to_string(),
        ),
        ("high-availability.etcd.username", "flink"),
        ("high-availability.etcd.password", "flink-secret"),
    ]))
    .unwrap();
    let services = tenure::connect(&config).await.unwrap();
    let mut election = services
        .leader_election(tenure::ComponentId::Dispatcher)
        .await
        .unwrap();
    let term = election.wait_for_leadership().await.unwrap();
    assert!(
        election
            .confirm(term.session_id, "pekko://flink@dispatcher:6123")
            .await
            .unwrap()
    );

    let file = dir.path().join("etcd-password");
    std::fs::write(&file, "flink-secret\n").unwrap();
    let right = vec![format!(
        "high-availability.etcd.password-file={}",
        file.display()
    )];
    let out = tokio::task::spawn_blocking(move || leaders(&endpoint, &cluster, &right))
        .await
        .unwrap();
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("pekko://flink@dispatcher:6123"), "{shown}");
}
