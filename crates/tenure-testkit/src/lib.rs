//! Conformance suites and test helpers for tenure backends.
//!
//! Every backend runs the same suites: implement [`BackendFactory`] (connect a new simulated
//! process to one test cluster, crash one) and invoke [`conformance_tests!`] in a test file.
//!
//! ```text
//! // a test module of a backend crate (e.g. tests/suite/embedded.rs):
//! tenure_testkit::conformance_tests!(tenure_testkit::EmbeddedFactory::new());
//! ```

#![allow(clippy::unwrap_used)] // test-support code: a failed unwrap is a failed test

pub mod ensemble;
pub mod etcd;
pub mod etcd_security;
mod grants;
pub mod history;
pub mod kube_fake;
mod ports;
pub mod proxy;
pub mod refused_port;
pub mod suites;
mod wait;
pub mod zookeeper;

use std::sync::Arc;

use async_trait::async_trait;
use tenure_core::driver::HaBackend;
use tenure_core::embedded::{EmbeddedCluster, EmbeddedSession};

pub use grants::{grants_until_settled, join, lead_alone};
pub use wait::{DEADLINE, wait_for, wait_until};

/// Connects simulated processes to one test cluster of a backend.
#[async_trait]
pub trait BackendFactory: Send + Sync {
    /// Connects a new process (a new backend session) to the cluster.
    async fn connect(&self) -> Arc<dyn HaBackend>;

    /// Connects a new client-only process (Flink's `ClientHighAvailabilityServices`): a session
    /// that only reads. The default is [`connect`](Self::connect), right for backends whose
    /// session writes nothing until asked (ZooKeeper, embedded).
    async fn connect_client(&self) -> Arc<dyn HaBackend> {
        self.connect().await
    }

    /// Crashes a process: its session ends abruptly, as when the process is killed.
    async fn crash(&self, backend: &Arc<dyn HaBackend>) {
        let _ = backend.close().await;
    }
}

/// The embedded backend as a [`BackendFactory`]: one [`EmbeddedCluster`], one session per process.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedFactory {
    cluster: EmbeddedCluster,
}

impl EmbeddedFactory {
    /// A factory over a new embedded cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cluster the sessions connect to.
    pub fn cluster(&self) -> &EmbeddedCluster {
        &self.cluster
    }
}

#[async_trait]
impl BackendFactory for EmbeddedFactory {
    async fn connect(&self) -> Arc<dyn HaBackend> {
        Arc::new(self.cluster.connect())
    }

    async fn crash(&self, backend: &Arc<dyn HaBackend>) {
        let _ = backend.close().await;
    }
}

/// A fresh session of the embedded backend, typed, for backend-specific tests.
pub fn embedded_session(cluster: &EmbeddedCluster) -> EmbeddedSession {
    cluster.connect()
}

/// Generates one `#[tokio::test]` per conformance case, each with a fresh factory from `$factory`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            kv::create_get_and_versions,
            kv::compare_and_set_checks_versions,
            kv::delete_checks_versions_and_descendants,
            kv::list_is_sorted_and_recursive,
            kv::ephemeral_keys_die_with_the_session,
            kv::watch_sees_other_processes_changes,
            kv::fenced_writes_fail_after_the_term,
            kv::invalid_keys_are_rejected,
            kv::txn_is_all_or_nothing,
            kv::txn_fence_is_checked,
            kv::forged_fencing_tokens_are_rejected,
            election::single_contender_is_granted_and_published,
            election::fresh_session_id_every_term,
            election::stopping_leader_hands_over,
            election::crashed_leader_hands_over,
            election::deposed_leader_cannot_write,
            election::stale_confirm_is_ignored,
            election::process_wide_election_grants_every_component,
            election::per_component_elections_are_independent,
            election::contender_callbacks_follow_leadership,
            election::backend_errors_reach_handle_error,
            election::stop_after_the_session_closed_returns,
            election_named::named_election_hands_over_and_is_retrieved,
            election_named::invalid_service_names_are_rejected,
            election_named::named_and_process_wide_elections_are_independent,
            election_named::named_leader_data_is_cleaned_up,
            churn::churn_leaves_nothing_in_the_driver,
            retrieval::retriever_follows_leader_changes,
            retrieval::job_master_retriever_uses_default_address,
            client_only::client_reader_follows_leaders_and_leaves_no_trace,
            stores::job_graph_locks_protect_other_processes,
            stores::crashed_process_locks_vanish,
            stores::job_graph_watch_sees_other_processes,
            stores::checkpoint_retention_and_recovery,
            stores::checkpoint_shutdown_keeps_or_discards,
            stores::concurrent_checkpoint_adds_keep_the_retained_view,
            stores::counter_hands_out_each_id_once,
            stores::deposed_leader_store_writes_are_rejected,
            stores::job_results_go_from_dirty_to_clean,
            stores::running_jobs_registry_tracks_status,
            cleanup::close_keeps_data_for_recovery,
            cleanup::cleanup_removes_all_data,
            job_cleanup::job_cleanup_removes_exactly_the_jobs_data,
            job_cleanup::a_crash_mid_cleanup_is_finished_by_the_next_leader,
            job_cleanup::job_cleanup_is_idempotent,
            job_cleanup::a_deposed_leaders_cleanup_is_refused,
        );
    };
    (@cases $factory:expr; $($suite:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let factory = $factory;
                $crate::suites::$suite::$case(&factory).await;
            }
        )*
    };
}
