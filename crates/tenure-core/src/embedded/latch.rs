//! The embedded backend's latch as a recipe for the session driver.
//!
//! The in-process "server" ([`super::state::State`]) keeps each latch's line and tells a member
//! when it is granted or revoked, as a watch would. The recipe joins (one request), then keeps
//! one request in flight that waits for the server's next notice, and leaves with one request.

use std::sync::{Arc, Weak};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use super::state::Member;
use super::{SessionInner, lock};
use crate::driver::{LatchEvent, LatchIo, LatchRecipe, RecipeInput, RecipeOutput, SessionView};
use crate::kv::{KvError, VersionedKv, validate_key};

/// A request of the embedded recipe.
#[derive(Debug)]
pub(crate) enum Request {
    /// Take a place in the latch's line.
    Join { latch: Arc<str> },
    /// Wait for the server's next notice to this member.
    Next(mpsc::UnboundedReceiver<LatchEvent>),
    /// Leave the line.
    Leave { latch: Arc<str>, member: u64 },
}

/// A response to a [`Request`].
#[derive(Debug)]
pub(crate) enum Response {
    /// The place taken, and where its notices arrive.
    Joined(Result<(u64, mpsc::UnboundedReceiver<LatchEvent>), KvError>),
    /// A notice (`None`: the place is gone) and the receiver for the next one.
    Notice(Option<LatchEvent>, mpsc::UnboundedReceiver<LatchEvent>),
    /// The place is given up.
    Left,
}

/// One participation in an embedded latch.
#[derive(Debug)]
pub(crate) struct Recipe {
    latch: Arc<str>,
    member: Option<u64>,
    leaving: bool,
}

impl LatchRecipe for Recipe {
    type Request = Request;
    type Response = Response;

    fn handle(&mut self, input: RecipeInput<Response>, out: &mut Vec<RecipeOutput<Request>>) {
        match input {
            RecipeInput::Join => out.push(RecipeOutput::Request(Request::Join {
                latch: self.latch.clone(),
            })),
            RecipeInput::Leave => {
                self.leaving = true;
                self.leave(out);
            }
            // The server applies suspensions and session ends to the line itself and sends
            // the notices that follow from them.
            RecipeInput::Session(_) | RecipeInput::Wake => {}
            RecipeInput::Response(Response::Joined(Ok((member, rx)))) => {
                self.member = Some(member);
                if self.leaving {
                    self.leave(out);
                } else {
                    out.push(RecipeOutput::Request(Request::Next(rx)));
                }
            }
            RecipeInput::Response(Response::Joined(Err(e))) => {
                out.push(RecipeOutput::Failed(e));
                out.push(RecipeOutput::Done);
            }
            RecipeInput::Response(Response::Notice(Some(event), rx)) => {
                if !self.leaving {
                    out.push(match event {
                        LatchEvent::Granted(token) => RecipeOutput::Granted(token),
                        LatchEvent::Revoked => RecipeOutput::Revoked,
                        LatchEvent::Failed(e) => RecipeOutput::Failed(e),
                    });
                    out.push(RecipeOutput::Request(Request::Next(rx)));
                }
            }
            RecipeInput::Response(Response::Notice(None, _)) => {
                // The place is gone with the session; the session's end revoked it.
                if !self.leaving {
                    out.push(RecipeOutput::Revoked);
                }
            }
            RecipeInput::Response(Response::Left) => {
                out.push(RecipeOutput::Left);
                out.push(RecipeOutput::Done);
            }
        }
    }
}

impl Recipe {
    fn leave(&mut self, out: &mut Vec<RecipeOutput<Request>>) {
        // Not joined yet: leave once the join's response names the place.
        if let Some(member) = self.member.take() {
            out.push(RecipeOutput::Request(Request::Leave {
                latch: self.latch.clone(),
                member,
            }));
        }
    }
}

/// Performs the embedded recipe's requests on the session's cluster.
#[derive(Debug)]
pub(crate) struct Io {
    pub session: Weak<SessionInner>,
    pub view: watch::Receiver<SessionView>,
}

impl LatchIo for Io {
    type Recipe = Recipe;

    fn recipe(&self, latch: &Arc<str>) -> Result<Recipe, KvError> {
        validate_key(latch)?;
        Ok(Recipe {
            latch: latch.clone(),
            member: None,
            leaving: false,
        })
    }

    fn perform(&self, _participation: u64, request: Request) -> BoxFuture<'static, Response> {
        let session = self.session.clone();
        Box::pin(async move {
            match request {
                Request::Join { latch } => Response::Joined(join(&session, &latch)),
                Request::Next(mut rx) => {
                    let event = rx.recv().await;
                    Response::Notice(event, rx)
                }
                Request::Leave { latch, member } => {
                    if let Some(s) = session.upgrade() {
                        lock(&s.cluster.state).leave_latch_where(&latch, |m| m.id == member);
                    }
                    Response::Left
                }
            }
        })
    }

    fn session(&self) -> watch::Receiver<SessionView> {
        self.view.clone()
    }

    fn kv(&self) -> Result<Arc<dyn VersionedKv>, KvError> {
        let inner = self.session.upgrade().ok_or(KvError::Closed)?;
        Ok(Arc::new(super::EmbeddedSession { inner }))
    }
}

fn join(
    session: &Weak<SessionInner>,
    latch: &str,
) -> Result<(u64, mpsc::UnboundedReceiver<LatchEvent>), KvError> {
    let session = session.upgrade().ok_or(KvError::Closed)?;
    let mut st = session.alive()?;
    let member = st.next_id();
    let (tx, rx) = mpsc::unbounded_channel();
    st.latches
        .entry(latch.to_owned())
        .or_default()
        .members
        .push(Member {
            id: member,
            session: session.id,
            tx,
        });
    st.grant_next(latch);
    Ok((member, rx))
}

#[cfg(test)]
#[path = "latch_tests.rs"]
mod tests;
