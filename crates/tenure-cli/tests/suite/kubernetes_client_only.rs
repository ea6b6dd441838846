//! The read-only commands of `tenure` against the fake Kubernetes API server run on a
//! client-only session: they create no session ConfigMap and send no write.

use crate::common;

use tenure_testkit::kube_fake::{KubernetesFactory, Resource};

/// The names of the session ConfigMaps on the server.
fn session_cms(factory: &KubernetesFactory) -> Vec<String> {
    factory
        .server()
        .objects(Resource::ConfigMaps, &factory.settings().namespace)
        .iter()
        .filter_map(|o| o.pointer("/metadata/name").and_then(|n| n.as_str()))
        .filter(|n| n.contains("-tenure-session-"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_leave_no_session_configmap_and_write_nothing() {
    let factory = KubernetesFactory::start().await;
    let (setup, election, _) = common::kubernetes::rest_server_leader(&factory).await;
    let sessions = session_cms(&factory);
    assert_eq!(sessions.len(), 1, "the leader's session: {sessions:?}");

    for args in [
        &["leaders", "--output", "json"][..],
        &["jobs", "list"][..],
        &["registry"][..],
    ] {
        let mut cmd = tokio::process::Command::from(setup.command(env!("CARGO_BIN_EXE_tenure")));
        let out = cmd
            .args(args)
            .arg("--config")
            .arg(&setup.config)
            .output()
            .await
            .expect("run tenure");
        assert!(
            out.status.success(),
            "tenure {args:?}: stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[0] == "leaders" {
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
            let rest = json["components"]
                .as_array()
                .expect("components")
                .iter()
                .find(|c| c["component"] == "rest_server")
                .expect("rest_server listed")
                .clone();
            assert_eq!(rest["address"], "http://10.0.0.5:8081", "{json:#}");
        }
        assert_eq!(
            session_cms(&factory),
            sessions,
            "tenure {args:?} left a session ConfigMap"
        );
    }

    let served = factory.server().served();
    let cli: Vec<_> = served
        .iter()
        .filter(|r| r.user_agent.contains("(client-only)"))
        .collect();
    assert!(!cli.is_empty(), "no request from the client-only CLI");
    let writes: Vec<_> = cli.iter().filter(|r| r.writes()).collect();
    assert!(
        writes.is_empty(),
        "the read-only commands wrote: {writes:?}"
    );
    assert!(
        served
            .iter()
            .filter(|r| r.writes())
            .all(|r| r.user_agent.contains("(process)")),
        "a write came from neither the leader nor the CLI"
    );
    election.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_watch_follows_by_configmap_name_without_a_session() {
    let factory = KubernetesFactory::start().await;
    let (setup, election, _) = common::kubernetes::rest_server_leader(&factory).await;

    let mut child = setup
        .command(env!("CARGO_BIN_EXE_tenure"))
        .args([
            "leaders", "--watch", "--count", "1", "--output", "json", "--config",
        ])
        .arg(&setup.config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tenure leaders --watch");
    let mut watch = common::Running {
        stdout: common::Lines::new(child.stdout.take().expect("stdout")),
        stderr: common::Lines::new(child.stderr.take().expect("stderr")),
        child,
    };
    // The snapshot line comes after the CLI's watch is open and its first read is done: a
    // change made before it could be in that read, and so never printed as a change.
    tokio::task::block_in_place(|| watch.stdout.wait_event("snapshot"));
    let server = factory.server();
    tenure_testkit::wait_until(
        "the CLI's watch is open",
        tenure_testkit::DEADLINE,
        || async {
            server
                .watches()
                .iter()
                .any(|w| w.watch.user_agent.contains("(client-only)"))
        },
    )
    .await;
    // A change for the watch to print: the leader steps down.
    election.stop().await.expect("stop");
    // `--count 1`: it ends after printing one change.
    let code = tokio::task::block_in_place(|| watch.wait());
    assert_eq!(code, Some(0), "stderr: {}", watch.stderr.drain().join("\n"));
    let lines = tokio::task::block_in_place(|| watch.stdout.drain());
    assert_eq!(lines.len(), 2, "the snapshot and one change: {lines:?}");
    let cluster_cm = format!("{}-cluster-config-map", factory.settings().cluster_id);
    for w in server.watches() {
        if w.watch.user_agent.contains("(client-only)") {
            assert_eq!(
                w.watch.field_selector,
                format!("metadata.name={cluster_cm}"),
                "{w:?}"
            );
        }
    }
    assert!(
        server
            .served()
            .iter()
            .filter(|r| r.user_agent.contains("(client-only)"))
            .all(|r| !r.writes()),
        "tenure leaders --watch wrote"
    );
    assert_eq!(
        session_cms(&factory).len(),
        1,
        "only the leader had a session"
    );
}
