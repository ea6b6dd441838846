//! Typed events of the HA services for metrics, demos and tests, and the hub that fans them out.
//!
//! The services emit an [`HaEvent`] when a leadership term is granted or revoked, when leader
//! information is published, when a KV operation of the stores completes, and when the backend's
//! connection state changes. An [`Observer`] is a cheap-to-clone handle to one hub: subscribers
//! register a callback ([`Observer::subscribe`]) or take a channel ([`Observer::events`]).
//!
//! Emitting never blocks and never waits for a subscriber: callbacks run inline on the emitting
//! task and must be quick (update a counter, send on an unbounded channel); a panicking callback
//! is caught and logged. While nobody subscribes, an emit is one atomic load: the event is not
//! even built ([`Observer::emit`] takes a closure).
//!
//! ```
//! use tenure_core::connection::ConnectionState;
//! use tenure_core::observer::{HaEvent, Observer};
//!
//! let observer = Observer::new();
//! let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
//! let counter = seen.clone();
//! let subscription = observer.subscribe(move |e: &HaEvent| {
//!     if matches!(e, HaEvent::Connection(_)) {
//!         counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     }
//! });
//! observer.emit(|| HaEvent::Connection(ConnectionState::Suspended));
//! drop(subscription); // unsubscribes
//! observer.emit(|| HaEvent::Connection(ConnectionState::Connected));
//! assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 1);
//! ```

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::connection::ConnectionState;
use crate::ids::{ComponentId, LeaderSessionId};
use crate::kv::FencingToken;

/// A KV operation of the stores, as timed by [`crate::observed_kv::ObservedKv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// [`crate::kv::VersionedKv::get`].
    Get,
    /// [`crate::kv::VersionedKv::list`].
    List,
    /// [`crate::kv::VersionedKv::watch`] (starting the watch).
    Watch,
    /// [`crate::kv::VersionedKv::create`].
    Create,
    /// [`crate::kv::VersionedKv::compare_and_set`].
    CompareAndSet,
    /// [`crate::kv::VersionedKv::delete`].
    Delete,
    /// [`crate::kv::VersionedKv::remove_empty_namespace`].
    RemoveEmptyNamespace,
    /// [`crate::kv::VersionedKv::txn`] (labelled by its first key).
    Txn,
}

impl KvOp {
    /// A stable snake-case name (`get`, `compare_and_set`, ...), for metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            KvOp::Get => "get",
            KvOp::List => "list",
            KvOp::Watch => "watch",
            KvOp::Create => "create",
            KvOp::CompareAndSet => "compare_and_set",
            KvOp::Delete => "delete",
            KvOp::RemoveEmptyNamespace => "remove_empty_namespace",
            KvOp::Txn => "txn",
        }
    }
}

/// What kind of HA data a key holds: the key's place in the layout, never the key itself (no job
/// ids or owners, so it is a bounded label set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// A leader latch or one of its nodes (`leader/latch/...`, `leader/<component>/latch/...`).
    LeaderLatch,
    /// Published leader information (`leader/<component>/connection_info`) or its directory.
    LeaderInfo,
    /// A job graph or the job graph directory (`execution-plans/...`, `jobgraphs/...`).
    JobGraph,
    /// A lock on a job graph (`execution-plans/<job>/locks/...`).
    JobGraphLock,
    /// A completed checkpoint or a checkpoint directory (`jobs/<job>/checkpoints/...`).
    Checkpoint,
    /// A checkpoint id counter (`jobs/<job>/checkpoint_id_counter`).
    CheckpointCounter,
    /// The running jobs registry (`running_job_registry/...`).
    RunningJob,
    /// A job result in the KV form (`job-results/...`).
    JobResult,
    /// The namespace itself (the empty prefix) or a job's directory (`jobs/<job>`).
    Namespace,
    /// Anything else (keys outside the HA layout).
    Other,
}

