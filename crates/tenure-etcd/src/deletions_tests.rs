//! The latch waits' stream against a real etcd server: what the server does to a wait's watch.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tenure_testkit::etcd::EtcdServer;
use tenure_testkit::{DEADLINE, wait_until};

use crate::{EtcdBackend, EtcdSettings};

/// A server on loopback, a backend of cluster `cluster` under `/flink` on it (with `settings`
/// applied), and a raw client of the server's for the test's own reads and writes.
async fn start(
    cluster: &str,
    settings: impl FnOnce(EtcdSettings) -> EtcdSettings,
) -> (EtcdServer, EtcdBackend, etcd_client::Client) {
    let server = EtcdServer::start().await;
    let base = EtcdSettings::new(vec![server.endpoint()], "/flink", cluster)
        .with_request_timeout(Duration::from_secs(5));
    let backend = EtcdBackend::connect(settings(base)).await.unwrap();
    let raw = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    (server, backend, raw)
}

/// A wait whose watch starts at a revision the server has compacted away would wait forever
/// for a deletion etcd can no longer report: the server cancels that watch instead, and the
/// wait is woken so the recipe reads the line again (from a current revision).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_from_a_compacted_revision_is_woken_to_look_again() {
    let (_server, backend, mut raw) =
        start("compacted", |s| s.with_lease_ttl(Duration::from_secs(2))).await;
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

    let woken = backend
        .shared
        .deletions()
        .wait(key.to_owned(), read_at, None);
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
    let wait = backend.shared.deletions().wait(key.to_owned(), now, None);
    raw.delete(key, None).await.unwrap();
    let deleted = tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("a delete after a current revision wakes the wait");
    assert!(deleted, "the wait is told its key was deleted");
}

/// A wait for the first of the line also follows the waiter's own key: a deletion of that key
/// wakes it to look again, a deletion of the awaited key tells it so, and either way (or when
/// the wait is dropped) its one watch, over both keys, is cancelled on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_with_a_second_key_ends_on_either_and_cancels_its_watch() {
    const WATCHERS: &str = "etcd_debugging_mvcc_watcher_total";
    let (server, backend, mut raw) = start("pair", |s| s).await;
    let (first, own) = ("/flink/pair/leader/latch/a", "/flink/pair/leader/latch/b");
    let base = server.counter(WATCHERS).await;
    let watchers = |n: f64| {
        let server = &server;
        async move {
            wait_until("the server's watchers", DEADLINE, || async {
                server.counter(WATCHERS).await == base + n
            })
            .await;
        }
    };
    for own_deleted in [true, false] {
        raw.put(first, "", None).await.unwrap();
        let put = raw.put(own, "", None).await.unwrap();
        let read_at = put.header().unwrap().revision();
        let wait = backend
            .shared
            .deletions()
            .wait(first.to_owned(), read_at, Some(own.to_owned()));
        watchers(1.0).await;
        assert_eq!(crate::latch_waits(&backend).parked, 1, "one wait");
        raw.delete(if own_deleted { own } else { first }, None)
            .await
            .unwrap();
        let deleted = tokio::time::timeout(DEADLINE, wait).await.unwrap();
        assert_eq!(
            deleted, !own_deleted,
            "the awaited key's deletion is told as such; the own key's says look again"
        );
        watchers(0.0).await;
        assert_eq!(crate::latch_waits(&backend).parked, 0);
    }
    // A wait dropped (its participation left) cancels its watch too.
    let read_at = raw
        .put(own, "", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let wait = backend
        .shared
        .deletions()
        .wait(first.to_owned(), read_at, Some(own.to_owned()));
    watchers(1.0).await;
    drop(wait);
    watchers(0.0).await;
}

/// The waiter's own key deleted, then the awaited key: the wait must say look again, whatever
/// the server's order of reporting; the other way round, it is told of the deletion. Here both
/// deletions precede the wait's watch, so the server catches its watch up from the past (etcd's
/// unsynced watchers, served by a background loop that visits watchers in no fixed order): one
/// watch over both keys reports their changes in revision order, two watches might not. A
/// participant between the two keys comes and goes first, and is passed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_change_of_either_key_decides_even_from_the_past() {
    let (_server, backend, mut raw) = start("order", |s| s).await;
    let dir = "/flink/order/leader/latch";
    // The awaited key below and above the own key, and either deleted first.
    let cases = [
        ("a", "c", true),
        ("c", "a", true),
        ("a", "c", false),
        ("c", "a", false),
    ];
    for (first, own, own_goes_first) in cases.repeat(6) {
        let (first, between, own) = (
            format!("{dir}/{first}"),
            format!("{dir}/b"),
            format!("{dir}/{own}"),
        );
        raw.put(first.as_str(), "", None).await.unwrap();
        let put = raw.put(own.as_str(), "", None).await.unwrap();
        let read_at = put.header().unwrap().revision();
        raw.put(between.as_str(), "", None).await.unwrap();
        raw.delete(between.as_str(), None).await.unwrap();
        let order = if own_goes_first {
            [&own, &first]
        } else {
            [&first, &own]
        };
        for key in order {
            raw.delete(key.as_str(), None).await.unwrap();
        }
        let wait = backend
            .shared
            .deletions()
            .wait(first.clone(), read_at, Some(own.clone()));
        let deleted = tokio::time::timeout(DEADLINE, wait).await.unwrap();
        assert_eq!(
            deleted, !own_goes_first,
            "deleted in the order {order:?}: look again if the own key went first"
        );
    }
}

/// A put by hand of either key of a wait for the first of the line (the key may have left its
/// lease) says look again, never "deleted"; a put of a key between the two is passed over, and
/// the awaited key's deletion after it is still told as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_of_either_key_says_look_again_and_one_between_is_passed_over() {
    let (_server, backend, mut raw) = start("puts", |s| s).await;
    let dir = "/flink/puts/leader/latch";
    let (first, between, own) = (format!("{dir}/a"), format!("{dir}/b"), format!("{dir}/c"));
    for put_again in [Some(&first), Some(&own), None] {
        raw.put(first.as_str(), "", None).await.unwrap();
        let put = raw.put(own.as_str(), "", None).await.unwrap();
        let read_at = put.header().unwrap().revision();
        let wait = backend
            .shared
            .deletions()
            .wait(first.clone(), read_at, Some(own.clone()));
        raw.put(between.as_str(), "decoy", None).await.unwrap();
        if let Some(key) = put_again {
            raw.put(key.as_str(), "by hand", None).await.unwrap();
        }
        raw.delete(first.as_str(), None).await.unwrap();
        let deleted = tokio::time::timeout(DEADLINE, wait).await.unwrap();
        assert_eq!(
            deleted,
            put_again.is_none(),
            "put again: {put_again:?}; a put says look again, the decoy changes nothing"
        );
    }
}
