//! The core crate's behaviour seen from outside: blob store choice, observer events, resolved paths
//! and the suspended-connection policy.
//!
//! One test binary per crate: every file beside this one is a module of it (one subject
//! each), so the suite links once instead of once per file; nextest still runs every test
//! in a process of its own. Filter by module, e.g. `-E 'test(/^blob_store_choice::/)'`.

mod blob_store_choice;
mod observer_events;
mod resolved_paths;
mod suspended_policy;
