#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::blob::BlobStore;
use crate::embedded::{EmbeddedCluster, EmbeddedSession};
use crate::store::test_util::{CountingKv, kv, lead, stale_token};

fn factory(session: &EmbeddedSession, blobs: &BlobStore) -> CheckpointRecoveryFactory {
    factory_writing(session, blobs, Writes::Unfenced)
}

fn factory_writing(
    session: &EmbeddedSession,
    blobs: &BlobStore,
    writes: Writes,
) -> CheckpointRecoveryFactory {
    let codec = PayloadCodec::new(blobs.clone()).with_threshold(16);
    CheckpointRecoveryFactory::new(kv(session), Layout::default(), codec, writes)
}

fn cp(job: JobId, id: u64) -> CompletedCheckpoint {
    CompletedCheckpoint {
        job_id: job,
        id: CheckpointId(id),
        timestamp_ms: 1_700_000_000_000 + id,
        metadata: Bytes::from(format!(
            "metadata of checkpoint {id}, large enough for a blob"
        )),
    }
}

#[tokio::test]
async fn retains_the_newest_and_discards_oldest_first() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let job = JobId::new_random();
    let store = factory(&s, &blobs)
        .create_completed_checkpoint_store(job, 3)
        .unwrap();
    assert_eq!(store.latest().await.unwrap(), None);
    let mut subsumed = Vec::new();
    for id in 1..=5 {
        subsumed.extend(store.add(cp(job, id)).await.unwrap());
    }
    assert_eq!(subsumed, vec![CheckpointId(1), CheckpointId(2)]);
    let recovered = store.recover().await.unwrap();
    assert_eq!(recovered, vec![cp(job, 3), cp(job, 4), cp(job, 5)]);
    assert_eq!(store.latest().await.unwrap(), Some(cp(job, 5)));
    assert_eq!(
        blobs.list("").await.unwrap().len(),
        3,
        "subsumed blobs are gone"
    );
    assert!(
        blobs
            .list("")
            .await
            .unwrap()
            .iter()
            .all(|n| n.starts_with("completedCheckpoint"))
    );
    let mut keys = cluster.all_keys();
    keys.sort();
    assert_eq!(
        keys,
        (3..=5)
            .map(|i| Layout::default().checkpoint(&job, CheckpointId(i)))
            .collect::<Vec<_>>()
    );

    // A second store instance (another process, a later leader) sees the same.
    let other = factory(&cluster.connect(), &blobs)
        .create_completed_checkpoint_store(job, 3)
        .unwrap();
    assert_eq!(other.recover().await.unwrap(), recovered);
}

#[tokio::test]
async fn add_refuses_an_existing_id_and_a_foreign_job() {
    let s = EmbeddedCluster::new().connect();
    let blobs = BlobStore::in_memory();
    let job = JobId::new_random();
    let store = factory(&s, &blobs)
        .create_completed_checkpoint_store(job, 1)
        .unwrap();
    store.add(cp(job, 7)).await.unwrap();
    let err = store.add(cp(job, 7)).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert_eq!(
        blobs.list("").await.unwrap().len(),
        1,
        "the duplicate's blob is discarded"
    );
    let err = store.add(cp(JobId::new_random(), 8)).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");
    // Retaining 1: an older id added later never subsumes the newest.
    assert_eq!(store.add(cp(job, 3)).await.unwrap(), vec![CheckpointId(3)]);
    assert_eq!(store.recover().await.unwrap(), vec![cp(job, 7)]);
    let zero = factory(&s, &blobs).create_completed_checkpoint_store(job, 0);
    assert!(matches!(zero, Err(StoreError::InvalidArgument(_))));
    // Checkpoint ids start at 1: id 0 is refused by the constructor and by add.
    let err = store.add(cp(job, 0)).await.unwrap_err();
    assert!(err.to_string().contains("checkpoint id 0"), "{err}");
    assert!(CompletedCheckpoint::new(job, CheckpointId(0), 1, Bytes::new()).is_err());
    assert_eq!(
        CompletedCheckpoint::new(job, CheckpointId(9), 1, Bytes::from_static(b"m")).unwrap(),
        CompletedCheckpoint {
            job_id: job,
            id: CheckpointId(9),
            timestamp_ms: 1,
            metadata: Bytes::from_static(b"m"),
        }
    );
}

