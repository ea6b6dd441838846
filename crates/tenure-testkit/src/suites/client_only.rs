//! Client-only services conformance: a reader follows leader changes through
//! [`ClientHaServices`] and leaves no trace in the KV. What the backend keeps outside the KV
//! (ZooKeeper znodes, Kubernetes session ConfigMaps, requests) is checked per backend.

use std::sync::Arc;

use bytes::Bytes;
use tenure_core::driver::HaBackend;
use tenure_core::ids::{ComponentId, JobId};
use tenure_core::kv::{CreateOptions, DeleteOptions, Entry, KvError, VersionedKv};
use tenure_core::layout::Layout;
use tenure_core::retrieval::LeaderState;
use tenure_core::services::HaServicesOptions;
use tenure_core::services_client::ClientHaServices;

use super::retrieval::{confirmed_dispatcher, take_over, wait_retrieved};
use crate::BackendFactory;

/// Every key of the namespace with its version and owner: what a reader must not change.
pub async fn kv_snapshot(kv: &dyn VersionedKv) -> Vec<(String, i64, Option<u64>)> {
    kv.list("")
        .await
        .expect("list the namespace")
        .into_iter()
        .map(|e: Entry| (e.key, e.version.0, e.ephemeral_owner))
        .collect()
}

/// Client-only services on a new client-only session of `f`.
pub async fn client(f: &dyn BackendFactory) -> (Arc<dyn HaBackend>, ClientHaServices) {
    let backend = f.connect_client().await;
    let services = ClientHaServices::new(backend.clone(), HaServicesOptions::default());
    (backend, services)
}

/// A client-only reader follows the dispatcher's leader from one process to the next; its
/// writes are refused; no key is owned by its session; closing it changes nothing.
pub async fn client_reader_follows_leaders_and_leaves_no_trace(f: &dyn BackendFactory) {
    let layout = Layout::default();
    let a = f.connect().await;
    let b = f.connect().await;
    let (ea, ta) = confirmed_dispatcher(&a, "a:1").await;

    let (reader, client) = client(f).await;
    let retriever = client.dispatcher_leader_retriever();
    let mut rx = retriever.leader();
    wait_retrieved(&mut rx, "a:1", &ta).await;
    let (eb, tb) = take_over(ea, &b, "b:1").await;
    wait_retrieved(&mut rx, "b:1", &tb).await;
    assert!(matches!(retriever.current(), LeaderState::Leader { .. }));

    // Nothing in the KV belongs to the reader's session.
    let observer = b.kv();
    let before = kv_snapshot(observer.as_ref()).await;
    let mine = reader.kv().session_id();
    assert!(
        before.iter().all(|(_, _, owner)| *owner != Some(mine)),
        "a key is owned by the reader's session: {before:?}"
    );

    // Writes through the client's KV and stores are refused, naming the key; nothing lands.
    let kv = client.kv();
    let e = kv
        .create(
            "reader/x",
            Bytes::from_static(b"x"),
            CreateOptions::default(),
        )
        .await
        .expect_err("a reader's create is refused");
    assert!(
        matches!(&e, KvError::Unauthorized { key, .. } if key == "reader/x"),
        "{e}"
    );
    let e = kv
        .delete(
            &layout.leader_info(&ComponentId::Dispatcher),
            DeleteOptions::default(),
        )
        .await
        .expect_err("a reader's delete is refused");
    assert!(matches!(e, KvError::Unauthorized { .. }), "{e}");
    let job = JobId::new_random();
    let e = client
        .stores()
        .running_jobs()
        .set_running(job)
        .await
        .expect_err("a reader's store write is refused");
    assert!(e.to_string().contains("client-only"), "{e}");
    assert_eq!(kv_snapshot(observer.as_ref()).await, before);

    // Closing the reader changes nothing either.
    drop(retriever);
    client.close().await.expect("close the reader");
    assert_eq!(kv_snapshot(observer.as_ref()).await, before);
    assert!(
        eb.leadership().borrow().term().is_some(),
        "closing a reader left the leader alone"
    );
}
