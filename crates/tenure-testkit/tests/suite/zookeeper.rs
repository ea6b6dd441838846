//! The conformance suites on a real ZooKeeper server (one server per test, on a free port).

tenure_testkit::conformance_tests!(tenure_testkit::zookeeper::ZooKeeperFactory::start().await);
