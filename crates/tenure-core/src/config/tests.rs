//! Tests of the configuration module.

use super::ha::KUBERNETES_FACTORY_CLASS;
use std::time::Duration;

use super::*;

#[test]
fn set_get_override_and_iterate_in_order() {
    let mut c = Configuration::from_pairs([("b", "2"), ("a", "1"), ("b", "3")]);
    assert_eq!(c.get("b"), Some("3"));
    c.set("c", String::from("4"));
    assert_eq!(
        c.iter().collect::<Vec<_>>(),
        vec![("a", "1"), ("b", "3"), ("c", "4")]
    );
    assert_eq!(c.len(), 3);
    assert_eq!(c.remove("a").as_deref(), Some("1"));
    assert!(!c.contains_key("a"));
    assert!(Configuration::new().is_empty());
    let collected: Configuration = [("x", "y")].into_iter().collect();
    assert_eq!(collected.get("x"), Some("y"));
}

#[test]
fn lookup_prefers_the_current_key_then_deprecated_in_order() {
    let c = Configuration::from_pairs([("old2", "b"), ("old1", "a")]);
    assert_eq!(c.lookup("new", &["old1", "old2"]), Some(("old1", "a")));
    let c = Configuration::from_pairs([("old2", "b"), ("new", "n")]);
    assert_eq!(c.lookup("new", &["old1", "old2"]), Some(("new", "n")));
    assert_eq!(c.lookup("none", &[]), None);
}

#[test]
fn debug_redacts_secrets() {
    let c = Configuration::from_pairs([
        ("high-availability.zookeeper.client.digest", "user:hunter2"),
        ("s3.secret-key", "abc"),
        ("high-availability.type", "zookeeper"),
    ]);
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("abc"),
        "{shown}"
    );
    assert!(shown.contains("zookeeper"), "{shown}");
}

#[test]
fn error_messages() {
    let e = ConfigError::InvalidValue {
        key: "k".into(),
        value: "abc".into(),
        expected: "a number".into(),
    };
    assert_eq!(
        e.to_string(),
        "invalid value \"abc\" for k: expected a number"
    );
    let e = ConfigError::Io {
        path: PathBuf::from("/etc/flink/config.yaml"),
        message: "not found".into(),
    };
    assert_eq!(
        e.to_string(),
        "cannot read /etc/flink/config.yaml: not found"
    );
}

fn ha(pairs: &[(&str, &str)]) -> Result<HaConfig, ConfigError> {
    HaConfig::from_configuration(&Configuration::from_pairs(pairs.iter().copied()))
}

const ZK_BASE: [(&str, &str); 3] = [
    ("high-availability.type", "zookeeper"),
    ("high-availability.zookeeper.quorum", "zk1:2181"),
    ("high-availability.storageDir", "file:///tmp/ha"),
];

fn zk(extra: &[(&str, &str)]) -> Result<HaConfig, ConfigError> {
    ha(&[&ZK_BASE[..], extra].concat())
}

fn invalid_key(err: ConfigError) -> String {
    match err {
        ConfigError::InvalidValue { key, .. } => key,
        other => panic!("expected InvalidValue, got {other:?}"),
    }
}

