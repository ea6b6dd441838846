//! The etcd backend against real etcd servers the tests start.
//!
//! One test binary per crate: every file beside this one is a module of it (one subject
//! each), so the suite links once instead of once per file; nextest still runs every test
//! in a process of its own. Filter by module, e.g. `-E 'test(/^client_only::/)'`.

mod client_only;
mod handover_requests;
mod keepalive;
mod latch_waits;
mod security;
mod session;
mod session_cluster;
mod txn;
mod watch;
