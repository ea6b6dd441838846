//! The commands' readers and writers against the embedded backend, with tenure's and Flink's
//! data side by side (one process, two sessions of one embedded cluster).

use std::sync::Arc;

use bytes::Bytes;
use tenure::embedded::EmbeddedCluster;
use tenure::ids::{CheckpointId, JobId};
use tenure::kv::CreateOptions;
use tenure::store::{ApplicationStatus, CompletedCheckpoint, JobResultEntry};
use tenure::{HaConfig, HaServices, HaServicesOptions};

use super::{checkpoints, jobs, results};
use crate::conn::Connection;
use crate::exit::{NOT_FOUND, REFUSED, USAGE};
use crate::inspect::{self, LeaderSnapshot};

/// A Java-serialized Flink state handle naming `uri` (the tail of a real one).
fn flink_handle(uri: &str) -> Bytes {
    let mut bytes = vec![0xAC, 0xED, 0x00, 0x05, 0x73, 0x72, 0x00, 0x01, b't'];
    bytes.extend_from_slice(&[0x74, 0x00, uri.len() as u8]);
    bytes.extend_from_slice(uri.as_bytes());
    bytes.push(0x78);
    Bytes::from(bytes)
}

fn persistent() -> CreateOptions {
    CreateOptions::default()
}

struct Fixture {
    cluster: EmbeddedCluster,
    options: HaServicesOptions,
    writer: HaServices,
    tenure_job: JobId,
    flink_job: JobId,
}

impl Fixture {
    async fn new() -> Self {
        let cluster = EmbeddedCluster::new();
        let options = HaServicesOptions {
            blobs: tenure::blob::BlobStore::in_memory(),
            ..HaServicesOptions::default()
        };
        let writer = HaServices::new(Arc::new(cluster.connect()), options.clone());
        let tenure_job = JobId::new_random();
        let flink_job: JobId = "58c7b669261b7be65fa686cc039885b6".parse().expect("job id");
        let graphs = writer.admin_stores().job_graphs();
        graphs
            .put(tenure_job, Bytes::from(vec![b'g'; 4096]))
            .await
            .expect("put graph");
        let factory = writer.admin_stores().checkpoint_recovery_factory();
        let store = factory
            .create_completed_checkpoint_store(tenure_job, 5)
            .expect("checkpoint store");
        for id in [1u64, 2] {
            store
                .add(CompletedCheckpoint {
                    job_id: tenure_job,
                    id: CheckpointId(id),
                    timestamp_ms: 1000 + id,
                    metadata: Bytes::from(vec![b'm'; 2000 * id as usize]),
                })
                .await
                .expect("add checkpoint");
        }
        factory
            .create_checkpoint_id_counter(tenure_job)
            .set(CheckpointId(3))
            .await
            .expect("counter");
        // What a real Flink cluster writes (reference §9).
        let kv = writer.backend().kv();
        let fj = flink_job.to_string();
        for (key, value) in [
            (
                format!("execution-plans/{fj}"),
                flink_handle("file:/ha/peer1/submittedExecutionPlan0123456789ab"),
            ),
            (
                format!("execution-plans/{fj}/locks"),
                Bytes::from_static(b"127.0.0.1"),
            ),
            (
                format!("jobs/{fj}/checkpoints/0000000000000000042"),
                flink_handle("file:/ha/peer1/completedCheckpoint2e1519c07c46"),
            ),
            (
                format!("jobs/{fj}/checkpoint_id_counter"),
                Bytes::copy_from_slice(&43i32.to_be_bytes()),
            ),
        ] {
            kv.create(&key, value, persistent()).await.expect("create");
        }
        kv.create(
            &format!("execution-plans/{fj}/locks/flink-owner"),
            Bytes::new(),
            CreateOptions {
                ephemeral: true,
                fence: None,
            },
        )
        .await
        .expect("lock");
        writer
            .job_result_store()
            .create_dirty(&JobResultEntry::new(
                flink_job,
                ApplicationStatus::Succeeded,
                1961,
            ))
            .await
            .expect("result");
        writer
            .admin_stores()
            .running_jobs()
            .set_running(tenure_job)
            .await
            .expect("registry");
        Self {
            cluster,
            options,
            writer,
            tenure_job,
            flink_job,
        }
    }

    fn reader(&self) -> Connection {
        Connection {
            config: HaConfig::embedded(),
            services: HaServices::new(Arc::new(self.cluster.connect()), self.options.clone()),
        }
    }
}

