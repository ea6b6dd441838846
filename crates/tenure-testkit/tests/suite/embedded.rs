//! The conformance suites on the embedded backend.

tenure_testkit::conformance_tests!(tenure_testkit::EmbeddedFactory::new());
