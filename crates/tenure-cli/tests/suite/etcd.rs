//! The `tenure` binary on a real etcd server (one per test, free loopback ports): the demo,
//! two `tenure run` handing a component over while `tenure leaders` reads etcd's latch line
//! (lease-named keys in create-revision order) and `leaders --watch` serves metrics, and the
//! operator commands reading and removing a job's data and a whole cluster's, leaving a decoy
//! key beside the namespace alone.

#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used)]

use crate::common;

use common::{Running, assert_error, http_get, json, metrics_addr, stderr};
use tenure::etcd::etcd_client::{self, GetOptions};
use tenure_testkit::etcd::EtcdServer;

const JOB: &str = "58c7b669261b7be65fa686cc039885b6";
const OTHER: &str = "0000000000000000000000000000beef";

/// One etcd server, a cluster id and an HA storage directory of this test.
struct Cluster {
    server: EtcdServer,
    cluster_id: String,
    storage: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        Self {
            server: EtcdServer::start().await,
            cluster_id: format!("cli-{}", uuid::Uuid::new_v4().simple()),
            storage: tempfile::tempdir().unwrap(),
        }
    }

    /// The configuration pairs of the cluster (2 s lease).
    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("high-availability.type", "etcd".to_owned()),
            ("high-availability.etcd.endpoints", self.server.endpoint()),
            ("high-availability.etcd.lease-ttl", "2 s".to_owned()),
            ("high-availability.cluster-id", self.cluster_id.clone()),
            (
                "high-availability.storageDir",
                self.storage.path().to_str().unwrap().to_owned(),
            ),
        ]
    }

    /// `-D key=value` for every pair, then `cmd…`.
    fn args(&self, cmd: &[&str]) -> Vec<String> {
        let mut args = Vec::new();
        for (k, v) in self.pairs() {
            args.push("-D".to_owned());
            args.push(format!("{k}={v}"));
        }
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

    /// HA services of a process of the cluster, as a job manager would use them.
    async fn services(&self) -> tenure::HaServices {
        let conf = tenure::Configuration::from_pairs(self.pairs());
        let config = tenure::HaConfig::from_configuration(&conf).unwrap();
        tenure::connect(&config).await.unwrap()
    }

    /// Every etcd key below `prefix`.
    async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut c = etcd_client::Client::connect([self.server.endpoint()], None)
            .await
            .unwrap();
        let resp = c
            .get(
                prefix,
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .unwrap();
        resp.kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_holds_every_invariant_on_etcd_and_leaves_nothing() {
    let c = Cluster::start().await;
    let out = c.tenure(&["demo"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.contains("verdict: every invariant held"), "{text}");
    assert!(text.contains("fencing epoch"), "{text}");
    assert_eq!(c.keys("/").await, Vec::<String>::new());
}

fn dispatcher(address: &str, line: &str) -> Vec<String> {
    [
        "run",
        "--component",
        "dispatcher",
        "--address",
        address,
        "--",
        "sh",
        "-c",
        &format!("echo {line}; exec sleep 60"),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The contenders of the dispatcher's latch in `tenure leaders --output json`.
fn dispatcher_line(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["contenders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["latch"] == "leader/dispatcher/latch")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_hand_over_on_etcd_and_leaders_reads_the_lease_line() {
    let c = Cluster::start().await;
    let mut watch = c.spawn(&[
        "leaders",
        "--watch",
        "--output",
        "json",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let metrics = tokio::task::block_in_place(|| {
        watch.stdout.wait_event("snapshot");
        metrics_addr(&mut watch.stderr)
    });

    let a_args = dispatcher("host-a:8081", "led-a");
    let mut a = c.spawn(&a_args.iter().map(String::as_str).collect::<Vec<_>>());
    tokio::task::block_in_place(|| {
        a.stdout.wait_for("a leads", |l| l == "led-a");
        watch.stdout.wait_event("contender_joined");
    });
    let b_args = dispatcher("host-b:8081", "led-b");
    let mut b = c.spawn(&b_args.iter().map(String::as_str).collect::<Vec<_>>());
    tokio::task::block_in_place(|| {
        let joined = watch.stdout.wait_event("contender_joined");
        assert_eq!(joined["leader"], false, "{joined}");
    });

    // The line as etcd's recipe reads it: keys named by their lease, by create revision.
    let v = json(&c.tenure(&["leaders", "--output", "json"]).await);
    let line = dispatcher_line(&v);
    assert_eq!(line.len(), 2, "{v}");
    for x in &line {
        assert_eq!(x["foreign"], false, "{v}");
        let lease = i64::from_str_radix(x["node"].as_str().unwrap(), 16).unwrap();
        assert_eq!(x["owner_session"], format!("{lease:#x}"), "{v}");
    }
    assert_eq!(line[0]["leader"], true, "{v}");
    assert_eq!(line[1]["leader"], false, "{v}");
    assert!(line[0]["sequence"].as_i64() < line[1]["sequence"].as_i64());
    let leader = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["component"] == "dispatcher")
        .unwrap()
        .clone();
    assert_eq!(leader["address"], "host-a:8081", "{v}");
    let (status, body) = http_get(&metrics, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("dispatcher"), "{body}");

    // A steps down: B is granted and published, and the line is B alone.
    a.signal("-TERM");
    tokio::task::block_in_place(|| {
        b.stdout.wait_for("b leads", |l| l == "led-b");
        assert_eq!(a.wait(), Some(143));
    });
    let v = json(&c.tenure(&["leaders", "--output", "json"]).await);
    let line = dispatcher_line(&v);
    assert_eq!(line.len(), 1, "{v}");
    assert_eq!(line[0]["leader"], true, "{v}");

    // A key in the latch that no lease names is foreign and never leads.
    let mut raw = etcd_client::Client::connect([c.server.endpoint()], None)
        .await
        .unwrap();
    let decoy = format!("/flink/{}/leader/dispatcher/latch/0", c.cluster_id);
    raw.put(decoy.as_str(), "junk", None).await.unwrap();
    let v = json(&c.tenure(&["leaders", "--output", "json"]).await);
    let line = dispatcher_line(&v);
    assert_eq!(line.len(), 2, "{v}");
    assert_eq!(line[0]["leader"], true, "{v}");
    assert_eq!(line[1]["node"], "0", "{v}");
    assert_eq!(line[1]["foreign"], true, "{v}");
    b.signal("-TERM");
    tokio::task::block_in_place(|| assert_eq!(b.wait(), Some(143)));
    watch.signal("-INT");
    tokio::task::block_in_place(|| watch.wait());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_read_and_remove_a_jobs_data_on_etcd() {
    use bytes::Bytes;
    use tenure::ids::{CheckpointId, JobId};

    let c = Cluster::start().await;
    let mut raw = etcd_client::Client::connect([c.server.endpoint()], None)
        .await
        .unwrap();
    let beside = format!("/flink/{}-other/jobgraphs/x", c.cluster_id);
    raw.put(beside.as_str(), "decoy", None).await.unwrap();

    let jm = c.services().await;
    let job: JobId = JOB.parse().unwrap();
    jm.admin_stores()
        .job_graphs()
        .put(job, Bytes::from(vec![b'g'; 5000]))
        .await
        .unwrap();
    jm.admin_stores()
        .checkpoint_recovery_factory()
        .create_checkpoint_id_counter(job)
        .set(CheckpointId(3))
        .await
        .unwrap();
    // Another job's data, which removing JOB leaves alone.
    let other: JobId = OTHER.parse().unwrap();
    jm.admin_stores()
        .checkpoint_recovery_factory()
        .create_checkpoint_id_counter(other)
        .set(CheckpointId(9))
        .await
        .unwrap();

    let out = c.tenure(&["jobs", "list", "--output", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let g = json(&out)["jobs"][0].clone();
    assert_eq!(g["job_id"], JOB);
    assert_eq!(g["storage"], "blob");
    assert_eq!(g["locks"], serde_json::json!([jm.owner_id()]));
    let out = c.tenure(&["counter", "get", JOB, "--output", "json"]).await;
    assert_eq!(json(&out)["next_checkpoint_id"], 3, "{}", stderr(&out));
    let out = c.tenure(&["counter", "set", JOB, "7", "--yes"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c.tenure(&["counter", "get", JOB, "--output", "json"]).await;
    assert_eq!(json(&out)["next_checkpoint_id"], 7);

    // The process holds the graph's lock: removal is refused; once it is gone, allowed.
    assert_error(
        &c.tenure(&["jobs", "remove", JOB, "--yes"]).await,
        5,
        jm.owner_id(),
    );
    jm.close().await.unwrap();
    let out = c
        .tenure(&["jobs", "remove", JOB, "--all-data", "--yes"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c.tenure(&["jobs", "list", "--output", "json"]).await;
    assert_eq!(json(&out)["jobs"], serde_json::json!([]));
    let job_keys = format!("/flink/{}/jobs/{JOB}", c.cluster_id);
    assert_eq!(c.keys(&job_keys).await, Vec::<String>::new());
    let out = c
        .tenure(&["counter", "get", OTHER, "--output", "json"])
        .await;
    assert_eq!(json(&out)["next_checkpoint_id"], 9, "{}", stderr(&out));

    let out = c
        .tenure(&["cleanup", "--cluster-id", &c.cluster_id, "--yes"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let prefix = format!("/flink/{}/", c.cluster_id);
    assert_eq!(c.keys(&prefix).await, Vec::<String>::new());
    assert_eq!(c.keys(&beside).await, vec![beside.clone()]);
}