#[tokio::test]
async fn lists_tenure_and_flink_job_graphs_and_checkpoints() {
    let f = Fixture::new().await;
    let conn = f.reader();
    let s = &conn.services;
    let graphs = jobs::list(s).await.expect("list");
    assert_eq!(graphs.len(), 2);
    let ours = graphs
        .iter()
        .find(|g| g.job_id == f.tenure_job.to_string())
        .expect("tenure graph");
    assert_eq!(ours.origin.origin, "tenure");
    assert_eq!(ours.origin.storage, Some("blob"));
    assert_eq!(ours.origin.size_bytes, Some(4096));
    assert_eq!(ours.locks, vec![f.writer.owner_id().to_owned()]);
    let theirs = graphs
        .iter()
        .find(|g| g.job_id == f.flink_job.to_string())
        .expect("flink graph");
    assert_eq!(theirs.origin.origin, "flink");
    assert_eq!(
        theirs.origin.file.as_deref(),
        Some("file:/ha/peer1/submittedExecutionPlan0123456789ab")
    );
    assert_eq!(theirs.locks, vec!["flink-owner".to_owned()]);
    let json = serde_json::to_value(theirs).expect("json");
    for field in [
        "job_id",
        "key",
        "origin",
        "storage",
        "blob",
        "size_bytes",
        "file",
        "detail",
        "locks",
        "marked_for_deletion",
    ] {
        assert!(json.get(field).is_some(), "{field} missing in {json}");
    }

    let cps = checkpoints::list(s, f.tenure_job)
        .await
        .expect("checkpoints");
    assert_eq!(cps.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(cps[1].timestamp_ms, Some(1002));
    assert_eq!(cps[1].metadata_bytes, Some(4000));
    assert_eq!(cps[1].origin.storage, Some("blob"));
    let flink_cps = checkpoints::list(s, f.flink_job)
        .await
        .expect("checkpoints");
    assert_eq!(flink_cps.len(), 1);
    assert_eq!(flink_cps[0].id, 42);
    assert_eq!(flink_cps[0].origin.origin, "flink");
    assert_eq!(
        flink_cps[0].origin.file.as_deref(),
        Some("file:/ha/peer1/completedCheckpoint2e1519c07c46")
    );
    let counter = checkpoints::counter(s, f.flink_job).await.expect("counter");
    assert!(counter.exists);
    assert_eq!(counter.next_checkpoint_id, Some(43));
    let none = checkpoints::counter(s, JobId::new_random())
        .await
        .expect("counter");
    assert!(!none.exists);

    let results = results::list(s, false).await.expect("results");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].state, "dirty");
    assert_eq!(results[0].application_status, "SUCCEEDED");
    assert_eq!(results[0].net_runtime_ms, 1961);
}

#[tokio::test]
async fn removing_a_graph_refuses_flink_data_locks_and_live_leaders() {
    let f = Fixture::new().await;
    let conn = f.reader();
    let remove = |job, yes, force| jobs::RemoveArgs {
        job,
        yes,
        force,
        all_data: true,
    };
    // Flink's own graph is never removed piecemeal.
    let e = jobs::remove(&conn, &remove(f.flink_job, true, true))
        .await
        .expect_err("flink's");
    assert!(e.to_string().contains("written by Flink"), "{e}");
    // Another live process holds a lock on tenure's graph.
    let e = jobs::remove(&conn, &remove(f.tenure_job, true, false))
        .await
        .expect_err("locked");
    assert_eq!(e.code(), REFUSED);
    assert!(e.to_string().contains(f.writer.owner_id()), "{e}");
    // A live leader: refused even with the locks gone.
    let mut election = f
        .writer
        .dispatcher_leader_election()
        .await
        .expect("election");
    let term = election.wait_for_leadership().await.expect("leader");
    assert!(
        election
            .confirm(
                term.session_id,
                "pekko.tcp://flink@jm:6123/user/rpc/dispatcher_1"
            )
            .await
            .expect("confirm")
    );
    let snap = LeaderSnapshot::read(
        conn.services.backend().kv().as_ref(),
        conn.services.layout(),
    )
    .await
    .expect("snapshot");
    assert!(snap.is_live());
    let e = inspect::guard(
        conn.services.backend().kv().as_ref(),
        conn.services.layout(),
        "writing",
        false,
    )
    .await
    .expect_err("live");
    assert!(e.to_string().contains("dispatcher led by session"), "{e}");
    election.stop().await.expect("stop");
    // Without --yes nothing changes.
    let e = jobs::remove(&conn, &remove(f.tenure_job, false, true))
        .await
        .expect_err("no --yes");
    assert_eq!(e.code(), USAGE);
    assert!(
        jobs::graph_info(&conn.services, f.tenure_job)
            .await
            .expect("info")
            .is_some()
    );
    // --force removes the other process's lock, the graph and all the job's data.
    let r = jobs::remove(&conn, &remove(f.tenure_job, true, true))
        .await
        .expect("removed");
    assert!(r.removed);
    assert_eq!(r.locks_removed, vec![f.writer.owner_id().to_owned()]);
    assert!(
        jobs::graph_info(&conn.services, f.tenure_job)
            .await
            .expect("info")
            .is_none()
    );
    assert!(
        checkpoints::list(&conn.services, f.tenure_job)
            .await
            .expect("cps")
            .is_empty()
    );
    assert!(
        !checkpoints::counter(&conn.services, f.tenure_job)
            .await
            .expect("counter")
            .exists
    );
    let e = jobs::remove(&conn, &remove(f.tenure_job, true, true))
        .await
        .expect_err("gone");
    assert_eq!(e.code(), NOT_FOUND);
}
