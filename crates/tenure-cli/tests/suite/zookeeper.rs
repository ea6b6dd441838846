//! The `tenure` binary against a real ZooKeeper server (one per test, on a free loopback port):
//! Flink's own bytes decoded (golden, reference §9), Flink's job graphs and checkpoints reported
//! as Flink's, the live-leader guard, `leaders --watch`, `run` losing leadership and contending,
//! cleanup, and an unreachable quorum.

#![cfg(feature = "zookeeper")]
#![allow(clippy::unwrap_used)]

use crate::common;

use common::{Running, assert_error, json, stderr};
use tenure::zookeeper::zk;
use tenure_testkit::zookeeper::ZooKeeperServer;

const JOB: &str = "58c7b669261b7be65fa686cc039885b6";
const SESSION: &str = "da34a7de-6e4b-411d-8196-a44563d07feb";

/// Bytes a real Flink 2.2.0 wrote for `leader/rest_server/connection_info` (reference §9).
const FLINK_REST: &str = "aced000577180016687474703a2f2f3132372e302e302e313a33383038317372000e6a6176612e7574696c2e55554944bc9903f7986d852f
0200024a000c6c65617374536967426974734a000b6d6f73745369674269747378708196a44563d07febda34a7de6e4b411d";
/// Bytes a real Flink 2.2.0 wrote for `leader/dispatcher/connection_info` (reference §9).
const FLINK_DISPATCHER: &str = "aced00057739003770656b6b6f2e7463703a2f2f666c696e6b406c6f63616c686f73743a33363132332f757365722f7270632f646973706174
636865725f317372000e6a6176612e7574696c2e55554944bc9903f7986d852f0200024a000c6c65617374536967426974734a000b6d6f7374
5369674269747378708196a44563d07febda34a7de6e4b411d";

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A Java-serialized Flink state handle naming `uri` (the tail of a real one).
fn flink_handle(uri: &str) -> Vec<u8> {
    let mut bytes = vec![0xAC, 0xED, 0x00, 0x05, 0x73, 0x72, 0x00, 0x01, b't'];
    bytes.extend_from_slice(&[0x74, 0x00, uri.len() as u8]);
    bytes.extend_from_slice(uri.as_bytes());
    bytes.push(0x78);
    bytes
}

/// One test cluster: a ZooKeeper server, a cluster id, a storage dir, and a raw client playing
/// a Flink JobManager.
struct Cluster {
    server: ZooKeeperServer,
    cluster_id: String,
    storage: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        Self {
            server: ZooKeeperServer::start().await,
            cluster_id: format!("peer-{}", uuid::Uuid::new_v4().simple()),
            storage: tempfile::tempdir().unwrap(),
        }
    }

    /// The connection options of every `tenure` invocation.
    fn conn_args(&self) -> Vec<String> {
        [
            "--ha-type",
            "zookeeper",
            "--zookeeper-quorum",
            &self.server.connect_string(),
            "--storage-dir",
            self.storage.path().to_str().unwrap(),
            "--cluster-id",
            &format!("/{}", self.cluster_id),
            "-D",
            "high-availability.zookeeper.client.session-timeout=4s",
            "-D",
            "high-availability.zookeeper.client.connection-timeout=5s",
            "-D",
            "high-availability.zookeeper.client.retry-wait=100ms",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// The connection options go first: everything after `--` belongs to `run`'s command.
    fn args<'a>(&'a self, conn: &'a [String], cmd: &[&'a str]) -> Vec<&'a str> {
        let mut a: Vec<&str> = conn.iter().map(String::as_str).collect();
        a.extend_from_slice(cmd);
        a
    }

    /// Runs `tenure <connection options> cmd…` (off the async runtime's threads).
    async fn tenure(&self, cmd: &[&str]) -> std::process::Output {
        let conn = self.conn_args();
        let args: Vec<String> = self
            .args(&conn, cmd)
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        common::tenure_async(args).await
    }

    /// Spawns a long-running `tenure <connection options> cmd…`.
    fn spawn(&self, cmd: &[&str]) -> Running {
        let conn = self.conn_args();
        Running::spawn(&self.args(&conn, cmd))
    }

    fn path(&self, key: &str) -> String {
        format!("/flink/{}/{key}", self.cluster_id)
    }

    /// A raw client, as a Flink JobManager's session.
    async fn client(&self) -> zk::Client {
        zk::Client::connector()
            .with_session_timeout(std::time::Duration::from_secs(10))
            .connect(&self.server.connect_string())
            .await
            .unwrap()
    }
}

