//! The Flink-shaped callback API: a [`LeaderContender`] driven by an election.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::{ElectionError, LeaderConfirmer, LeaderElection, Leadership};
use crate::ids::LeaderSessionId;

/// A component that takes part in leader election, for code ported from Flink
/// (`LeaderContender`). Callbacks run on the contender's own task, one at a time, in order.
pub trait LeaderContender: Send + Sync + 'static {
    /// This component leads in `session`. Confirm with [`LeaderConfirmer::confirm`] once ready.
    fn grant_leadership(&self, session: LeaderSessionId);
    /// The term granted last is over.
    fn revoke_leadership(&self);
    /// The election failed (backend or latch error).
    fn handle_error(&self, error: ElectionError);
}

/// A running contender. [`ContenderHandle::stop`] stops it and gives leadership up.
#[derive(Debug)]
pub struct ContenderHandle {
    confirmer: LeaderConfirmer,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ContenderHandle {
    /// Confirms and checks leadership of the contender's component.
    pub fn confirmer(&self) -> &LeaderConfirmer {
        &self.confirmer
    }

    /// Stops the contender: a held term is revoked (the contender is told) and the election
    /// stops, letting the next contender in.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

pub(super) fn spawn(
    election: LeaderElection,
    contender: Arc<dyn LeaderContender>,
) -> ContenderHandle {
    let confirmer = election.confirmer();
    let errors = election.confirmer();
    let mut leadership = election.leadership();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut granted: Option<LeaderSessionId> = None;
        loop {
            let now = match &*leadership.borrow_and_update() {
                Leadership::Leader(t) if !t.is_over() => Some(t.session_id),
                _ => None,
            };
            if now != granted {
                if granted.is_some() {
                    contender.revoke_leadership();
                }
                if let Some(session) = now {
                    contender.grant_leadership(session);
                }
                granted = now;
            }
            tokio::select! {
                changed = leadership.changed() => if changed.is_err() { break },
                Some(err) = errors.next_error() => contender.handle_error(err),
                _ = &mut stop_rx => break,
            }
        }
        let _ = election.stop().await;
        if granted.is_some() {
            contender.revoke_leadership();
        }
    });
    ContenderHandle {
        confirmer,
        stop: stop_tx,
        task,
    }
}