#[tokio::test]
async fn shutdown_keeps_a_suspended_job_and_cleans_a_terminal_one() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let job = JobId::new_random();
    let f = factory(&s, &blobs);
    let store = f.create_completed_checkpoint_store(job, 2).unwrap();
    let counter = f.create_checkpoint_id_counter(job);
    counter.start().await.unwrap();
    for id in 1..=2 {
        assert_eq!(counter.get_and_increment().await.unwrap(), CheckpointId(id));
        store.add(cp(job, id)).await.unwrap();
    }
    // Flink's ZooKeeper backend has an explicit directory key.
    s.create(
        &Layout::default().checkpoints_dir(&job),
        Bytes::new(),
        Default::default(),
    )
    .await
    .unwrap();
    for status in [JobStatus::Suspended] {
        store.shutdown(status).await.unwrap();
        counter.shutdown(status).await.unwrap();
        assert_eq!(store.recover().await.unwrap().len(), 2);
        assert_eq!(counter.get().await.unwrap(), CheckpointId(3));
    }
    for status in [JobStatus::Finished, JobStatus::Failed, JobStatus::Canceled] {
        assert!(status.is_globally_terminal());
    }
    assert!(!JobStatus::Suspended.is_globally_terminal());
    store.shutdown(JobStatus::Failed).await.unwrap();
    counter.shutdown(JobStatus::Failed).await.unwrap();
    assert!(cluster.all_keys().is_empty(), "{:?}", cluster.all_keys());
    assert!(blobs.list("").await.unwrap().is_empty());
    store.shutdown(JobStatus::Failed).await.unwrap();
}

#[tokio::test]
async fn an_unreadable_checkpoint_fails_recovery_naming_its_key() {
    let s = EmbeddedCluster::new().connect();
    let blobs = BlobStore::in_memory();
    let job = JobId::new_random();
    let store = factory(&s, &blobs)
        .create_completed_checkpoint_store(job, 5)
        .unwrap();
    store.add(cp(job, 1)).await.unwrap();
    store.add(cp(job, 2)).await.unwrap();
    // Keys that are not checkpoints are ignored.
    let dir = Layout::default().checkpoints_dir(&job);
    for other in [
        format!("{dir}/abc"),
        format!("{dir}/0000000000000000001/locks/x"),
    ] {
        s.create(&other, Bytes::from_static(b"?"), Default::default())
            .await
            .unwrap();
    }
    assert_eq!(store.recover().await.unwrap().len(), 2);
    // The blob of checkpoint 1 vanishes.
    let key1 = Layout::default().checkpoint(&job, CheckpointId(1));
    let value = s.get(&key1).await.unwrap().unwrap().value;
    let Payload::Blob { name, .. } = Payload::decode(&key1, &value).unwrap() else {
        panic!("checkpoint 1 is not in a blob")
    };
    blobs.delete(&name).await.unwrap();
    let err = store.recover().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { key, .. } if *key == key1),
        "{err}"
    );
    // A checkpoint stored under another id's key is corrupt too.
    let key3 = Layout::default().checkpoint(&job, CheckpointId(3));
    let wrong = Payload::Inline(encode_checkpoint(&cp(job, 4))).encode();
    s.create(&key3, wrong, Default::default()).await.unwrap();
    let err = store.latest().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { key, .. } if *key == key3),
        "{err}"
    );
}