#[test]
fn defaults() {
    let c = ha(&[]).unwrap();
    assert_eq!(c, HaConfig::embedded());
    assert_eq!(c, HaConfig::default());
    assert_eq!(c.mode, HaMode::None);
    assert!(!c.mode.is_high_availability());
    assert_eq!(c.cluster_id, "/default");
    assert_eq!(c.cluster_id_segment(), "default");
    assert_eq!(
        (c.storage_dir.clone(), c.job_result_store_path()),
        (None, None)
    );
    assert!(c.job_result_delete_on_commit);
    assert_eq!(c.num_retained_checkpoints, 1);
    assert_eq!(c.naming, NamingEra::Flink2);
    let z = &c.zookeeper;
    assert_eq!((z.quorum.as_deref(), z.root.as_str()), (None, "/flink"));
    assert_eq!(z.session_timeout, Duration::from_secs(60));
    assert_eq!(z.connection_timeout, Duration::from_secs(15));
    assert_eq!(z.retry_wait, Duration::from_secs(5));
    assert_eq!(z.max_retry_attempts, 3);
    assert_eq!(z.acl, ZooKeeperAcl::Open);
    assert!(!z.tolerate_suspended_connections && z.ensemble_tracker);
    assert_eq!(
        (z.job_graphs_path.as_str(), z.digest_auth.as_deref()),
        ("jobgraphs", None)
    );
    let k = &c.kubernetes;
    assert_eq!(
        (k.namespace.as_str(), k.cluster_id.as_deref()),
        ("default", None)
    );
    assert_eq!(k.lease_duration, Duration::from_secs(15));
    assert_eq!(k.renew_deadline, Duration::from_secs(15));
    assert_eq!(k.retry_period, Duration::from_secs(5));
    assert_eq!(k.max_retries, 5);
    assert!(c.etcd.endpoints.is_empty());
    assert_eq!(
        (c.etcd.lease_ttl, c.etcd.root.as_str()),
        (Duration::from_secs(15), "/flink")
    );
}

#[test]
fn mode_keys_values_and_precedence() {
    let mode = |pairs: &[(&str, &str)]| ha(pairs).map(|c| c.mode);
    let ty = "high-availability.type";
    assert_eq!(mode(&[(ty, "NONE")]).unwrap(), HaMode::None);
    assert_eq!(
        mode(&[("high-availability", "standalone")]).unwrap(),
        HaMode::None
    );
    assert_eq!(
        mode(&[("recovery.mode", "Standalone")]).unwrap(),
        HaMode::None
    );
    assert_eq!(
        mode(&[
            (ty, "custom"),
            ("high-availability", "none"),
            ("recovery.mode", "none")
        ])
        .unwrap(),
        HaMode::Custom("custom".into())
    );
    assert_eq!(
        mode(&[
            ("high-availability", "my.Factory"),
            ("recovery.mode", "none")
        ])
        .unwrap(),
        HaMode::Custom("my.Factory".into())
    );
    assert_eq!(HaMode::parse(" ZooKeeper "), Some(HaMode::ZooKeeper));
    assert_eq!(HaMode::parse("KUBERNETES"), Some(HaMode::Kubernetes));
    assert_eq!(
        HaMode::parse(KUBERNETES_FACTORY_CLASS),
        Some(HaMode::Kubernetes)
    );
    assert_eq!(HaMode::parse("Etcd"), Some(HaMode::Etcd));
    assert_eq!(HaMode::parse("  "), None);
    assert_eq!(
        invalid_key(mode(&[("recovery.mode", " ")]).unwrap_err()),
        "recovery.mode"
    );
}

