//! `tenure demo` run as a binary: output, verdicts and exit codes.

use crate::common;

use std::process::Command;

fn tenure() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tenure"))
}

#[test]
fn demo_json_reports_every_invariant_held() {
    let out = tenure()
        .args([
            "demo",
            "--output",
            "json",
            "--failovers",
            "3",
            "--jobs",
            "2",
        ])
        .output()
        .expect("run tenure");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(report["ok"], true);
    assert_eq!(report["backend"], "embedded");
    let verdicts = report["verdicts"].as_array().expect("verdicts");
    assert_eq!(verdicts.len(), 6);
    assert!(verdicts.iter().all(|v| v["ok"] == true), "{verdicts:?}");
    let events = report["events"].as_array().expect("events");
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    assert_eq!(count("granted"), 4, "one grant per term");
    assert_eq!(count("killed"), 2);
    assert_eq!(count("stepped down"), 1);
    assert_eq!(count("zombie writes"), 1);
    assert_eq!(count("job finished"), 2);
    // One job finished before its leader crashed; the next leader re-ran its cleanup.
    assert_eq!(count("job cleaned up"), 2);
    assert!(
        events.iter().any(|e| e["event"] == "job cleaned up"
            && e["detail"].as_str().is_some_and(
                |d| d.contains("dirty result recovered") && d.contains("marked clean")
            )),
        "{events:?}"
    );
    assert!(
        verdicts
            .iter()
            .any(|v| v["invariant"] == "a finished job's HA data is removed"),
        "{verdicts:?}"
    );
    for e in events {
        assert!(e["t_ms"].is_number() && e["actor"].is_string() && e["detail"].is_string());
    }
}

#[test]
fn demo_table_ends_with_a_verdict() {
    let out = tenure()
        .args(["demo", "--failovers", "1"])
        .output()
        .expect("run tenure");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verdict: every invariant held"), "{text}");
    assert!(text.contains("granted"));
}

#[test]
fn bad_config_value_fails_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "high-availability:\n  type: zookeeper\n  zookeeper:\n    quorum: 127.0.0.1:1\n    client:\n      session-timeout: soon\n",
    )
    .expect("write config");
    let out = tenure()
        .args(["demo", "--config"])
        .arg(&path)
        .output()
        .expect("run tenure");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("high-availability.zookeeper.client.session-timeout"),
        "{err}"
    );
    assert!(err.contains("soon"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert!(out.stdout.is_empty(), "nothing started");
}

#[test]
fn missing_config_file_is_a_usage_error() {
    let out = tenure()
        .args(["demo", "--config", "/nonexistent/flink-conf.yaml"])
        .output()
        .expect("run tenure");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/flink-conf.yaml"));
}

#[test]
fn flat_flink_conf_selects_the_embedded_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flink-conf.yaml");
    std::fs::write(
        &path,
        "# legacy flat file\nhigh-availability.type: NONE\nexecution.checkpointing.num-retained: 2\n",
    )
    .expect("write config");
    let out = tenure()
        .args(["demo", "--output", "json", "--config"])
        .arg(&path)
        .output()
        .expect("run tenure");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn invalid_arguments_exit_with_usage_code() {
    let out = tenure()
        .args(["demo", "--job-managers", "1"])
        .output()
        .expect("run tenure");
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_against_a_real_zookeeper() {
    let server = tenure_testkit::zookeeper::ZooKeeperServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    let storage = dir.path().join("ha");
    std::fs::write(
        &path,
        format!(
            "high-availability:\n  type: zookeeper\n  cluster-id: /demo-test\n  storageDir: file://{}\n  zookeeper:\n    quorum: {}\n    client:\n      session-timeout: 4 s\n",
            storage.display(),
            server.connect_string()
        ),
    )
    .expect("write config");
    // The configured cluster's own data: the demo must not touch it.
    let decoys = [
        storage.join("demo-test/completedCheckpoint0123456789ab"),
        storage.join("job-result-store/demo-test/58c7b669261b7be65fa686cc039885b6_DIRTY.json"),
    ];
    for d in &decoys {
        std::fs::create_dir_all(d.parent().expect("parent")).expect("mkdir");
        std::fs::write(d, b"the configured cluster's data").expect("write decoy");
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["demo", "--output", "json", "--failovers", "2", "--config"])
        .arg(&path)
        .output()
        .await
        .expect("run tenure");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["backend"], "zookeeper");
    assert_eq!(report["ok"], true, "{report:#}");
    let own = report["cluster_id"].as_str().expect("cluster id");
    assert!(own.starts_with("/demo-test-demo-"), "{own}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(own));
    // The demo's job result files and blobs lived under the storage dir; its cleanup removed
    // them, and only them.
    let mut left: Vec<_> = common::files(&storage);
    left.sort();
    assert_eq!(left, decoys.to_vec(), "files left");
    for d in &decoys {
        assert_eq!(
            std::fs::read(d).expect("decoy"),
            b"the configured cluster's data"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_against_the_fake_kubernetes_api_server() {
    use tenure_testkit::kube_fake::{KubernetesFactory, ProcessSetup};
    let factory = KubernetesFactory::start().await;
    let setup = ProcessSetup::new(factory.server(), &factory.settings(), "");
    let mut cmd = tokio::process::Command::from(setup.command(env!("CARGO_BIN_EXE_tenure")));
    let out = cmd
        .args(["demo", "--output", "json", "--failovers", "2", "--config"])
        .arg(&setup.config)
        .output()
        .await
        .expect("run tenure");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["backend"], "kubernetes");
    assert_eq!(report["ok"], true, "{report:#}");
    let left = common::files(&setup.storage_dir);
    assert!(left.is_empty(), "files left: {left:?}");
}