#[tokio::test]
async fn flink_checkpoints_are_left_alone() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let job = JobId::new_random();
    let store = factory(&s, &blobs)
        .create_completed_checkpoint_store(job, 1)
        .unwrap();
    let flink_key = Layout::default().checkpoint(&job, CheckpointId(1));
    let mut flink = vec![0xAC, 0xED, 0x00, 0x05, 0x74, 0x00, 0x16];
    flink.extend_from_slice(b"file:/ha/completedChk1");
    s.create(&flink_key, Bytes::from(flink), Default::default())
        .await
        .unwrap();
    let err = store.recover().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Foreign { key, detail } if *key == flink_key && detail.contains("file:/ha/completedChk1")),
        "{err}"
    );
    assert_eq!(store.add(cp(job, 2)).await.unwrap(), vec![]);
    assert_eq!(store.add(cp(job, 3)).await.unwrap(), vec![CheckpointId(2)]);
    let err = store.shutdown(JobStatus::Canceled).await.unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    assert_eq!(cluster.all_keys(), vec![flink_key]);
    assert!(blobs.list("").await.unwrap().is_empty());
}

/// Retaining 2 with, among tenure's checkpoints 1, 4 and the ones added: a pointer to a corrupt
/// payload (2), Flink's own checkpoint (3), garbage (5) and a pointer to a missing blob (6).
/// Trimming subsumes only decodable checkpoints, counts only those, and keeps the others.
#[tokio::test]
async fn trimming_keeps_checkpoints_it_cannot_decode() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let job = JobId::new_random();
    let layout = Layout::default();
    let key = |id| layout.checkpoint(&job, CheckpointId(id));
    let writer = factory(&s, &blobs)
        .create_completed_checkpoint_store(job, 10)
        .unwrap();
    writer.add(cp(job, 1)).await.unwrap();
    writer.add(cp(job, 4)).await.unwrap();
    writer.add(cp(job, 6)).await.unwrap();
    let value6 = s.get(&key(6)).await.unwrap().unwrap().value;
    let Payload::Blob { name, .. } = Payload::decode(&key(6), &value6).unwrap() else {
        panic!("checkpoint 6 is not in a blob")
    };
    blobs.delete(&name).await.unwrap();
    let mut flink = vec![0xAC, 0xED, 0x00, 0x05, 0x74, 0x00, 0x16];
    flink.extend_from_slice(b"file:/ha/completedChk3");
    let undecodable = [
        (
            2,
            Payload::Inline(Bytes::from_static(b"not a checkpoint")).encode(),
        ),
        (3, Bytes::from(flink)),
        (5, Bytes::from_static(b"zzz")),
    ];
    for (id, value) in &undecodable {
        s.create(&key(*id), value.clone(), Default::default())
            .await
            .unwrap();
    }
    // A new leader's store, without a recovered view: it lists and decodes.
    let store = factory(&cluster.connect(), &blobs)
        .create_completed_checkpoint_store(job, 2)
        .unwrap();
    assert_eq!(store.add(cp(job, 7)).await.unwrap(), vec![CheckpointId(1)]);
    assert_eq!(store.add(cp(job, 8)).await.unwrap(), vec![CheckpointId(4)]);
    // Its cached view goes on counting only the decodable ones.
    assert_eq!(store.add(cp(job, 9)).await.unwrap(), vec![CheckpointId(7)]);
    let mut keys = cluster.all_keys();
    keys.sort();
    assert_eq!(keys, [2, 3, 5, 6, 8, 9].map(key).to_vec());
    for (id, value) in &undecodable {
        assert_eq!(
            &s.get(&key(*id)).await.unwrap().unwrap().value,
            value,
            "checkpoint {id} is untouched"
        );
    }
    assert_eq!(s.get(&key(6)).await.unwrap().unwrap().value, value6);
    // Recovery still refuses to skip over the corrupt ones.
    let err = store.recover().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { key: k, .. } if *k == key(2)),
        "{err}"
    );
}

#[tokio::test]
async fn stale_fence_writes_nothing() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let stale = stale_token(&cluster).await;
    let (good, _latch) = lead(&s, "leader/latch").await;
    let job = JobId::new_random();
    let fenced = factory_writing(&s, &blobs, Writes::Fenced(stale))
        .create_completed_checkpoint_store(job, 1)
        .unwrap();
    assert!(fenced.add(cp(job, 1)).await.unwrap_err().is_not_leader());
    assert!(cluster.all_keys().is_empty());
    assert!(blobs.list("").await.unwrap().is_empty());
    let leader = factory_writing(&s, &blobs, Writes::Fenced(good))
        .create_completed_checkpoint_store(job, 1)
        .unwrap();
    leader.add(cp(job, 1)).await.unwrap();
    assert!(
        fenced
            .shutdown(JobStatus::Finished)
            .await
            .unwrap_err()
            .is_not_leader()
    );
    assert_eq!(leader.recover().await.unwrap(), vec![cp(job, 1)]);
    assert_eq!(blobs.list("").await.unwrap().len(), 1);
}

