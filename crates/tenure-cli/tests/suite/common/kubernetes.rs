//! A Kubernetes cluster on the testkit's fake API server with a confirmed leader, for the CLI
//! to read.

use std::sync::Arc;

use tenure::election::{ElectionService, LeaderElection, LeaderTerm};
use tenure::ids::ComponentId;
use tenure::layout::Layout;
use tenure_testkit::kube_fake::{KubernetesFactory, ProcessSetup};

/// The address the REST server's leader publishes.
pub const REST_ADDRESS: &str = "http://10.0.0.5:8081";

/// A process of `factory`'s cluster that leads the REST server and has confirmed
/// [`REST_ADDRESS`] in the returned term, and the set-up (kubeconfig, Flink config) a `tenure`
/// process needs to reach the same cluster.
pub async fn rest_server_leader(
    factory: &KubernetesFactory,
) -> (ProcessSetup, LeaderElection, LeaderTerm) {
    let setup = ProcessSetup::new(factory.server(), &factory.settings(), "");
    let backend = Arc::new(factory.connect_k8s().await);
    let layout = Layout::default();
    let election = ElectionService::new(backend, layout, layout.cluster_latch())
        .register(ComponentId::RestServer)
        .await
        .expect("register");
    let mut rx = election.leadership();
    let term = rx
        .wait_for(|l| l.term().is_some())
        .await
        .expect("granted")
        .term()
        .cloned()
        .expect("leader");
    assert!(
        election
            .confirm(term.session_id, REST_ADDRESS)
            .await
            .expect("confirm")
    );
    (setup, election, term)
}
