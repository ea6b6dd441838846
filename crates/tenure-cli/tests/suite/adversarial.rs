//! Destructive commands as a careless or hostile operator would run them, against a real
//! ZooKeeper holding two clusters, foreign znodes, a namespace node with data and files around
//! the storage directory: everything outside the command's plan must be byte-identical
//! afterwards, and what a command reports removing is exactly what disappeared.

#![cfg(feature = "zookeeper")]
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{files, json, stderr};
use tenure::zookeeper::zk;
use tenure_testkit::zookeeper::ZooKeeperServer;

const JOB_A: &str = "58c7b669261b7be65fa686cc039885b6";
const JOB_B: &str = "0123456789abcdef0123456789abcdef";
const JOB_UNKNOWN: &str = "ffffffffffffffffffffffffffffffff";

/// Everything that exists: znodes (path ⇒ data) and files (path ⇒ bytes).
type World = BTreeMap<String, Vec<u8>>;

struct Setup {
    server: ZooKeeperServer,
    /// Holds `storage/` and files next to and above it.
    tmp: tempfile::TempDir,
}

impl Setup {
    fn storage(&self) -> PathBuf {
        self.tmp.path().join("outer/storage")
    }

    fn conn(&self) -> Vec<String> {
        [
            "--ha-type",
            "zookeeper",
            "--zookeeper-quorum",
            &self.server.connect_string(),
            "--storage-dir",
            self.storage().to_str().unwrap(),
            "-D",
            "high-availability.zookeeper.client.connection-timeout=5s",
            "-D",
            "high-availability.zookeeper.client.session-timeout=4s",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    async fn run(&self, extra: &[&str]) -> std::process::Output {
        let mut args = self.conn();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        common::tenure_async(args).await
    }

    async fn client(&self) -> zk::Client {
        zk::Client::connector()
            .with_session_timeout(std::time::Duration::from_secs(10))
            .connect(&self.server.connect_string())
            .await
            .unwrap()
    }

    /// Two clusters, foreign znodes, a namespace node with data, decoy files.
    async fn seed(server: ZooKeeperServer) -> Self {
        let s = Setup {
            server,
            tmp: tempfile::tempdir().unwrap(),
        };
        let c = s.client().await;
        let nodes: Vec<(String, &[u8])> = vec![
            // Cluster a: its HA data ...
            (
                format!("/flink/a/execution-plans/{JOB_A}"),
                b"TNR\x01\x00graph",
            ),
            (
                format!("/flink/a/jobs/{JOB_A}/checkpoints/0000000000000000001"),
                b"TNR\x01\x00cp",
            ),
            (
                format!("/flink/a/jobs/{JOB_A}/checkpoint_id_counter"),
                b"\x00\x00\x00\x02",
            ),
            (format!("/flink/a/running_job_registry/{JOB_A}"), b"DONE"),
            // ... and what is not its to delete.
            ("/flink/a/notes".into(), b"an operator's note"),
            ("/flink/a/leader/latch/junk\u{2603}".into(), b""),
            (
                format!("/flink/a/b/jobs/{JOB_B}/checkpoint_id_counter"),
                b"\x00\x00\x00\x07",
            ),
            // Another cluster.
            (
                format!("/flink/cluster-b/execution-plans/{JOB_B}"),
                b"TNR\x01\x00b",
            ),
            // A namespace node holding data, with a foreign child.
            ("/important/data".into(), b"13 bytes here"),
            ("/important/data/config".into(), b"keep"),
        ];
        for (path, data) in &nodes {
            put(&c, path, data).await;
        }
        let files: Vec<(PathBuf, &[u8])> = vec![
            (
                s.storage().join("a/completedCheckpoint0123456789ab"),
                b"a's",
            ),
            (s.storage().join("a/notes.txt"), b"not a blob"),
            (
                s.storage().join("a/b/completedCheckpoint0123456789ab"),
                b"b's",
            ),
            (
                s.storage()
                    .join("cluster-b/submittedExecutionPlanabcdef012345"),
                b"b",
            ),
            (
                s.storage()
                    .join(format!("job-result-store/a/{JOB_A}_DIRTY.json")),
                b"{}",
            ),
            (s.storage().join("job-result-store/a/readme.txt"), b"keep"),
            (
                s.storage()
                    .join(format!("job-result-store/cluster-b/{JOB_B}_DIRTY.json")),
                b"{}",
            ),
            (s.storage().join("next-to-clusters.txt"), b"keep"),
            (s.tmp.path().join("outer/above-storage.txt"), b"keep"),
            (s.tmp.path().join("two-levels-up.txt"), b"keep"),
        ];
        for (path, data) in files {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        }
        s
    }

    async fn world(&self) -> World {
        let mut w = World::new();
        let c = self.client().await;
        let mut stack = vec!["/".to_owned()];
        while let Some(path) = stack.pop() {
            if path == "/zookeeper" {
                continue;
            }
            let (data, _) = c.get_data(&path).await.unwrap();
            w.insert(format!("zk:{path}"), data);
            for child in c.list_children(&path).await.unwrap() {
                stack.push(if path == "/" {
                    format!("/{child}")
                } else {
                    format!("{path}/{child}")
                });
            }
        }
        for f in files(self.tmp.path()) {
            let data = std::fs::read(&f).unwrap();
            w.insert(format!("file:{}", f.display()), data);
        }
        w
    }
}

async fn put(c: &zk::Client, path: &str, data: &[u8]) {
    let mode = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let parent = path.rsplit_once('/').unwrap().0;
    if !parent.is_empty() {
        match c.mkdir(parent, &mode).await {
            Ok(()) | Err(zk::Error::NodeExists) => {}
            Err(e) => panic!("mkdir {parent}: {e}"),
        }
    }
    match c.create(path, data, &mode).await {
        Ok(_) => {}
        Err(zk::Error::NodeExists) => {
            c.set_data(path, data, None).await.unwrap();
        }
        Err(e) => panic!("create {path}: {e}"),
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_cluster_ids_and_roots_change_nothing() {
    let s = Setup::seed(ZooKeeperServer::start().await).await;
    let before = s.world().await;
    // Ids that escaped the storage dir, cut paths short or named every cluster: refused up front.
    for id in [
        "%2e%2e/%2e%2e",
        "cluster-b#x",
        "cluster-b?x",
        " ",
        "..",
        "a/../cluster-b",
        "a\u{1b}[2J",
    ] {
        let out = s.run(&["cleanup", "--cluster-id", id, "--yes"]).await;
        assert_eq!(out.status.code(), Some(2), "{id:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("high-availability.cluster-id"),
            "{id:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            s.world().await,
            before,
            "cleanup --cluster-id {id:?} changed something"
        );
    }
    // A root that covers other clusters, and a namespace node holding data: nothing of theirs
    // matches the HA layout, so nothing goes, forced or not.
    for (root, id) in [("/", "flink"), ("/important", "data")] {
        for extra in [&["--yes"][..], &["--yes", "--force"][..]] {
            let mut args = vec!["cleanup", "--zookeeper-root", root, "--cluster-id", id];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["--output", "json"]);
            let out = s.run(&args).await;
            assert!(out.status.success(), "{root} {id}: {}", stderr(&out));
            let report = json(&out);
            if !extra.contains(&"--force") || root == "/" {
                assert_eq!(report["keys"], serde_json::json!([]), "{report:#}");
            }
            if root == "/" {
                assert_eq!(s.world().await, before, "root {root}, cluster {id}");
            }
        }
    }
    // Forced on /important/data: the foreign child goes, the node holding data never does.
    let after = s.world().await;
    assert_eq!(
        after.get("zk:/important/data").map(Vec::as_slice),
        Some(&b"13 bytes here"[..])
    );
    assert!(after.contains_key("zk:/important"));
    // Hostile job ids for every command that deletes or writes by job: refused, nothing changed.
    let mut now = s.world().await;
    for job in ["../x", "%2e%2e", "a/../b", " ", "#"] {
        for cmd in [
            vec!["jobs", "remove", job, "--yes"],
            vec!["results", "mark-clean", job, "--yes"],
            vec!["counter", "set", job, "5", "--yes"],
        ] {
            let mut args = vec!["--cluster-id", "a"];
            args.extend(cmd.iter().copied());
            let out = s.run(&args).await;
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            let w = s.world().await;
            assert_eq!(w, now, "{args:?} changed something");
            now = w;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_exactly_its_plan_and_reports_exactly_that() {
    let s = Setup::seed(ZooKeeperServer::start().await).await;
    let before = s.world().await;
    let dry = s
        .run(&[
            "cleanup",
            "--cluster-id",
            "a",
            "--dry-run",
            "--output",
            "json",
        ])
        .await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(s.world().await, before, "a dry run writes nothing");
    assert!(
        !s.storage().join("job-result-store/a-missing").exists()
            && !s.storage().join("a-missing").exists(),
        "precondition"
    );
    let read = s
        .run(&["cleanup", "--cluster-id", "a-missing", "--dry-run"])
        .await;
    assert!(read.status.success(), "{}", stderr(&read));
    assert!(
        !s.storage().join("job-result-store/a-missing").exists()
            && !s.storage().join("a-missing").exists(),
        "a dry run creates no directories"
    );
    let plan = json(&dry);
    let out = s
        .run(&["cleanup", "--cluster-id", "a", "--yes", "--output", "json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let done = json(&out);
    for field in ["keys", "blobs", "job_result_files"] {
        assert_eq!(
            strings(&plan[field]),
            strings(&done[field]),
            "the dry run's {field} are what was removed"
        );
    }
    // What disappeared is exactly what was reported.
    let storage = s.storage();
    let mut reported: Vec<String> = strings(&done["keys"])
        .iter()
        .map(|k| format!("zk:/flink/a/{k}"))
        .collect();
    reported.extend(
        strings(&done["namespace_removed"])
            .iter()
            .map(|n| format!("zk:{n}")),
    );
    reported.extend(
        strings(&done["blobs"])
            .iter()
            .map(|b| format!("file:{}", storage.join("a").join(b).display())),
    );
    reported.extend(strings(&done["job_result_files"]).iter().map(|f| {
        format!(
            "file:{}",
            storage.join("job-result-store/a").join(f).display()
        )
    }));
    reported.sort();
    let after = s.world().await;
    let mut gone: Vec<String> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    gone.sort();
    assert_eq!(gone, reported, "reported removals equal actual removals");
    for (k, v) in &after {
        assert_eq!(before.get(k), Some(v), "{k} changed or appeared");
    }
    // The cluster's HA data went; the decoys stayed.
    for k in [
        format!("zk:/flink/a/execution-plans/{JOB_A}"),
        format!("zk:/flink/a/jobs/{JOB_A}/checkpoint_id_counter"),
        format!(
            "file:{}",
            storage.join("a/completedCheckpoint0123456789ab").display()
        ),
        format!(
            "file:{}",
            storage
                .join(format!("job-result-store/a/{JOB_A}_DIRTY.json"))
                .display()
        ),
    ] {
        assert!(!after.contains_key(&k), "{k} should be gone");
    }
    for k in [
        "zk:/flink/a/notes".to_owned(),
        "zk:/flink/a/leader/latch/junk\u{2603}".to_owned(),
        format!("zk:/flink/a/b/jobs/{JOB_B}/checkpoint_id_counter"),
        format!("zk:/flink/cluster-b/execution-plans/{JOB_B}"),
        format!("file:{}", storage.join("a/notes.txt").display()),
        format!(
            "file:{}",
            storage
                .join("a/b/completedCheckpoint0123456789ab")
                .display()
        ),
        format!(
            "file:{}",
            storage.join("job-result-store/a/readme.txt").display()
        ),
    ] {
        assert!(after.contains_key(&k), "{k} must stay");
    }
    let kept: Vec<String> = done["kept_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(kept.contains(&"notes".to_owned()), "{kept:?}");
    assert!(kept.iter().any(|k| k.starts_with("b/")), "{kept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_cleanup_adds_only_foreign_data_of_its_own_namespace() {
    let s = Setup::seed(ZooKeeperServer::start().await).await;
    let before = s.world().await;
    let out = s
        .run(&[
            "cleanup",
            "--cluster-id",
            "a",
            "--yes",
            "--force",
            "--output",
            "json",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let done = json(&out);
    assert!(
        strings(&done["forced_keys"]).contains(&"notes".to_owned()),
        "{done:#}"
    );
    assert!(strings(&done["forced_blobs"]).contains(&"notes.txt".to_owned()));
    let after = s.world().await;
    let storage = s.storage();
    // Another cluster's data below this one, other clusters and files around stay.
    for k in [
        format!("zk:/flink/a/b/jobs/{JOB_B}/checkpoint_id_counter"),
        format!("zk:/flink/cluster-b/execution-plans/{JOB_B}"),
        format!(
            "file:{}",
            storage
                .join("a/b/completedCheckpoint0123456789ab")
                .display()
        ),
        format!(
            "file:{}",
            storage
                .join("cluster-b/submittedExecutionPlanabcdef012345")
                .display()
        ),
        format!("file:{}", storage.join("next-to-clusters.txt").display()),
        format!(
            "file:{}",
            s.tmp.path().join("outer/above-storage.txt").display()
        ),
    ] {
        assert_eq!(after.get(&k), before.get(&k), "{k} must stay as it was");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_job_result_path_loses_only_the_clusters_own_results() {
    let s = Setup::seed(ZooKeeperServer::start().await).await;
    let shared = s.tmp.path().join("shared-results");
    std::fs::create_dir_all(&shared).unwrap();
    for name in [
        format!("{JOB_A}_DIRTY.json"),
        format!("{JOB_UNKNOWN}_DIRTY.json"),
        format!("{JOB_B}.json"),
        "unrelated.txt".to_owned(),
    ] {
        std::fs::write(shared.join(name), b"{}").unwrap();
    }
    let before = s.world().await;
    let define = format!("job-result-store.storage-path={}", shared.display());
    let out = s
        .run(&[
            "cleanup",
            "--cluster-id",
            "a",
            "-D",
            &define,
            "--yes",
            "--force",
            "--output",
            "json",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let done = json(&out);
    assert_eq!(
        strings(&done["job_result_files"]),
        [format!("{JOB_A}_DIRTY.json")]
    );
    let after = s.world().await;
    for name in [
        format!("{JOB_UNKNOWN}_DIRTY.json"),
        format!("{JOB_B}.json"),
        "unrelated.txt".to_owned(),
    ] {
        let k = format!("file:{}", shared.join(&name).display());
        assert_eq!(after.get(&k), before.get(&k), "{name} must stay");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_one_job_touches_nothing_of_other_jobs_or_clusters() {
    let s = Setup::seed(ZooKeeperServer::start().await).await;
    let before = s.world().await;
    let out = s
        .run(&[
            "--cluster-id",
            "a",
            "jobs",
            "remove",
            JOB_A,
            "--all-data",
            "--yes",
            "--output",
            "json",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let after = s.world().await;
    let own = [
        format!("zk:/flink/a/execution-plans/{JOB_A}"),
        format!("zk:/flink/a/jobs/{JOB_A}"),
        format!("zk:/flink/a/running_job_registry/{JOB_A}"),
    ];
    for (k, v) in &before {
        if own
            .iter()
            .any(|o| k == o || k.starts_with(&format!("{o}/")))
        {
            continue;
        }
        assert_eq!(after.get(k), Some(v), "{k} is not job {JOB_A}'s");
    }
    assert!(!after.contains_key(&own[0]), "the job graph went");
    for (k, v) in &after {
        assert_eq!(before.get(k), Some(v), "{k} changed or appeared");
    }
}
