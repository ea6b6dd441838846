//! The connection's HTTP/2 keep-alive respects etcd's default `--grpc-keepalive-min-time`
//! (5 s): an idle session with the default 15 s lease keeps its one watch stream, where pings
//! every second made the server close the connection every few seconds (each time the watch was
//! opened again and the latches re-read their line).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tenure_core::kv::VersionedKv;
use tenure_testkit::etcd::EtcdFactory;

const WATCHES_OPENED: &str = "grpc_server_started_total{grpc_method=\"Watch\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_keeps_its_watch_stream() {
    let f = EtcdFactory::start().await;
    let backend = f
        .connect_with(f.settings().with_lease_ttl(Duration::from_secs(15)))
        .await;
    let _watch = backend.watch("leader").await.unwrap();
    let opened = f.server().counter(WATCHES_OPENED).await;
    assert!(opened >= 1.0, "the watch stream was opened");
    // An observation window, not a synchronisation: with pings every second the server cut
    // the connection after about 3 s, so 8 s saw at least one re-opened watch stream.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        f.server().counter(WATCHES_OPENED).await,
        opened,
        "the watch stream was opened again: the server closed the connection"
    );
}
