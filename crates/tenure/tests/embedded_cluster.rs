//! The embedded backend as an explicit value: services of one `EmbeddedCluster` share
//! elections and data, `connect` with the embedded mode makes a private cluster.

use std::time::Duration;

use bytes::Bytes;
use tenure::election::{LeaderElection, LeaderTerm};
use tenure::ids::{CheckpointId, JobId};
use tenure::store::CompletedCheckpoint;
use tenure::{EmbeddedCluster, HaConfig, HaError};

/// How long a test waits for something that should happen at once.
const DEADLINE: Duration = Duration::from_secs(20);

async fn leads(election: &mut LeaderElection) -> LeaderTerm {
    tokio::time::timeout(DEADLINE, election.wait_for_leadership())
        .await
        .expect("granted in time")
        .expect("granted")
}

#[tokio::test]
async fn services_of_one_cluster_share_an_election_and_the_second_takes_over() {
    let cluster = EmbeddedCluster::new();
    let config = HaConfig::builder().cluster_id("shared").build().unwrap();
    let first = cluster.services(&config).unwrap();
    let second = cluster.services(&config).unwrap();
    let mut a = first.dispatcher_leader_election().await.unwrap();
    let term_a = leads(&mut a).await;
    let mut b = second.dispatcher_leader_election().await.unwrap();
    // b's place on the latch is behind a's: it waits while a leads, and sees a as the leader.
    assert!(b.current().term().is_none(), "two leaders on one cluster");
    a.confirm(term_a.session_id, "akka://a").await.unwrap();
    let retriever = second.dispatcher_leader_retriever();
    let mut seen = retriever.leader();
    let published = tokio::time::timeout(
        DEADLINE,
        seen.wait_for(|l| l.leader().is_some_and(|i| i.address == "akka://a")),
    )
    .await
    .expect("a's address seen in time")
    .is_ok(); // not holding the watch's borrow: the driver writes to it
    assert!(published);
    assert!(b.current().term().is_none(), "two leaders on one cluster");
    assert!(!term_a.is_over());

    first.close().await.unwrap();
    let term_b = leads(&mut b).await;
    assert!(term_a.is_over(), "a's term ended with its session");
    assert_ne!(term_a.session_id, term_b.session_id);
    assert_ne!(term_a.fencing_token, term_b.fencing_token);
    second.close().await.unwrap();
}

#[tokio::test]
async fn services_of_one_cluster_read_each_others_large_checkpoints() {
    let cluster = EmbeddedCluster::new();
    let config = HaConfig::builder().cluster_id("blobs").build().unwrap();
    let first = cluster.services(&config).unwrap();
    let second = cluster.services(&config).unwrap();
    let job = JobId::new_random();
    let checkpoint = CompletedCheckpoint {
        job_id: job,
        id: CheckpointId(1),
        timestamp_ms: 1,
        metadata: Bytes::from(vec![7u8; 4096]),
    };
    first
        .admin_stores()
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, 1)
        .unwrap()
        .add(checkpoint.clone())
        .await
        .unwrap();
    let recovered = second
        .admin_stores()
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, 1)
        .unwrap()
        .latest()
        .await
        .unwrap();
    assert_eq!(recovered, Some(checkpoint));
}

#[tokio::test]
async fn connect_with_the_embedded_mode_makes_a_private_cluster_each_time() {
    let first = tenure::connect(&HaConfig::embedded()).await.unwrap();
    let second = tenure::connect(&HaConfig::embedded()).await.unwrap();
    let mut a = first.dispatcher_leader_election().await.unwrap();
    let mut b = second.dispatcher_leader_election().await.unwrap();
    // Documented: two private clusters, two leaders.
    leads(&mut a).await;
    leads(&mut b).await;
}

#[tokio::test]
async fn an_embedded_cluster_refuses_another_mode_naming_the_key() {
    let config = HaConfig::zookeeper("127.0.0.1:2181")
        .storage_dir("/tmp/unused")
        .build()
        .unwrap();
    let err = EmbeddedCluster::new().services(&config).unwrap_err();
    assert!(matches!(err, HaError::Config(_)), "{err}");
    assert!(err.to_string().contains("high-availability.type"), "{err}");
}
