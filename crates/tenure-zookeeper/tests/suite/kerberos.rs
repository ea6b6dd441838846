//! SASL GSSAPI (Kerberos) against a real KDC and ZooKeeper (feature `kerberos`). Ignored: it
//! needs the throwaway realm that `scripts/kerberos-check` sets up, which passes it in
//! `TENURE_KRB_QUORUM` (the server, by host name), `TENURE_KRB_PRINCIPAL` and
//! `TENURE_KRB_KEYTAB` (the client's), with `KRB5_CONFIG` and `KRB5CCNAME` pointing into it.

#![cfg(feature = "kerberos")]
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use tenure_core::config::{ZooKeeperAcl, ZooKeeperSasl};
use tenure_core::kv::{CreateOptions, VersionedKv};
use tenure_zookeeper::{ZooKeeperBackend, ZooKeeperSettings};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/kerberos-check"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the KDC and server of scripts/kerberos-check"]
async fn a_kerberos_identity_owns_its_znodes() {
    let principal = env("TENURE_KRB_PRINCIPAL");
    let settings = ZooKeeperSettings::new(env("TENURE_KRB_QUORUM"), "/flink", "kerberos")
        .with_sasl(ZooKeeperSasl {
            principal: Some(principal.clone()),
            keytab: Some(env("TENURE_KRB_KEYTAB")),
            ..ZooKeeperSasl::default()
        })
        .with_acl(ZooKeeperAcl::Creator, None);
    let backend = ZooKeeperBackend::connect(settings).await.unwrap();
    backend
        .create("k", Bytes::from_static(b"v"), CreateOptions::default())
        .await
        .unwrap();
    let path = backend.znode_path("k").unwrap();
    let (acl, _) = backend.client().unwrap().get_acl(&path).await.unwrap();
    assert!(
        !acl.is_empty()
            && acl
                .iter()
                .all(|a| a.scheme() == "sasl" && a.id() == principal),
        "{acl:?}"
    );
}
