//! Elections and retrievers of any service by name: `services.election("my-cron")`.
//!
//! A named service is a [`ComponentId::Named`] and goes through the same machinery as Flink's
//! components: the session driver's elections and retrievals, leader information in Flink's
//! format at `leader/<name>/connection_info` (on Kubernetes the data key
//! `org.apache.flink.k8s.leader.<name>` of the cluster ConfigMap), and cleanup, which counts
//! `leader/<name>/...` as the cluster's data. Its election always campaigns on the service's
//! own latch, `leader/<name>/latch` (on Kubernetes the ConfigMap `<cluster-id>-<name>-leader`),
//! whatever [`ElectionMode`](crate::services::ElectionMode) the services use: a named service
//! is independent of the JobManagers' process-wide latch. Names are validated by
//! [`ServiceName::new`]; the error names the name and the rule it breaks.
//!
//! Two processes elect `my-cron`; the second takes over when the first stops, and a retriever
//! follows whoever leads:
//!
//! ```
//! use std::sync::Arc;
//! use tenure_core::embedded::EmbeddedCluster;
//! use tenure_core::services::{HaServices, HaServicesOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = EmbeddedCluster::new();
//! let a = HaServices::new(Arc::new(cluster.connect()), HaServicesOptions::default());
//! let b = HaServices::new(Arc::new(cluster.connect()), HaServicesOptions::default());
//!
//! let mut first = a.election("my-cron").await?;
//! let mut second = b.election("my-cron").await?;
//! let term = first.wait_for_leadership().await?;
//! first.confirm(term.session_id, "host-a:9000").await?;
//!
//! let retriever = b.retriever("my-cron")?;
//! let mut leader = retriever.leader();
//! leader.wait_for(|l| l.leader().is_some_and(|i| i.address == "host-a:9000")).await?;
//!
//! first.stop().await?;
//! let next = second.wait_for_leadership().await?;
//! assert_ne!(next.session_id, term.session_id);
//!
//! assert!(a.election("My Cron").await.is_err()); // not a DNS label
//! # Ok(()) }
//! ```

use crate::election::{ElectionError, ElectionService, LeaderElection};
use crate::ids::{ComponentId, IdError, ServiceName};
use crate::retrieval::LeaderRetriever;
use crate::services::HaServices;

impl HaServices {
    /// The election service of the service `name` alone: it campaigns on the service's own
    /// latch (`leader/<name>/latch`), reporting to these services' observer.
    pub fn named_election_service(&self, name: ServiceName) -> ElectionService {
        let layout = self.layout();
        let component = ComponentId::Named(name);
        ElectionService::new(
            self.backend().clone(),
            layout,
            layout.component_latch(&component),
        )
        .with_observer(self.observer().clone())
    }

    /// Starts campaigning for the service `name` on its own latch (`leader/<name>/latch`),
    /// independent of the process-wide election. Each call is one more contender, in this
    /// process or any other; confirming a term publishes the leader's address at
    /// `leader/<name>/connection_info`. A `name` that is not a valid [`ServiceName`] is
    /// [`ElectionError::InvalidName`].
    pub async fn election(&self, name: &str) -> Result<LeaderElection, ElectionError> {
        let service = ServiceName::new(name)?;
        self.named_election_service(service.clone())
            .register(ComponentId::Named(service))
            .await
    }

    /// Follows the leader of the service `name` (what its leader confirmed at
    /// `leader/<name>/connection_info`). Must be called inside a tokio runtime.
    pub fn retriever(&self, name: &str) -> Result<LeaderRetriever, IdError> {
        let service = ServiceName::new(name)?;
        Ok(self.leader_retriever(ComponentId::Named(service)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::election::ElectionError;
    use crate::embedded::EmbeddedCluster;
    use crate::ids::{ComponentId, IdError, ServiceName};
    use crate::services::{HaServices, HaServicesOptions};

    #[tokio::test]
    async fn invalid_names_are_refused_naming_the_name() {
        let cluster = EmbeddedCluster::new();
        let services = HaServices::new(Arc::new(cluster.connect()), HaServicesOptions::default());
        for bad in ["My-Cron", "latch", "dispatcher", ""] {
            let err = services.election(bad).await.unwrap_err();
            assert!(
                matches!(err, ElectionError::InvalidName(IdError::InvalidServiceName { ref name, .. }) if name == bad),
                "{err}"
            );
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
            let err = services.retriever(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[tokio::test]
    async fn a_named_component_campaigns_on_its_own_latch_in_the_process_wide_mode() {
        let cluster = EmbeddedCluster::new();
        let a = HaServices::new(Arc::new(cluster.connect()), HaServicesOptions::default());
        let b = HaServices::new(Arc::new(cluster.connect()), HaServicesOptions::default());
        let name = ServiceName::new("my-cron").unwrap();
        let mut named = a.leader_election(ComponentId::Named(name)).await.unwrap();
        named.wait_for_leadership().await.unwrap();
        // b's process-wide election is granted at once: a never joined `leader/latch`.
        let mut dispatcher = b.dispatcher_leader_election().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), dispatcher.wait_for_leadership())
            .await
            .expect("b leads the process-wide latch")
            .unwrap();
        // ... while "my-cron" by name is the same latch a holds: b waits behind a.
        let mut by_name = b.election("my-cron").await.unwrap();
        assert!(by_name.current().term().is_none());
        named.stop().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), by_name.wait_for_leadership())
            .await
            .expect("b takes over my-cron")
            .unwrap();
    }
}
