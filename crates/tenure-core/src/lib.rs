//! The backend-agnostic core of tenure.
//!
//! Identifiers, leader election and retrieval, the versioned KV trait every backend implements,
//! the typed HA stores written once over it, the blob store, and the embedded backend.
//!
//! Two simulated processes on one embedded cluster: the first leads; when it crashes, the
//! second is granted a new term and recovers the job graph the first acknowledged.
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use tenure_core::embedded::EmbeddedCluster;
//! use tenure_core::ids::JobId;
//! use tenure_core::services::{HaServices, HaServicesOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = EmbeddedCluster::new();
//! let options = HaServicesOptions::default();
//! let (a, b) = (cluster.connect(), cluster.connect());
//! let jm1 = HaServices::new(Arc::new(a.clone()), options.clone());
//! let jm2 = HaServices::new(Arc::new(b), options);
//!
//! let e1 = jm1.dispatcher_leader_election().await?;
//! let mut e2 = jm2.dispatcher_leader_election().await?;
//! let t1 = e1.leadership().wait_for(|l| l.term().is_some()).await?.term().cloned().unwrap();
//! let job = JobId::new_random();
//! // Stores taken from the term: every write carries the term's fencing token.
//! jm1.leader_stores(&t1).job_graphs().put(job, Bytes::from_static(b"graph")).await?;
//!
//! a.kill(); // the first process crashes
//! let t2 = e2.wait_for_leadership().await?;
//! assert_ne!(t1.session_id, t2.session_id);
//! let graphs = jm2.leader_stores(&t2).job_graphs();
//! assert_eq!(graphs.recover(job).await?, Bytes::from_static(b"graph"));
//! // The deposed leader's stores can no longer write.
//! assert!(jm1.leader_stores(&t1).job_graphs().put(job, Bytes::new()).await.is_err());
//! # Ok(()) }
//! ```
//!
//! # How a backend plugs in
//!
//! A backend (ZooKeeper, Kubernetes and the embedded one are the three here) provides:
//!
//! 1. [`kv::VersionedKv`]: versioned keys below the cluster's namespace, ephemeral keys owned by
//!    the session, watches below a prefix, the atomic [`kv::VersionedKv::txn`], and an exact
//!    check of a [`kv::FencingToken`] it minted, in the same atomic operation as every fenced
//!    write.
//! 2. Its leader latch as a [`driver::LatchRecipe`] (a state machine free of IO: observations in,
//!    requests and grants out) and a [`driver::LatchIo`] that makes recipes and performs their
//!    requests. A long wait (for a node's deletion) may be answered in two parts: the request's
//!    future says the wait is set, and the final response comes on
//!    [`driver::LatchIo::late_responses`], so a waiting participant holds no future in the
//!    driver (ZooKeeper's waits share one persistent watch per latch root).
//! 3. [`driver::HaBackend`]: the session's connection state, its [`driver::SessionDriver`]
//!    (started once per session with [`driver::SessionDriver::spawn`]), and `close`.
//!
//! These traits are used as trait objects (`Arc<dyn VersionedKv>`), so they are written with the
//! `async-trait` crate (native `async fn` in traits is not object-safe): rustdoc shows their
//! methods returning `Pin<Box<dyn Future<Output = …>>>`; implement them as `async fn` under
//! `#[async_trait]`. Everything a user of the services calls (elections, retrievers, stores) is
//! a plain `async fn` on a concrete type.
//!
//! Elections, retrieval, the typed stores, cleanup and [`services::HaServices`] are written once
//! over these and work unchanged on a new backend. `tenure_testkit::conformance_tests!` runs the
//! shared conformance suite against a `BackendFactory` of the new backend; the recipe gets
//! scripted unit tests of its own (see the ZooKeeper backend's `latch_tests.rs`).
//!
//! Use the `tenure` facade to connect by configuration (HA mode and Flink keys); depend on a
//! backend crate directly only to build its settings in code or to use what only it has.

pub mod backend_read_only;
pub mod blob;
pub mod cleanup;
pub mod clock;
pub mod codec;
pub mod config;
pub mod connect;
pub mod connection;
pub mod driver;
pub mod election;
pub mod embedded;
pub mod ha_stores;
pub mod ids;
pub mod job_cleanup;
pub mod kv;
pub mod kv_read_only;
pub mod latch;
pub mod layout;
pub mod leader_info;
pub mod observed_kv;
pub mod observer;
pub mod retrieval;
pub mod retry;
pub mod segments;
pub mod services;
pub mod services_client;
pub mod services_named;
pub mod store;
pub mod sync;
pub mod watch_hub;
