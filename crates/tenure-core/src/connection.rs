//! The state of a process's connection to its coordination backend.

use serde::{Deserialize, Serialize};

/// Connection state of a backend session (ZooKeeper session, etcd lease, Kubernetes client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Connected; the session is alive.
    Connected,
    /// The connection is lost but the session may still be alive (ZooKeeper `SUSPENDED`).
    Suspended,
    /// The session is gone (ZooKeeper session expiry, etcd lease expiry); its ephemeral data and
    /// its leadership are gone with it.
    Lost,
}

/// Whether a suspended connection revokes leadership.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspendedPolicy {
    /// `Suspended` revokes leadership at once (Flink's default; safe).
    #[default]
    RevokeOnSuspended,
    /// Leadership is kept while suspended and revoked only when the session is lost
    /// (`high-availability.zookeeper.client.tolerate-suspended-connections: true`).
    TolerateSuspended,
}

impl SuspendedPolicy {
    /// Whether a process in `state` may keep leadership under this policy.
    pub fn keeps_leadership(&self, state: ConnectionState) -> bool {
        matches!(
            (self, state),
            (_, ConnectionState::Connected)
                | (
                    SuspendedPolicy::TolerateSuspended,
                    ConnectionState::Suspended
                )
        )
    }
}
