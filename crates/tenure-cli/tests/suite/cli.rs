//! The operator commands as a binary: arguments, help, exit codes, JSON shapes (the embedded
//! backend, chosen with `--ha-type none`, and Flink's job result files in a storage directory;
//! ZooKeeper has its own test file, connecting and configuration sources `connect.rs`).

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{assert_error, json, run, stderr};

const JOB: &str = "58c7b669261b7be65fa686cc039885b6";

/// Runs `tenure --ha-type none args…`: the embedded backend (and Flink's files in a storage
/// dir), chosen explicitly as operator commands require.
fn embedded(args: &[&str]) -> std::process::Output {
    let mut all = vec!["--ha-type", "none"];
    all.extend_from_slice(args);
    run(&all)
}

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
        &embedded(&[
            "jobs",
            "list",
            "-D",
            "high-availability.zookeeper.client.session-timeout=soon",
        ]),
        2,
        "high-availability.zookeeper.client.session-timeout",
    );
    assert_error(
        &embedded(&["leaders", "--cluster-id", "/a/../b"]),
        2,
        "high-availability.cluster-id",
    );
    assert_error(
        &run(&["registry", "--config", "/nonexistent/flink-conf.yaml"]),
        2,
        "/nonexistent/flink-conf.yaml",
    );
    // The demo takes the connection options too, checked the same way.
    assert_error(
        &run(&["--cluster-id", "/a/../b", "demo"]),
        2,
        "high-availability.cluster-id",
    );
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
    let out = embedded(&["leaders", "--output", "json"]);
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
    let table = embedded(&["leaders"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.starts_with("COMPONENT") && text.contains("no leader"),
        "{text}"
    );
}

#[test]
fn reads_of_missing_entries_exit_3() {
    assert_error(&embedded(&["jobs", "show", JOB]), 3, JOB);
    assert_error(&embedded(&["jobs", "remove", JOB, "--yes"]), 3, JOB);
    assert_error(
        &embedded(&["checkpoints", "show", JOB, "7"]),
        3,
        "checkpoint 7",
    );
    assert_error(
        &embedded(&["counter", "get", JOB]),
        3,
        "checkpoint_id_counter",
    );
    assert_error(&embedded(&["results", "mark-clean", JOB, "--yes"]), 3, JOB);
}

