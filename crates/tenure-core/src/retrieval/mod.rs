//! Leader retrieval (Flink's `LeaderRetrievalService` + `LeaderRetrievalListener`): follow who
//! leads a component and where.
//!
//! A [`LeaderRetriever`] watches the component's leader-information key and shows a `watch` of
//! [`LeaderState`]. It re-reads the key after every reconnect, so a stale leader is never shown
//! as current.

pub mod state;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

pub use state::{DEFAULT_LEADER_ID, LeaderState, RetrievalState};

use crate::codec::decode_leader_info;
use crate::connection::ConnectionState;
use crate::driver::HaBackend;
use crate::ids::ComponentId;
use crate::kv::{KvError, KvEvent};
use crate::layout::Layout;
use crate::leader_info::LeaderInformation;

/// Callbacks for code ported from Flink (`LeaderRetrievalListener`).
pub trait LeaderRetrievalListener: Send + Sync + 'static {
    /// The leader changed; `None` means no leader is known.
    fn notify_leader_address(&self, leader: Option<LeaderInformation>);
    /// Retrieval failed.
    fn handle_error(&self, error: KvError);
}

/// Follows one component's leader. Dropping it stops following.
#[derive(Debug)]
pub struct LeaderRetriever {
    component: ComponentId,
    state: watch::Receiver<LeaderState>,
    task: JoinHandle<()>,
}

impl Drop for LeaderRetriever {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LeaderRetriever {
    /// Starts following `component`. With `default_address`, that address is shown when nothing
    /// is published (Flink's job master retriever). Must be called inside a tokio runtime.
    pub fn start(
        backend: Arc<dyn HaBackend>,
        layout: Layout,
        component: ComponentId,
        default_address: Option<String>,
    ) -> Self {
        let (tx, rx) = watch::channel(LeaderState::Unknown);
        let task = tokio::spawn(follow(backend, layout, component, default_address, tx));
        Self {
            component,
            state: rx,
            task,
        }
    }

    /// The component followed.
    pub fn component(&self) -> ComponentId {
        self.component
    }

    /// A `watch` of the component's leader.
    pub fn leader(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }

    /// What is known now.
    pub fn current(&self) -> LeaderState {
        self.state.borrow().clone()
    }

    /// Calls `listener` on every change until the retriever is dropped.
    pub fn notify(&self, listener: Arc<dyn LeaderRetrievalListener>) -> JoinHandle<()> {
        let mut rx = self.state.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let now = rx.borrow_and_update().leader();
                if now != last {
                    listener.notify_leader_address(now.clone());
                    last = now;
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
    }
}

async fn follow(
    backend: Arc<dyn HaBackend>,
    layout: Layout,
    component: ComponentId,
    default_address: Option<String>,
    tx: watch::Sender<LeaderState>,
) {
    let kv = backend.kv();
    let key = layout.leader_info(&component);
    let dir = layout.leader_dir(&component);
    let mut conn = backend.connection_state();
    let mut state = RetrievalState::new(backend.suspended_policy(), default_address);
    let set = |s: LeaderState| {
        tx.send_if_modified(|cur| {
            let changed = *cur != s;
            *cur = s;
            changed
        });
    };
    loop {
        let c = *conn.borrow_and_update();
        set(state.connection(c));
        // Lost: the session is gone. Backends that open a new session by themselves report
        // `Connected` again, and the key is read afresh then.
        if c == ConnectionState::Connected {
            // Watch first, then read, so nothing between the two is missed.
            let mut watch = match kv.watch(&dir).await {
                Ok(w) => w,
                Err(e) => {
                    warn!(%component, error = %e, "cannot watch leader information");
                    if conn.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let read = |e: Option<crate::kv::Entry>| match e {
                None => None,
                Some(e) => match decode_leader_info(&e.value) {
                    Ok(info) => info,
                    Err(err) => {
                        warn!(key = %e.key, error = %err, "unreadable leader information");
                        None
                    }
                },
            };
            match kv.get(&key).await {
                Ok(e) => set(state.published(read(e))),
                Err(e) => debug!(%component, error = %e, "reading leader information failed"),
            }
            loop {
                tokio::select! {
                    ev = watch.next() => match ev {
                        Some(KvEvent::Put(e)) if e.key == key => set(state.published(read(Some(e)))),
                        Some(KvEvent::Deleted { key: k }) if k == key => set(state.published(None)),
                        Some(KvEvent::Reset) => {
                            if let Ok(e) = kv.get(&key).await {
                                set(state.published(read(e)));
                            }
                        }
                        Some(_) => {}
                        None => break,
                    },
                    changed = conn.changed() => {
                        if changed.is_err() { return; }
                        break;
                    }
                }
            }
        } else if conn.changed().await.is_err() {
            return;
        }
    }
}
