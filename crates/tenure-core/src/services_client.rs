//! Client-only HA services (Flink's `ClientHighAvailabilityServices`): follow leaders and read
//! the HA stores, without a backend session that writes anything.
//!
//! A process that only reads (a CLI, a REST client, a dashboard) should leave no trace on the
//! backend. [`ClientHaServices`] has no elections and no write methods. It runs on a
//! [`ReadOnlyBackend`] view of the session, whose KV
//! ([`ReadOnlyKv`](crate::kv_read_only::ReadOnlyKv)) refuses every write with
//! [`KvError::Unauthorized`](crate::kv::KvError::Unauthorized) before anything is sent, so the
//! stores it hands out can read but not write. The backend
//! session must be one that writes nothing on its own either: on ZooKeeper a session creates
//! no znode until asked; on Kubernetes connect with the client-only setting (no session
//! ConfigMap, no renewals, watches by ConfigMap name). `tenure::connect_client` does that from
//! a configuration.
//!
//! Leader retrieval is the same as the full services' (the session driver's, see
//! [`crate::retrieval`]): only the session under it differs.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

use crate::backend_read_only::ReadOnlyBackend;
use crate::blob::BlobStore;
use crate::connection::ConnectionState;
use crate::driver::HaBackend;
use crate::ha_stores::HaStores;
use crate::ids::{ComponentId, IdError, JobId, ServiceName};
use crate::kv::VersionedKv;
use crate::layout::Layout;
use crate::retrieval::LeaderRetriever;
use crate::services::{HaError, HaServicesOptions, JobResultStorage};
use crate::store::{
    FileJobResultStore, JobGraphStore, JobResultStore, KvJobResultStore, PayloadCodec, Writes,
};

/// The read-only HA services of a client process: leader retrievers, read-only stores and
/// `close()`.
///
/// Clones are handles on the same services; [`close`](Self::close) on any closes them for all.
///
/// ```
/// # use tenure_core::config::HaConfig;
/// # use tenure_core::embedded::EmbeddedCluster;
/// # use tenure_core::services::HaServicesOptions;
/// # use tenure_core::services_client::ClientHaServices;
/// # use std::sync::Arc;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cluster = EmbeddedCluster::new();
/// let leader = cluster.services(&HaConfig::embedded())?;
/// let mut election = leader.dispatcher_leader_election().await?;
/// let term = election.wait_for_leadership().await?;
/// election.confirm(term.session_id, "pekko.tcp://flink@jm-1:6123/user/rpc/dispatcher_1").await?;
///
/// let client = ClientHaServices::new(Arc::new(cluster.connect()), HaServicesOptions::default());
/// let retriever = client.dispatcher_leader_retriever();
/// let mut leader = retriever.leader();
/// let state = leader.wait_for(|l| l.leader().is_some()).await?.clone();
/// assert_eq!(state.leader().map(|i| i.session_id), Some(term.session_id));
/// // The stores read; a write is refused before it reaches the backend.
/// assert!(client.stores().running_jobs().all().await?.is_empty());
/// client.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientHaServices {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn HaBackend>,
    options: HaServicesOptions,
    kv: Arc<dyn VersionedKv>,
    codec: PayloadCodec,
    owner: Arc<str>,
    job_results: JobResultStore,
}

impl fmt::Debug for ClientHaServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHaServices")
            .field("backend", &self.inner.backend.kind())
            .field("blobs", &self.inner.options.blobs)
            .finish()
    }
}

impl ClientHaServices {
    /// Read-only services on `backend`, a session that writes nothing by itself (see the
    /// module docs).
    pub fn new(backend: Arc<dyn HaBackend>, options: HaServicesOptions) -> Self {
        let backend: Arc<dyn HaBackend> = Arc::new(ReadOnlyBackend::new(backend));
        let kv = backend.kv();
        let job_results: JobResultStore = match &options.job_results {
            JobResultStorage::Kv => {
                KvJobResultStore::new(kv.clone(), options.layout, Writes::Unfenced).into()
            }
            JobResultStorage::Files {
                dir,
                delete_on_commit,
                ..
            } => FileJobResultStore::new(dir.clone(), *delete_on_commit).into(),
        };
        Self {
            inner: Arc::new(Inner {
                codec: PayloadCodec::new(options.blobs.clone()),
                owner: JobGraphStore::new_owner_id().into(),
                backend,
                options,
                kv,
                job_results,
            }),
        }
    }

