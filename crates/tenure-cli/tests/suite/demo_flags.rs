//! `tenure demo` takes every connection option its help lists (the global --ha-type,
//! --zookeeper-quorum, --cluster-id, --storage-dir, --zookeeper-root, -D, --timeout), with the
//! same meaning as for the operator commands.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{assert_error, json, run, tenure};

#[test]
fn demo_help_lists_the_connection_options_it_takes() {
    let out = run(&["demo", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--ha-type",
        "--zookeeper-quorum",
        "--cluster-id",
        "--storage-dir",
        "--zookeeper-root",
        "-D",
        "--timeout",
        "--metrics-addr",
    ] {
        assert!(help.contains(flag), "{flag} not in demo --help:\n{help}");
    }
}

#[test]
fn demo_flags_choose_the_backend_and_bad_ones_are_usage_errors() {
    let out = run(&[
        "demo",
        "--ha-type",
        "none",
        "--failovers",
        "0",
        "--output",
        "json",
    ]);
    let report = json(&out);
    assert_eq!(report["backend"], "embedded");
    assert_eq!(report["ok"], true);
    assert!(
        report["cluster_id"]
            .as_str()
            .unwrap()
            .starts_with("/default-demo-"),
        "{report}"
    );
    let out = run(&["--ha-type", "bogus", "demo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("\"bogus\""),
        "{}",
        common::stderr(&out)
    );
    assert_error(
        &run(&[
            "demo",
            "--ha-type",
            "none",
            "-D",
            "high-availability.zookeeper.client.session-timeout=soon",
        ]),
        2,
        "soon",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_against_a_zookeeper_named_by_flags() {
    let server = tenure_testkit::zookeeper::ZooKeeperServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = format!("file://{}", dir.path().join("ha").display());
    let quorum = server.connect_string();
    let mut cmd = tokio::process::Command::from(tenure());
    let out = cmd
        .args([
            "--zookeeper-quorum",
            quorum.as_str(),
            "demo",
            "--storage-dir",
            storage.as_str(),
            "--cluster-id",
            "/flags",
            "-D",
            "high-availability.zookeeper.client.session-timeout=4s",
            "--timeout",
            "30s",
            "--failovers",
            "1",
            "--output",
            "json",
        ])
        .output()
        .await
        .expect("run tenure");
    let report = json(&out);
    assert_eq!(report["backend"], "zookeeper", "{report}");
    assert_eq!(report["ok"], true, "{report:#}");
    let own = report["cluster_id"].as_str().unwrap();
    assert!(own.starts_with("/flags-demo-"), "{own}");
    assert!(
        common::files(&dir.path().join("ha")).is_empty(),
        "the demo cleaned up"
    );
}
