//! The testkit's integration tests: the conformance suites on each backend, the fault suite and its
//! history check, the Kubernetes fake API server against recorded real responses.
//!
//! One test binary per crate: every file beside this one is a module of it (one subject
//! each), so the suite links once instead of once per file; nextest still runs every test
//! in a process of its own. Filter by module, e.g. `-E 'test(/^embedded::/)'`.

mod common;

mod embedded;
mod etcd;
mod etcd_connect;
mod etcd_faults;
mod etcd_server;
mod faults_ensemble;
mod faults_etcd;
mod faults_etcd_cluster;
mod faults_etcd_partition;
mod faults_etcd_server;
mod faults_kill;
mod faults_partition;
mod faults_server;
mod faults_stop;
mod history;
mod kubernetes;
mod kubernetes_backend;
mod kubernetes_demo;
mod kubernetes_fake;
mod kubernetes_faults;
mod kubernetes_job_cleanup;
mod kubernetes_real;
mod proxy;
mod zookeeper;
