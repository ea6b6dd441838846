//! A process configured as a Flink operator would configure it (`high-availability.type:
//! kubernetes`, a kubeconfig in `$KUBECONFIG`) connects as the facade's `KUBERNETES` arm does
//! (`KubernetesBackend::from_config`) against the fake API server, and leaves Flink's ConfigMap
//! layout behind: the cluster ConfigMap with Flink's labels, the
//! leader-election annotation and `org.apache.flink.k8s.leader.dispatcher`, and the per-job
//! ConfigMap with `checkpointID-<%019d>` and a decimal `counter`.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tenure_testkit::history::History;
use tenure_testkit::kube_fake::{KubernetesFactory, ProcessSetup, Resource};
use tenure_testkit::wait_until;

const CONTENDER: &str = env!("CARGO_BIN_EXE_tenure-contender");
const JOB: &str = "0000000000000000000000000000beef";

fn data<'a>(cm: &'a Value, key: &str) -> Option<&'a str> {
    cm.pointer(&format!("/data/{key}")).and_then(Value::as_str)
}

fn leader_record(cm: &Value) -> Value {
    let raw = cm
        .pointer("/metadata/annotations/control-plane.alpha.kubernetes.io~1leader")
        .and_then(Value::as_str)
        .expect("leader annotation");
    serde_json::from_str(raw).expect("the annotation is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_configured_process_writes_flinks_layout() {
    let f = KubernetesFactory::start().await;
    let s = f.settings();
    let setup = ProcessSetup::new(f.server(), &s, "");
    let history = setup.dir().join("a.jsonl");
    let mut child = setup
        .command(CONTENDER)
        .arg("--config")
        .arg(&setup.config)
        .args(["--name", "a", "--job", JOB, "--interval-ms", "20"])
        .args([
            "--address",
            "pekko.tcp://flink@10.0.0.5:6123/user/rpc/dispatcher_1",
        ])
        .arg("--history")
        .arg(&history)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let acked = || {
        std::fs::read_to_string(&history)
            .ok()
            .and_then(|t| History::parse(&t).ok())
            .map_or(0, |h| h.acknowledged_ids().len())
    };
    wait_until(
        "three acknowledged checkpoints",
        Duration::from_secs(30),
        || std::future::ready(acked() >= 3),
    )
    .await;

    let ns = &s.namespace;
    let cluster_cm = f
        .server()
        .object(
            Resource::ConfigMaps,
            ns,
            &format!("{}-cluster-config-map", s.cluster_id),
        )
        .expect("cluster ConfigMap");
    let labels = cluster_cm.pointer("/metadata/labels").unwrap();
    assert_eq!(labels["type"], "flink-native-kubernetes");
    assert_eq!(labels["app"], s.cluster_id.as_str());
    assert_eq!(labels["configmap-type"], "high-availability");
    let record = leader_record(&cluster_cm);
    let holder = record["holderIdentity"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(holder).is_ok(), "{record}");
    assert!(record["leaseDuration"].is_number(), "{record}");
    let leader = data(&cluster_cm, "org.apache.flink.k8s.leader.dispatcher").expect("leader key");
    let (session, address) = leader.split_once(',').unwrap();
    assert!(uuid::Uuid::parse_str(session).is_ok(), "{leader}");
    assert_eq!(
        address,
        "pekko.tcp://flink@10.0.0.5:6123/user/rpc/dispatcher_1"
    );

    let job_cm = f
        .server()
        .object(
            Resource::ConfigMaps,
            ns,
            &format!("{}-{JOB}-config-map", s.cluster_id),
        )
        .expect("per-job ConfigMap");
    assert_eq!(
        job_cm.pointer("/metadata/labels/app").unwrap(),
        s.cluster_id.as_str()
    );
    let counter: u64 = data(&job_cm, "counter")
        .unwrap()
        .parse()
        .expect("decimal counter");
    assert!(counter >= 4, "{counter}");
    let checkpoints: Vec<&String> = job_cm["data"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("checkpointID-"))
        .collect();
    assert!(
        !checkpoints.is_empty() && checkpoints.len() <= 3,
        "{checkpoints:?}"
    );
    for k in checkpoints {
        assert_eq!(k.len(), "checkpointID-".len() + 19, "{k}");
    }

    // SIGTERM: the process stops its election and closes; the lease is released (empty
    // holder), the leader information goes, the data stays for recovery.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut exited = None;
    wait_until("the process to exit", Duration::from_secs(30), || {
        exited = child.try_wait().unwrap();
        std::future::ready(exited.is_some())
    })
    .await;
    assert_eq!(exited.unwrap().code(), Some(0));
    let cluster_cm = f
        .server()
        .object(
            Resource::ConfigMaps,
            ns,
            &format!("{}-cluster-config-map", s.cluster_id),
        )
        .unwrap();
    assert_eq!(leader_record(&cluster_cm)["holderIdentity"], "");
    assert_eq!(
        data(&cluster_cm, "org.apache.flink.k8s.leader.dispatcher"),
        None
    );
    assert!(
        f.server()
            .object(
                Resource::ConfigMaps,
                ns,
                &format!("{}-{JOB}-config-map", s.cluster_id)
            )
            .is_some()
    );
    let sessions = f
        .server()
        .objects(Resource::ConfigMaps, ns)
        .into_iter()
        .filter(|o| {
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.contains("tenure-session"))
        })
        .count();
    assert_eq!(sessions, 0, "the session ConfigMap is deleted on close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_config_file_selects_the_kubeconfig() {
    let f = KubernetesFactory::start().await;
    let s = f.settings();
    let setup = ProcessSetup::new(f.server(), &s, "");
    let mut conf = tenure::Configuration::from_file(&setup.config).unwrap();
    conf.set("kubernetes.config.file", setup.kubeconfig.to_str().unwrap());
    conf.set("kubernetes.context", "fake");
    let config = tenure::HaConfig::from_configuration(&conf).unwrap();
    let services = tenure::connect(&config)
        .await
        .expect("connects to the fake");
    assert_eq!(services.backend().kind(), "kubernetes");
    services.close().await.unwrap();

    conf.set("kubernetes.config.file", "/nonexistent/kubeconfig");
    let config = tenure::HaConfig::from_configuration(&conf).unwrap();
    let err = tenure::connect(&config).await.expect_err("no such file");
    assert!(err.to_string().contains("kubernetes.config.file"), "{err}");
}
