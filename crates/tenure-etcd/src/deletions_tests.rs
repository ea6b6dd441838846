//! The latch waits' stream against a real etcd server: what the server does to a wait's watch.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tenure_testkit::etcd::EtcdServer;
use tenure_testkit::{DEADLINE, wait_until};

use crate::{EtcdBackend, EtcdSettings};

/// A wait whose watch starts at a revision the server has compacted away would wait forever
/// for a deletion etcd can no longer report: the server cancels that watch instead, and the
/// wait is woken so the recipe reads the line again (from a current revision).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_from_a_compacted_revision_is_woken_to_look_again() {
    let server = EtcdServer::start().await;
    let settings = EtcdSettings::new(vec![server.endpoint()], "/flink", "compacted")
        .with_lease_ttl(Duration::from_secs(2))
        .with_request_timeout(Duration::from_secs(5));
    let backend = EtcdBackend::connect(settings).await.unwrap();
    let mut raw = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    let key = "/flink/compacted/leader/latch/awaited";
    let read_at = raw
        .put(key, "x", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    // Later writes (of another key: the awaited one stays), then a compaction past them.
    let mut last = read_at;
    for i in 0..3 {
        let put = raw.put(format!("{key}-{i}"), "y", None).await.unwrap();
        last = put.header().unwrap().revision();
    }
    raw.compact(last, None).await.unwrap();

    let woken = backend.shared.deletions().wait(key.to_owned(), read_at);
    let deleted = tokio::time::timeout(DEADLINE, woken)
        .await
        .expect("a wait on a compacted revision must be woken, not left waiting");
    assert!(!deleted, "woken to look again, not told of a deletion");
    assert_eq!(
        raw.get(key, None).await.unwrap().kvs().len(),
        1,
        "the key was never deleted: the wake-up came from the cancelled watch"
    );
    wait_until("the woken wait is no longer parked", DEADLINE, || async {
        crate::latch_waits(&backend).parked == 0
    })
    .await;

    // The stream stays usable: a wait from a current revision still sees the delete.
    let now = raw
        .get(key, None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let wait = backend.shared.deletions().wait(key.to_owned(), now);
    raw.delete(key, None).await.unwrap();
    let deleted = tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("a delete after a current revision wakes the wait");
    assert!(deleted, "the wait is told its key was deleted");
}
