//! The leader information a confirmed leader publishes: its address and its session id.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::LeaderSessionId;

/// What retrievers learn about a component's leader (Flink's `LeaderInformation`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaderInformation {
    /// The leader's session id (fencing token of the term).
    pub session_id: LeaderSessionId,
    /// The address the leader serves at (an RPC URL or a REST URL).
    pub address: String,
}

impl LeaderInformation {
    /// Leader information for `session_id` at `address`.
    pub fn new(session_id: LeaderSessionId, address: impl Into<String>) -> Self {
        Self {
            session_id,
            address: address.into(),
        }
    }
}

impl fmt::Debug for LeaderInformation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LeaderInformation({} @ {})",
            self.session_id, self.address
        )
    }
}
