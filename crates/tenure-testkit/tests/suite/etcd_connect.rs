//! `high-availability.type: etcd` connects through the facade: the keys land in the namespace
//! `<path.root>/<cluster-id>/` of a real etcd, and an unreachable endpoint is a clear error.

use bytes::Bytes;
use tenure::HaError;
use tenure_core::config::{Configuration, HaConfig};
use tenure_core::kv::CreateOptions;
use tenure_testkit::etcd::EtcdServer;

fn config(endpoints: &str, cluster: &str) -> HaConfig {
    let c = Configuration::from_pairs([
        ("high-availability.type", "etcd"),
        ("high-availability.etcd.endpoints", endpoints),
        ("high-availability.etcd.lease-ttl", "3 s"),
        ("high-availability.etcd.path.root", "/tenure-test"),
        ("high-availability.cluster-id", cluster),
    ]);
    HaConfig::from_configuration(&c).expect("valid etcd HA config")
}

#[tokio::test]
async fn an_etcd_config_connects_to_its_namespace() {
    let server = EtcdServer::start().await;
    let services = tenure::connect(&config(&server.endpoint(), "c1"))
        .await
        .expect("connect");
    assert_eq!(services.backend().kind(), "etcd");
    services
        .kv()
        .create("a/b", Bytes::from_static(b"v"), CreateOptions::default())
        .await
        .expect("create");
    let backend = tenure::etcd::EtcdBackend::from_config(&config(&server.endpoint(), "c1"))
        .await
        .expect("second connection");
    let mut client = backend.client().expect("client");
    let raw = client
        .get("/tenure-test/c1/a/b", None)
        .await
        .expect("raw get");
    assert_eq!(raw.kvs()[0].value(), b"v");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_an_error_naming_it() {
    // A port nothing listens on, reserved while the test runs.
    let refused = tenure_testkit::refused_port::RefusedPort::new();
    let endpoint = format!("http://{}", refused.addr());
    let mut cfg = config(&endpoint, "c1");
    cfg.etcd.lease_ttl = std::time::Duration::from_secs(1);
    let err = tokio::time::timeout(tenure_testkit::DEADLINE, tenure::connect(&cfg))
        .await
        .expect("fails in time, no hang")
        .expect_err("unreachable");
    assert!(matches!(err, HaError::Connect(_)), "{err}");
    assert!(err.to_string().contains(&endpoint), "{err}");
}