impl KeyKind {
    /// A stable snake-case name (`job_graph`, `checkpoint_counter`, ...), for metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            KeyKind::LeaderLatch => "leader_latch",
            KeyKind::LeaderInfo => "leader_info",
            KeyKind::JobGraph => "job_graph",
            KeyKind::JobGraphLock => "job_graph_lock",
            KeyKind::Checkpoint => "checkpoint",
            KeyKind::CheckpointCounter => "checkpoint_counter",
            KeyKind::RunningJob => "running_job",
            KeyKind::JobResult => "job_result",
            KeyKind::Namespace => "namespace",
            KeyKind::Other => "other",
        }
    }
}

/// One event of the HA services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaEvent {
    /// This process was granted a leadership term for `component`.
    LeadershipGranted {
        /// The latch the term was won on (a layout key).
        latch: Arc<str>,
        /// The component granted.
        component: ComponentId,
        /// The term's leader session id.
        session: LeaderSessionId,
        /// The term's fencing token.
        token: FencingToken,
    },
    /// This process's term for `component` ended (revoked, stopped or the latch was lost).
    LeadershipRevoked {
        /// The component.
        component: ComponentId,
    },
    /// This process published `component`'s leader information after a confirmation.
    LeaderPublished {
        /// The component.
        component: ComponentId,
        /// The address published.
        address: String,
    },
    /// A KV operation of the stores completed.
    StoreOp {
        /// The operation.
        op: KvOp,
        /// The kind of key it concerned.
        key: KeyKind,
        /// How long it took.
        duration: Duration,
        /// Whether it succeeded (a `get` of a missing key succeeds).
        ok: bool,
    },
    /// The backend session's connection state changed.
    Connection(ConnectionState),
}

type Callback = Arc<dyn Fn(&HaEvent) + Send + Sync>;

#[derive(Default)]
struct Hub {
    /// Whether anyone subscribes; read on every emit.
    active: AtomicBool,
    next_id: AtomicU64,
    /// Copy-on-write: an emit clones the `Arc` and calls the callbacks without the lock, so a
    /// callback may subscribe or unsubscribe.
    subscribers: Mutex<Arc<Vec<(u64, Callback)>>>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<Vec<(u64, Callback)>>> {
        crate::sync::lock(&self.subscribers)
    }
}

/// A handle to one event hub; clones share it.
#[derive(Clone, Default)]
pub struct Observer {
    hub: Arc<Hub>,
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer")
            .field("subscribers", &self.hub.lock().len())
            .finish()
    }
}

impl Observer {
    /// A hub with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether anyone subscribes (an emit does nothing otherwise).
    pub fn is_observed(&self) -> bool {
        self.hub.active.load(Ordering::Acquire)
    }

    /// Emits the event built by `event` to every subscriber, in subscription order, on the
    /// calling task. Builds nothing when nobody subscribes.
    pub fn emit(&self, event: impl FnOnce() -> HaEvent) {
        if !self.is_observed() {
            return;
        }
        let subscribers = self.hub.lock().clone();
        if subscribers.is_empty() {
            return;
        }
        let event = event();
        for (_, callback) in subscribers.iter() {
            if catch_unwind(AssertUnwindSafe(|| callback(&event))).is_err() {
                tracing::warn!(?event, "an HA event observer panicked");
            }
        }
    }

    /// Calls `callback` with every event emitted from now on until the returned [`Subscription`]
    /// is dropped (or for the hub's lifetime after [`Subscription::detach`]). The callback runs
    /// on the emitting task: it must not block.
    pub fn subscribe(&self, callback: impl Fn(&HaEvent) + Send + Sync + 'static) -> Subscription {
        let id = self.hub.next_id.fetch_add(1, Ordering::Relaxed);
        let mut subs = self.hub.lock();
        let mut next = Vec::clone(&subs);
        next.push((id, Arc::new(callback)));
        *subs = Arc::new(next);
        self.hub.active.store(true, Ordering::Release);
        Subscription {
            hub: Arc::downgrade(&self.hub),
            id,
        }
    }

    /// Every event emitted from now on, on an unbounded channel (the emitter never waits; a
    /// receiver that never reads grows without bound). Dropping the [`Events`] unsubscribes.
    pub fn events(&self) -> Events {
        let (tx, rx) = mpsc::unbounded_channel();
        let subscription = self.subscribe(move |e| {
            let _ = tx.send(e.clone());
        });
        Events {
            rx,
            _subscription: subscription,
        }
    }
}

