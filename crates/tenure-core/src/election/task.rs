//! The task that drives one election: it feeds latch events and contender commands to the
//! [`ElectionState`] and carries out its outputs, one at a time (Flink's single-threaded
//! leadership executor).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::publish::{publish_leader_info, unpublish_leader_info};
use super::state::{ElectionState, Input, Output};
use super::{ElectionError, LeaderTerm, Leadership};
use crate::driver::{HaBackend, Latch, LatchEvent};
use crate::ids::{ComponentId, LeaderSessionId};
use crate::kv::{FencingToken, KvError, Version};
use crate::layout::Layout;
use crate::observer::HaEvent; // OBSERVER (issue 11)

/// A request from a contender handle to the election task.
pub(crate) enum Command {
    Register {
        component: ComponentId,
        reply: oneshot::Sender<Result<Registered, ElectionError>>,
    },
    Unregister {
        component: ComponentId,
        reply: Option<oneshot::Sender<()>>,
    },
    Confirm {
        component: ComponentId,
        session: LeaderSessionId,
        address: String,
        reply: oneshot::Sender<Result<bool, ElectionError>>,
    },
    /// OBSERVER (issue 11): report grants, revocations and publications here.
    Observe(crate::observer::Observer),
}

/// What a registered contender gets back.
pub(crate) struct Registered {
    pub leadership: watch::Receiver<Leadership>,
    pub errors: mpsc::UnboundedReceiver<ElectionError>,
}

struct Contender {
    leadership: watch::Sender<Leadership>,
    errors: mpsc::UnboundedSender<ElectionError>,
    term: Option<CancellationToken>,
}

pub(crate) struct ElectionTask {
    backend: Arc<dyn HaBackend>,
    layout: Layout,
    latch_key: String,
    state: ElectionState,
    contenders: HashMap<ComponentId, Contender>,
    latch: Option<Box<dyn Latch>>,
    latch_events: Option<mpsc::UnboundedReceiver<LatchEvent>>,
    /// Publications in flight, at most one per component, so they stay in order per component
    /// while thousands of components (job masters) publish at once.
    publishing: HashMap<ComponentId, JoinHandle<()>>,
    /// What each component last published in which term, so a new confirmation in the same
    /// term is one compare-and-set.
    published: Arc<Mutex<HashMap<ComponentId, (FencingToken, Version)>>>,
    /// OBSERVER (issue 11): where grants, revocations and publications are reported.
    observer: crate::observer::Observer,
}

