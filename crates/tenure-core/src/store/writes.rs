//! Whose writes a store makes: a leader term's, fenced by construction, or an operator's,
//! unfenced and named as such.

use crate::election::LeaderTerm;
use crate::kv::FencingToken;

/// How the writes of a store are fenced. There is no default: a store for a leader's work is
/// obtained from its [`LeaderTerm`] ([`HaServices::leader_stores`](crate::services::HaServices::leader_stores)),
/// so its writes carry that term's token; unfenced writes are asked for by name
/// ([`HaServices::admin_stores`](crate::services::HaServices::admin_stores)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Every write carries this term's fencing token; the backend refuses it atomically once
    /// the term is over (the write fails with [`KvError::NotLeader`](crate::kv::KvError::NotLeader)).
    Fenced(FencingToken),
    /// Writes are not fenced: for operator tools, migrations and tests. A deposed leader using
    /// an unfenced store could overwrite its successor's data, so a leader never uses one.
    Unfenced,
}

impl Writes {
    /// The fencing token writes carry, if any.
    pub fn token(&self) -> Option<&FencingToken> {
        match self {
            Writes::Fenced(token) => Some(token),
            Writes::Unfenced => None,
        }
    }

    /// Whether writes are fenced.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Writes::Fenced(_))
    }

    pub(crate) fn into_token(self) -> Option<FencingToken> {
        match self {
            Writes::Fenced(token) => Some(token),
            Writes::Unfenced => None,
        }
    }
}

impl From<&LeaderTerm> for Writes {
    fn from(term: &LeaderTerm) -> Self {
        Writes::Fenced(term.fencing_token.clone())
    }
}