#[test]
fn deprecated_keys_are_fallbacks() {
    type Read = fn(&HaConfig) -> String;
    let cases: [(&str, &str, Read); 9] = [
        (
            "high-availability.cluster-id",
            "high-availability.zookeeper.path.namespace",
            |c| c.cluster_id.clone(),
        ),
        (
            "high-availability.cluster-id",
            "recovery.zookeeper.path.namespace",
            |c| c.cluster_id.clone(),
        ),
        (
            "high-availability.storageDir",
            "high-availability.zookeeper.storageDir",
            |c| format!("{:?}", c.storage_dir),
        ),
        (
            "high-availability.storageDir",
            "recovery.zookeeper.storageDir",
            |c| format!("{:?}", c.storage_dir),
        ),
        (
            "execution.checkpointing.num-retained",
            "state.checkpoints.num-retained",
            |c| c.num_retained_checkpoints.to_string(),
        ),
        (
            "high-availability.zookeeper.quorum",
            "recovery.zookeeper.quorum",
            |c| format!("{:?}", c.zookeeper.quorum),
        ),
        (
            "high-availability.zookeeper.path.root",
            "recovery.zookeeper.path.root",
            |c| c.zookeeper.root.clone(),
        ),
        (
            "high-availability.zookeeper.client.session-timeout",
            "recovery.zookeeper.client.session-timeout",
            |c| format!("{:?}", c.zookeeper.session_timeout),
        ),
        (
            "high-availability.zookeeper.client.max-retry-attempts",
            "recovery.zookeeper.client.max-retry-attempts",
            |c| c.zookeeper.max_retry_attempts.to_string(),
        ),
    ];
    for (current, deprecated, read) in cases {
        // A quorum needs hosts: "7" would be a numeric host that is no IPv4 address.
        let (seven, nine) = if current.ends_with("quorum") {
            ("zk7", "zk9")
        } else {
            ("7", "9")
        };
        let old = read(&ha(&[(deprecated, seven)]).unwrap());
        let new = read(&ha(&[(current, seven)]).unwrap());
        let both = read(&ha(&[(current, seven), (deprecated, nine)]).unwrap());
        let default = read(&ha(&[]).unwrap());
        assert_eq!((&old, &both), (&new, &new), "{deprecated} -> {current}");
        assert_ne!(new, default, "{current}");
    }
    let err = ha(&[("recovery.zookeeper.client.connection-timeout", "x")]).unwrap_err();
    assert_eq!(
        invalid_key(err),
        "recovery.zookeeper.client.connection-timeout"
    );
}

#[test]
fn typed_values() {
    let c = zk(&[
        (
            "high-availability.zookeeper.quorum",
            " zk1:2181, zk2:2181 ;zk3:2181",
        ),
        (
            "high-availability.zookeeper.client.session-timeout",
            "30000",
        ),
        (
            "high-availability.zookeeper.client.connection-timeout",
            "3 s",
        ),
        ("high-availability.zookeeper.client.retry-wait", "0"),
        ("high-availability.zookeeper.client.acl", "CREATOR"),
        (
            "high-availability.zookeeper.client.tolerate-suspended-connections",
            "TRUE",
        ),
        (
            "high-availability.zookeeper.client.ensemble-tracker",
            "False",
        ),
        ("high-availability.zookeeper.client.digest", "user:pa:ss"),
        ("high-availability.tenure.flink-naming", "1"),
        ("job-result-store.delete-on-commit", "false"),
        ("kubernetes.namespace", "flink"),
        (
            "high-availability.kubernetes.leader-election.lease-duration",
            "1 min",
        ),
        ("kubernetes.transactional-operation.max-retries", "0"),
        (
            "high-availability.etcd.endpoints",
            " http://a:2379, ,http://b:2379;http://c:2379",
        ),
        ("high-availability.etcd.lease-ttl", "2s"),
    ])
    .unwrap();
    let z = &c.zookeeper;
    assert_eq!(z.quorum.as_deref(), Some("zk1:2181,zk2:2181,zk3:2181"));
    assert_eq!(
        (z.session_timeout, z.connection_timeout),
        (Duration::from_secs(30), Duration::from_secs(3))
    );
    assert_eq!(
        (z.retry_wait, z.acl),
        (Duration::ZERO, ZooKeeperAcl::Creator)
    );
    assert!(z.tolerate_suspended_connections && !z.ensemble_tracker);
    assert_eq!(z.digest_auth.as_deref(), Some("user:pa:ss"));
    assert!(!format!("{c:?}").contains("pa:ss"));
    assert_eq!(
        (c.naming, c.job_result_delete_on_commit),
        (NamingEra::Flink1, false)
    );
    assert_eq!(c.kubernetes.namespace, "flink");
    assert_eq!(c.kubernetes.lease_duration, Duration::from_secs(60));
    assert_eq!(c.kubernetes.max_retries, 0);
    assert_eq!(
        c.etcd.endpoints,
        ["http://a:2379", "http://b:2379", "http://c:2379"]
    );
    assert_eq!(c.etcd.lease_ttl, Duration::from_secs(2));
}

