//! Where operator commands get their configuration and how connecting ends: no configuration is a
//! usage error saying how to connect, `FLINK_CONF_DIR` is read as Flink's CLI reads it,
//! `--config` reads only small regular files, an unreachable quorum ends within `--timeout`,
//! and a cluster id with no data is "not found", not an empty answer.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::{assert_error, json, run, stderr, tenure};

const JOB: &str = "58c7b669261b7be65fa686cc039885b6";

/// Every operator command (all but `demo` and `completions`).
const OPERATOR_COMMANDS: [&[&str]; 9] = [
    &["leaders"],
    &["leaders", "--watch"],
    &["jobs", "list"],
    &["checkpoints", "list", JOB],
    &["counter", "get", JOB],
    &["results", "list"],
    &["registry"],
    &["cleanup", "--cluster-id", "/x", "--dry-run"],
    &["run", "--component", "dispatcher", "--", "true"],
];

#[test]
fn operator_commands_without_configuration_exit_2_and_say_how_to_connect() {
    for cmd in OPERATOR_COMMANDS {
        let out = run(cmd);
        assert_error(&out, 2, "point tenure at the cluster");
        let err = stderr(&out);
        for hint in [
            "--config",
            "FLINK_CONF_DIR",
            "--zookeeper-quorum",
            "--ha-type",
        ] {
            assert!(err.contains(hint), "{cmd:?}: {hint} not in {err}");
        }
        assert!(out.stdout.is_empty(), "{cmd:?} printed an answer");
    }
    // A cluster id alone names no backend either: it would be read from an empty in-process one.
    assert_error(
        &run(&["jobs", "list", "--cluster-id", "/typo"]),
        2,
        "name no HA backend",
    );
    // Nor does a Flink configuration without HA keys.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), "rest.port: 8081\n").unwrap();
    assert_error(
        &run(&["leaders", "--config", dir.path().to_str().unwrap()]),
        2,
        "sets no high-availability.type",
    );
    // Asked for explicitly, the in-process backend is used.
    let out = run(&["leaders", "--ha-type", "none", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["backend"], "embedded");
}

#[test]
fn flink_conf_dir_is_read_and_config_wins() {
    let env_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        env_dir.path().join("flink-conf.yaml"),
        "high-availability.type: NONE\nhigh-availability.cluster-id: /from-env\n",
    )
    .unwrap();
    let out = tenure()
        .env("FLINK_CONF_DIR", env_dir.path())
        .args(["leaders", "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["cluster_id"], "/from-env");
    let flag_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        flag_dir.path().join("config.yaml"),
        "high-availability:\n  type: NONE\n  cluster-id: /from-flag\n",
    )
    .unwrap();
    let out = tenure()
        .env("FLINK_CONF_DIR", env_dir.path())
        .args(["leaders", "--output", "json", "--config"])
        .arg(flag_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["cluster_id"], "/from-flag");
    // A conf dir without a configuration file is named in the error.
    let empty = tempfile::tempdir().unwrap();
    let out = tenure()
        .env("FLINK_CONF_DIR", empty.path())
        .args(["leaders"])
        .output()
        .unwrap();
    assert_error(&out, 2, "FLINK_CONF_DIR");
    assert!(stderr(&out).contains(empty.path().to_str().unwrap()));
}

#[test]
fn config_reads_only_small_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("config.yaml");
    // Sparse: 8 GiB by its metadata, nothing on disk.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    let fifo = dir.path().join("fifo.yaml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (path, why) in [
        ("/dev/zero".as_ref(), "not a regular file"),
        (fifo.as_path(), "a FIFO"),
        (huge.as_path(), "larger than the 1024 KiB"),
        (dir.path(), "larger than the 1024 KiB"),
    ] {
        let started = Instant::now();
        let out = run(&["leaders", "--config", path.to_str().unwrap()]);
        assert_error(&out, 2, why);
        assert!(
            stderr(&out).contains(path.to_str().unwrap()),
            "{}",
            stderr(&out)
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[cfg(feature = "zookeeper")]
mod zookeeper {
    use tenure::zookeeper::zk;
    use tenure_testkit::zookeeper::ZooKeeperServer;

    use super::common::tenure_async;
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_quorum_ends_within_the_timeout_naming_it() {
        // A loopback port nothing listens on, reserved while the test runs.
        let refused = tenure_testkit::refused_port::RefusedPort::new();
        let quorum = refused.addr();
        // Flink's default retries (3 × 5 s apart) stay in force: --timeout bounds them all.
        let started = Instant::now();
        let out = tenure_async(strings(&[
            "leaders",
            "--zookeeper-quorum",
            &quorum,
            "--cluster-id",
            "/x",
            "--timeout",
            "2s",
        ]))
        .await;
        let took = started.elapsed();
        assert_error(&out, 4, &quorum);
        assert!(took < Duration::from_secs(10), "took {took:?}");
        // Without --timeout the connection timeout bounds it.
        let started = Instant::now();
        let out = tenure_async(strings(&[
            "jobs",
            "list",
            "--zookeeper-quorum",
            &quorum,
            "-D",
            "high-availability.zookeeper.client.connection-timeout=1s",
        ]))
        .await;
        assert_error(&out, 4, &quorum);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_id_without_data_is_not_found_and_readers_need_no_storage_dir() {
        let server = ZooKeeperServer::start().await;
        let quorum = server.connect_string();
        let conn = |cluster: &str| {
            strings(&[
                "--zookeeper-quorum",
                &quorum,
                "--cluster-id",
                cluster,
                "-D",
                "high-availability.zookeeper.client.session-timeout=4s",
            ])
        };
        let with = |cluster: &str, cmd: &[&str]| {
            let mut a = conn(cluster);
            a.extend(strings(cmd));
            a
        };
        // Some data of cluster /peer1 (a counter needs no storage dir).
        let out = tenure_async(with("/peer1", &["counter", "set", JOB, "5", "--yes"])).await;
        assert!(out.status.success(), "{}", stderr(&out));

        // Readers work without a storage dir.
        let out = tenure_async(with("/peer1", &["leaders", "--output", "json"])).await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(json(&out)["backend"], "zookeeper");
        let out = tenure_async(with("/peer1", &["registry", "--output", "json"])).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let out = tenure_async(with("/peer1", &["counter", "get", JOB])).await;
        assert!(out.status.success(), "{}", stderr(&out));

        // A mistyped cluster id: not found, naming where it looked and the cluster next to it.
        for cmd in [
            &["leaders"][..],
            &["jobs", "list"],
            &["registry"],
            &["checkpoints", "list", JOB],
        ] {
            let out = tenure_async(with("/peer9", cmd)).await;
            assert_error(&out, 3, "no HA data of cluster /peer9 on zookeeper");
            let err = stderr(&out);
            assert!(
                err.contains(&quorum) && err.contains("/flink/peer9"),
                "{err}"
            );
            assert!(err.contains("/peer1"), "nearby cluster not listed: {err}");
            assert!(out.stdout.is_empty());
        }
        // Judging it created nothing.
        let client = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(4))
            .connect(&quorum)
            .await
            .unwrap();
        let mut children = client.list_children("/flink").await.unwrap();
        children.sort();
        assert_eq!(children, ["peer1"]);
    }
}

#[cfg(feature = "kubernetes")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_cluster_without_config_maps_is_not_found() {
    use tenure_testkit::kube_fake::{KubernetesFactory, ProcessSetup};

    let factory = KubernetesFactory::start().await;
    let settings = factory.settings();
    let setup = ProcessSetup::new(factory.server(), &settings, "");
    let mut cmd = tokio::process::Command::from(setup.command(env!("CARGO_BIN_EXE_tenure")));
    let out = cmd
        .env_remove("RUST_LOG")
        .env_remove("FLINK_CONF_DIR")
        .args(["leaders", "--config"])
        .arg(&setup.config)
        .output()
        .await
        .unwrap();
    assert_error(
        &out,
        3,
        &format!(
            "no HA data of cluster {} on kubernetes (namespace {}",
            settings.cluster_id, settings.namespace
        ),
    );
}
