//! `tenure jobs cleanup JOB` against a real ZooKeeper server (one per test, on a free loopback
//! port): guarded like the other destructive commands, removes everything the finished job left
//! and nothing of another job, marks the result clean, prints a table or JSON.

#![cfg(feature = "zookeeper")]
#![allow(clippy::unwrap_used)]

use crate::common;

use bytes::Bytes;
use common::{assert_error, json, stderr};
use tenure::ids::{CheckpointId, JobId};
use tenure::store::{ApplicationStatus, CompletedCheckpoint, JobResultEntry};
use tenure_testkit::zookeeper::ZooKeeperServer;

const JOB: &str = "58c7b669261b7be65fa686cc039885b6";
const OTHER: &str = "0123456789abcdef0123456789abcdef";

/// A ZooKeeper server, a cluster id and a storage dir.
struct Cluster {
    server: ZooKeeperServer,
    cluster_id: String,
    storage: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        Self {
            server: ZooKeeperServer::start().await,
            cluster_id: format!("/jobs-cleanup-{}", uuid::Uuid::new_v4().simple()),
            storage: tempfile::tempdir().unwrap(),
        }
    }

    /// The Flink keys of the cluster, for the CLI (`-D`) and for a job manager's services.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("high-availability.type", "zookeeper".into()),
            (
                "high-availability.zookeeper.quorum",
                self.server.connect_string(),
            ),
            (
                "high-availability.storageDir",
                self.storage.path().to_str().unwrap().into(),
            ),
            ("high-availability.cluster-id", self.cluster_id.clone()),
            (
                "high-availability.zookeeper.client.session-timeout",
                "4s".into(),
            ),
        ]
    }

    /// Runs `tenure cmd… -D key=value…` (off the async runtime's threads).
    async fn tenure(&self, cmd: &[&str]) -> std::process::Output {
        let mut args: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
        for (k, v) in self.pairs() {
            args.push("-D".into());
            args.push(format!("{k}={v}"));
        }
        common::tenure_async(args).await
    }

    /// The HA services of a job manager on the cluster.
    async fn services(&self) -> tenure::HaServices {
        let conf = tenure::Configuration::from_pairs(self.pairs());
        tenure::connect(&tenure::HaConfig::from_configuration(&conf).unwrap())
            .await
            .unwrap()
    }
}

/// Writes a job's graph (in a blob), two checkpoints, its counter and registry entry.
async fn write_job(jm: &tenure::HaServices, job: JobId) {
    let stores = jm.admin_stores();
    stores
        .job_graphs()
        .put(job, Bytes::from(vec![b'g'; 5000]))
        .await
        .unwrap();
    let cps = stores.checkpoints(job).unwrap();
    for id in 1..=2u64 {
        cps.add(CompletedCheckpoint {
            job_id: job,
            id: CheckpointId(id),
            timestamp_ms: id,
            metadata: Bytes::from(vec![id as u8; 3000]),
        })
        .await
        .unwrap();
    }
    stores.checkpoint_id_counter(job).start().await.unwrap();
    stores.running_jobs().set_done(job).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_cleanup_removes_a_finished_job_and_marks_its_result_clean() {
    let c = Cluster::start().await;
    let jm = c.services().await;
    let (job, other): (JobId, JobId) = (JOB.parse().unwrap(), OTHER.parse().unwrap());
    write_job(&jm, job).await;
    write_job(&jm, other).await;
    jm.job_result_store()
        .create_dirty(&JobResultEntry::new(job, ApplicationStatus::Succeeded, 9))
        .await
        .unwrap();

    // The job manager's session holds the graph locks: refused, nothing changed.
    let out = c.tenure(&["jobs", "cleanup", JOB, "--yes"]).await;
    assert_error(&out, 5, "live sessions own keys of the job");
    jm.close().await.unwrap();

    let out = c.tenure(&["jobs", "cleanup", JOB]).await;
    assert_error(&out, 2, "--yes");
    let out = c
        .tenure(&["jobs", "cleanup", JOB, "--dry-run", "--output", "json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = json(&out);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["result"], serde_json::Value::Null);
    let planned = plan["keys"].as_array().unwrap().clone();
    assert!(
        planned.contains(&format!("execution-plans/{JOB}").into()),
        "{plan}"
    );

    let out = c
        .tenure(&["jobs", "cleanup", JOB, "--yes", "--output", "json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let done = json(&out);
    assert_eq!(done["dry_run"], false);
    assert_eq!(done["result"], "marked-clean");
    assert_eq!(done["keys"].as_array().unwrap(), &planned);
    assert!(
        done["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.as_str().unwrap().contains(JOB)),
        "{done}"
    );
    // The graph's blob and the retained checkpoint's.
    assert_eq!(done["blobs"].as_array().unwrap().len(), 2, "{done}");

    // Nothing of the job is left (Flink's default delete-on-commit removed the clean result);
    // the other job is intact.
    let out = c.tenure(&["jobs", "show", JOB, "--output", "json"]).await;
    assert_error(&out, 3, JOB);
    let out = c.tenure(&["jobs", "cleanup", JOB, "--yes"]).await;
    assert_error(&out, 3, JOB);
    let out = c.tenure(&["jobs", "show", OTHER, "--output", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["registry_status"], "DONE");
    assert_eq!(v["checkpoints"].as_array().unwrap().len(), 1);
    assert_eq!(v["job_graph"]["job_id"], OTHER);

    // The table: one row per key and blob, and the result.
    let out = c.tenure(&["jobs", "cleanup", OTHER, "--yes"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("job {OTHER}: removed")), "{text}");
    assert!(text.contains("job result: no result"), "{text}");
    assert!(
        text.contains("WHAT") && text.contains("job graph"),
        "{text}"
    );
    assert!(text.contains("checkpoint id counter"), "{text}");
    assert!(
        text.contains("registry entry") && text.contains("blob"),
        "{text}"
    );
}
