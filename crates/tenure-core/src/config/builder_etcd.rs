//! The typed builder of etcd HA settings ([`HaConfig::etcd`]).

use std::time::Duration;

use super::builder::HaConfigBuilder;
use super::{HaConfig, etcd_security};

/// Marks a builder of etcd settings ([`HaConfig::etcd`]).
#[derive(Debug, Clone, Copy)]
pub struct Etcd;

impl HaConfig {
    /// A builder for etcd HA (`high-availability.type: etcd`, a tenure extension) with the
    /// client URLs `endpoints` (`high-availability.etcd.endpoints`, comma-separated). etcd HA
    /// needs a [storage directory](HaConfigBuilder::storage_dir) too.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tenure_core::config::{HaConfig, HaMode};
    ///
    /// let config = HaConfig::etcd("https://etcd-0:2379,https://etcd-1:2379")
    ///     .cluster_id("my-app")
    ///     .storage_dir("s3://bucket/ha")
    ///     .lease_ttl(Duration::from_secs(10))
    ///     .tls_ca_file("/etc/etcd/ca.pem")
    ///     .build()?;
    /// assert_eq!(config.mode, HaMode::Etcd);
    /// assert_eq!(config.etcd.endpoints.len(), 2);
    /// # Ok::<(), tenure_core::config::ConfigError>(())
    /// ```
    pub fn etcd(endpoints: impl Into<String>) -> HaConfigBuilder<Etcd> {
        HaConfigBuilder::with_mode("etcd").set(etcd_security::ENDPOINTS_KEY, endpoints.into())
    }
}

impl HaConfigBuilder<Etcd> {
    /// `high-availability.etcd.path.root` (default `/flink`): the prefix of every cluster's
    /// keys.
    pub fn root(self, root: impl Into<String>) -> Self {
        self.set("high-availability.etcd.path.root", root)
    }

    /// `high-availability.etcd.lease-ttl` (default 15 s, whole seconds): how long etcd keeps
    /// the lease (and so the leadership) of a process it stopped hearing from.
    pub fn lease_ttl(self, ttl: Duration) -> Self {
        self.duration("high-availability.etcd.lease-ttl", ttl)
    }

    /// Whether a suspended connection (renewals failing inside the TTL) keeps leadership
    /// (`high-availability.zookeeper.client.tolerate-suspended-connections`, shared with
    /// ZooKeeper; default false).
    pub fn tolerate_suspended_connections(self, tolerate: bool) -> Self {
        self.set(
            "high-availability.zookeeper.client.tolerate-suspended-connections",
            tolerate.to_string(),
        )
    }

    /// TLS to the endpoints, verified with the CA certificates in the PEM file `ca_file`
    /// (`high-availability.etcd.tls.ca-file`).
    pub fn tls_ca_file(self, ca_file: impl Into<String>) -> Self {
        self.set(etcd_security::TLS_CA_FILE_KEY, ca_file)
    }

    /// A client certificate for mutual TLS: the PEM chain `cert_file` and its PEM key
    /// `key_file` (`high-availability.etcd.tls.cert-file`, `.tls.key-file`).
    pub fn tls_client_cert(
        self,
        cert_file: impl Into<String>,
        key_file: impl Into<String>,
    ) -> Self {
        self.set(etcd_security::TLS_CERT_FILE_KEY, cert_file)
            .set(etcd_security::TLS_KEY_FILE_KEY, key_file)
    }

    /// etcd user and password (`high-availability.etcd.username`, `.password`; hidden in
    /// `Debug` output).
    pub fn credentials(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.set(etcd_security::USERNAME_KEY, username)
            .set(etcd_security::PASSWORD_KEY, password)
    }

    /// etcd user with the password read from `password_file` at connect
    /// (`high-availability.etcd.username`, `.password-file`).
    pub fn credentials_file(
        self,
        username: impl Into<String>,
        password_file: impl Into<String>,
    ) -> Self {
        self.set(etcd_security::USERNAME_KEY, username)
            .set(etcd_security::PASSWORD_FILE_KEY, password_file)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_etcd_builder_records_flink_style_keys_and_validates_them() {
        let config = HaConfig::etcd("https://127.0.0.1:2379")
            .cluster_id("c")
            .storage_dir("/tmp/ha")
            .root("/ha")
            .lease_ttl(Duration::from_secs(4))
            .tls_ca_file("/ca.pem")
            .credentials("alice", "secret")
            .build()
            .expect("valid");
        assert_eq!(config.etcd.root, "/ha");
        assert_eq!(config.etcd.lease_ttl, Duration::from_secs(4));
        assert_eq!(config.etcd.endpoints, vec!["https://127.0.0.1:2379"]);
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret"), "{shown}");

        let e = HaConfig::etcd("http://127.0.0.1:2379")
            .cluster_id("c")
            .storage_dir("/tmp/ha")
            .tls_client_cert("/c.pem", "/k.pem")
            .build()
            .expect_err("plaintext endpoint with TLS keys");
        assert!(e.to_string().contains("http://127.0.0.1:2379"), "{e}");
    }
}
