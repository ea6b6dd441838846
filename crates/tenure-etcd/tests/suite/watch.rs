//! Watches by revision on a real etcd: one etcd watch per prefix per session, resumed from the
//! last seen revision after the connection breaks, and `Reset` when that revision was compacted.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use tenure_core::kv::{CreateOptions, KvEvent, KvWatch, VersionedKv};
use tenure_etcd::watch::backend_watches;
use tenure_testkit::DEADLINE;
use tenure_testkit::etcd::EtcdFactory;

async fn next(w: &mut KvWatch) -> KvEvent {
    tokio::time::timeout(DEADLINE, w.next())
        .await
        .expect("an event in time")
        .expect("the watch goes on")
}

fn put(key: &str) -> impl Fn(&KvEvent) -> bool + '_ {
    move |e| matches!(e, KvEvent::Put(entry) if entry.key == key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_of_one_prefix_share_one_etcd_watch() {
    let f = EtcdFactory::start().await;
    let a = f.connect_etcd().await;
    let mut w1 = a.watch("leader").await.unwrap();
    let mut w2 = a.watch("leader/x").await.unwrap();
    assert_eq!(backend_watches(&a), 1);
    a.create(
        "leader/x/info",
        Bytes::from_static(b"1"),
        CreateOptions::default(),
    )
    .await
    .unwrap();
    assert!(put("leader/x/info")(&next(&mut w1).await));
    assert!(put("leader/x/info")(&next(&mut w2).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_watch_resumes_from_the_last_seen_revision() {
    let f = EtcdFactory::start().await;
    let proxy = f.start_proxy().await;
    let a = f.connect_with(f.settings_via(&proxy)).await;
    let b = f.connect_etcd().await;
    let mut w = a.watch("p").await.unwrap();
    b.create("p/1", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    assert!(put("p/1")(&next(&mut w).await));
    // Break a's connection and write meanwhile: the reopened watch delivers what it missed.
    proxy.cut();
    b.create("p/2", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    b.create("p/3", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    assert!(put("p/2")(&next(&mut w).await));
    assert!(put("p/3")(&next(&mut w).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_revision_resets_the_watch() {
    let f = EtcdFactory::start().await;
    let proxy = f.start_proxy().await;
    let a = f.connect_with(f.settings_via(&proxy)).await;
    let b = f.connect_etcd().await;
    let mut w = a.watch("p").await.unwrap();
    b.create("p/1", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    assert!(put("p/1")(&next(&mut w).await));
    // Cut a off, write, and compact the history past what a saw.
    proxy.black_hole();
    b.create("p/2", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    let v = b
        .create("p/3", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    let mut raw = b.client().unwrap();
    raw.compact(v.0, None).await.unwrap();
    proxy.heal();
    assert_eq!(next(&mut w).await, KvEvent::Reset);
    // The watch goes on from now.
    b.create("p/4", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    assert!(put("p/4")(&next(&mut w).await));
}
