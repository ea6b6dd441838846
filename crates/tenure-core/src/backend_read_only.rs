//! A read-only view of a backend session: what client-only services run on.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::connection::{ConnectionState, SuspendedPolicy};
use crate::driver::{HaBackend, SessionDriver};
use crate::kv::{KvError, VersionedKv};
use crate::kv_read_only::ReadOnlyKv;

/// A backend session seen read-only: its KV is a [`ReadOnlyKv`] (writes refused) and its
/// driver a [`SessionDriver::read_only`] handle (leader retrieval runs as usual; registering
/// a contender or joining a latch is refused). Services built on it, [`HaServices`] included,
/// can read and follow leaders but not write: every write fails with
/// [`KvError::Unauthorized`] naming what was refused, before anything reaches the backend.
///
/// Pair it with a session that writes nothing by itself (ZooKeeper's; the Kubernetes
/// backend's client-only mode), as [`ClientHaServices`] does.
///
/// [`HaServices`]: crate::services::HaServices
/// [`ClientHaServices`]: crate::services_client::ClientHaServices
#[derive(Debug, Clone)]
pub struct ReadOnlyBackend {
    inner: Arc<dyn HaBackend>,
}

impl ReadOnlyBackend {
    /// A read-only view of `inner`; closing it closes `inner`.
    pub fn new(inner: Arc<dyn HaBackend>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl HaBackend for ReadOnlyBackend {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn kv(&self) -> Arc<dyn VersionedKv> {
        Arc::new(ReadOnlyKv::new(self.inner.kv()))
    }

    fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.connection_state()
    }

    fn suspended_policy(&self) -> SuspendedPolicy {
        self.inner.suspended_policy()
    }

    fn driver(&self) -> Result<SessionDriver, KvError> {
        self.inner.driver().map(|d| d.read_only())
    }

    async fn close(&self) -> Result<(), KvError> {
        self.inner.close().await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::HaConfig;
    use crate::embedded::EmbeddedCluster;
    use crate::services::{HaServices, HaServicesOptions};

    #[tokio::test]
    async fn services_on_a_read_only_view_follow_leaders_but_cannot_campaign() {
        let cluster = EmbeddedCluster::new();
        let leader = cluster.services(&HaConfig::embedded()).unwrap();
        let mut election = leader.dispatcher_leader_election().await.unwrap();
        let term = election.wait_for_leadership().await.unwrap();
        election.confirm(term.session_id, "jm:1").await.unwrap();

        let view = Arc::new(ReadOnlyBackend::new(Arc::new(cluster.connect())));
        let reader = HaServices::new(view, HaServicesOptions::default());
        let retriever = reader.dispatcher_leader_retriever();
        let mut rx = retriever.leader();
        rx.wait_for(|s| s.leader().is_some_and(|l| l.address == "jm:1"))
            .await
            .unwrap();
        let e = reader.dispatcher_leader_election().await.unwrap_err();
        assert!(e.to_string().contains("client-only"), "{e}");
        let e = reader
            .admin_stores()
            .running_jobs()
            .set_running(crate::ids::JobId::new_random())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("client-only"), "{e}");
    }
}
