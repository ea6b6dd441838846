//! The shape of a latch recipe: a state machine free of IO that the session driver runs.
//!
//! A backend describes its leader latch as a [`LatchRecipe`]: observations go in
//! ([`RecipeInput`]: join, leave, session changes, the responses of its own requests, timer
//! wake-ups), decisions come out ([`RecipeOutput`]: requests to perform, granted, revoked, left).
//! The recipe never awaits anything. The backend's [`LatchIo`] performs the requests; the
//! session driver ([`super::SessionDriver`]) keeps every request of every latch of the session in
//! flight at once and feeds each response back to the recipe that asked for it.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use crate::connection::ConnectionState;
use crate::kv::{FencingToken, KvError, VersionedKv};

/// What a recipe knows of its backend session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionView {
    /// The connection state.
    pub state: ConnectionState,
    /// Increases with every new backend session (a ZooKeeper session, a Kubernetes client):
    /// what a latch held in an older generation is gone.
    pub generation: u64,
    /// Changes (counting up, wrapping) every time the connection is suspended, so a quick
    /// suspend and reconnect between two observations is never missed. 32 bits: compared for
    /// equality only, and the view is kept by every participation.
    pub suspensions: u32,
}

impl SessionView {
    /// A connected first session.
    pub const CONNECTED: SessionView = SessionView {
        state: ConnectionState::Connected,
        generation: 1,
        suspensions: 0,
    };

    /// Counts one more suspension of the connection (wrapping: the count is compared for
    /// equality only). Every backend's session calls it when its connection becomes suspended.
    pub fn count_suspension(&mut self) {
        self.suspensions = self.suspensions.wrapping_add(1);
    }
}

/// An observation fed to a recipe.
#[derive(Debug)]
pub enum RecipeInput<R> {
    /// Start campaigning (the first contender of the election registered).
    Join,
    /// Stop campaigning and give the latch up (the last contender stopped). Answer with
    /// [`RecipeOutput::Left`] once the next participant can be granted, and with
    /// [`RecipeOutput::Done`] once nothing of this participation is left on the backend.
    Leave,
    /// The session changed.
    Session(SessionView),
    /// The response to one of this recipe's requests.
    Response(R),
    /// A [`RecipeOutput::WakeAfter`] elapsed. Wake-ups may be late or superfluous; a recipe
    /// re-checks its state.
    Wake,
}

/// A decision of a recipe, carried out by the session driver.
#[derive(Debug)]
pub enum RecipeOutput<Q> {
    /// Perform this request (its response comes back as [`RecipeInput::Response`]).
    Request(Q),
    /// This participant holds the latch; writes fenced with the token succeed while it lasts.
    Granted(FencingToken),
    /// This participant no longer holds the latch.
    Revoked,
    /// The latch failed and will not recover by itself.
    Failed(KvError),
    /// The participation is over as far as contenders are concerned (answer to
    /// [`RecipeInput::Leave`]).
    Left,
    /// Nothing of this participation is left to clean up; the driver forgets the recipe.
    Done,
    /// Feed [`RecipeInput::Wake`] after this long.
    WakeAfter(Duration),
}

/// A backend's leader-latch recipe: one instance per participation in one latch.
pub trait LatchRecipe: Send + 'static {
    /// A request the backend performs for the recipe.
    type Request: Send + 'static;
    /// The response to a request.
    type Response: Send + 'static;

    /// Applies one observation; pushes the decisions, in order, onto `out`.
    fn handle(
        &mut self,
        input: RecipeInput<Self::Response>,
        out: &mut Vec<RecipeOutput<Self::Request>>,
    );

    /// Asks the recipe, which holds the latch and is about to be told to leave, to delete
    /// `keys` (layout keys of the leader's published information) in the same atomic write that
    /// gives the latch up, so a graceful handover is one round trip and the keys go only while
    /// the term still holds. Returns false if this backend cannot (the driver then deletes them
    /// first, fenced by the term); the default.
    fn delete_on_leave(&mut self, keys: Vec<String>) -> bool {
        let _ = keys;
        false
    }
}

/// The request type of a [`LatchIo`]'s recipe.
pub type RequestOf<I> = <<I as LatchIo>::Recipe as LatchRecipe>::Request;
/// The response type of a [`LatchIo`]'s recipe.
pub type ResponseOf<I> = <<I as LatchIo>::Recipe as LatchRecipe>::Response;

/// The IO half of a backend's latch: makes recipes and performs their requests.
pub trait LatchIo: Send + Sync + 'static {
    /// The backend's recipe.
    type Recipe: LatchRecipe;

    /// A new participation in the latch whose directory is `latch` (a layout key).
    fn recipe(&self, latch: &Arc<str>) -> Result<Self::Recipe, KvError>;

    /// Performs one request of participation `participation`. The future owns what it needs
    /// (no borrow of `self`) so the driver can keep any number in flight; it resolves to the
    /// response, never fails: errors are responses the recipe decides about.
    ///
    /// A backend may answer a long wait (for a node's deletion, say) in two parts: the future
    /// resolves to a response telling the recipe the wait is set, and the final response comes
    /// later through [`Self::late_responses`], tagged with `participation`. The wait then holds
    /// no future in the driver, only the backend's own bookkeeping.
    fn perform(
        &self,
        participation: u64,
        request: RequestOf<Self>,
    ) -> BoxFuture<'static, ResponseOf<Self>>;

    /// The stream of responses that come after their request's future resolved, tagged with the
    /// participation they are for; taken once by the driver when it starts. `None` (the
    /// default): every response is its request's future's.
    fn late_responses(&mut self) -> Option<mpsc::UnboundedReceiver<(u64, ResponseOf<Self>)>> {
        None
    }

    /// Participation `participation` is over (its recipe said [`RecipeOutput::Done`]): what the
    /// backend keeps for its waits can go. The default keeps nothing.
    fn forget(&self, participation: u64) {
        let _ = participation;
    }

    /// The session as recipes see it.
    fn session(&self) -> watch::Receiver<SessionView>;

    /// The session's KV, for the driver's leader-information writes; [`KvError::Closed`] once
    /// the session is gone.
    fn kv(&self) -> Result<Arc<dyn VersionedKv>, KvError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspension_always_changes_the_count_even_where_it_wraps() {
        let mut view = SessionView::CONNECTED;
        view.count_suspension();
        assert_eq!(view.suspensions, 1);
        view.suspensions = u32::MAX;
        let before = view;
        view.count_suspension();
        assert_eq!(view.suspensions, 0);
        assert_ne!(view, before);
    }
}
