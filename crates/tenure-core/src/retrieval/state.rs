//! The retrieval state machine, free of IO: what a retriever shows, given what the backend says
//! and the connection state.

use serde::Serialize;

use crate::connection::{ConnectionState, SuspendedPolicy};
use crate::ids::LeaderSessionId;
use crate::leader_info::LeaderInformation;

/// What a retriever knows about a component's leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LeaderState {
    /// Not known (not read yet, or the connection is suspended or lost).
    Unknown,
    /// The backend says nobody has published leader information.
    NoLeader,
    /// The published leader.
    Leader {
        /// Its address.
        address: String,
        /// Its session id.
        session_id: LeaderSessionId,
    },
}

impl LeaderState {
    /// The leader information, if a leader is known.
    pub fn leader(&self) -> Option<LeaderInformation> {
        match self {
            LeaderState::Leader {
                address,
                session_id,
            } => Some(LeaderInformation::new(*session_id, address.clone())),
            _ => None,
        }
    }
}

/// The session id shown with a default address (Flink's `DEFAULT_LEADER_ID`, the nil UUID).
pub const DEFAULT_LEADER_ID: LeaderSessionId = LeaderSessionId::from_uuid(uuid::Uuid::nil());

/// The state of one retriever.
#[derive(Clone, Debug)]
pub struct RetrievalState {
    published: Option<Option<LeaderInformation>>,
    connection: ConnectionState,
    policy: SuspendedPolicy,
    default_address: Option<String>,
}

impl RetrievalState {
    /// A retriever that has read nothing yet. `default_address` is shown (with
    /// [`DEFAULT_LEADER_ID`]) whenever nothing is published (Flink's job master retriever).
    pub fn new(policy: SuspendedPolicy, default_address: Option<String>) -> Self {
        Self {
            published: None,
            connection: ConnectionState::Connected,
            policy,
            default_address,
        }
    }

    /// The backend's published information was read: `None` means nothing is published.
    pub fn published(&mut self, info: Option<LeaderInformation>) -> LeaderState {
        self.published = Some(info);
        self.current()
    }

    /// The connection state changed. After a reconnect the published value must be re-read, so
    /// it is forgotten until then.
    pub fn connection(&mut self, state: ConnectionState) -> LeaderState {
        if !self.policy.keeps_leadership(state) {
            self.published = None;
        }
        self.connection = state;
        self.current()
    }

    /// What the retriever shows now.
    pub fn current(&self) -> LeaderState {
        if !self.policy.keeps_leadership(self.connection) {
            return LeaderState::Unknown;
        }
        match &self.published {
            Some(Some(info)) => LeaderState::Leader {
                address: info.address.clone(),
                session_id: info.session_id,
            },
            Some(None) => match &self.default_address {
                Some(address) => LeaderState::Leader {
                    address: address.clone(),
                    session_id: DEFAULT_LEADER_ID,
                },
                None => LeaderState::NoLeader,
            },
            None => LeaderState::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> LeaderInformation {
        LeaderInformation::new(LeaderSessionId::new_random(), "akka://x")
    }

    #[test]
    fn unknown_until_read_then_leader_or_no_leader() {
        let mut s = RetrievalState::new(SuspendedPolicy::default(), None);
        assert_eq!(s.current(), LeaderState::Unknown);
        assert_eq!(s.published(None), LeaderState::NoLeader);
        let i = info();
        assert_eq!(s.published(Some(i.clone())).leader(), Some(i));
    }

    #[test]
    fn default_address_fills_in_when_nothing_is_published() {
        let mut s = RetrievalState::new(SuspendedPolicy::default(), Some("jm:1".into()));
        assert_eq!(
            s.published(None),
            LeaderState::Leader {
                address: "jm:1".into(),
                session_id: DEFAULT_LEADER_ID
            }
        );
    }

    #[test]
    fn suspension_hides_the_leader_until_reread() {
        let mut s = RetrievalState::new(SuspendedPolicy::RevokeOnSuspended, None);
        s.published(Some(info()));
        assert_eq!(
            s.connection(ConnectionState::Suspended),
            LeaderState::Unknown
        );
        // Reconnected: no stale leader is shown before the node is read again.
        assert_eq!(
            s.connection(ConnectionState::Connected),
            LeaderState::Unknown
        );
        assert!(s.published(Some(info())).leader().is_some());
    }

    #[test]
    fn tolerated_suspension_keeps_the_leader_but_loss_does_not() {
        let mut s = RetrievalState::new(SuspendedPolicy::TolerateSuspended, None);
        s.published(Some(info()));
        assert!(s.connection(ConnectionState::Suspended).leader().is_some());
        assert_eq!(s.connection(ConnectionState::Lost), LeaderState::Unknown);
    }
}
