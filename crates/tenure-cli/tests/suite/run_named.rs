//! `tenure run --name NAME`: any service elected by name. Its arguments and `--help`, its
//! environment on the embedded backend, and against a real ZooKeeper server: two `tenure run
//! --name my-cron` hand over, `tenure leaders` lists the named election (table and JSON, with its
//! kind), and the ZooKeeper layout is `leader/my-cron/...`.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{assert_error, run};

#[test]
fn help_documents_name() {
    let out = run(&["run", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--name <NAME>",
        "--component <COMPONENT>",
        "tenure run --name my-cron",
        "leader/<name>/latch",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn bad_names_and_combinations_exit_2_naming_the_problem() {
    assert_error(
        &run(&["run", "--name", "My_Cron", "--", "true"]),
        2,
        "invalid service name \"My_Cron\"",
    );
    assert_error(
        &run(&["run", "--name", "latch", "--", "true"]),
        2,
        "invalid service name \"latch\": it is reserved",
    );
    assert_error(
        &run(&["run", "--name", "dispatcher", "--", "true"]),
        2,
        "reserved",
    );
    assert_error(
        &run(&["run", "--component", "my-cron", "--", "true"]),
        2,
        "use --name",
    );
    assert_error(
        &run(&[
            "run",
            "--component",
            "dispatcher",
            "--name",
            "x",
            "--",
            "true",
        ]),
        2,
        "cannot be used with",
    );
    assert_error(&run(&["run", "--", "true"]), 2, "--name");
    assert_error(
        &run(&[
            "--ha-type",
            "none",
            "run",
            "--name",
            "x",
            "--scope",
            "cluster",
            "--",
            "true",
        ]),
        2,
        "--scope cluster cannot elect --name x",
    );
}

#[test]
fn a_named_service_runs_with_its_name_and_own_latch_in_the_environment() {
    let out = run(&[
        "--ha-type",
        "none",
        "run",
        "--name",
        "my-cron",
        "--address",
        "host-a:9000",
        "--",
        "sh",
        "-c",
        "echo \"$TENURE_COMPONENT|$TENURE_LEADER_ADDRESS|$TENURE_FENCING_TOKEN\"",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = stdout.trim().split('|').collect();
    assert_eq!(fields[0], "my-cron");
    assert_eq!(fields[1], "host-a:9000");
    assert!(fields[2].contains("leader/my-cron/latch"), "{stdout}");
    assert!(
        err.contains("campaigning for my-cron on leader/my-cron/latch"),
        "{err}"
    );
}

#[cfg(feature = "zookeeper")]
mod zookeeper {
    use common::{Running, json, stderr};
    use tenure_testkit::zookeeper::ZooKeeperServer;

    use super::common;

    /// One ZooKeeper server and a cluster id of this test.
    struct Cluster {
        server: ZooKeeperServer,
        cluster_id: String,
    }

    impl Cluster {
        async fn start() -> Self {
            Self {
                server: ZooKeeperServer::start().await,
                cluster_id: format!("named-{}", uuid::Uuid::new_v4().simple()),
            }
        }

        /// `<connection options> cmd…`: the options first, `run`'s command after `--`.
        fn args(&self, cmd: &[&str]) -> Vec<String> {
            let mut args: Vec<String> = [
                "--ha-type",
                "zookeeper",
                "--zookeeper-quorum",
                &self.server.connect_string(),
                "--cluster-id",
                &format!("/{}", self.cluster_id),
                "-D",
                "high-availability.zookeeper.client.session-timeout=4s",
                "-D",
                "high-availability.zookeeper.client.retry-wait=100ms",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            args.extend(cmd.iter().map(|s| (*s).to_owned()));
            args
        }

        async fn tenure(&self, cmd: &[&str]) -> std::process::Output {
            let args = self.args(cmd);
            common::tenure_async(args).await
        }

        fn spawn(&self, cmd: &[&str]) -> Running {
            let args = self.args(cmd);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Running::spawn(&args)
        }

        /// `tenure leaders --output json`'s entry for `my-cron`.
        async fn my_cron(&self) -> (serde_json::Value, serde_json::Value) {
            let out = self.tenure(&["leaders", "--output", "json"]).await;
            let v = json(&out);
            let cron = v["components"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["component"] == "my-cron")
                .cloned()
                .unwrap_or_else(|| panic!("my-cron not listed: {v}"));
            (cron, v)
        }
    }

    fn cron(address: &str, line: &str) -> Vec<String> {
        [
            "run",
            "--name",
            "my-cron",
            "--address",
            address,
            "--output",
            "json",
            "--",
            "sh",
            "-c",
            &format!("echo {line}; exec sleep 60"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_runs_by_name_hand_over_and_leaders_lists_the_named_election() {
        let c = Cluster::start().await;
        let mut watch = c.spawn(&["leaders", "--watch", "--output", "json"]);
        tokio::task::block_in_place(|| watch.stdout.wait_event("snapshot"));

        let a_args = cron("host-a:9000", "led-a");
        let mut a = c.spawn(&a_args.iter().map(String::as_str).collect::<Vec<_>>());
        tokio::task::block_in_place(|| {
            a.stdout.wait_for("a leads", |l| l == "led-a");
            let joined = watch.stdout.wait_event("contender_joined");
            assert_eq!(joined["latch"], "leader/my-cron/latch");
        });
        let b_args = cron("host-b:9000", "led-b");
        let mut b = c.spawn(&b_args.iter().map(String::as_str).collect::<Vec<_>>());
        tokio::task::block_in_place(|| {
            let joined = watch.stdout.wait_event("contender_joined");
            assert_eq!(joined["latch"], "leader/my-cron/latch");
            assert_eq!(joined["leader"], false);
        });

        // JSON: the named election with its kind, its leader and both contenders in line.
        let (entry, v) = c.my_cron().await;
        assert_eq!(entry["kind"], "named", "{v}");
        assert_eq!(entry["state"], "leader", "{v}");
        assert_eq!(entry["address"], "host-a:9000", "{v}");
        assert_eq!(entry["key"], "leader/my-cron/connection_info", "{v}");
        let line: Vec<&serde_json::Value> = v["contenders"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["latch"] == "leader/my-cron/latch")
            .collect();
        assert_eq!(line.len(), 2, "{v}");
        assert!(
            line.iter()
                .all(|x| x["kind"] == "named" && x["component"] == "my-cron")
        );
        assert_eq!(line[0]["leader"], true);
        // The fixed Flink components are listed first and have no leader.
        assert_eq!(v["components"][0]["kind"], "resource_manager", "{v}");

        // The table lists it too.
        let out = c.tenure(&["leaders"]).await;
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", stderr(&out));
        let row = table
            .lines()
            .find(|l| l.starts_with("my-cron"))
            .unwrap_or_else(|| panic!("no my-cron row:\n{table}"));
        assert!(
            row.contains("leader") && row.contains("host-a:9000"),
            "{row}"
        );
        assert_eq!(
            row.split_whitespace().nth(1),
            Some("named"),
            "the KIND column: {row}"
        );
        assert!(table.contains("leader/my-cron/latch"), "{table}");

        // a stops: b takes over and publishes its address.
        a.signal("-TERM");
        tokio::task::block_in_place(|| {
            assert_eq!(a.wait(), Some(143));
            b.stdout.wait_for("b leads", |l| l == "led-b");
            b.stderr.wait_event("confirmed");
        });
        let (entry, v) = c.my_cron().await;
        assert_eq!(entry["address"], "host-b:9000", "{v}");
        b.signal("-TERM");
        tokio::task::block_in_place(|| assert_eq!(b.wait(), Some(143)));
    }
}
