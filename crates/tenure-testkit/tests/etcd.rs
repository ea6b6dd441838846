//! The conformance suites on a real etcd server (one server per test, on free ports).
//!
//! The cases that need a leader latch (fencing by a term, elections, retrieval, stores) wait
//! for the etcd latch recipe; these run now.

tenure_testkit::conformance_tests!(@cases tenure_testkit::etcd::EtcdFactory::start().await;
    kv::create_get_and_versions,
    kv::compare_and_set_checks_versions,
    kv::delete_checks_versions_and_descendants,
    kv::list_is_sorted_and_recursive,
    kv::ephemeral_keys_die_with_the_session,
    kv::watch_sees_other_processes_changes,
    kv::invalid_keys_are_rejected,
    kv::txn_is_all_or_nothing,
);
