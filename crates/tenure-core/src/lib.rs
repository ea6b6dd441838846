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
//! jm1.job_graph_store(Some(t1.fencing_token.clone()))?.put(job, Bytes::from_static(b"graph")).await?;
//!
//! a.kill(); // the first process crashes
//! let t2 = e2.wait_for_leadership().await?;
//! assert_ne!(t1.session_id, t2.session_id);
//! let graphs = jm2.job_graph_store(Some(t2.fencing_token))?;
//! assert_eq!(graphs.recover(job).await?, Bytes::from_static(b"graph"));
//! # Ok(()) }
//! ```

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
pub mod ids;
pub mod kv;
pub mod latch;
pub mod layout;
pub mod leader_info;
pub mod observed_kv;
pub mod observer;
pub mod retrieval;
pub mod retry;
pub mod segments;
pub mod services;
pub mod store;
pub mod sync;
pub mod watch_hub;
