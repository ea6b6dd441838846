#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;
use crate::blob::BlobStore;
use crate::embedded::{EmbeddedCluster, EmbeddedSession};
use crate::store::test_util::{CountingKv, kv, lead, stale_token};

fn store(session: &EmbeddedSession, blobs: &BlobStore, owner: &str) -> JobGraphStore {
    let codec = PayloadCodec::new(blobs.clone()).with_threshold(8);
    JobGraphStore::new(
        kv(session),
        Layout::default(),
        codec,
        owner,
        Writes::Unfenced,
    )
    .unwrap()
}

const BIG: &[u8] = b"a job graph larger than the threshold";

async fn next_event(w: &mut JobGraphWatch) -> JobGraphEvent {
    tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("no event in time")
        .expect("watch ended")
}

#[tokio::test]
async fn put_get_recover_and_list() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let a = store(&s, &blobs, "owner-a");
    let job = JobId::new_random();
    assert_eq!(a.get(job).await.unwrap(), None);
    assert!(matches!(a.recover(job).await, Err(StoreError::NotFound(_))));
    a.put(job, Bytes::from_static(BIG)).await.unwrap();
    assert_eq!(a.get(job).await.unwrap().unwrap(), BIG);
    assert_eq!(a.recover(job).await.unwrap(), BIG);
    assert_eq!(a.job_ids().await.unwrap(), vec![job]);
    let names = blobs.list("").await.unwrap();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("submittedExecutionPlan"), "{names:?}");
    let mut keys = cluster.all_keys();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            format!("execution-plans/{job}"),
            format!("execution-plans/{job}/locks"),
            format!("execution-plans/{job}/locks/owner-a"),
        ]
    );
    // Replacing keeps one blob: the old one is discarded.
    a.put(job, Bytes::from_static(b"a second, also large, job graph"))
        .await
        .unwrap();
    assert_eq!(
        a.get(job).await.unwrap().unwrap(),
        &b"a second, also large, job graph"[..]
    );
    assert_eq!(blobs.list("").await.unwrap().len(), 1);
    assert!(a.remove(job).await.unwrap());
    assert!(cluster.all_keys().is_empty());
    assert!(blobs.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn release_by_one_process_never_deletes_what_another_holds() {
    let cluster = EmbeddedCluster::new();
    let (sa, sb) = (cluster.connect(), cluster.connect());
    let blobs = BlobStore::in_memory();
    let (a, b) = (store(&sa, &blobs, "a"), store(&sb, &blobs, "b"));
    let job = JobId::new_random();
    a.put(job, Bytes::from_static(BIG)).await.unwrap();
    assert_eq!(b.recover(job).await.unwrap(), BIG);

    a.release(job).await.unwrap();
    assert!(!a.remove(job).await.unwrap(), "b still holds a lock");
    assert_eq!(b.get(job).await.unwrap().unwrap(), BIG);
    assert_eq!(blobs.list("").await.unwrap().len(), 1);

    b.release(job).await.unwrap();
    assert_eq!(
        b.get(job).await.unwrap().unwrap(),
        BIG,
        "release keeps data"
    );
    assert!(b.remove(job).await.unwrap());
    assert!(cluster.all_keys().is_empty());
    assert!(blobs.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn remove_waits_for_other_locks_but_a_crashed_process_holds_none() {
    let cluster = EmbeddedCluster::new();
    let (sa, sb) = (cluster.connect(), cluster.connect());
    let blobs = BlobStore::in_memory();
    let (a, b) = (store(&sa, &blobs, "a"), store(&sb, &blobs, "b"));
    let job = JobId::new_random();
    a.put(job, Bytes::from_static(BIG)).await.unwrap();
    b.recover(job).await.unwrap();
    // a's removal attempt releases a's lock but leaves the graph for b.
    assert!(!a.remove(job).await.unwrap());
    a.recover(job).await.unwrap();
    sb.kill();
    assert!(a.remove(job).await.unwrap());
    assert!(cluster.all_keys().is_empty());
    assert_eq!(a.get(job).await.unwrap(), None);
}

#[tokio::test]
async fn release_all_drops_only_own_locks() {
    let cluster = EmbeddedCluster::new();
    let (sa, sb) = (cluster.connect(), cluster.connect());
    let blobs = BlobStore::in_memory();
    let (a, b) = (store(&sa, &blobs, "a"), store(&sb, &blobs, "b"));
    let (j1, j2) = (JobId::new_random(), JobId::new_random());
    a.put(j1, Bytes::from_static(b"1")).await.unwrap();
    a.put(j2, Bytes::from_static(b"2")).await.unwrap();
    b.recover(j1).await.unwrap();
    a.release_all().await.unwrap();
    let locks: Vec<String> = cluster
        .all_keys()
        .into_iter()
        .filter(|k| k.contains("/locks/"))
        .collect();
    assert_eq!(locks, vec![format!("execution-plans/{j1}/locks/b")]);
    assert_eq!(a.job_ids().await.unwrap().len(), 2);
}

#[tokio::test]
async fn marked_for_deletion_leftover_is_cleaned_on_put() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let a = store(&s, &blobs, "a");
    let job = JobId::new_random();
    a.put(job, Bytes::from_static(BIG)).await.unwrap();
    // An interrupted removal: own lock and `locks` deleted, blob and graph left.
    let layout = Layout::default();
    s.delete(&layout.job_graph_lock(&job, "a"), Default::default())
        .await
        .unwrap();
    s.delete(&layout.job_graph_locks(&job), Default::default())
        .await
        .unwrap();
    let old_blob = blobs.list("").await.unwrap();
    assert!(matches!(a.recover(job).await, Err(StoreError::NotFound(_))));
    assert!(
        !cluster.all_keys().iter().any(|k| k.contains("/locks/")),
        "recover backed off"
    );

    a.put(job, Bytes::from_static(b"the new graph, large"))
        .await
        .unwrap();
    let blobs_now = blobs.list("").await.unwrap();
    assert_eq!(blobs_now.len(), 1);
    assert_ne!(blobs_now, old_blob, "the leftover's blob is discarded");
    assert_eq!(a.recover(job).await.unwrap(), &b"the new graph, large"[..]);
    assert!(
        cluster
            .all_keys()
            .contains(&layout.job_graph_lock(&job, "a"))
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

    let fenced = store(&s, &blobs, "a").with_writes(Writes::Fenced(stale.clone()));
    let err = fenced.put(job, Bytes::from_static(BIG)).await.unwrap_err();
    assert!(err.is_not_leader(), "{err}");
    assert!(cluster.all_keys().is_empty());
    assert!(
        blobs.list("").await.unwrap().is_empty(),
        "unwritten blob discarded"
    );

    let leader = store(&s, &blobs, "a").with_writes(Writes::Fenced(good));
    leader.put(job, Bytes::from_static(BIG)).await.unwrap();
    let before = cluster.all_keys();
    let err = fenced
        .put(job, Bytes::from_static(b"replacement graph!"))
        .await
        .unwrap_err();
    assert!(err.is_not_leader(), "{err}");
    let err = fenced.remove(job).await.unwrap_err();
    assert!(err.is_not_leader(), "{err}");
    assert_eq!(cluster.all_keys(), before);
    assert_eq!(leader.get(job).await.unwrap().unwrap(), BIG);
    assert_eq!(blobs.list("").await.unwrap().len(), 1);
    assert!(leader.remove(job).await.unwrap());
}

#[tokio::test]
async fn flink_graphs_are_foreign_and_never_touched() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let a = store(&s, &BlobStore::in_memory(), "a");
    let job = JobId::new_random();
    let key = Layout::default().job_graph(&job);
    let mut flink = vec![0xAC, 0xED, 0x00, 0x05, 0x74, 0x00, 0x0F];
    flink.extend_from_slice(b"file:/ha/plan01");
    s.create(&key, Bytes::from(flink.clone()), Default::default())
        .await
        .unwrap();
    s.create(&format!("{key}/locks"), Bytes::new(), Default::default())
        .await
        .unwrap();
    for err in [
        a.get(job).await.unwrap_err(),
        a.recover(job).await.unwrap_err(),
        a.remove(job).await.unwrap_err(),
        a.put(job, Bytes::from_static(b"x")).await.unwrap_err(),
    ] {
        let StoreError::Foreign { key: k, detail } = &err else {
            panic!("not foreign: {err}")
        };
        assert_eq!(k, &key);
        assert!(detail.contains("file:/ha/plan01"), "{detail}");
    }
    let mut keys = cluster.all_keys();
    keys.sort();
    assert_eq!(keys, vec![key.clone(), format!("{key}/locks")]);
    assert_eq!(s.get(&key).await.unwrap().unwrap().value, flink);
    assert_eq!(a.job_ids().await.unwrap(), vec![job]);
}

#[tokio::test]
async fn graphs_of_the_flink1_era_are_read_too() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let codec = PayloadCodec::new(blobs.clone());
    let old = JobGraphStore::new(
        kv(&s),
        Layout::new(NamingEra::Flink1),
        codec,
        "o",
        Writes::Unfenced,
    )
    .unwrap();
    let job = JobId::new_random();
    old.put(job, Bytes::from_static(b"g")).await.unwrap();
    assert!(cluster.all_keys().contains(&format!("jobgraphs/{job}")));
    let new = store(&s, &blobs, "n");
    assert_eq!(new.job_ids().await.unwrap(), vec![job]);
    assert_eq!(new.recover(job).await.unwrap(), &b"g"[..]);
    assert!(!old.remove(job).await.unwrap());
    assert!(new.remove(job).await.unwrap());
    assert!(cluster.all_keys().is_empty());
}

#[tokio::test]
async fn watch_reports_other_processes_adds_and_removes() {
    let cluster = EmbeddedCluster::new();
    let (sa, sb) = (cluster.connect(), cluster.connect());
    let blobs = BlobStore::in_memory();
    let (a, b) = (store(&sa, &blobs, "a"), store(&sb, &blobs, "b"));
    let existing = JobId::new_random();
    a.put(existing, Bytes::from_static(b"0")).await.unwrap();
    let mut w = b.watch().await.unwrap();
    assert_eq!(w.known().collect::<Vec<_>>(), vec![existing]);
    let job = JobId::new_random();
    a.put(job, Bytes::from_static(b"1")).await.unwrap();
    assert_eq!(next_event(&mut w).await, JobGraphEvent::Added(job));
    a.put(job, Bytes::from_static(b"2")).await.unwrap(); // a replace: not reported
    b.recover(job).await.unwrap(); // a lock: not reported
    a.release(job).await.unwrap();
    assert!(b.remove(job).await.unwrap());
    assert_eq!(next_event(&mut w).await, JobGraphEvent::Removed(job));
    assert!(a.remove(existing).await.unwrap());
    assert_eq!(next_event(&mut w).await, JobGraphEvent::Removed(existing));
}

#[test]
fn owner_must_be_one_segment() {
    let s = EmbeddedCluster::new().connect();
    let codec = PayloadCodec::new(BlobStore::in_memory());
    for bad in ["", "a/b", ".."] {
        assert!(
            JobGraphStore::new(
                kv(&s),
                Layout::default(),
                codec.clone(),
                bad,
                Writes::Unfenced
            )
            .is_err(),
            "{bad:?}"
        );
    }
    assert_eq!(JobGraphStore::new_owner_id().len(), 36);
}

#[tokio::test]
async fn put_is_one_write_that_adds_graph_and_locks_together() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let counting = CountingKv::new(kv(&s));
    let codec = PayloadCodec::new(blobs.clone()).with_threshold(8);
    let a = JobGraphStore::new(
        counting.clone(),
        Layout::default(),
        codec,
        "owner-a",
        Writes::Unfenced,
    )
    .unwrap();
    let job = JobId::new_random();
    a.put(job, Bytes::from_static(BIG)).await.unwrap();
    // Reads: this era's key, then the other era's; then ONE transaction.
    assert_eq!(counting.take(), (2, 1), "(reads, writes) of a new graph");
    a.put(job, Bytes::from_static(BIG)).await.unwrap();
    assert_eq!(counting.take(), (1, 1), "(reads, writes) of a replace");
    let mut keys = cluster.all_keys();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            format!("execution-plans/{job}"),
            format!("execution-plans/{job}/locks"),
            format!("execution-plans/{job}/locks/owner-a"),
        ]
    );
    // Another process replacing the graph takes its lock in the same write.
    let b = store(&s, &blobs, "owner-b");
    b.put(job, Bytes::from_static(BIG)).await.unwrap();
    assert!(
        cluster
            .all_keys()
            .contains(&format!("execution-plans/{job}/locks/owner-b"))
    );
}

#[tokio::test]
async fn a_put_that_fails_leaves_neither_graph_nor_lock() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let blobs = BlobStore::in_memory();
    let job = JobId::new_random();
    // A put fenced by a term that is over writes neither the graph nor any lock key.
    let stale = stale_token(&cluster).await;
    let codec = PayloadCodec::new(blobs.clone()).with_threshold(8);
    let a = JobGraphStore::new(
        kv(&s),
        Layout::default(),
        codec,
        "owner-a",
        Writes::Fenced(stale),
    )
    .unwrap();
    let err = a.put(job, Bytes::from_static(BIG)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Kv(KvError::NotLeader { .. })),
        "{err}"
    );
    assert!(cluster.all_keys().is_empty(), "{:?}", cluster.all_keys());
    assert!(blobs.list("").await.unwrap().is_empty(), "blob discarded");
}