#[test]
fn empty_listings_have_stable_json() {
    let out = embedded(&["jobs", "list", "--output", "json"]);
    assert_eq!(json(&out), serde_json::json!({"jobs": []}));
    let out = embedded(&["registry", "--output", "json"]);
    assert_eq!(json(&out), serde_json::json!({"jobs": []}));
    let out = embedded(&["checkpoints", "list", JOB, "--output", "json"]);
    let v = json(&out);
    assert_eq!(v["job_id"], JOB);
    assert_eq!(v["checkpoints"], serde_json::json!([]));
    assert_eq!(v["counter"]["exists"], false);
    assert_eq!(v["counter"]["next_checkpoint_id"], 1);
    let out = embedded(&["results", "list", "--output", "json"]);
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
    std::fs::create_dir_all(blobs.join(format!("blob/job_{JOB}"))).unwrap();
    std::fs::write(blobs.join("completedCheckpoint2e1519c07c46"), b"x").unwrap();
    std::fs::write(blobs.join(format!("blob/job_{JOB}/blob_p-1")), b"y").unwrap();
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
        embedded(&a.iter().map(String::as_str).collect::<Vec<_>>())
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
    let out = embedded(&[
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
    let out = embedded(&[
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
    let out = embedded(&[
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
    let out = embedded(&[
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
    let out = embedded(&[
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
        &embedded(&["cleanup", "--storage-dir", sd, "--yes"]),
        2,
        "--cluster-id",
    );
    let out = embedded(&[
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
        serde_json::json!([
            format!("blob/job_{JOB}/blob_p-1"),
            "completedCheckpoint2e1519c07c46"
        ])
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
        &embedded(&["cleanup", "--storage-dir", sd, "--cluster-id", "/peer1"]),
        2,
        "--yes",
    );
    assert!(
        dir.path()
            .join("peer1/completedCheckpoint2e1519c07c46")
            .exists()
    );
    let out = embedded(&[
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
    let out = embedded(&[
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
fn an_unreachable_etcd_endpoint_exits_4_naming_it() {
    let out = run(&[
        "leaders",
        "--ha-type",
        "etcd",
        "--storage-dir",
        "/tmp/tenure-test-none",
        "-D",
        "high-availability.etcd.endpoints=http://127.0.0.1:1",
    ]);
    assert_error(&out, 4, "http://127.0.0.1:1");
}

#[test]
fn a_storage_dir_tenure_cannot_open_is_skipped_by_readers_only() {
    let out = embedded(&[
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
        &embedded(&["results", "list", "--storage-dir", "hdfs:///flink/ha"]),
        2,
        "hdfs:///flink/ha",
    );
    assert_error(
        &embedded(&[
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

/// Runs `tenure args…` with stdout a pipe whose reading end is already closed, so its first
/// write fails with EPIPE (the reader of `tenure … | head -1` is gone).
fn run_into_closed_pipe(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = common::tenure()
        .args(args)
        .args(["--ha-type", "none"])
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_stdout_ends_the_command_quietly_with_status_0() {
    for args in [
        &["completions", "bash"][..],
        &["leaders"],
        &["leaders", "--output", "json"],
        &["jobs", "list"],
        &["registry", "--output", "json"],
    ] {
        let out = run_into_closed_pipe(args);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: quiet, but said: {err}");
    }
}

#[test]
fn backend_text_in_tables_is_escaped_and_stays_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("job-result-store/peer1");
    std::fs::create_dir_all(&results).unwrap();
    let hostile = r#"{"result":{"id":"58c7b669261b7be65fa686cc039885b6","application-status":"SUCCEEDED","accumulator-results":{},"net-runtime":1,"name":"\u001b[31mred\nforged row\u202e"},"version":1}"#;
    std::fs::write(results.join(format!("{JOB}_DIRTY.json")), hostile).unwrap();
    let sd = dir.path().to_str().unwrap();
    let base = [
        "--ha-type",
        "none",
        "--storage-dir",
        sd,
        "--cluster-id",
        "/peer1",
        "results",
        "list",
    ];
    let out = run(&base);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "header and one row: {text}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .ends_with(r"\x1b[31mred\nforged row\u{202e}"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b') && !text.contains('\u{202e}'),
        "{text}"
    );
    // JSON keeps the exact text.
    let mut args = base.to_vec();
    args.extend(["--output", "json"]);
    let v = json(&run(&args));
    assert_eq!(v["results"][0]["name"], "\u{1b}[31mred\nforged row\u{202e}");
}

/// A ZooKeeper cluster whose `leader/` holds what a hostile or careless writer could leave: latch
/// nodes that are not Curator's (one with a multi-byte character, one with a lower number than
/// the real contender) and a leader address with terminal escapes and a newline.
#[cfg(feature = "zookeeper")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_survive_hostile_zookeeper_data_and_show_the_elections_leader() {
    use tenure::zookeeper::zk;

    let mut server = tenure_testkit::zookeeper::ZooKeeperServer::start().await;
    let cluster = format!("hostile-{}", uuid::Uuid::new_v4().simple());
    let storage = tempfile::tempdir().unwrap();
    let client = zk::Client::connector()
        .with_session_timeout(std::time::Duration::from_secs(10))
        .connect(&server.connect_string())
        .await
        .unwrap();
    let acl = |mode: zk::CreateMode| mode.with_acls(zk::Acls::anyone_all());
    let latch = format!("/flink/{cluster}/leader/latch");
    client
        .mkdir(&latch, &acl(zk::CreateMode::Persistent))
        .await
        .unwrap();
    for foreign in ["junk☃", "member-0000000000", "_c_x-latch-7"] {
        client
            .create(
                &format!("{latch}/{foreign}"),
                &[],
                &acl(zk::CreateMode::Persistent),
            )
            .await
            .unwrap();
    }
    let prefix = format!("{latch}/_c_{}-latch-", uuid::Uuid::new_v4());
    let (_, seq) = client
        .create(&prefix, &[], &acl(zk::CreateMode::EphemeralSequential))
        .await
        .unwrap();
    let real = format!("{}{seq}", prefix.rsplit_once('/').unwrap().1);
    let info = tenure::leader_info::LeaderInformation::new(
        tenure::ids::LeaderSessionId::new_random(),
        "\u{1b}[31mhttp://evil:1\nrest_server  leader  forged",
    );
    let dispatcher = format!("/flink/{cluster}/leader/dispatcher");
    client
        .mkdir(&dispatcher, &acl(zk::CreateMode::Persistent))
        .await
        .unwrap();
    client
        .create(
            &format!("{dispatcher}/connection_info"),
            &tenure::codec::encode_leader_info(&info),
            &acl(zk::CreateMode::Persistent),
        )
        .await
        .unwrap();

    let conn: Vec<String> = [
        "--ha-type",
        "zookeeper",
        "--zookeeper-quorum",
        &server.connect_string(),
        "--cluster-id",
        &format!("/{cluster}"),
        "--storage-dir",
        storage.path().to_str().unwrap(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let leaders = move |extra: &[&str]| {
        let mut args = conn.clone();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        common::tenure().args(&args).output().unwrap()
    };
    let (json_out, table_out) = tokio::task::spawn_blocking(move || {
        (
            leaders(&["leaders", "--output", "json"]),
            leaders(&["leaders"]),
        )
    })
    .await
    .unwrap();

    assert!(json_out.status.success(), "{}", stderr(&json_out));
    let v = json(&json_out);
    let contenders = v["contenders"].as_array().unwrap();
    assert_eq!(contenders.len(), 4, "{v}");
    let leading: Vec<&serde_json::Value> =
        contenders.iter().filter(|c| c["leader"] == true).collect();
    assert_eq!(leading.len(), 1, "{v}");
    assert_eq!(leading[0]["node"], real.as_str());
    assert_eq!(leading[0]["foreign"], false);
    for c in contenders.iter().filter(|c| c["node"] != real.as_str()) {
        assert_eq!(c["foreign"], true, "{c}");
        assert_eq!(c["sequence"], serde_json::Value::Null, "{c}");
    }
    assert_eq!(
        v["components"][1]["address"],
        "\u{1b}[31mhttp://evil:1\nrest_server  leader  forged"
    );

    assert!(table_out.status.success(), "{}", stderr(&table_out));
    let text = String::from_utf8(table_out.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "{text}");
    let dispatcher: Vec<&str> = text.lines().filter(|l| l.contains("forged")).collect();
    assert_eq!(dispatcher.len(), 1, "one row: {text}");
    assert!(
        dispatcher[0].starts_with("dispatcher")
            && dispatcher[0].ends_with(r"\x1b[31mhttp://evil:1\nrest_server  leader  forged"),
        "{text}"
    );
    assert!(text.contains("junk☃"), "{text}");
    drop(client);
    server.stop();
}