/// A subscription to an [`Observer`]; dropping it unsubscribes.
#[must_use = "dropping a Subscription unsubscribes at once; call detach() to keep it"]
pub struct Subscription {
    hub: Weak<Hub>,
    id: u64,
}

impl Subscription {
    /// Keeps the subscription for the hub's lifetime.
    pub fn detach(mut self) {
        self.hub = Weak::new();
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let mut subs = hub.lock();
        let next: Vec<_> = subs
            .iter()
            .filter(|(id, _)| *id != self.id)
            .cloned()
            .collect();
        hub.active.store(!next.is_empty(), Ordering::Release);
        *subs = Arc::new(next);
    }
}

/// Events of an [`Observer`] on a channel; see [`Observer::events`].
#[derive(Debug)]
pub struct Events {
    rx: mpsc::UnboundedReceiver<HaEvent>,
    _subscription: Subscription,
}

impl Events {
    /// The next event (waits for it).
    pub async fn recv(&mut self) -> Option<HaEvent> {
        self.rx.recv().await
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<HaEvent> {
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn count(observer: &Observer) -> (Arc<AtomicUsize>, Subscription) {
        let n = Arc::new(AtomicUsize::new(0));
        let c = n.clone();
        let s = observer.subscribe(move |_| {
            c.fetch_add(1, Ordering::Relaxed);
        });
        (n, s)
    }

    #[test]
    fn without_subscribers_the_event_is_not_built() {
        let observer = Observer::new();
        assert!(!observer.is_observed());
        observer.emit(|| panic!("built an event nobody observes"));
    }

    #[test]
    fn every_subscriber_gets_every_event_until_it_unsubscribes() {
        let observer = Observer::new();
        let (a, sa) = count(&observer);
        let (b, sb) = count(&observer.clone());
        observer.emit(|| HaEvent::Connection(ConnectionState::Suspended));
        drop(sa);
        observer.emit(|| HaEvent::Connection(ConnectionState::Connected));
        assert_eq!(a.load(Ordering::Relaxed), 1);
        assert_eq!(b.load(Ordering::Relaxed), 2);
        assert!(observer.is_observed());
        drop(sb);
        assert!(!observer.is_observed());
        observer.emit(|| panic!("built an event nobody observes"));
    }

    #[test]
    fn a_detached_subscription_lasts_as_long_as_the_hub() {
        let observer = Observer::new();
        let (n, s) = count(&observer);
        s.detach();
        observer.emit(|| HaEvent::Connection(ConnectionState::Lost));
        assert_eq!(n.load(Ordering::Relaxed), 1);
        assert!(observer.is_observed());
    }

    #[test]
    fn a_panicking_callback_does_not_stop_the_others_or_the_emitter() {
        let observer = Observer::new();
        let _bad = observer.subscribe(|_| panic!("observer bug"));
        let (n, _s) = count(&observer);
        observer.emit(|| HaEvent::Connection(ConnectionState::Lost));
        observer.emit(|| HaEvent::Connection(ConnectionState::Connected));
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_callback_may_subscribe_without_deadlocking() {
        let observer = Observer::new();
        let inner = observer.clone();
        let held = Arc::new(Mutex::new(Vec::new()));
        let h = held.clone();
        let _s = observer.subscribe(move |_| {
            h.lock().unwrap().push(inner.subscribe(|_| {}));
        });
        observer.emit(|| HaEvent::Connection(ConnectionState::Lost));
        assert_eq!(held.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn events_arrive_on_the_channel_in_order() {
        let observer = Observer::new();
        let mut events = observer.events();
        for s in [ConnectionState::Suspended, ConnectionState::Connected] {
            observer.emit(|| HaEvent::Connection(s));
        }
        assert_eq!(
            events.recv().await,
            Some(HaEvent::Connection(ConnectionState::Suspended))
        );
        assert_eq!(
            events.try_recv(),
            Some(HaEvent::Connection(ConnectionState::Connected))
        );
        assert_eq!(events.try_recv(), None);
        drop(events);
        assert!(!observer.is_observed());
    }
}
