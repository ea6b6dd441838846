//! The ZooKeeper backend against real ZooKeeper servers the tests start.
//!
//! One test binary per crate: every file beside this one is a module of it (one subject
//! each), so the suite links once instead of once per file; nextest still runs every test
//! in a process of its own. Filter by module, e.g. `-E 'test(/^client_only::/)'`.

mod common;

mod client_only;
mod client_options;
mod handover_requests;
mod job_graphs_path;
mod join_requests;
mod kerberos;
mod latch;
mod latch_waits;
mod layout;
mod no_storage_dir;
mod read_during_reconnect;
mod sasl;
mod session;
mod tls;
mod txn;
mod watch_sharing;
