//! The session driver's leader-information writes: queued per component, one in flight at a
//! time, so publications and unpublications land in order.

use std::collections::VecDeque;

use futures::future::BoxFuture;
use tracing::{debug, info};

use super::elections::{PubOp, PubQueue, finish};
use super::inflight::{Completion, InFlight};
use super::recipe::{LatchIo, ResponseOf};
use super::task::Driver;
use crate::election::publish::{publish_leader_info, unpublish_leader_info};
use crate::ids::ComponentId;
use crate::kv::{KvError, Version};
use crate::observer::HaEvent;

impl<I: LatchIo> Driver<I> {
    /// Queues a publication or unpublication behind the component's one in flight.
    pub(super) fn enqueue(&mut self, election: u64, component: ComponentId, op: PubOp) {
        let Some(e) = self.elections.get_mut(&election) else {
            return;
        };
        let idx = match e.publication_index(&component) {
            Ok(i) => i,
            Err(i) => {
                if e.publications.is_empty() {
                    // Most elections publish one component: no spare capacity.
                    e.publications.reserve_exact(1);
                }
                e.publications.insert(
                    i,
                    PubQueue {
                        component: component.clone(),
                        busy: None,
                        queue: VecDeque::new(),
                        known: None,
                    },
                );
                i
            }
        };
        e.publications[idx].queue.push_back(op);
        self.start_next(election, component);
    }

    /// Starts the component's next queued write if none is in flight.
    pub(super) fn start_next(&mut self, election: u64, component: ComponentId) {
        let Ok(kv) = self.io.kv() else {
            return self.fail_publications(election, component, KvError::Closed);
        };
        let Some(e) = self.elections.get_mut(&election) else {
            return;
        };
        let layout = e.layout;
        let Ok(i) = e.publication_index(&component) else {
            return;
        };
        let q = &mut e.publications[i];
        if q.busy.is_some() {
            return;
        }
        let Some(op) = q.queue.pop_front() else {
            return;
        };
        let fut: BoxFuture<'static, Completion<ResponseOf<I>>> = match &op {
            PubOp::Publish { info, token, .. } => {
                let known = q
                    .known
                    .as_ref()
                    .filter(|(t, _)| t == token)
                    .map(|(_, v)| *v);
                let (info, token) = (info.clone(), token.clone());
                let latch = e.latch.clone();
                Box::pin(async move {
                    let outcome = publish_leader_info(
                        &*kv, &layout, &component, &info, &token, known, &latch,
                    )
                    .await
                    .map(Some);
                    Completion::Published { component, outcome }
                })
            }
            PubOp::Unpublish { token, .. } => {
                q.known = None;
                let token = token.clone();
                let latch = e.latch.clone();
                Box::pin(async move {
                    let outcome = unpublish_leader_info(&*kv, &layout, &component, &token, &latch)
                        .await
                        .map(|()| None);
                    Completion::Published { component, outcome }
                })
            }
        };
        q.busy = Some(op);
        self.inflight.push(InFlight::Own { id: election, fut });
    }

    pub(super) fn fail_publications(
        &mut self,
        election: u64,
        component: ComponentId,
        err: KvError,
    ) {
        let Some(e) = self.elections.get_mut(&election) else {
            return;
        };
        if let Ok(i) = e.publication_index(&component) {
            let q = e.publications.remove(i);
            for op in q.busy.into_iter().chain(q.queue) {
                finish(op, Err(err.clone()), None);
            }
        }
        self.maybe_leave(election);
    }

    pub(super) fn published(
        &mut self,
        election: u64,
        component: ComponentId,
        outcome: Result<Option<Version>, KvError>,
    ) {
        let Some(e) = self.elections.get_mut(&election) else {
            return;
        };
        let Ok(i) = e.publication_index(&component) else {
            return;
        };
        let q = &mut e.publications[i];
        let Some(op) = q.busy.take() else { return };
        if let PubOp::Publish { token, info, .. } = &op {
            match &outcome {
                Ok(Some(v)) => {
                    info!(%component, address = %info.address, "leader information published");
                    if let Some(o) = &e.observer {
                        o.emit(|| HaEvent::LeaderPublished {
                            component: component.clone(),
                            address: info.address.clone(),
                        });
                    }
                    q.known = Some((token.clone(), *v));
                }
                _ => q.known = None,
            }
        }
        // Kept while the component may confirm again in this term (a compare-and-set then);
        // dropped once nothing is queued and the component is gone or its term is over.
        let idle = q.queue.is_empty() && (q.known.is_none() || !e.state.is_registered(&component));
        if idle {
            e.publications.remove(i);
        }
        if let Err(err) = &outcome
            && !matches!(err, KvError::NotLeader { .. })
        {
            debug!(%component, error = %err, "writing leader information failed");
        }
        finish(op, outcome, e.contender(&component));
        self.start_next(election, component);
        self.maybe_leave(election);
        self.forget_if_finished(election);
    }
}
