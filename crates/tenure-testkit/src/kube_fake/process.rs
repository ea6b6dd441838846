//! Running separate processes (the `tenure-contender`, `tenure demo`) against a fake API
//! server: a kubeconfig naming the server and a Flink configuration selecting Kubernetes HA.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tenure_kubernetes::KubernetesSettings;

use super::FakeApiServer;

/// A temporary directory with a kubeconfig for a fake server and a Flink configuration for
/// Kubernetes HA with the given settings' namespace, cluster id and timings.
#[derive(Debug)]
pub struct ProcessSetup {
    dir: tempfile::TempDir,
    /// The kubeconfig file.
    pub kubeconfig: PathBuf,
    /// The Flink configuration file.
    pub config: PathBuf,
    /// The HA storage directory (`high-availability.storageDir`).
    pub storage_dir: PathBuf,
}

fn duration(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

impl ProcessSetup {
    /// Writes the kubeconfig and the configuration (plus `extra` configuration lines).
    pub fn new(server: &FakeApiServer, settings: &KubernetesSettings, extra: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tenure-k8s-")
            .tempdir()
            .expect("temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {}\n\
                 current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
                server.url(),
                settings.namespace
            ),
        )
        .expect("write kubeconfig");
        let storage_dir = dir.path().join("ha");
        let config = dir.path().join("flink-conf.yaml");
        std::fs::write(
            &config,
            format!(
                "high-availability.type: kubernetes\n\
                 kubernetes.cluster-id: {}\n\
                 kubernetes.namespace: {}\n\
                 high-availability.storageDir: file://{}\n\
                 high-availability.kubernetes.leader-election.lease-duration: {}\n\
                 high-availability.kubernetes.leader-election.renew-deadline: {}\n\
                 high-availability.kubernetes.leader-election.retry-period: {}\n{extra}",
                settings.cluster_id,
                settings.namespace,
                storage_dir.display(),
                duration(settings.lease_duration),
                duration(settings.renew_deadline),
                duration(settings.retry_period),
            ),
        )
        .expect("write configuration");
        Self {
            dir,
            kubeconfig,
            config,
            storage_dir,
        }
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A command for `program` with `KUBECONFIG` pointing at the fake server.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("KUBECONFIG", &self.kubeconfig);
        c
    }
}
