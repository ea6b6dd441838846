//! The conformance suites on the Kubernetes backend, against the fake API server (one server
//! per test).

tenure_testkit::conformance_tests!(tenure_testkit::kube_fake::KubernetesFactory::start().await);
