//! The backend-agnostic core of tenure.
//!
//! Identifiers, leader election and retrieval, the versioned KV trait every backend implements,
//! the typed HA stores written once over it, the blob store, and the embedded backend.

pub mod blob;
pub mod clock;
pub mod codec;
pub mod config;
pub mod connection;
pub mod driver;
pub mod election;
pub mod embedded;
pub mod ids;
pub mod kv;
pub mod layout;
pub mod leader_info;
pub mod retrieval;
pub mod services;
pub mod store;
