//! The `tenure` command line, run as a process against the embedded backend and real ZooKeeper,
//! etcd and the Kubernetes fake API server.
//!
//! One test binary per crate: every file beside this one is a module of it (one subject
//! each), so the suite links once instead of once per file; nextest still runs every test
//! in a process of its own. Filter by module, e.g. `-E 'test(/^adversarial::/)'`.

mod common;

mod adversarial;
mod cli;
mod colour;
mod connect;
mod demo;
mod demo_flags;
mod etcd;
mod etcd_security;
mod jobs_cleanup;
mod kubernetes;
mod kubernetes_client_only;
mod metrics_endpoint;
mod run;
mod run_faults;
mod run_named;
mod standby;
mod usage_errors;
mod zookeeper;
