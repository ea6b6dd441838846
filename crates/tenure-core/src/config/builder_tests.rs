//! Tests of the typed configuration builders: every setter lands in the typed field, and
//! validation (and its errors) is exactly the Flink keys'.

use std::time::Duration;

use super::*;

#[test]
fn zookeeper_setters_reach_every_field() {
    let config = HaConfig::zookeeper("zk1:2181, zk2:2181/chroot")
        .cluster_id("my-app")
        .storage_dir("/var/lib/my-app/ha")
        .root("/tenure")
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_millis(2500))
        .retry_wait(Duration::from_millis(100))
        .max_retry_wait(Duration::from_secs(2))
        .max_retry_attempts(7)
        .acl(ZooKeeperAcl::Creator)
        .digest_auth("me:secret")
        .tolerate_suspended_connections(true)
        .ensemble_tracker(false)
        .max_close_wait(Duration::from_millis(1500))
        .authorization("digest", "u:it's")
        .authorization("ip", "127.0.0.1")
        .simulated_session_expiration_percent(80)
        .num_retained_checkpoints(3)
        .naming(NamingEra::Flink1)
        .job_result_store_path("/var/lib/results")
        .job_result_delete_on_commit(false)
        .build()
        .unwrap();
    assert_eq!(config.mode, HaMode::ZooKeeper);
    assert_eq!(config.cluster_id_segment(), "my-app");
    assert_eq!(config.storage_dir.as_deref(), Some("/var/lib/my-app/ha"));
    let zk = &config.zookeeper;
    assert_eq!(zk.quorum.as_deref(), Some("zk1:2181,zk2:2181/chroot"));
    assert_eq!(zk.root, "/tenure");
    assert_eq!(zk.session_timeout, Duration::from_secs(10));
    assert_eq!(zk.connection_timeout, Duration::from_millis(2500));
    assert_eq!(zk.retry_wait, Duration::from_millis(100));
    assert_eq!(zk.max_retry_wait, Duration::from_secs(2));
    assert_eq!(zk.max_retry_attempts, 7);
    assert_eq!(zk.acl, ZooKeeperAcl::Creator);
    assert_eq!(zk.digest_auth.as_deref(), Some("me:secret"));
    assert!(zk.tolerate_suspended_connections);
    assert!(!zk.ensemble_tracker);
    assert_eq!(zk.max_close_wait, Duration::from_millis(1500));
    let auth: Vec<_> = zk
        .authorization
        .iter()
        .map(|a| (a.scheme.as_str(), a.auth.as_str()))
        .collect();
    assert_eq!(auth, [("digest", "u:it's"), ("ip", "127.0.0.1")]);
    assert_eq!(zk.simulated_session_expiration_percent, 80);
    assert_eq!(config.num_retained_checkpoints, 3);
    assert_eq!(config.naming, NamingEra::Flink1);
    assert_eq!(
        config.job_result_store_path.as_deref(),
        Some("/var/lib/results")
    );
    assert!(!config.job_result_delete_on_commit);
}

#[test]
fn the_builder_equals_the_same_flink_keys() {
    let built = HaConfig::zookeeper("zk:2181")
        .cluster_id("/c")
        .storage_dir("s3://b/ha")
        .session_timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let from_keys = HaConfig::from_configuration(&Configuration::from_pairs([
        ("high-availability.type", "zookeeper"),
        ("high-availability.zookeeper.quorum", "zk:2181"),
        ("high-availability.cluster-id", "/c"),
        ("high-availability.storageDir", "s3://b/ha"),
        ("high-availability.zookeeper.client.session-timeout", "90 s"),
    ]))
    .unwrap();
    assert_eq!(built, from_keys);
}

