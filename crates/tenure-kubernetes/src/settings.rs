//! The backend's settings, from Flink's Kubernetes HA keys.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tenure_core::clock::{Clock, SystemClock};
use tenure_core::config::{HaConfig, KubernetesConfig};
pub use tenure_core::connect::ConnectError;
use tenure_core::retry::RetryPolicy;

use crate::names::{MAX_CLUSTER_ID, valid_cluster_id};

/// The config key of the cluster id, named in errors.
pub const CLUSTER_ID_KEY: &str = "kubernetes.cluster-id";

/// Everything the backend needs besides the client.
#[derive(Clone)]
pub struct KubernetesSettings {
    /// `kubernetes.namespace` of the HA ConfigMaps.
    pub namespace: String,
    /// `kubernetes.cluster-id`: prefix of every ConfigMap name, value of the `app` label.
    pub cluster_id: String,
    /// `high-availability.kubernetes.leader-election.lease-duration` (default 15 s).
    pub lease_duration: Duration,
    /// `high-availability.kubernetes.leader-election.renew-deadline` (default 15 s; used as at
    /// most the lease duration, so a leader always steps down before others may take over).
    pub renew_deadline: Duration,
    /// `high-availability.kubernetes.leader-election.retry-period` (default 5 s): how often
    /// the leader renews, contenders retry and sessions renew.
    pub retry_period: Duration,
    /// `kubernetes.transactional-operation.max-retries` (default 5): retries of a request that
    /// failed with a server or connection error.
    pub max_retries: u32,
    /// The deadline of one API request (default: the retry period, at least 1 s, at most 10 s).
    pub request_timeout: Duration,
    /// How much two processes' clocks may differ before a contender could take a lease early
    /// by the record's own renew time (default: the lease duration); see [`crate::lease`].
    pub skew_allowance: Duration,
    /// The clock all lease arithmetic reads.
    pub clock: Arc<dyn Clock>,
    /// Client-only (Flink's `ClientHighAvailabilityServices`): the backend only reads. It
    /// creates no session ConfigMap, renews and reaps nothing, joins no latch, refuses every
    /// write, and watches each ConfigMap it follows by name (`fieldSelector=metadata.name=`)
    /// instead of every HA ConfigMap of the cluster. Default `false`.
    pub client_only: bool,
}

impl fmt::Debug for KubernetesSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesSettings")
            .field("namespace", &self.namespace)
            .field("cluster_id", &self.cluster_id)
            .field("lease_duration", &self.lease_duration)
            .field("renew_deadline", &self.renew_deadline)
            .field("retry_period", &self.retry_period)
            .field("max_retries", &self.max_retries)
            .field("request_timeout", &self.request_timeout)
            .field("skew_allowance", &self.skew_allowance)
            .field("client_only", &self.client_only)
            .finish_non_exhaustive()
    }
}

fn default_request_timeout(retry: Duration) -> Duration {
    retry.clamp(Duration::from_secs(1), Duration::from_secs(10))
}

impl KubernetesSettings {
    /// Flink's defaults for `cluster_id` in `namespace`.
    pub fn new(namespace: impl Into<String>, cluster_id: impl Into<String>) -> Self {
        let d = KubernetesConfig::default();
        Self {
            namespace: namespace.into(),
            cluster_id: cluster_id.into(),
            lease_duration: d.lease_duration,
            renew_deadline: d.renew_deadline,
            retry_period: d.retry_period,
            max_retries: d.max_retries,
            request_timeout: default_request_timeout(d.retry_period),
            skew_allowance: d.lease_duration,
            clock: Arc::new(SystemClock),
            client_only: false,
        }
    }

    /// These settings for a client-only backend (the field `client_only`).
    pub fn for_client_only(mut self) -> Self {
        self.client_only = true;
        self
    }

    /// These settings with lease duration, renew deadline and retry period set (request
    /// timeout and skew allowance follow).
    pub fn with_timing(
        mut self,
        lease: Duration,
        renew_deadline: Duration,
        retry: Duration,
    ) -> Self {
        self.lease_duration = lease;
        self.renew_deadline = renew_deadline;
        self.retry_period = retry;
        self.request_timeout = default_request_timeout(retry);
        self.skew_allowance = lease;
        self
    }

