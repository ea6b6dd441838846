//! The operator commands as a binary: arguments, help, exit codes, JSON shapes (embedded backend
//! and Flink's job result files in a storage directory; ZooKeeper has its own test file).

#![allow(clippy::unwrap_used)]

mod common;

use common::{assert_error, json, run, stderr};

const JOB: &str = "58c7b669261b7be65fa686cc039885b6";

#[test]
fn every_command_has_help_with_examples() {
    for cmd in [
        vec!["leaders"],
        vec!["jobs"],
        vec!["jobs", "list"],
        vec!["jobs", "show"],
        vec!["jobs", "remove"],
        vec!["checkpoints"],
        vec!["checkpoints", "list"],
        vec!["checkpoints", "show"],
        vec!["results"],
        vec!["results", "list"],
        vec!["results", "mark-clean"],
        vec!["counter"],
        vec!["counter", "get"],
        vec!["counter", "set"],
        vec!["registry"],
        vec!["cleanup"],
        vec!["run"],
        vec!["completions"],
        vec!["demo"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = run(&args);
        assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Examples:"),
            "{cmd:?} help has no examples:\n{text}"
        );
        assert!(text.contains("tenure "), "{cmd:?}");
    }
    let top = run(&["--help"]);
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(
        text.contains("Exit codes:") && text.contains("RUST_LOG"),
        "{text}"
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("leaders") && text.contains("mark-clean"),
            "{shell}"
        );
    }
    assert_eq!(run(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    assert_error(
        &run(&["jobs", "show", "not-a-job"]),
        2,
        "invalid job id \"not-a-job\"",
    );
    assert_error(&run(&["checkpoints", "show", JOB, "-4"]), 2, "");
    assert_error(
        &run(&["run", "--component", "jobmanager", "--", "true"]),
        2,
        "unknown component \"jobmanager\"",
    );
    assert_error(&run(&["run", "--component", "dispatcher"]), 2, "CMD");
    assert_error(&run(&["counter", "set", JOB, "0", "--yes"]), 2, "0");
    assert_error(
        &run(&["counter", "set", JOB, "2147483648", "--yes"]),
        2,
        "2147483648",
    );
    assert_error(&run(&["leaders", "--output", "yaml"]), 2, "yaml");
    assert_error(&run(&["leaders", "-D", "novalue"]), 2, "KEY=VALUE");
    assert_error(
        &run(&[
            "run",
            "--component",
            "dispatcher",
            "--grace",
            "soon",
            "--",
            "true",
        ]),
        2,
        "soon",
    );
    assert_error(&run(&["frobnicate"]), 2, "frobnicate");
}

#[test]
fn bad_configuration_exits_2_naming_the_key() {
    assert_error(
        &run(&[
            "leaders",
            "--ha-type",
            "zookeeper",
            "--storage-dir",
            "/tmp/x",
        ]),
        2,
        "high-availability.zookeeper.quorum",
    );
    assert_error(
        &run(&[
            "jobs",
            "list",
            "-D",
            "high-availability.zookeeper.client.session-timeout=soon",
        ]),
        2,
        "high-availability.zookeeper.client.session-timeout",
    );
    assert_error(
        &run(&["leaders", "--cluster-id", "/a/../b"]),
        2,
        "high-availability.cluster-id",
    );
    assert_error(
        &run(&["registry", "--config", "/nonexistent/flink-conf.yaml"]),
        2,
        "/nonexistent/flink-conf.yaml",
    );
    assert_error(&run(&["--cluster-id", "x", "demo"]), 2, "--config");
}

#[test]
fn a_flink_conf_directory_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "high-availability:\n  type: NONE\n  cluster-id: /from-conf-dir\n",
    )
    .unwrap();
    let out = run(&[
        "leaders",
        "--output",
        "json",
        "--config",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["cluster_id"], "/from-conf-dir");
    // A flag wins over the file.
    let out = run(&[
        "--config",
        dir.path().to_str().unwrap(),
        "--cluster-id",
        "/flag",
        "leaders",
        "--output",
        "json",
    ]);
    assert_eq!(json(&out)["cluster_id"], "/flag");
}