async fn put(client: &zk::Client, path: &str, data: &[u8], ephemeral: bool) {
    let parent = path.rsplit_once('/').unwrap().0;
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match client.mkdir(parent, &persistent).await {
        Ok(()) | Err(zk::Error::NodeExists) => {}
        Err(e) => panic!("mkdir {parent}: {e}"),
    }
    let mode = if ephemeral {
        zk::CreateMode::Ephemeral
    } else {
        zk::CreateMode::Persistent
    };
    client
        .create(path, data, &mode.with_acls(zk::Acls::anyone_all()))
        .await
        .unwrap_or_else(|e| panic!("create {path}: {e}"));
}

/// Joins a latch as Curator does: an EPHEMERAL_SEQUENTIAL `_c_<uuid>-latch-` node.
async fn join_latch(client: &zk::Client, dir: &str) -> String {
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match client.mkdir(dir, &persistent).await {
        Ok(()) | Err(zk::Error::NodeExists) => {}
        Err(e) => panic!("mkdir {dir}: {e}"),
    }
    let prefix = format!("{dir}/_c_{}-latch-", uuid::Uuid::new_v4());
    let (_, seq) = client
        .create(
            &prefix,
            &[],
            &zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
    format!("{prefix}{seq}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_decodes_the_bytes_flink_writes() {
    let c = Cluster::start().await;
    let flink = c.client().await;
    put(
        &flink,
        &c.path("leader/rest_server/connection_info"),
        &hex(FLINK_REST),
        true,
    )
    .await;
    put(
        &flink,
        &c.path("leader/dispatcher/connection_info"),
        &hex(FLINK_DISPATCHER),
        true,
    )
    .await;
    put(
        &flink,
        &c.path(&format!("leader/job-{JOB}/connection_info")),
        &hex(FLINK_DISPATCHER),
        true,
    )
    .await;
    put(
        &flink,
        &c.path("leader/resource_manager/connection_info"),
        b"not java",
        true,
    )
    .await;
    let node = join_latch(&flink, &c.path("leader/latch")).await;

    let out = c.tenure(&["leaders", "--output", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["backend"], "zookeeper");
    assert_eq!(v["cluster_id"], format!("/{}", c.cluster_id));
    let comp = |name: &str| {
        v["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["component"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {v}"))
            .clone()
    };
    let rest = comp("rest_server");
    assert_eq!(rest["state"], "leader");
    assert_eq!(rest["address"], "http://127.0.0.1:38081");
    assert_eq!(rest["session_id"], SESSION);
    let disp = comp("dispatcher");
    assert_eq!(
        disp["address"],
        "pekko.tcp://flink@localhost:36123/user/rpc/dispatcher_1"
    );
    assert_eq!(disp["session_id"], SESSION);
    let jm = comp(&format!("job-{JOB}"));
    assert_eq!(jm["job_id"], JOB);
    assert_eq!(jm["state"], "leader");
    let rm = comp("resource_manager");
    assert_eq!(rm["state"], "unreadable");
    assert!(rm["error"].as_str().unwrap().contains("header"), "{rm}");
    let contenders = v["contenders"].as_array().unwrap();
    assert_eq!(contenders.len(), 1);
    assert_eq!(contenders[0]["latch"], "leader/latch");
    assert_eq!(contenders[0]["node"], node.rsplit('/').next().unwrap());
    assert_eq!(contenders[0]["leader"], true);
    assert_eq!(contenders[0]["sequence"], 0);
    assert!(
        contenders[0]["owner_session"]
            .as_str()
            .unwrap()
            .starts_with("0x")
    );
    // A Flink cluster's HDFS storage dir cannot be opened here: leaders are read all the same.
    let out = c
        .tenure(&[
            "leaders",
            "--output",
            "json",
            "-D",
            "high-availability.storageDir=hdfs:///flink/ha",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tenure: warning: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(json(&out)["components"], v["components"]);
    // The table says the same.
    let out = c.tenure(&["leaders"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("http://127.0.0.1:38081") && text.contains(SESSION),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flink_job_data_is_reported_as_flinks_and_guarded_while_live() {
    let c = Cluster::start().await;
    let flink = c.client().await;
    let graph_file = "file:/ha/peer1/submittedExecutionPlan0123456789ab";
    let cp_file = "file:/ha/peer1/completedCheckpoint2e1519c07c46";
    put(
        &flink,
        &c.path(&format!("execution-plans/{JOB}")),
        &flink_handle(graph_file),
        false,
    )
    .await;
    put(
        &flink,
        &c.path(&format!("execution-plans/{JOB}/locks")),
        b"127.0.0.1",
        false,
    )
    .await;
    put(
        &flink,
        &c.path(&format!(
            "execution-plans/{JOB}/locks/{}",
            uuid::Uuid::new_v4()
        )),
        b"",
        true,
    )
    .await;
    put(
        &flink,
        &c.path(&format!("jobs/{JOB}/checkpoints/0000000000000000042")),
        &flink_handle(cp_file),
        false,
    )
    .await;
    put(
        &flink,
        &c.path(&format!("jobs/{JOB}/checkpoints/0000000000000000042/locks")),
        b"",
        false,
    )
    .await;
    put(
        &flink,
        &c.path(&format!("jobs/{JOB}/checkpoint_id_counter")),
        &43i32.to_be_bytes(),
        false,
    )
    .await;
    join_latch(&flink, &c.path("leader/latch")).await;
    put(
        &flink,
        &c.path("leader/dispatcher/connection_info"),
        &hex(FLINK_DISPATCHER),
        true,
    )
    .await;

    let out = c.tenure(&["jobs", "list", "--output", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let jobs = json(&out)["jobs"].clone();
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    assert_eq!(jobs[0]["job_id"], JOB);
    assert_eq!(jobs[0]["origin"], "flink");
    assert_eq!(jobs[0]["file"], graph_file);
    assert_eq!(jobs[0]["locks"].as_array().unwrap().len(), 1);

    let out = c
        .tenure(&["checkpoints", "list", JOB, "--output", "json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["checkpoints"].as_array().unwrap().len(), 1);
    assert_eq!(v["checkpoints"][0]["id"], 42);
    assert_eq!(v["checkpoints"][0]["origin"], "flink");
    assert_eq!(v["checkpoints"][0]["file"], cp_file);
    assert_eq!(v["counter"]["next_checkpoint_id"], 43);
    let out = c.tenure(&["counter", "get", JOB, "--output", "json"]).await;
    assert_eq!(json(&out)["next_checkpoint_id"], 43);
    let out = c.tenure(&["jobs", "show", JOB, "--output", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["checkpoints"][0]["id"], 42);

    // Flink's job graph is never removed piecemeal.
    let out = c.tenure(&["jobs", "remove", JOB, "--yes", "--force"]).await;
    assert_error(&out, 1, "written by Flink");
    // A live leader (latch node, published dispatcher): writes are refused with exit 5.
    let out = c.tenure(&["counter", "set", JOB, "50", "--yes"]).await;
    assert_error(&out, 5, "dispatcher led by session");
    let counter = c.path(&format!("jobs/{JOB}/checkpoint_id_counter"));
    assert_eq!(
        flink.get_data(&counter).await.unwrap().0,
        43i32.to_be_bytes()
    );
    // A lower value would reuse the retained checkpoint's id.
    let out = c.tenure(&["counter", "set", JOB, "42", "--yes"]).await;
    assert_error(&out, 2, "retained checkpoint 42");
    // --force goes ahead, in Flink's 4-byte format.
    let out = c
        .tenure(&[
            "counter", "set", JOB, "50", "--yes", "--force", "--output", "json",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(
        (v["previous"].clone(), v["next_checkpoint_id"].clone()),
        (43.into(), 50.into())
    );
    assert_eq!(
        flink.get_data(&counter).await.unwrap().0,
        50i32.to_be_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_refuses_a_live_cluster_and_removes_a_dead_one() {
    let c = Cluster::start().await;
    let flink = c.client().await;
    put(
        &flink,
        &c.path(&format!("execution-plans/{JOB}")),
        &flink_handle("file:/x"),
        false,
    )
    .await;
    put(
        &flink,
        &c.path(&format!("jobs/{JOB}/checkpoint_id_counter")),
        &3i32.to_be_bytes(),
        false,
    )
    .await;
    let node = join_latch(&flink, &c.path("leader/latch")).await;
    let blobs = c.storage.path().join(&c.cluster_id);
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join("submittedExecutionPlan0123456789ab"), b"plan").unwrap();

    let out = c
        .tenure(&["cleanup", "--dry-run", "--output", "json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    let keys: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&format!("execution-plans/{JOB}").as_str()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("jobs/{JOB}/checkpoint_id_counter").as_str()),
        "{keys:?}"
    );
    assert_eq!(
        v["blobs"],
        serde_json::json!(["submittedExecutionPlan0123456789ab"])
    );
    assert_eq!(v["ephemeral_keys"].as_array().unwrap().len(), 1);

    let out = c.tenure(&["cleanup", "--yes"]).await;
    assert_error(&out, 5, "latch contenders");
    assert!(
        flink
            .check_stat(&c.path(&format!("execution-plans/{JOB}")))
            .await
            .unwrap()
            .is_some()
    );

    // The JobManager goes away: its latch node goes with its session.
    flink.delete(&node, None).await.unwrap();
    let out = c.tenure(&["cleanup", "--yes", "--output", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["removed"], true);
    let left = flink
        .list_children(&format!("/flink/{}", c.cluster_id))
        .await;
    assert!(
        matches!(&left, Err(zk::Error::NoNode)) || left.as_ref().is_ok_and(|l| l.is_empty()),
        "{left:?}"
    );
    assert!(!blobs.join("submittedExecutionPlan0123456789ab").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_watch_streams_each_change() {
    let c = Cluster::start().await;
    let flink = c.client().await;
    let mut w = c.spawn(&["leaders", "--watch", "--output", "json"]);
    let snap = tokio::task::block_in_place(|| w.stdout.wait_event("snapshot"));
    assert_eq!(snap["backend"], "zookeeper");
    let info = c.path("leader/rest_server/connection_info");
    put(&flink, &info, &hex(FLINK_REST), true).await;
    let change = tokio::task::block_in_place(|| w.stdout.wait_event("component"));
    assert_eq!(change["component"], "rest_server");
    assert_eq!(change["state"], "leader");
    assert_eq!(change["address"], "http://127.0.0.1:38081");
    assert_eq!(change["session_id"], SESSION);
    let node = join_latch(&flink, &c.path("leader/latch")).await;
    let joined = tokio::task::block_in_place(|| w.stdout.wait_event("contender_joined"));
    assert_eq!(joined["node"], node.rsplit('/').next().unwrap());
    flink.delete(&info, None).await.unwrap();
    let change = tokio::task::block_in_place(|| w.stdout.wait_event("component"));
    assert_eq!(change["component"], "rest_server");
    assert_eq!(change["state"], "no_leader");
    flink.delete(&node, None).await.unwrap();
    tokio::task::block_in_place(|| w.stdout.wait_event("contender_left"));
    w.signal("-TERM");
    assert_eq!(tokio::task::block_in_place(|| w.wait()), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_contends_and_terminates_its_command_when_leadership_is_lost() {
    let c = Cluster::start().await;
    let raw = c.client().await;
    let mut a = c.spawn(&[
        "run",
        "--component",
        "dispatcher",
        "--address",
        "http://a:8081",
        "--grace",
        "5s",
        "--output",
        "json",
        "--",
        "sleep",
        "60",
    ]);
    let elected = tokio::task::block_in_place(|| {
        a.stderr.wait_event("started");
        a.stderr
            .seen
            .iter()
            .find(|l| l.contains("\"elected\""))
            .cloned()
            .unwrap()
    });
    let session: serde_json::Value = serde_json::from_str(&elected).unwrap();
    // `tenure leaders` sees it, decoded from the bytes tenure wrote in Flink's format.
    let out = c.tenure(&["leaders", "--output", "json"]).await;
    let v = json(&out);
    let disp = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["component"] == "dispatcher")
        .unwrap()
        .clone();
    assert_eq!(disp["address"], "http://a:8081", "{v} {:?}", a.stderr.seen);
    assert_eq!(disp["session_id"], session["session_id"]);
    assert_eq!(v["contenders"][0]["latch"], "leader/dispatcher/latch");

    // A second contender is not elected within its timeout: exit 5.
    let out = c
        .tenure(&[
            "run",
            "--component",
            "dispatcher",
            "--campaign-timeout",
            "1s",
            "--",
            "true",
        ])
        .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.trim()
            .lines()
            .last()
            .unwrap()
            .starts_with("tenure: error: not elected leader of dispatcher"),
        "{err}"
    );

    // The latch node of the leader disappears (as when its session expires): the term ends,
    // the command gets SIGTERM, and tenure exits with its status.
    let latch = c.path("leader/dispatcher/latch");
    let nodes = raw.list_children(&latch).await.unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    raw.delete(&format!("{latch}/{}", nodes[0]), None)
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        a.stderr.wait_event("leadership_lost");
        assert_eq!(a.wait(), Some(143));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_in_cluster_scope_waits_for_a_flink_jobmanager_to_go() {
    let c = Cluster::start().await;
    let flink = c.client().await;
    let node = join_latch(&flink, &c.path("leader/latch")).await;
    let mut watch = c.spawn(&["leaders", "--watch", "--output", "json"]);
    tokio::task::block_in_place(|| watch.stdout.wait_event("snapshot"));
    let mut t = c.spawn(&[
        "run",
        "--component",
        "rest_server",
        "--scope",
        "cluster",
        "--output",
        "json",
        "--",
        "sh",
        "-c",
        "echo led; exit 0",
    ]);
    // Its latch node queues behind Flink's.
    let joined = tokio::task::block_in_place(|| watch.stdout.wait_event("contender_joined"));
    assert_eq!(joined["latch"], "leader/latch");
    assert_eq!(joined["leader"], false);
    let v = json(&c.tenure(&["leaders", "--output", "json"]).await);
    let contenders = v["contenders"].as_array().unwrap();
    assert_eq!(contenders[0]["node"], node.rsplit('/').next().unwrap());
    assert_eq!(contenders[0]["leader"], true);
    // Flink's JobManager stops: tenure is elected and runs the command.
    flink.delete(&node, None).await.unwrap();
    tokio::task::block_in_place(|| {
        t.stdout.wait_for("led", |l| l == "led");
        assert_eq!(t.wait(), Some(0));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_quorum_exits_4() {
    let refused = tenure_testkit::refused_port::RefusedPort::new();
    let quorum = refused.addr();
    let args: Vec<String> = [
        "leaders",
        "--ha-type",
        "zookeeper",
        "--zookeeper-quorum",
        &quorum,
        "--storage-dir",
        "/tmp/tenure-unreachable",
        "-D",
        "high-availability.zookeeper.client.connection-timeout=500ms",
        "-D",
        "high-availability.zookeeper.client.max-retry-attempts=0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let out = common::tenure_async(args).await;
    assert_error(&out, 4, &quorum);
}

/// Read views print corrupt entries and then exit 6, naming each on one stderr line; Flink's
/// own data is not corrupt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_data_is_printed_then_exits_6() {
    const HEALTHY: &str = "0123456789abcdef0123456789abcdef";
    let c = Cluster::start().await;
    let raw = c.client().await;
    let counter_key = format!("jobs/{JOB}/checkpoint_id_counter");
    let cp_key = format!("jobs/{JOB}/checkpoints/0000000000000000007");
    let graph_key = format!("execution-plans/{JOB}");
    put(&raw, &c.path(&counter_key), b"xy", false).await;
    put(&raw, &c.path(&cp_key), b"zzz", false).await;
    put(&raw, &c.path(&graph_key), b"garbage", false).await;
    put(
        &raw,
        &c.path(&format!("jobs/{HEALTHY}/checkpoints/0000000000000000042")),
        &flink_handle("file:/ha/peer1/completedCheckpoint2e1519c07c46"),
        false,
    )
    .await;
    put(
        &raw,
        &c.path(&format!("jobs/{HEALTHY}/checkpoint_id_counter")),
        &43i32.to_be_bytes(),
        false,
    )
    .await;

    let out = c.tenure(&["counter", "get", JOB]).await;
    assert_error(&out, 6, &counter_key);
    assert!(stderr(&out).contains("corrupt or unreadable HA data"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unreadable"), "{text}");

    let out = c.tenure(&["checkpoints", "show", JOB, "7"]).await;
    assert_error(&out, 6, &cp_key);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("corrupt"), "{text}");

    let out = c
        .tenure(&["checkpoints", "list", JOB, "--output", "json"])
        .await;
    assert_error(&out, 6, &cp_key);
    assert!(stderr(&out).contains(&counter_key), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["checkpoints"][0]["origin"], "corrupt");
    assert!(v["counter"]["error"].is_string(), "{v}");

    let out = c.tenure(&["jobs", "show", JOB, "--output", "json"]).await;
    assert_error(&out, 6, &graph_key);
    let err = stderr(&out);
    assert!(
        err.contains(&cp_key) && err.contains(&counter_key) && err.contains("3 entries"),
        "{err}"
    );
    assert_eq!(json(&out)["job_graph"]["origin"], "corrupt");

    let out = c.tenure(&["jobs", "list"]).await;
    assert_error(&out, 6, &graph_key);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(JOB) && text.contains("corrupt"), "{text}");

    // A tenure graph pointing to a blob that is gone: shown as corrupt, then exit 6.
    const DANGLING: &str = "fedcba9876543210fedcba9876543210";
    let dangling_key = format!("execution-plans/{DANGLING}");
    let pointer = tenure::store::Payload::Blob {
        name: "submittedExecutionPlan0123456789ab".into(),
        size: 10,
        checksum: 1,
    }
    .encode();
    put(&raw, &c.path(&dangling_key), &pointer, false).await;
    let out = c
        .tenure(&["jobs", "show", DANGLING, "--output", "json"])
        .await;
    assert_error(&out, 6, &dangling_key);
    let graph = json(&out)["job_graph"].clone();
    assert_eq!(graph["origin"], "corrupt");
    assert!(
        graph["detail"].as_str().unwrap().contains("missing"),
        "{graph}"
    );

    // Flink's own checkpoint and counter are fine.
    for cmd in [
        &["checkpoints", "list", HEALTHY][..],
        &["checkpoints", "show", HEALTHY, "42"],
        &["counter", "get", HEALTHY],
    ] {
        let out = c.tenure(cmd).await;
        assert_eq!(out.status.code(), Some(0), "{cmd:?}: {}", stderr(&out));
    }
}

/// Data created by digest `a:1` with the creator ACL: another digest, or none, is refused by
/// ZooKeeper (NoAuth) and that is exit 7 naming the setting, not "unreachable".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_digest_exits_7_naming_the_key() {
    let c = Cluster::start().await;
    let owner = zk::Client::connector()
        .with_session_timeout(std::time::Duration::from_secs(10))
        .with_auth("digest", b"a:1")
        .connect(&c.server.connect_string())
        .await
        .unwrap();
    let creator = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    let counter = c.path(&format!("jobs/{JOB}/checkpoint_id_counter"));
    owner
        .mkdir(counter.rsplit_once('/').unwrap().0, &creator)
        .await
        .unwrap();
    owner
        .create(&counter, &43i32.to_be_bytes(), &creator)
        .await
        .unwrap();
    let acl = "high-availability.zookeeper.client.acl=creator";
    let digest = |d: &str| format!("high-availability.zookeeper.client.digest={d}");

    let (right, wrong) = (digest("a:1"), digest("a:2"));
    let out = c
        .tenure(&["counter", "get", JOB, "-D", acl, "-D", &right])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("43"));

    let out = c
        .tenure(&["counter", "get", JOB, "-D", acl, "-D", &wrong])
        .await;
    assert_error(&out, 7, "high-availability.zookeeper.client.digest");
    assert!(stderr(&out).contains("NoAuth"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("a:2"), "the digest is never printed");

    // Without credentials (the open ACL): refused the same way.
    let out = c.tenure(&["counter", "get", JOB]).await;
    assert_error(&out, 7, "high-availability.zookeeper.client.digest");

    // The creator ACL without a digest is refused before connecting.
    let out = c.tenure(&["counter", "get", JOB, "-D", acl]).await;
    assert_error(&out, 2, "high-availability.zookeeper.client.digest");
}

/// HA services of a tenure process on the test cluster, as a job manager would use them.
async fn services(c: &Cluster) -> tenure::HaServices {
    let conf = tenure::Configuration::from_pairs([
        ("high-availability.type", "zookeeper".to_owned()),
        (
            "high-availability.zookeeper.quorum",
            c.server.connect_string(),
        ),
        (
            "high-availability.storageDir",
            c.storage.path().to_str().unwrap().to_owned(),
        ),
        ("high-availability.cluster-id", format!("/{}", c.cluster_id)),
        (
            "high-availability.zookeeper.client.session-timeout",
            "4s".to_owned(),
        ),
    ]);
    let config = tenure::HaConfig::from_configuration(&conf).unwrap();
    let backend = tenure::zookeeper::ZooKeeperBackend::from_config(&config)
        .await
        .unwrap();
    let options = tenure::HaServicesOptions::from_config(&config).unwrap();
    tenure::HaServices::new(std::sync::Arc::new(backend), options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenure_job_data_is_read_and_removed_once_its_process_is_gone() {
    use bytes::Bytes;
    use tenure::ids::{CheckpointId, JobId};
    use tenure::store::{ApplicationStatus, CompletedCheckpoint, JobResultEntry};

    let c = Cluster::start().await;
    let jm = services(&c).await;
    let job: JobId = JOB.parse().unwrap();
    jm.admin_stores()
        .job_graphs()
        .put(job, Bytes::from(vec![b'g'; 5000]))
        .await
        .unwrap();
    let factory = jm.admin_stores().checkpoint_recovery_factory();
    let store = factory.create_completed_checkpoint_store(job, 3).unwrap();
    for id in 1..=2u64 {
        store
            .add(CompletedCheckpoint {
                job_id: job,
                id: CheckpointId(id),
                timestamp_ms: 1_700_000_000_000 + id,
                metadata: Bytes::from(format!("metadata {id}")),
            })
            .await
            .unwrap();
    }
    factory
        .create_checkpoint_id_counter(job)
        .set(CheckpointId(3))
        .await
        .unwrap();
    jm.admin_stores()
        .running_jobs()
        .set_running(job)
        .await
        .unwrap();
    jm.job_result_store()
        .create_dirty(&JobResultEntry::new(job, ApplicationStatus::Canceled, 77))
        .await
        .unwrap();

    let out = c.tenure(&["jobs", "list", "--output", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let g = json(&out)["jobs"][0].clone();
    assert_eq!(g["job_id"], JOB);
    assert_eq!(g["origin"], "tenure");
    assert_eq!(g["storage"], "blob");
    assert_eq!(g["size_bytes"], 5000);
    assert!(
        g["blob"]
            .as_str()
            .unwrap()
            .starts_with("submittedExecutionPlan")
    );
    assert_eq!(g["locks"], serde_json::json!([jm.owner_id()]));

    let out = c
        .tenure(&["checkpoints", "show", JOB, "2", "--output", "json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let cp = json(&out);
    assert_eq!(cp["id"], 2);
    assert_eq!(cp["timestamp_ms"], 1_700_000_000_002u64);
    assert_eq!(cp["metadata_bytes"], "metadata 2".len());
    assert_eq!(cp["storage"], "inline");

    let out = c.tenure(&["registry", "--output", "json"]).await;
    assert_eq!(
        json(&out)["jobs"],
        serde_json::json!([{"job_id": JOB, "status": "RUNNING"}])
    );
    let out = c
        .tenure(&["results", "list", "--dirty", "--output", "json"])
        .await;
    let r = json(&out);
    assert_eq!(r["results"][0]["application_status"], "CANCELED");
    assert!(
        r["location"].as_str().unwrap().contains("job-result-store"),
        "{r}"
    );

    let out = c.tenure(&["jobs", "show", JOB, "--output", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["registry_status"], "RUNNING");
    assert_eq!(v["result"]["state"], "dirty");
    assert_eq!(v["counter"]["next_checkpoint_id"], 3);
    assert_eq!(v["checkpoints"].as_array().unwrap().len(), 2);
    assert_eq!(v["job_graph_fnv1a64"].as_str().unwrap().len(), 16);

    // The job manager still holds its lock: removal is refused and changes nothing.
    let out = c.tenure(&["jobs", "remove", JOB, "--yes"]).await;
    assert_error(&out, 5, jm.owner_id());
    // It goes away; its ephemeral lock goes with its session.
    jm.close().await.unwrap();
    let out = c
        .tenure(&["jobs", "remove", JOB, "--all-data", "--output", "json"])
        .await;
    assert_error(&out, 2, "--yes");
    let out = c
        .tenure(&[
            "jobs",
            "remove",
            JOB,
            "--all-data",
            "--yes",
            "--output",
            "json",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["removed"], true);
    assert_eq!(
        v["also_removed"],
        serde_json::json!([
            "checkpoints",
            "checkpoint_id_counter",
            "running_job_registry"
        ])
    );
    let out = c.tenure(&["jobs", "list", "--output", "json"]).await;
    assert_eq!(json(&out)["jobs"], serde_json::json!([]));
    let out = c
        .tenure(&["results", "mark-clean", JOB, "--yes", "--output", "json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    // With Flink's default delete-on-commit the clean result goes too: nothing of the job is left.
    let out = c.tenure(&["jobs", "show", JOB, "--output", "json"]).await;
    assert_error(&out, 3, JOB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_backend_ends_the_term_and_is_reported_by_watchers() {
    let mut c = Cluster::start().await;
    let mut watch = c.spawn(&["leaders", "--watch", "--output", "json"]);
    tokio::task::block_in_place(|| watch.stdout.wait_event("snapshot"));
    let mut run = c.spawn(&[
        "run",
        "--component",
        "resource_manager",
        "--grace",
        "5s",
        "--output",
        "json",
        "--",
        "sleep",
        "60",
    ]);
    tokio::task::block_in_place(|| {
        run.stderr.wait_event("started");
        let published = loop {
            let e = watch.stdout.wait_event("component");
            if e["component"] == "resource_manager" {
                break e;
            }
        };
        assert_eq!(published["state"], "leader");
    });
    // The server goes away: the connection is suspended, which revokes leadership (Flink's
    // default policy); the command is stopped and tenure exits with its status.
    c.server.stop();
    tokio::task::block_in_place(|| {
        run.stderr.wait_event("leadership_lost");
        assert_eq!(run.wait(), Some(143));
        let conn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            watch.stdout.wait_event("connection")
        }))
        .unwrap_or_else(|_| panic!("watch stderr: {:?}", watch.stderr.drain()));
        // Suspended, or already lost if the client gave the session up meanwhile.
        assert!(
            conn["state"] == "suspended" || conn["state"] == "lost",
            "{conn}"
        );
    });
    watch.signal("-TERM");
    assert_eq!(tokio::task::block_in_place(|| watch.wait()), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_restart_campaigns_again_after_losing_leadership() {
    let c = Cluster::start().await;
    let raw = c.client().await;
    let mut t = c.spawn(&[
        "run",
        "--component",
        "dispatcher",
        "--restart",
        "--grace",
        "5s",
        "--output",
        "json",
        "--",
        "sleep",
        "60",
    ]);
    let first = tokio::task::block_in_place(|| {
        t.stderr.wait_event("started");
        t.stderr
            .seen
            .iter()
            .rev()
            .find(|l| l.contains("\"elected\""))
            .cloned()
            .unwrap()
    });
    let latch = c.path("leader/dispatcher/latch");
    let nodes = raw.list_children(&latch).await.unwrap();
    raw.delete(&format!("{latch}/{}", nodes[0]), None)
        .await
        .unwrap();
    let second = tokio::task::block_in_place(|| {
        t.stderr.wait_event("leadership_lost");
        let exited = t.stderr.wait_event("exited");
        assert_eq!(exited["signal"], 15);
        let elected = t.stderr.wait_event("elected");
        t.stderr.wait_event("started");
        elected
    });
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_ne!(first["session_id"], second["session_id"], "a new term");
    t.signal("-TERM");
    assert_eq!(tokio::task::block_in_place(|| t.wait()), Some(143));
}
