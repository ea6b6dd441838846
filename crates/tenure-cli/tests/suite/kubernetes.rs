//! The `tenure` binary against the fake Kubernetes API server: the same commands as on
//! ZooKeeper read Flink's ConfigMap layout.

use crate::common;

use tenure_testkit::kube_fake::KubernetesFactory;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_reads_a_kubernetes_clusters_leader() {
    let factory = KubernetesFactory::start().await;
    let (setup, election, term) = common::kubernetes::rest_server_leader(&factory).await;

    let mut cmd = tokio::process::Command::from(setup.command(env!("CARGO_BIN_EXE_tenure")));
    let out = cmd
        .args(["leaders", "--output", "json", "--config"])
        .arg(&setup.config)
        .output()
        .await
        .expect("run tenure");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["backend"], "kubernetes");
    let rest = json["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["component"] == "rest_server")
        .expect("rest_server listed")
        .clone();
    assert_eq!(rest["state"], "leader", "{json:#}");
    assert_eq!(rest["address"], "http://10.0.0.5:8081");
    assert_eq!(rest["session_id"], term.session_id.to_string());
    election.stop().await.expect("stop");
}