#[test]
fn checkpoint_golden_bytes() {
    let job = JobId::from_bytes([0x11; 16]);
    let c = CompletedCheckpoint {
        job_id: job,
        id: CheckpointId(42),
        timestamp_ms: 0x0102,
        metadata: Bytes::from_static(b"md"),
    };
    let bytes = encode_checkpoint(&c);
    let mut expected = b"TCP1".to_vec();
    expected.extend_from_slice(&[0x11; 16]);
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 42]);
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
    expected.extend_from_slice(b"md");
    assert_eq!(&bytes[..], &expected[..]);
    assert_eq!(decode_checkpoint("k", &bytes).unwrap(), c);
    let err = decode_checkpoint("the/key", &bytes[..20]).unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { key, .. } if key == "the/key"));
}

proptest! {
    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = decode_checkpoint("k", &bytes);
        let mut with_magic = b"TCP1".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = decode_checkpoint("k", &with_magic);
    }

    #[test]
    fn checkpoints_round_trip(id: u64, ts: u64, md in proptest::collection::vec(any::<u8>(), 0..64)) {
        let c = CompletedCheckpoint {
            job_id: JobId::from_bytes([7; 16]),
            id: CheckpointId(id),
            timestamp_ms: ts,
            metadata: Bytes::from(md),
        };
        prop_assert_eq!(decode_checkpoint("k", &encode_checkpoint(&c)).unwrap(), c);
    }
}

#[tokio::test]
async fn add_and_subsume_are_one_write() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let counting = CountingKv::new(kv(&s));
    let codec = PayloadCodec::new(blobs.clone()).with_threshold(8);
    let job = JobId::new_random();
    let store = CompletedCheckpointStore::new(
        counting.clone(),
        Layout::default(),
        codec,
        job,
        2,
        Writes::Unfenced,
    )
    .unwrap();
    store.add(cp(job, 1)).await.unwrap();
    // The first add lists what is retained; later ones know it.
    assert_eq!(counting.take(), (1, 1));
    store.add(cp(job, 2)).await.unwrap();
    assert_eq!(counting.take(), (0, 1));
    // Adding the third subsumes the first in the same transaction.
    assert_eq!(store.add(cp(job, 3)).await.unwrap(), vec![CheckpointId(1)]);
    assert_eq!(counting.take(), (0, 1));
    let ids: Vec<u64> = store
        .recover()
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.0)
        .collect();
    assert_eq!(ids, vec![2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_through_clones_lose_nothing() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let codec = PayloadCodec::new(blobs.clone()).with_threshold(8);
    let job = JobId::new_random();
    let store = CompletedCheckpointStore::new(
        CountingKv::new(kv(&s)),
        Layout::default(),
        codec,
        job,
        2,
        Writes::Unfenced,
    )
    .unwrap();
    let tasks: Vec<_> = (1..=20)
        .map(|id| {
            let store = store.clone();
            tokio::spawn(async move { store.add(cp(job, id)).await })
        })
        .collect();
    let mut subsumed = Vec::new();
    for t in tasks {
        subsumed.extend(t.await.unwrap().unwrap().into_iter().map(|c| c.0));
    }
    subsumed.sort_unstable();
    assert_eq!(subsumed, (1..=18).collect::<Vec<_>>(), "each subsumed once");
    let mut keys = cluster.all_keys();
    keys.sort();
    assert_eq!(keys.len(), 2, "{keys:?}");
    // The view is exact: the next add subsumes exactly the older of the two.
    assert_eq!(
        store.add(cp(job, 21)).await.unwrap(),
        vec![CheckpointId(19)]
    );
    assert_eq!(blobs.list("").await.unwrap().len(), 2);
}
