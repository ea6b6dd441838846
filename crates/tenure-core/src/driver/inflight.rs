//! The requests the session driver keeps in flight: a recipe's (boxed by the backend), the
//! driver's own (timers, leader-information writes) and retrievals'.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

use super::retrieval;
use crate::ids::ComponentId;
use crate::kv::{KvError, Version};

/// What a finished request gives back.
pub(super) enum Completion<R> {
    /// A recipe's response.
    Response(R),
    /// A recipe's wake-up.
    Wake,
    /// A publication or unpublication of one component's leader information finished.
    Published {
        component: ComponentId,
        outcome: Result<Option<Version>, KvError>,
    },
    /// A retrieval's request finished (`None`: cancelled).
    Retrieved(Option<(u64, u64, retrieval::Done)>),
}

/// One request in flight: a recipe's (boxed by the backend) or the driver's own.
pub(super) enum InFlight<R> {
    Recipe {
        id: u64,
        fut: BoxFuture<'static, R>,
    },
    Own {
        id: u64,
        fut: BoxFuture<'static, Completion<R>>,
    },
    Retrieval(retrieval::Request),
}

impl<R> Future for InFlight<R> {
    type Output = (u64, Completion<R>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            InFlight::Recipe { id, fut } => fut
                .as_mut()
                .poll(cx)
                .map(|r| (*id, Completion::Response(r))),
            InFlight::Own { id, fut } => fut.as_mut().poll(cx).map(|c| (*id, c)),
            InFlight::Retrieval(fut) => {
                fut.as_mut().poll(cx).map(|r| (0, Completion::Retrieved(r)))
            }
        }
    }
}
