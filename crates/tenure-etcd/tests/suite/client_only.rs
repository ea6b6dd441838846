//! The client-only session on a real etcd server: it grants no lease (the server's lease list
//! is unchanged), refuses writes and latches before sending anything, is suspended while etcd
//! does not answer and connected again once it does, and closing it revokes nothing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use tenure_core::connection::ConnectionState;
use tenure_core::driver::HaBackend;
use tenure_core::election::ElectionService;
use tenure_core::ids::ComponentId;
use tenure_core::kv::{CreateOptions, KvError, VersionedKv};
use tenure_core::layout::Layout;
use tenure_testkit::etcd::EtcdFactory;
use tenure_testkit::{DEADLINE, wait_for};

/// The ids of every lease the server holds.
async fn leases(f: &EtcdFactory) -> Vec<i64> {
    let mut c = etcd_client::Client::connect([f.server().endpoint()], None)
        .await
        .unwrap();
    let mut ids: Vec<i64> = c
        .leases()
        .await
        .unwrap()
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_only_session_holds_no_lease_and_writes_nothing() {
    let f = EtcdFactory::start().await;
    let process = f.connect_etcd().await;
    process
        .create("jobs/x", Bytes::from_static(b"v"), CreateOptions::default())
        .await
        .unwrap();
    let before = leases(&f).await;
    assert_eq!(before, vec![process.lease_id()]);

    let reader = f.connect_with(f.settings().for_client_only()).await;
    assert_eq!(reader.lease_id(), 0);
    assert_eq!(leases(&f).await, before, "the reader granted a lease");
    assert_eq!(reader.get("jobs/x").await.unwrap().unwrap().value, "v");

    let refused = reader
        .create("jobs/y", Bytes::new(), CreateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, KvError::Unauthorized { key, reason }
            if key == "jobs/y" && reason.contains("client-only")),
        "{refused:?}"
    );
    assert!(reader.get("jobs/y").await.unwrap().is_none());
    let layout = Layout::default();
    let elections = ElectionService::new(
        std::sync::Arc::new(reader.clone()),
        layout,
        layout.cluster_latch(),
    );
    let refused = elections
        .register(ComponentId::Dispatcher)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("campaigning on a leader latch is refused"),
        "{refused}"
    );
    assert_eq!(leases(&f).await, before);

    reader.close().await.unwrap();
    assert_eq!(leases(&f).await, before);
    assert_eq!(process.get("jobs/x").await.unwrap().unwrap().value, "v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_only_session_is_suspended_while_etcd_does_not_answer() {
    let mut f = EtcdFactory::start().await;
    let settings = f
        .settings()
        .for_client_only()
        .with_lease_ttl(Duration::from_secs(1))
        .with_request_timeout(Duration::from_secs(1));
    let reader = f.connect_with(settings).await;
    let mut state = reader.connection_state();
    assert_eq!(*state.borrow_and_update(), ConnectionState::Connected);
    f.server_mut().stop();
    wait_for(&mut state, "suspended", DEADLINE, |s| {
        *s == ConnectionState::Suspended
    })
    .await;
    f.server_mut().restart().await;
    wait_for(&mut state, "connected again", DEADLINE, |s| {
        *s == ConnectionState::Connected
    })
    .await;
    reader.close().await.unwrap();
}