impl ElectionTask {
    pub fn spawn(
        backend: Arc<dyn HaBackend>,
        layout: Layout,
        latch_key: String,
    ) -> mpsc::UnboundedSender<Command> {
        let (tx, rx) = mpsc::unbounded_channel();
        let span = info_span!("election", latch = %latch_key);
        let task = ElectionTask {
            backend,
            layout,
            latch_key,
            state: ElectionState::default(),
            contenders: HashMap::new(),
            latch: None,
            latch_events: None,
            publishing: HashMap::new(),
            published: Arc::new(Mutex::new(HashMap::new())),
            observer: crate::observer::Observer::default(), // OBSERVER (issue 11)
        };
        tokio::spawn(task.run(rx).instrument(span));
        tx
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => break,
                },
                event = recv_opt(&mut self.latch_events) => match event {
                    Some(event) => self.latch_event(event).await,
                    None => self.latch_events = None,
                },
            }
        }
        // Every handle is gone: leave the latch so the next contender is granted.
        let components: Vec<ComponentId> = self.contenders.keys().copied().collect();
        for component in components {
            self.apply(Input::Unregister(component)).await;
        }
        if let Some(latch) = self.latch.take() {
            let _ = latch.close().await;
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Observe(observer) => self.observer = observer, // OBSERVER (issue 11)
            Command::Register { component, reply } => {
                if self.state.is_registered(&component) {
                    let _ = reply.send(Err(ElectionError::AlreadyRegistered(component)));
                    return;
                }
                let (ltx, lrx) = watch::channel(Leadership::NotLeader);
                let (etx, erx) = mpsc::unbounded_channel();
                self.contenders.insert(
                    component,
                    Contender {
                        leadership: ltx,
                        errors: etx,
                        term: None,
                    },
                );
                let _ = reply.send(Ok(Registered {
                    leadership: lrx,
                    errors: erx,
                }));
                self.apply(Input::Register(component)).await;
            }
            Command::Unregister { component, reply } => {
                self.apply(Input::Unregister(component)).await;
                self.contenders.remove(&component);
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
            }
            Command::Confirm {
                component,
                session,
                address,
                reply,
            } => {
                let outputs = self.state.handle(Input::Confirm {
                    component,
                    session,
                    address,
                });
                let mut reply = Some(reply);
                for output in outputs {
                    match output {
                        Output::Publish {
                            component,
                            info,
                            token,
                        } => {
                            if let Some(reply) = reply.take() {
                                self.publish(component, info, token, reply).await;
                            }
                        }
                        Output::ConfirmIgnored { component } => {
                            debug!(%component, "confirmation for a stale session ignored");
                            if let Some(reply) = reply.take() {
                                let _ = reply.send(Ok(false));
                            }
                        }
                        other => {
                            self.execute(other).await;
                        }
                    }
                }
            }
        }
    }

    async fn latch_event(&mut self, event: LatchEvent) {
        let input = match event {
            LatchEvent::Granted(token) => {
                let session = LeaderSessionId::new_random();
                info!(%token, %session, "leadership granted");
                Input::Granted { token, session }
            }
            LatchEvent::Revoked => {
                info!("leadership revoked");
                Input::Revoked
            }
            LatchEvent::Failed(reason) => {
                warn!(%reason, "latch failed");
                self.latch_events = None;
                self.latch = None;
                Input::LatchFailed(reason)
            }
        };
        self.apply(input).await;
    }

    /// Applies an input and carries out the outputs in order.
    async fn apply(&mut self, input: Input) {
        for output in self.state.handle(input) {
            self.execute(output).await;
        }
    }

    /// Carries out one output of the state machine.
    async fn execute(&mut self, output: Output) {
        match output {
            Output::JoinLatch => {
                let (tx, rx) = mpsc::unbounded_channel();
                match self.backend.join_latch(&self.latch_key, tx).await {
                    Ok(latch) => {
                        self.latch = Some(latch);
                        self.latch_events = Some(rx);
                    }
                    Err(e) => self.broadcast_error(ElectionError::Backend(e)),
                }
            }
            Output::LeaveLatch => {
                // Publications of the ending term finish (or fail fenced) before the latch goes.
                for (_, task) in self.publishing.drain() {
                    let _ = task.await;
                }
                self.latch_events = None;
                if let Some(latch) = self.latch.take()
                    && let Err(e) = latch.close().await
                {
                    warn!(error = %e, "leaving the latch failed");
                }
            }
            Output::Grant {
                component,
                session,
                token,
            } => {
                if let Some(c) = self.contenders.get_mut(&component) {
                    let cancel = CancellationToken::new();
                    if let Some(old) = c.term.replace(cancel.clone()) {
                        old.cancel();
                    }
                    debug!(%component, %session, "granting");
                    // OBSERVER (issue 11): granted.
                    self.observer.emit(|| HaEvent::LeadershipGranted {
                        latch: self.latch_key.as_str().into(),
                        component,
                        session,
                        token: token.clone(),
                    });
                    c.leadership.send_replace(Leadership::Leader(LeaderTerm {
                        session_id: session,
                        fencing_token: token,
                        cancelled: cancel,
                    }));
                }
            }
            Output::Revoke { component } => {
                if let Some(c) = self.contenders.get_mut(&component) {
                    if let Some(term) = c.term.take() {
                        term.cancel();
                    }
                    debug!(%component, "revoking");
                    // OBSERVER (issue 11): revoked.
                    self.observer
                        .emit(|| HaEvent::LeadershipRevoked { component });
                    c.leadership.send_replace(Leadership::NotLeader);
                }
            }
            Output::Publish {
                component,
                info,
                token,
            } => {
                let (reply, _) = oneshot::channel();
                self.publish(component, info, token, reply).await;
            }
            Output::Unpublish { component, token } => {
                // A publication of this component still in flight lands first.
                if let Some(task) = self.publishing.remove(&component) {
                    let _ = task.await;
                }
                lock(&self.published).remove(&component);
                let kv = self.backend.kv();
                if let Err(e) = unpublish_leader_info(&*kv, &self.layout, &component, &token).await
                {
                    debug!(%component, error = %e, "removing leader information failed");
                }
            }
            Output::ConfirmIgnored { component } => {
                debug!(%component, "confirmation for a stale session ignored");
            }
            Output::Error(reason) => {
                self.broadcast_error(ElectionError::LatchFailed(reason));
            }
        }
    }

    /// Publishes confirmed leader information in its own task, after the component's previous
    /// publication; `reply` gets whether it was published.
    async fn publish(
        &mut self,
        component: ComponentId,
        info: crate::leader_info::LeaderInformation,
        token: crate::kv::FencingToken,
        reply: oneshot::Sender<Result<bool, ElectionError>>,
    ) {
        let previous = self.publishing.remove(&component);
        let kv = self.backend.kv();
        let layout = self.layout;
        let errors = self.contenders.get(&component).map(|c| c.errors.clone());
        let published = self.published.clone();
        let observer = self.observer.clone(); // OBSERVER (issue 11)
        let task = tokio::spawn(
            async move {
                if let Some(previous) = previous {
                    let _ = previous.await;
                }
                let known = lock(&published)
                    .get(&component)
                    .filter(|(t, _)| *t == token)
                    .map(|(_, v)| *v);
                let outcome =
                    publish_leader_info(&*kv, &layout, &component, &info, &token, known).await;
                match &outcome {
                    Ok(v) => lock(&published).insert(component, (token.clone(), *v)),
                    Err(_) => lock(&published).remove(&component),
                };
                let result = match outcome {
                    Ok(_) => {
                        info!(%component, address = %info.address, "leader information published");
                        // OBSERVER (issue 11): published.
                        observer.emit(|| HaEvent::LeaderPublished {
                            component,
                            address: info.address.clone(),
                        });
                        Ok(true)
                    }
                    Err(KvError::NotLeader { .. }) => Ok(false),
                    Err(e) => {
                        let err = ElectionError::Backend(e);
                        if let Some(errors) = errors {
                            let _ = errors.send(err.clone());
                        }
                        Err(err)
                    }
                };
                let _ = reply.send(result);
            }
            .in_current_span(),
        );
        self.publishing.insert(component, task);
    }

    fn broadcast_error(&self, err: ElectionError) {
        for c in self.contenders.values() {
            let _ = c.errors.send(err.clone());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn recv_opt<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