#[test]
fn bad_values_name_key_value_and_expectation() {
    let err = ha(&[("high-availability.zookeeper.client.session-timeout", "abc")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value \"abc\" for high-availability.zookeeper.client.session-timeout: \
         expected a duration such as \"60 s\" or milliseconds"
    );
    let err = ha(&[("high-availability.etcd.lease-ttl", "0")]).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("expected a duration of at least 1 s"),
        "{err}"
    );
    let err = ha(&[("high-availability.zookeeper.client.session-timeout", "0")]).unwrap_err();
    assert!(
        err.to_string().contains("expected a positive duration"),
        "{err}"
    );
    let bad = [
        (
            "high-availability.zookeeper.client.connection-timeout",
            "0 s",
        ),
        ("high-availability.zookeeper.client.retry-wait", "-1"),
        (
            "high-availability.zookeeper.client.max-retry-attempts",
            "-1",
        ),
        ("high-availability.zookeeper.client.acl", "world"),
        (
            "high-availability.zookeeper.client.tolerate-suspended-connections",
            "yes",
        ),
        ("high-availability.zookeeper.client.ensemble-tracker", "1"),
        ("high-availability.tenure.flink-naming", "3"),
        ("job-result-store.delete-on-commit", ""),
        ("execution.checkpointing.num-retained", "0"),
        ("state.checkpoints.num-retained", "many"),
        ("kubernetes.namespace", " "),
        (
            "high-availability.kubernetes.leader-election.retry-period",
            "0",
        ),
        (
            "kubernetes.transactional-operation.max-retries",
            "4294967296",
        ),
        ("high-availability.etcd.lease-ttl", "999 ms"),
        ("high-availability.cluster-id", "/"),
        ("high-availability.cluster-id", "a/../b"),
        ("recovery.zookeeper.path.namespace", "a//b"),
    ];
    for (key, value) in bad {
        let err = ha(&[(key, value)]).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
        assert!(
            matches!(&err, ConfigError::InvalidValue { key: k, value: v, .. } if k == key && v == value),
            "{err:?}"
        );
    }
    let err = ha(&[(
        "high-availability.zookeeper.client.digest",
        "no-colon-secret",
    )])
    .unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
    assert_eq!(
        invalid_key(err),
        "high-availability.zookeeper.client.digest"
    );
}

#[test]
fn mode_requirements() {
    let missing = |r: Result<HaConfig, ConfigError>| match r {
        Err(ConfigError::Missing { key, .. }) => key,
        other => panic!("expected Missing, got {other:?}"),
    };
    assert!(zk(&[]).is_ok());
    let no_quorum = ha(&[
        ZK_BASE[0],
        ZK_BASE[2],
        ("high-availability.zookeeper.quorum", " "),
    ]);
    assert_eq!(missing(no_quorum), "high-availability.zookeeper.quorum");
    assert_eq!(missing(ha(&ZK_BASE[..2])), "high-availability.storageDir");
    let k8s = [
        ("high-availability.type", "kubernetes"),
        ("kubernetes.cluster-id", "c1"),
    ];
    assert_eq!(missing(ha(&k8s)), "high-availability.storageDir");
    assert_eq!(missing(ha(&[k8s[0], ZK_BASE[2]])), "kubernetes.cluster-id");
    assert!(ha(&[k8s[0], k8s[1], ZK_BASE[2]]).is_ok());
    assert_eq!(
        missing(ha(&[("high-availability.type", "etcd")])),
        "high-availability.etcd.endpoints"
    );
    assert!(
        ha(&[
            ("high-availability.type", "etcd"),
            ("high-availability.etcd.endpoints", "http://e:2379")
        ])
        .is_ok()
    );
    assert!(ha(&[("high-availability.type", "my-factory")]).is_ok());
}

