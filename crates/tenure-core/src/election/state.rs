//! The election state machine, free of IO: inputs in, outputs out.
//!
//! One state machine serves one latch. Several components can be registered on it (Flink 1.15+'s
//! process-wide election: one grant goes to every component, each confirms its own address) or
//! just one (per-component election). The session driver ([`crate::driver`]) feeds it backend events and
//! contender commands and carries out its outputs.

use smallvec::SmallVec;
use thin_vec::ThinVec;

use crate::ids::{ComponentId, LeaderSessionId};
use crate::kv::{FencingToken, KvError};
use crate::leader_info::LeaderInformation;

/// What happens to an election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A contender registers for a component.
    Register(ComponentId),
    /// A contender stops.
    Unregister(ComponentId),
    /// The latch was acquired; `session` is the fresh id for the new term.
    Granted {
        /// The latch's fencing token.
        token: FencingToken,
        /// The new term's session id.
        session: LeaderSessionId,
    },
    /// The latch was lost.
    Revoked,
    /// The latch failed for good.
    LatchFailed(KvError),
    /// A contender confirms leadership for `session` at `address`.
    Confirm {
        /// The confirming component.
        component: ComponentId,
        /// The session it was granted.
        session: LeaderSessionId,
        /// The address to publish.
        address: String,
    },
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Join the latch (first contender registered).
    JoinLatch,
    /// Leave the latch (last contender stopped).
    LeaveLatch,
    /// Tell a contender it leads in `session`.
    Grant {
        /// The component.
        component: ComponentId,
        /// Its term's session id.
        session: LeaderSessionId,
        /// The term's fencing token.
        token: FencingToken,
    },
    /// Tell a contender its term is over.
    Revoke {
        /// The component.
        component: ComponentId,
    },
    /// Publish confirmed leader information (fenced by `token`).
    Publish {
        /// The component.
        component: ComponentId,
        /// What to publish.
        info: LeaderInformation,
        /// The term's fencing token.
        token: FencingToken,
    },
    /// Remove a component's published leader information (fenced by `token`).
    Unpublish {
        /// The component.
        component: ComponentId,
        /// The term's fencing token.
        token: FencingToken,
    },
    /// A confirmation for a session that is not current was ignored.
    ConfirmIgnored {
        /// The component.
        component: ComponentId,
    },
    /// Report an error to every contender.
    Error(KvError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LatchState {
    Idle,
    Campaigning,
    Leader {
        session: LeaderSessionId,
        token: FencingToken,
    },
}

/// The state of one election (one latch).
#[derive(Clone, Debug)]
pub struct ElectionState {
    /// Sorted; inline while there is one, since most elections (a job's own) have one
    /// component.
    contenders: SmallVec<[ComponentId; 1]>,
    latch: LatchState,
    /// Sorted by component.
    confirmed: ThinVec<(ComponentId, LeaderInformation)>,
}

impl Default for ElectionState {
    fn default() -> Self {
        Self {
            contenders: SmallVec::new(),
            latch: LatchState::Idle,
            confirmed: ThinVec::new(),
        }
    }
}

impl ElectionState {
    /// The current term's session id, if this process leads.
    pub fn current_session(&self) -> Option<LeaderSessionId> {
        match &self.latch {
            LatchState::Leader { session, .. } => Some(*session),
            _ => None,
        }
    }

    /// Whether `component` is registered.
    pub fn is_registered(&self, component: &ComponentId) -> bool {
        self.contenders.binary_search(component).is_ok()
    }

    /// The leader information confirmed in the current term, by component.
    pub fn confirmed(&self) -> &[(ComponentId, LeaderInformation)] {
        &self.confirmed
    }

    /// Adds `component`; false if it was there.
    fn add_contender(&mut self, component: ComponentId) -> bool {
        match self.contenders.binary_search(&component) {
            Ok(_) => false,
            Err(i) => {
                // The first is inline; past it the vector grows by doubling, so thousands of
                // job masters registering one by one are not a reallocation each.
                self.contenders.insert(i, component);
                true
            }
        }
    }

    /// Removes `component`; false if it was not there.
    fn remove_contender(&mut self, component: &ComponentId) -> bool {
        match self.contenders.binary_search(component) {
            Ok(i) => {
                self.contenders.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Records `component`'s confirmed information (replacing an earlier one).
    fn confirm(
        confirmed: &mut ThinVec<(ComponentId, LeaderInformation)>,
        component: ComponentId,
        info: LeaderInformation,
    ) {
        match confirmed.binary_search_by(|(c, _)| c.cmp(&component)) {
            Ok(i) => confirmed[i].1 = info,
            Err(i) => {
                if confirmed.is_empty() {
                    // Most elections confirm one component: no spare capacity for it.
                    confirmed.reserve_exact(1);
                }
                confirmed.insert(i, (component, info));
            }
        }
    }

    /// Forgets `component`'s confirmed information; whether there was any.
    fn unconfirm(
        confirmed: &mut ThinVec<(ComponentId, LeaderInformation)>,
        component: &ComponentId,
    ) -> bool {
        match confirmed.binary_search_by(|(c, _)| c.cmp(component)) {
            Ok(i) => {
                confirmed.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Applies one input and returns what must be done, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Register(component) => {
                if !self.add_contender(component.clone()) {
                    return out;
                }
                match &self.latch {
                    LatchState::Idle => {
                        self.latch = LatchState::Campaigning;
                        out.push(Output::JoinLatch);
                    }
                    LatchState::Campaigning => {}
                    LatchState::Leader { session, token } => out.push(Output::Grant {
                        component: component.clone(),
                        session: *session,
                        token: token.clone(),
                    }),
                }
            }
            Input::Unregister(component) => {
                if !self.remove_contender(&component) {
                    return out;
                }
                if let LatchState::Leader { token, .. } = &self.latch {
                    out.push(Output::Revoke {
                        component: component.clone(),
                    });
                    if Self::unconfirm(&mut self.confirmed, &component) {
                        out.push(Output::Unpublish {
                            component,
                            token: token.clone(),
                        });
                    }
                }
                if self.contenders.is_empty() {
                    self.latch = LatchState::Idle;
                    self.confirmed.clear();
                    out.push(Output::LeaveLatch);
                }
            }
            Input::Granted { token, session } => {
                if self.latch == LatchState::Idle {
                    return out;
                }
                self.revoke_all(&mut out);
                self.latch = LatchState::Leader {
                    session,
                    token: token.clone(),
                };
                for component in &self.contenders {
                    out.push(Output::Grant {
                        component: component.clone(),
                        session,
                        token: token.clone(),
                    });
                }
            }
            Input::Revoked => {
                self.revoke_all(&mut out);
                if self.latch != LatchState::Idle {
                    self.latch = LatchState::Campaigning;
                }
            }
            Input::LatchFailed(reason) => {
                self.revoke_all(&mut out);
                if self.latch != LatchState::Idle {
                    self.latch = LatchState::Campaigning;
                }
                out.push(Output::Error(reason));
            }
            Input::Confirm {
                component,
                session,
                address,
            } => match &self.latch {
                LatchState::Leader { session: s, token }
                    if *s == session && self.contenders.binary_search(&component).is_ok() =>
                {
                    let info = LeaderInformation::new(session, address);
                    Self::confirm(&mut self.confirmed, component.clone(), info.clone());
                    out.push(Output::Publish {
                        component,
                        info,
                        token: token.clone(),
                    });
                }
                _ => out.push(Output::ConfirmIgnored { component }),
            },
        }
        out
    }

    fn revoke_all(&mut self, out: &mut Vec<Output>) {
        if matches!(self.latch, LatchState::Leader { .. }) {
            for component in &self.contenders {
                out.push(Output::Revoke {
                    component: component.clone(),
                });
            }
            self.confirmed.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;

    fn token(epoch: i64) -> FencingToken {
        FencingToken::new("leader/latch", epoch)
    }

    #[test]
    fn first_registration_joins_and_grant_reaches_every_component() {
        let mut s = ElectionState::default();
        assert_eq!(
            s.handle(Input::Register(ComponentId::Dispatcher)),
            vec![Output::JoinLatch]
        );
        assert_eq!(
            s.handle(Input::Register(ComponentId::ResourceManager)),
            vec![]
        );
        let session = LeaderSessionId::new_random();
        let out = s.handle(Input::Granted {
            token: token(1),
            session,
        });
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|o| matches!(o, Output::Grant { session: s, .. } if *s == session))
        );
        // A component registering while leader is granted the current session at once.
        let job = ComponentId::JobMaster(JobId::new_random());
        assert_eq!(
            s.handle(Input::Register(job.clone())),
            vec![Output::Grant {
                component: job,
                session,
                token: token(1)
            }]
        );
    }

    #[test]
    fn stale_confirm_is_ignored_and_current_one_publishes() {
        let mut s = ElectionState::default();
        s.handle(Input::Register(ComponentId::Dispatcher));
        let old = LeaderSessionId::new_random();
        s.handle(Input::Granted {
            token: token(1),
            session: old,
        });
        s.handle(Input::Revoked);
        let new = LeaderSessionId::new_random();
        s.handle(Input::Granted {
            token: token(2),
            session: new,
        });
        let stale = s.handle(Input::Confirm {
            component: ComponentId::Dispatcher,
            session: old,
            address: "a".into(),
        });
        assert_eq!(
            stale,
            vec![Output::ConfirmIgnored {
                component: ComponentId::Dispatcher
            }]
        );
        let ok = s.handle(Input::Confirm {
            component: ComponentId::Dispatcher,
            session: new,
            address: "b".into(),
        });
        assert!(matches!(&ok[..], [Output::Publish { info, .. }] if info.address == "b"));
    }

    #[test]
    fn last_contender_stopping_while_leader_unpublishes_then_leaves() {
        let mut s = ElectionState::default();
        s.handle(Input::Register(ComponentId::RestServer));
        let session = LeaderSessionId::new_random();
        s.handle(Input::Granted {
            token: token(3),
            session,
        });
        s.handle(Input::Confirm {
            component: ComponentId::RestServer,
            session,
            address: "http://x".into(),
        });
        let out = s.handle(Input::Unregister(ComponentId::RestServer));
        assert_eq!(
            out,
            vec![
                Output::Revoke {
                    component: ComponentId::RestServer
                },
                Output::Unpublish {
                    component: ComponentId::RestServer,
                    token: token(3)
                },
                Output::LeaveLatch,
            ]
        );
        assert_eq!(s.current_session(), None);
    }

    #[test]
    fn grant_after_leaving_is_ignored() {
        let mut s = ElectionState::default();
        s.handle(Input::Register(ComponentId::Dispatcher));
        s.handle(Input::Unregister(ComponentId::Dispatcher));
        let out = s.handle(Input::Granted {
            token: token(1),
            session: LeaderSessionId::new_random(),
        });
        assert!(out.is_empty());
    }

    #[test]
    fn revoke_reaches_every_component_and_clears_confirmations() {
        let mut s = ElectionState::default();
        s.handle(Input::Register(ComponentId::Dispatcher));
        s.handle(Input::Register(ComponentId::ResourceManager));
        let session = LeaderSessionId::new_random();
        s.handle(Input::Granted {
            token: token(1),
            session,
        });
        s.handle(Input::Confirm {
            component: ComponentId::Dispatcher,
            session,
            address: "a".into(),
        });
        let out = s.handle(Input::Revoked);
        assert_eq!(out.len(), 2);
        assert!(s.confirmed().is_empty());
        assert_eq!(s.current_session(), None);
    }
}