/// The builder's error for each bad setting is the Flink keys' error, naming the key.
#[test]
fn bad_settings_fail_as_the_flink_keys_do_naming_the_key() {
    let base = || HaConfig::zookeeper("zk:2181").storage_dir("/ha");
    let cases: Vec<(HaConfigBuilder<builder::ZooKeeper>, &str)> = vec![
        (
            base().session_timeout(Duration::ZERO),
            "high-availability.zookeeper.client.session-timeout",
        ),
        (
            base().connection_timeout(Duration::ZERO),
            "high-availability.zookeeper.client.connection-timeout",
        ),
        (
            base()
                .retry_wait(Duration::from_secs(10))
                .max_retry_wait(Duration::from_secs(1)),
            "high-availability.zookeeper.client.max-retry-wait",
        ),
        (
            base().acl(ZooKeeperAcl::Creator),
            "high-availability.zookeeper.client.acl",
        ),
        (base().cluster_id("a/../b"), "high-availability.cluster-id"),
        (
            base().root("/a/../b"),
            "high-availability.zookeeper.path.root",
        ),
        (
            base().num_retained_checkpoints(0),
            "execution.checkpointing.num-retained",
        ),
        (
            HaConfig::zookeeper("not a quorum:99999").storage_dir("/ha"),
            "high-availability.zookeeper.quorum",
        ),
        (
            HaConfig::zookeeper("zk:2181"),
            "high-availability.storageDir",
        ),
        (
            HaConfig::zookeeper(" "),
            "high-availability.zookeeper.quorum",
        ),
    ];
    for (builder, key) in cases {
        let err = builder.build().unwrap_err();
        let from_keys = HaConfig::from_configuration(builder.configuration()).unwrap_err();
        assert_eq!(err, from_keys);
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}

#[test]
fn build_for_reading_needs_no_storage_dir() {
    let builder = HaConfig::zookeeper("zk:2181").cluster_id("reader");
    assert!(builder.build().is_err());
    let config = builder.build_for_reading().unwrap();
    assert_eq!(config.mode, HaMode::ZooKeeper);
    assert_eq!(config.storage_dir, None);
}

#[test]
fn kubernetes_setters_reach_every_field() {
    let config = HaConfig::kubernetes("my-app")
        .namespace("flink")
        .storage_dir("/ha")
        .lease_duration(Duration::from_secs(20))
        .renew_deadline(Duration::from_secs(12))
        .retry_period(Duration::from_secs(3))
        .max_retries(9)
        .config_file("/etc/kube/config")
        .context("prod")
        .build()
        .unwrap();
    assert_eq!(config.mode, HaMode::Kubernetes);
    let k = &config.kubernetes;
    assert_eq!(k.cluster_id.as_deref(), Some("my-app"));
    assert_eq!(k.namespace, "flink");
    assert_eq!(k.lease_duration, Duration::from_secs(20));
    assert_eq!(k.renew_deadline, Duration::from_secs(12));
    assert_eq!(k.retry_period, Duration::from_secs(3));
    assert_eq!(k.max_retries, 9);
    assert_eq!(k.config_file.as_deref(), Some("/etc/kube/config"));
    assert_eq!(k.context.as_deref(), Some("prod"));

    let err = HaConfig::kubernetes("x")
        .namespace(" ")
        .storage_dir("/ha")
        .build();
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("kubernetes.namespace"),
        "blank namespace"
    );
    let err = HaConfig::kubernetes("x").build().unwrap_err();
    assert!(
        err.to_string().contains("high-availability.storageDir"),
        "{err}"
    );
}

#[test]
fn the_embedded_builder_starts_from_the_embedded_defaults() {
    assert_eq!(HaConfig::builder().build().unwrap(), HaConfig::embedded());
    let config = HaConfig::builder()
        .cluster_id("tests")
        .set("high-availability.zookeeper.client.session-timeout", "5 s")
        .build()
        .unwrap();
    assert_eq!(config.mode, HaMode::None);
    assert_eq!(config.zookeeper.session_timeout, Duration::from_secs(5));
    let err = HaConfig::builder()
        .set("high-availability.zookeeper.client.session-timeout", "soon")
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("high-availability.zookeeper.client.session-timeout"),
        "{err}"
    );
}

#[test]
fn secrets_stay_hidden_in_debug() {
    let builder = HaConfig::zookeeper("zk:2181").digest_auth("me:hunter2");
    let shown = format!("{builder:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn zookeeper_security_setters_reach_the_tls_and_sasl_fields() {
    let config = HaConfig::zookeeper("zk1:2281")
        .storage_dir("/ha")
        .tls_ca_file("/etc/zk/ca.pem")
        .tls_client_cert("/etc/zk/client.pem", "/etc/zk/client.key")
        .sasl_digest("flink", "s3cret")
        .acl(ZooKeeperAcl::Creator)
        .build()
        .unwrap();
    let zk = &config.zookeeper;
    assert!(zk.tls.enabled());
    assert_eq!(zk.tls.ca_file.as_deref(), Some("/etc/zk/ca.pem"));
    assert_eq!(zk.tls.cert_file.as_deref(), Some("/etc/zk/client.pem"));
    assert_eq!(zk.tls.key_file.as_deref(), Some("/etc/zk/client.key"));
    assert!(zk.sasl.active());
    assert_eq!(zk.sasl.username.as_deref(), Some("flink"));
    assert!(!format!("{config:?}").contains("s3cret"));
    // Flink: the creator ACL with SASL disabled is refused.
    let err = HaConfig::zookeeper("zk1:2181")
        .storage_dir("/ha")
        .sasl_jaas_file("/etc/zk/client.jaas")
        .sasl_disable(true)
        .acl(ZooKeeperAcl::Creator)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("zookeeper.sasl.disable"), "{err}");
    let err = HaConfig::zookeeper("zk1:2281")
        .storage_dir("/ha")
        .tls_secure(true)
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("high-availability.zookeeper.client.tls.ca-file"),
        "{err}"
    );
}