/// The creator ACL needs an identity: the digest credentials or active SASL; with
/// `zookeeper.sasl.disable: true` SASL credentials do not count (Flink forbids it).
#[test]
fn the_creator_acl_needs_a_digest_or_sasl() {
    let acl = "high-availability.zookeeper.client.acl";
    let digest = "high-availability.zookeeper.client.digest";
    for extra in [
        &[(acl, "creator")][..],
        &[(acl, "Creator"), ("zookeeper.sasl.disable", "true")][..],
        &[(acl, "creator"), ("zookeeper.sasl.disable", "false")][..],
    ] {
        let err = zk(extra).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(acl) && text.contains(digest), "{text}");
        assert_eq!(invalid_key(err), acl);
    }
    assert!(zk(&[(acl, "creator"), (digest, "u:p")]).is_ok());
    assert!(zk(&[(acl, "open")]).is_ok());
    let user = "high-availability.zookeeper.client.sasl.username";
    let password = "high-availability.zookeeper.client.sasl.password";
    assert!(zk(&[(acl, "creator"), (user, "u"), (password, "p")]).is_ok());
    let err = zk(&[
        (acl, "creator"),
        (user, "u"),
        (password, "p"),
        ("zookeeper.sasl.disable", "true"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("zookeeper.sasl.disable"), "{err}");
    // Only ZooKeeper mode uses the ACL.
    assert!(ha(&[(acl, "creator")]).is_ok());
}

#[test]
fn quorum_and_chroot_are_checked_strictly() {
    let quorum = "high-availability.zookeeper.quorum";
    let bad = [
        ("h:1:2", "one ':' separates host and port"),
        ("h:+1", "\"+1\" is not a number"),
        ("h:", "\"\" is not a number"),
        (":2181", "has no host"),
        ("h:0", "\"0\" is not a number"),
        ("h:99999", "\"99999\" is not a number"),
        ("h:2181,", "empty server entry"),
        ("h:2181,,g:2181", "empty server entry"),
        ("::1:2181", "goes in brackets"),
        ("[::1:2181", "without a closing"),
        ("[zk1]:2181", "not an IPv6 address"),
        ("[::1]2181", "expected ':port'"),
        ("zk_1..x:2181", "not a hostname"),
        ("-zk:2181", "not a hostname"),
        ("zk1:2181;zk2:x", "\"x\" is not a number"),
        ("999.1.1.1:2181", "not a valid IPv4"),
        ("zk1:2181/a//b", "not a valid ZooKeeper path"),
        ("zk1:2181/a/./b", "not a valid ZooKeeper path"),
        ("zk1:2181/a/..", "not a valid ZooKeeper path"),
        ("zk1:2181/a\u{1}b", "does not allow"),
        ("zk1:2181/a\u{7f}", "does not allow"),
        ("zk1:2181/ha,zk2:2181", "may only follow the last server"),
        ("/chroot", "no server"),
        ("tcp://zk1:2181", "not a valid ZooKeeper path"),
    ];
    for (value, problem) in bad {
        let err = zk(&[(quorum, value)]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(problem), "{value:?}: {text}");
        assert!(
            matches!(&err, ConfigError::InvalidValue { key, value: v, .. } if key == quorum && v == value),
            "{err:?}"
        );
        // Bad values are errors in any mode.
        assert_eq!(invalid_key(ha(&[(quorum, value)]).unwrap_err()), quorum);
    }
    let err = ha(&[("recovery.zookeeper.quorum", "h:0")]).unwrap_err();
    assert_eq!(invalid_key(err), "recovery.zookeeper.quorum");
    for (value, read) in [
        ("zk1:2181", "zk1:2181"),
        ("zk1", "zk1"),
        ("zk-1.example.com.:65535", "zk-1.example.com.:65535"),
        ("zk_1:1,10.0.0.1:2181", "zk_1:1,10.0.0.1:2181"),
        ("[::1]:2181, [fe80::1]", "[::1]:2181,[fe80::1]"),
        ("zk1:2181,zk2:2181/chroot", "zk1:2181,zk2:2181/chroot"),
        ("zk1:2181/flink/ha-1", "zk1:2181/flink/ha-1"),
        ("zk1:2181/", "zk1:2181/"), // `/` alone: no chroot, as for ZooKeeper's clients
        ("zk1:02181/a.b/..c", "zk1:02181/a.b/..c"),
    ] {
        let c = zk(&[(quorum, value)]).unwrap();
        assert_eq!(c.zookeeper.quorum.as_deref(), Some(read), "{value:?}");
    }
    assert!(crate::config::validate_zookeeper_quorum("").is_err());
}

#[test]
fn job_result_store_path_defaults_under_storage_dir() {
    let path = |pairs: &[(&str, &str)]| ha(pairs).unwrap().job_result_store_path();
    let sd = "high-availability.storageDir";
    assert_eq!(
        path(&[(sd, "hdfs:///flink/ha/")]).as_deref(),
        Some("hdfs:///flink/ha/job-result-store/default")
    );
    assert_eq!(
        path(&[(sd, "s3://b/ha"), ("high-availability.cluster-id", "/c1/")]).as_deref(),
        Some("s3://b/ha/job-result-store/c1")
    );
    assert_eq!(
        path(&[(sd, "file:///")]).as_deref(),
        Some("file:///job-result-store/default")
    );
    assert_eq!(
        path(&[(sd, "/")]).as_deref(),
        Some("/job-result-store/default")
    );
    assert_eq!(
        path(&[(sd, "/ha"), ("job-result-store.storage-path", "/jrs")]).as_deref(),
        Some("/jrs")
    );
    assert_eq!(
        path(&[("job-result-store.storage-path", "/jrs")]).as_deref(),
        Some("/jrs")
    );
}

proptest::proptest! {
    #[test]
    fn from_configuration_never_panics(
        pairs in proptest::collection::vec((".*", ".*"), 0..8),
        known in proptest::collection::vec((0usize..KNOWN_KEYS.len(), ".*"), 0..8),
    ) {
        let mut conf = Configuration::from_pairs(pairs);
        conf.extend(known.into_iter().map(|(i, v)| (KNOWN_KEYS[i], v)));
        if let Ok(c) = HaConfig::from_configuration(&conf) {
            let _ = (c.cluster_id_segment(), c.job_result_store_path(), format!("{c:?}"));
        }
    }
}

proptest::proptest! {
    #[test]
    fn quorum_validation_never_panics(
        any in ".*",
        shaped in "[a-z0-9:/\\[\\],.;+%_-]{0,40}",
    ) {
        for q in [&any, &shaped] {
            let _ = crate::config::validate_zookeeper_quorum(q);
            let conf = Configuration::from_pairs([("high-availability.zookeeper.quorum", q.as_str())]);
            let _ = HaConfig::from_configuration(&conf);
        }
    }
}

const KNOWN_KEYS: [&str; 25] = [
    "high-availability.type",
    "high-availability",
    "recovery.mode",
    "high-availability.cluster-id",
    "high-availability.storageDir",
    "job-result-store.storage-path",
    "job-result-store.delete-on-commit",
    "execution.checkpointing.num-retained",
    "high-availability.tenure.flink-naming",
    "high-availability.zookeeper.quorum",
    "high-availability.zookeeper.path.root",
    "high-availability.zookeeper.client.session-timeout",
    "high-availability.zookeeper.client.connection-timeout",
    "high-availability.zookeeper.client.retry-wait",
    "high-availability.zookeeper.client.max-retry-attempts",
    "high-availability.zookeeper.client.max-retry-wait",
    "high-availability.zookeeper.client.acl",
    "high-availability.zookeeper.client.tolerate-suspended-connections",
    "high-availability.zookeeper.client.digest",
    "zookeeper.sasl.disable",
    "kubernetes.namespace",
    "kubernetes.cluster-id",
    "high-availability.kubernetes.leader-election.lease-duration",
    "high-availability.etcd.endpoints",
    "high-availability.etcd.lease-ttl",
];

#[test]
fn kubernetes_client_config_keys_are_read() {
    let c = Configuration::from_pairs([
        ("kubernetes.config.file", "/etc/kube/config"),
        ("kubernetes.context", "prod"),
    ]);
    let k = HaConfig::from_configuration(&c).expect("valid").kubernetes;
    assert_eq!(k.config_file.as_deref(), Some("/etc/kube/config"));
    assert_eq!(k.context.as_deref(), Some("prod"));
    assert_eq!(KubernetesConfig::default().config_file, None);
}

#[test]
fn reading_tools_need_no_storage_dir_but_everything_else() {
    let read = |pairs: &[(&str, &str)]| {
        HaConfig::from_configuration_for_reading(&Configuration::from_pairs(pairs.iter().copied()))
    };
    let zk_no_storage = [
        ("high-availability.type", "zookeeper"),
        ("high-availability.zookeeper.quorum", "zk1:2181"),
        ("high-availability.cluster-id", "/peer1"),
    ];
    let c = read(&zk_no_storage).expect("no storage dir needed");
    assert_eq!(c.mode, HaMode::ZooKeeper);
    assert_eq!(c.cluster_id, "/peer1");
    assert_eq!(c.storage_dir, None);
    assert_eq!(c.job_result_store_path(), None);
    assert!(
        ha(&zk_no_storage).is_err(),
        "from_configuration still needs it"
    );
    // With a storage dir the result is from_configuration's.
    let mut with = zk_no_storage.to_vec();
    with.push(("high-availability.zookeeper.storageDir", "/tmp/ha"));
    assert_eq!(read(&with).expect("valid"), ha(&with).expect("valid"));
    // Every other check still applies.
    let no_quorum = [("high-availability.type", "zookeeper")];
    assert!(matches!(
        read(&no_quorum),
        Err(ConfigError::Missing { key, .. }) if key == "high-availability.zookeeper.quorum"
    ));
    assert!(matches!(
        read(&[("high-availability.type", "kubernetes")]),
        Err(ConfigError::Missing { key, .. }) if key == "kubernetes.cluster-id"
    ));
    let mut bad = zk_no_storage.to_vec();
    bad.push(("high-availability.zookeeper.client.session-timeout", "soon"));
    assert_eq!(
        invalid_key(read(&bad).unwrap_err()),
        "high-availability.zookeeper.client.session-timeout"
    );
    let k8s = [
        ("high-availability.type", "kubernetes"),
        ("kubernetes.cluster-id", "c1"),
    ];
    assert_eq!(read(&k8s).expect("valid").storage_dir, None);
}

#[test]
fn max_retry_wait_defaults_to_a_minute_and_bounds_the_backoff() {
    let z = ha(&[]).unwrap().zookeeper;
    assert_eq!(z.max_retry_wait, Duration::from_secs(60));
    let z = ha(&[("high-availability.zookeeper.client.max-retry-wait", "10 s")])
        .unwrap()
        .zookeeper;
    assert_eq!(z.max_retry_wait, Duration::from_secs(10));
    let p = crate::retry::RetryPolicy::from_zookeeper(&z);
    assert_eq!(p.wait(0), Duration::from_secs(5));
    assert_eq!(p.wait(5), Duration::from_secs(10));
    // Unset, it never falls below a long base wait.
    let z = ha(&[("high-availability.zookeeper.client.retry-wait", "2 min")])
        .unwrap()
        .zookeeper;
    assert_eq!(z.max_retry_wait, Duration::from_secs(120));
}

#[test]
fn max_retry_wait_must_be_positive_and_not_below_the_base() {
    for (value, expected) in [
        ("0", "expected a positive duration"),
        ("-1", "expected a duration"),
        ("soon", "expected a duration"),
        (
            "1 s",
            "at least high-availability.zookeeper.client.retry-wait (5s)",
        ),
    ] {
        let err = ha(&[("high-availability.zookeeper.client.max-retry-wait", value)]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("high-availability.zookeeper.client.max-retry-wait")
                && text.contains(expected),
            "{value}: {text}"
        );
    }
    let ok = ha(&[
        ("high-availability.zookeeper.client.retry-wait", "1 s"),
        ("high-availability.zookeeper.client.max-retry-wait", "1 s"),
    ]);
    assert!(ok.is_ok(), "{ok:?}");
}
