//! The Kubernetes backend on a fake API server, as a [`BackendFactory`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tenure_core::driver::HaBackend;
use tenure_kubernetes::{KubernetesBackend, KubernetesSettings};

use super::FakeApiServer;
use crate::BackendFactory;

/// Settings for tests: namespace `tenure-test`, a short lease (3 s), renew deadline (2 s) and
/// retry period (200 ms), so failovers take seconds.
pub fn test_settings(cluster_id: &str) -> KubernetesSettings {
    KubernetesSettings::new("tenure-test", cluster_id).with_timing(
        Duration::from_secs(3),
        Duration::from_secs(2),
        Duration::from_millis(200),
    )
}

/// One fake API server and one cluster id; every connection is a new process's backend.
pub struct KubernetesFactory {
    server: FakeApiServer,
    settings: KubernetesSettings,
    backends: Mutex<Vec<(Arc<dyn HaBackend>, KubernetesBackend)>>,
}

impl std::fmt::Debug for KubernetesFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesFactory")
            .field("url", &self.server.url())
            .field("settings", &self.settings)
            .finish()
    }
}

impl KubernetesFactory {
    /// A new fake server and a fresh cluster id with [`test_settings`].
    pub async fn start() -> Self {
        let cluster_id = format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Self::start_with(test_settings(&cluster_id)).await
    }

    /// A new fake server; backends connect with `settings`.
    pub async fn start_with(settings: KubernetesSettings) -> Self {
        Self {
            server: FakeApiServer::start().await,
            settings,
            backends: Mutex::new(Vec::new()),
        }
    }

    /// The fake API server.
    pub fn server(&self) -> &FakeApiServer {
        &self.server
    }

    /// The settings backends connect with.
    pub fn settings(&self) -> KubernetesSettings {
        self.settings.clone()
    }

    /// Connects a new backend (a new simulated process), typed.
    pub async fn connect_k8s(&self) -> KubernetesBackend {
        self.connect_with(self.settings.clone()).await
    }

    /// Connects a new client-only backend (a reader that writes nothing), typed.
    pub async fn connect_client_k8s(&self) -> KubernetesBackend {
        self.connect_with(self.settings.clone().for_client_only())
            .await
    }

    /// Connects a new backend with other settings.
    pub async fn connect_with(&self, settings: KubernetesSettings) -> KubernetesBackend {
        KubernetesBackend::connect_url(settings, &self.server.url())
            .await
            .expect("connect to the fake API server")
    }
}

#[async_trait]
impl BackendFactory for KubernetesFactory {
    async fn connect(&self) -> Arc<dyn HaBackend> {
        let backend = self.connect_k8s().await;
        let dynamic: Arc<dyn HaBackend> = Arc::new(backend.clone());
        tenure_core::sync::lock(&self.backends).push((dynamic.clone(), backend));
        dynamic
    }

    async fn connect_client(&self) -> Arc<dyn HaBackend> {
        Arc::new(self.connect_client_k8s().await)
    }

    async fn crash(&self, backend: &Arc<dyn HaBackend>) {
        let typed = tenure_core::sync::lock(&self.backends)
            .iter()
            .find(|(d, _)| std::ptr::addr_eq(Arc::as_ptr(d), Arc::as_ptr(backend)))
            .map(|(_, t)| t.clone());
        match typed {
            Some(t) => t.kill(),
            None => {
                let _ = backend.close().await;
            }
        }
    }
}