#[test]
fn leaders_json_lists_the_three_cluster_components() {
    let out = run(&["leaders", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["backend"], "embedded");
    assert_eq!(v["cluster_id"], "/default");
    let comps = v["components"].as_array().unwrap();
    let names: Vec<&str> = comps
        .iter()
        .map(|c| c["component"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["resource_manager", "dispatcher", "rest_server"]);
    for c in comps {
        assert_eq!(c["state"], "no_leader");
        for field in ["job_id", "address", "session_id", "key", "error"] {
            assert!(c.get(field).is_some(), "{field} missing: {c}");
        }
    }
    assert_eq!(v["contenders"], serde_json::json!([]));
    let table = run(&["leaders"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.starts_with("COMPONENT") && text.contains("no leader"),
        "{text}"
    );
}

#[test]
fn reads_of_missing_entries_exit_3() {
    assert_error(&run(&["jobs", "show", JOB]), 3, JOB);
    assert_error(&run(&["jobs", "remove", JOB, "--yes"]), 3, JOB);
    assert_error(&run(&["checkpoints", "show", JOB, "7"]), 3, "checkpoint 7");
    assert_error(&run(&["counter", "get", JOB]), 3, "checkpoint_id_counter");
    assert_error(&run(&["results", "mark-clean", JOB, "--yes"]), 3, JOB);
}

#[test]
fn empty_listings_have_stable_json() {
    let out = run(&["jobs", "list", "--output", "json"]);
    assert_eq!(json(&out), serde_json::json!({"jobs": []}));
    let out = run(&["registry", "--output", "json"]);
    assert_eq!(json(&out), serde_json::json!({"jobs": []}));
    let out = run(&["checkpoints", "list", JOB, "--output", "json"]);
    let v = json(&out);
    assert_eq!(v["job_id"], JOB);
    assert_eq!(v["checkpoints"], serde_json::json!([]));
    assert_eq!(v["counter"]["exists"], false);
    assert_eq!(v["counter"]["next_checkpoint_id"], 1);
    let out = run(&["results", "list", "--output", "json"]);
    assert_eq!(
        json(&out),
        serde_json::json!({"location": "kv:job-results/", "results": []})
    );
}

const FLINK_RESULT: &str = r#"{"result":{"id":"58c7b669261b7be65fa686cc039885b6","application-status":"SUCCEEDED","accumulator-results":{},"net-runtime":1961},"version":1}"#;

/// A storage dir holding what Flink leaves for cluster `/peer1`: a dirty job result and blobs.
fn flink_storage_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("job-result-store/peer1");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::write(results.join(format!("{JOB}_DIRTY.json")), FLINK_RESULT).unwrap();
    let blobs = dir.path().join("peer1");
    std::fs::create_dir_all(blobs.join("blob/job_x")).unwrap();
    std::fs::write(blobs.join("completedCheckpoint2e1519c07c46"), b"x").unwrap();
    std::fs::write(blobs.join("blob/job_x/blob_p-1"), b"y").unwrap();
    dir
}

#[test]
fn flink_job_result_files_are_listed_and_marked_clean() {
    let dir = flink_storage_dir();
    let sd = dir.path().to_str().unwrap();
    let base = ["--storage-dir", sd, "--cluster-id", "/peer1"];
    let args = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| (*s).to_owned()).collect()
    };
    let list = |extra: &[&str]| {
        let a = args(extra);
        run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = list(&["results", "list", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert!(
        v["location"]
            .as_str()
            .unwrap()
            .ends_with("job-result-store/peer1"),
        "{v}"
    );
    let r = &v["results"][0];
    assert_eq!(r["job_id"], JOB);
    assert_eq!(r["state"], "dirty");
    assert_eq!(r["application_status"], "SUCCEEDED");
    assert_eq!(r["net_runtime_ms"], 1961);
    for field in ["name", "start_time", "end_time", "failure_class"] {
        assert!(r.get(field).is_some(), "{field}");
    }
    // Without --yes nothing changes.
    let file = dir
        .path()
        .join(format!("job-result-store/peer1/{JOB}_DIRTY.json"));
    assert_error(&list(&["results", "mark-clean", JOB]), 2, "--yes");
    assert!(file.exists());
    // Flink's default delete-on-commit: the file goes.
    let out = list(&["results", "mark-clean", JOB, "--yes", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["was"], "dirty");
    assert_eq!(v["marked_clean"], true);
    assert!(!file.exists());
    let out = list(&["results", "list", "--dirty", "--output", "json"]);
    assert_eq!(json(&out)["results"], serde_json::json!([]));
}

#[test]
fn clean_results_are_kept_without_delete_on_commit() {
    let dir = flink_storage_dir();
    let sd = dir.path().to_str().unwrap();
    let keep = "job-result-store.delete-on-commit=false";
    let out = run(&[
        "--storage-dir",
        sd,
        "--cluster-id",
        "/peer1",
        "-D",
        keep,
        "results",
        "mark-clean",
        JOB,
        "--yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        dir.path()
            .join(format!("job-result-store/peer1/{JOB}.json"))
            .exists()
    );
    let out = run(&[
        "--storage-dir",
        sd,
        "--cluster-id",
        "/peer1",
        "-D",
        keep,
        "results",
        "list",
        "--output",
        "json",
    ]);
    let v = json(&out);
    assert_eq!(v["results"][0]["state"], "clean");
    let out = run(&[
        "--storage-dir",
        sd,
        "--cluster-id",
        "/peer1",
        "-D",
        keep,
        "results",
        "list",
        "--dirty",
        "--output",
        "json",
    ]);
    assert_eq!(json(&out)["results"], serde_json::json!([]));
    // Marking a clean result clean again is fine.
    let out = run(&[
        "--storage-dir",
        sd,
        "--cluster-id",
        "/peer1",
        "-D",
        keep,
        "results",
        "mark-clean",
        JOB,
        "--output",
        "json",
    ]);
    assert_eq!(json(&out)["was"], "clean");
}

#[test]
fn corrupt_job_result_is_an_error_naming_the_file() {
    let dir = flink_storage_dir();
    let path = dir
        .path()
        .join(format!("job-result-store/peer1/{JOB}_DIRTY.json"));
    std::fs::write(&path, b"{not json").unwrap();
    let out = run(&[
        "--storage-dir",
        dir.path().to_str().unwrap(),
        "--cluster-id",
        "/peer1",
        "results",
        "list",
    ]);
    // Corrupt HA data has its own exit code.
    assert_error(&out, 6, &format!("{JOB}_DIRTY.json"));
}

#[test]
fn cleanup_lists_then_removes_a_clusters_files() {
    let dir = flink_storage_dir();
    let sd = dir.path().to_str().unwrap();
    // The cluster id must be named on the command line.
    assert_error(
        &run(&["cleanup", "--storage-dir", sd, "--yes"]),
        2,
        "--cluster-id",
    );
    let out = run(&[
        "cleanup",
        "--storage-dir",
        sd,
        "--cluster-id",
        "/peer1",
        "--dry-run",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["removed"], false);
    assert_eq!(v["cluster_id"], "/peer1");
    assert_eq!(
        v["blobs"],
        serde_json::json!(["blob/job_x/blob_p-1", "completedCheckpoint2e1519c07c46"])
    );
    assert_eq!(
        v["job_result_files"],
        serde_json::json!([format!("{JOB}_DIRTY.json")])
    );
    for field in [
        "keys",
        "ephemeral_keys",
        "blob_location",
        "job_result_location",
        "backend",
    ] {
        assert!(v.get(field).is_some(), "{field}");
    }
    assert!(
        dir.path()
            .join("peer1/completedCheckpoint2e1519c07c46")
            .exists()
    );
    assert_error(
        &run(&["cleanup", "--storage-dir", sd, "--cluster-id", "/peer1"]),
        2,
        "--yes",
    );
    assert!(
        dir.path()
            .join("peer1/completedCheckpoint2e1519c07c46")
            .exists()
    );
    let out = run(&[
        "cleanup",
        "--storage-dir",
        sd,
        "--cluster-id",
        "/peer1",
        "--yes",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["removed"], true);
    assert!(
        !dir.path()
            .join("peer1/completedCheckpoint2e1519c07c46")
            .exists()
    );
    assert!(
        !dir.path()
            .join(format!("job-result-store/peer1/{JOB}_DIRTY.json"))
            .exists()
    );
    let out = run(&[
        "cleanup",
        "--storage-dir",
        sd,
        "--cluster-id",
        "/peer1",
        "--dry-run",
        "--output",
        "json",
    ]);
    assert_eq!(json(&out)["blobs"], serde_json::json!([]));
}

#[test]
fn backends_not_built_in_are_configuration_errors() {
    let out = run(&[
        "leaders",
        "--ha-type",
        "etcd",
        "--storage-dir",
        "/tmp/tenure-test-none",
        "-D",
        "high-availability.etcd.endpoints=http://127.0.0.1:1",
    ]);
    assert_error(&out, 2, "not built into this tenure build");
}

#[test]
fn a_storage_dir_tenure_cannot_open_is_skipped_by_readers_only() {
    let out = run(&[
        "leaders",
        "--storage-dir",
        "hdfs:///flink/ha",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("tenure: warning: ") && err.contains("hdfs:///flink/ha"),
        "{err}"
    );
    assert_eq!(json(&out)["components"].as_array().unwrap().len(), 3);
    assert_error(
        &run(&["results", "list", "--storage-dir", "hdfs:///flink/ha"]),
        2,
        "hdfs:///flink/ha",
    );
    assert_error(
        &run(&[
            "jobs",
            "remove",
            JOB,
            "--yes",
            "--storage-dir",
            "hdfs:///flink/ha",
        ]),
        2,
        "hdfs:///flink/ha",
    );
}
