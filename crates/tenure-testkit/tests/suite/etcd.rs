//! The conformance suites on a real etcd server (one server per test, on free ports).

tenure_testkit::conformance_tests!(tenure_testkit::etcd::EtcdFactory::start().await);