    /// The backend kind (`embedded`, `zookeeper`, `kubernetes`, ...).
    pub fn backend_kind(&self) -> &'static str {
        self.inner.backend.kind()
    }

    /// The connection state of the session.
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.backend.connection_state()
    }

    /// The backend's KV, read-only: reads and watches pass, writes are refused.
    pub fn kv(&self) -> Arc<dyn VersionedKv> {
        self.inner.kv.clone()
    }

    /// The key layout.
    pub fn layout(&self) -> Layout {
        self.inner.options.layout
    }

    /// The options the services were built with.
    pub fn options(&self) -> &HaServicesOptions {
        &self.inner.options
    }

    /// The blob store of this cluster (read by the stores for payloads above 1 KiB).
    pub fn blob_store(&self) -> &BlobStore {
        &self.inner.options.blobs
    }

    /// Follows `component`'s leader (the session driver's retrieval, as in the full services).
    pub fn leader_retriever(&self, component: ComponentId) -> LeaderRetriever {
        LeaderRetriever::start(
            self.inner.backend.clone(),
            self.inner.options.layout,
            component,
            None,
        )
    }

    /// Follows the leader of the named service `name` (`leader/<name>/connection_info`).
    pub fn retriever(&self, name: &str) -> Result<LeaderRetriever, IdError> {
        let service = ServiceName::new(name)?;
        Ok(self.leader_retriever(ComponentId::Named(service)))
    }

    /// Follows the resource manager's leader.
    pub fn resource_manager_leader_retriever(&self) -> LeaderRetriever {
        self.leader_retriever(ComponentId::ResourceManager)
    }

    /// Follows the dispatcher's leader.
    pub fn dispatcher_leader_retriever(&self) -> LeaderRetriever {
        self.leader_retriever(ComponentId::Dispatcher)
    }

    /// Follows the REST endpoint's leader (what Flink's `ClientHighAvailabilityServices`
    /// offers a client).
    pub fn rest_endpoint_leader_retriever(&self) -> LeaderRetriever {
        self.leader_retriever(ComponentId::RestServer)
    }

    /// Follows a job master's leader; `default_address` is shown while none is published.
    pub fn job_master_leader_retriever(
        &self,
        job: JobId,
        default_address: Option<String>,
    ) -> LeaderRetriever {
        LeaderRetriever::start(
            self.inner.backend.clone(),
            self.inner.options.layout,
            ComponentId::JobMaster(job),
            default_address,
        )
    }

    /// The HA stores for reading: job graphs, checkpoints, counters, the running jobs
    /// registry and job results. Every write through them fails with
    /// [`KvError::Unauthorized`](crate::kv::KvError::Unauthorized) and nothing is written.
    pub fn stores(&self) -> HaStores {
        HaStores {
            kv: self.kv(),
            layout: self.inner.options.layout,
            codec: self.inner.codec.clone(),
            owner: self.inner.owner.clone(),
            writes: Writes::Unfenced,
            num_retained_checkpoints: self.inner.options.num_retained_checkpoints,
            job_results: self.inner.job_results.clone(),
        }
    }

    /// The job result store, for reading (on the KV, writes are refused; Flink's JSON files
    /// live in the storage directory, not on the backend).
    pub fn job_result_store(&self) -> JobResultStore {
        self.inner.job_results.clone()
    }

    /// Closes the session (nothing is released or deleted: nothing was created). Closing again
    /// is harmless.
    pub async fn close(&self) -> Result<(), HaError> {
        self.inner.backend.close().await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedCluster;
    use crate::kv::KvError;
    use crate::store::StoreError;

    #[tokio::test]
    async fn stores_read_and_refuse_writes_naming_the_key() {
        let cluster = EmbeddedCluster::new();
        let client =
            ClientHaServices::new(Arc::new(cluster.connect()), HaServicesOptions::default());
        let job = JobId::new_random();
        let stores = client.stores();
        assert_eq!(stores.running_jobs().all().await.unwrap().len(), 0);
        let e = stores.running_jobs().set_running(job).await.unwrap_err();
        assert!(e.to_string().contains("client-only"), "{e}");
        assert!(
            matches!(e, StoreError::Kv(KvError::Unauthorized { .. })),
            "{e:?}"
        );
        let e = stores
            .checkpoint_id_counter(job)
            .set(crate::ids::CheckpointId(7))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("client-only"), "{e}");
        assert!(stores.running_jobs().all().await.unwrap().is_empty());
        client.close().await.unwrap();
    }
}