    /// Settings from the Kubernetes keys of an HA configuration (`kubernetes.cluster-id` is
    /// required).
    pub fn from_config(k: &KubernetesConfig) -> Result<Self, ConnectError> {
        let cluster_id = k.cluster_id.clone().ok_or(ConnectError::InvalidConfig {
            key: CLUSTER_ID_KEY,
            reason: "not set; Kubernetes HA names its ConfigMaps after the cluster id".into(),
        })?;
        let s = Self::new(k.namespace.clone(), cluster_id).with_timing(
            k.lease_duration,
            k.renew_deadline,
            k.retry_period,
        );
        let s = Self {
            max_retries: k.max_retries,
            ..s
        };
        s.validate()?;
        Ok(s)
    }

    /// Settings from an HA configuration.
    pub fn from_ha_config(config: &HaConfig) -> Result<Self, ConnectError> {
        Self::from_config(&config.kubernetes)
    }

    /// The backoff between the attempts of connecting (checking the API server answers,
    /// creating the session ConfigMap): from [`RetryPolicy::MIN_WAIT`] doubling up to the retry
    /// period, at most 1 s (`kubernetes.transactional-operation.max-retries` bounds the count).
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new(
            RetryPolicy::MIN_WAIT,
            self.retry_period.min(Duration::from_secs(1)),
        )
    }

    /// Checks names and timings.
    pub fn validate(&self) -> Result<(), ConnectError> {
        if !valid_cluster_id(&self.cluster_id) {
            return Err(ConnectError::InvalidConfig {
                key: CLUSTER_ID_KEY,
                reason: format!(
                    "{:?} must be 1 to {MAX_CLUSTER_ID} lower-case letters, digits, '-' or '.', \
                     starting and ending with a letter or digit (it prefixes ConfigMap names)",
                    self.cluster_id
                ),
            });
        }
        if self.namespace.is_empty() {
            return Err(ConnectError::InvalidConfig {
                key: "kubernetes.namespace",
                reason: "empty".into(),
            });
        }
        for (key, d) in [
            (
                "high-availability.kubernetes.leader-election.lease-duration",
                self.lease_duration,
            ),
            (
                "high-availability.kubernetes.leader-election.renew-deadline",
                self.renew_deadline,
            ),
            (
                "high-availability.kubernetes.leader-election.retry-period",
                self.retry_period,
            ),
        ] {
            if d < Duration::from_millis(10) {
                return Err(ConnectError::InvalidConfig {
                    key,
                    reason: format!("{d:?} is too short (at least 10 ms)"),
                });
            }
        }
        Ok(())
    }

    /// The renew deadline in force: at most the lease duration.
    pub fn effective_renew_deadline(&self) -> Duration {
        self.renew_deadline.min(self.lease_duration)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flink_defaults_and_validation() {
        let s = KubernetesSettings::new("default", "my-cluster");
        assert_eq!(s.lease_duration, Duration::from_secs(15));
        assert_eq!(s.renew_deadline, Duration::from_secs(15));
        assert_eq!(s.retry_period, Duration::from_secs(5));
        assert_eq!(s.max_retries, 5);
        s.validate().unwrap();
        for bad in ["", "UPPER", "under_score", "-x", &"x".repeat(46)] {
            let e = KubernetesSettings::new("default", bad)
                .validate()
                .unwrap_err();
            assert!(e.to_string().contains(CLUSTER_ID_KEY), "{e}");
        }
        let missing = KubernetesSettings::from_config(&KubernetesConfig::default()).unwrap_err();
        assert!(missing.to_string().contains(CLUSTER_ID_KEY));
        let short = KubernetesSettings::new("d", "c").with_timing(
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_millis(100),
        );
        assert_eq!(short.effective_renew_deadline(), Duration::from_secs(1));
        assert_eq!(short.request_timeout, Duration::from_secs(1));
    }
}
