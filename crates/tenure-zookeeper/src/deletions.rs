//! Waits for latch nodes to be deleted, all on one persistent recursive watch per latch root and
//! session.
//!
//! A waiting participant of a latch waits for one node to go: its predecessor's, or, leading,
//! its own (so a deletion by anyone revokes it at once). A one-shot exists-watch per waiter
//! would cost a client-side watch registration and a future held in the session driver for as
//! long as the wait lasts, per election. Here a waiter is an entry of a map instead: the first
//! wait below a root (the first segment of the latch key: `leader` in Flink's layouts)
//! registers `addWatch(<root>, PERSISTENT_RECURSIVE)`, and its `NodeDeleted` events wake the
//! waiters of that path through the driver's late responses
//! ([`tenure_core::driver::LatchIo::late_responses`]). Creations and data changes are ignored.
//!
//! No deletion is missed:
//! - A wait is parked only after the root's watch is registered in the wait's session; then the
//!   node's existence is read (`exists`, no watch). ZooKeeper answers a session in order, so a
//!   deletion after that read arrives as an event, and one before it makes the read say
//!   missing: the recipe looks again at once.
//! - A node created while its root's watch was registered is parked for its creator as soon as
//!   the create's reply comes, before the recipe sees it: its deletion can only come after that
//!   reply. The leader's wait on its own node is then set without the `exists` (an uncontended
//!   election is a create and a get-children, nothing more). A registration between the
//!   create's sending and its reply (a reconnect) voids that: the `exists` is read.
//! - After a reconnect or in a new session the watch is registered again (zookeeper-client
//!   0.11.2 does not restore persistent watches), then every parked waiter is woken to look
//!   again: a deletion while disconnected may have gone unseen.
//! - A root whose watch the server refuses (persistent watches came with ZooKeeper 3.6) gets
//!   the one-shot exists-watch per waiter.
//!
//! A wake-up after a reconnect means "look again". A deletion's wake-up names the deleted path
//! ([`Response::Gone`]): waiters are found by a hash of the path, so a waiter of another path
//! with the same hash may be woken too. The recipe acts on the name only when the node it
//! waits for was the first of the line and the name is a latch node of its own directory
//! numbered before its own (in the line it read, only that node was); otherwise it reads the
//! line. A spurious wake-up costs a re-read, never a wrong grant.
//!
//! Leading on that name alone takes the waiter's own node to be there. So a wait for the first
//! of the line names the waiter's own node too, and the deletion of either ends it: one whose
//! node someone deleted reads the line (and joins again) instead of leading without a node
//! beside the one who joined after it. Its own node is parked on since its create, so this
//! costs no read; after a reconnect, its `exists` goes with the predecessor's, in the same
//! round trip.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};
use zookeeper_client as zk;

use crate::error::is_transient;
use crate::latch::{Reply, Response};
use crate::parked::Parked;
use crate::session::Shared;
use crate::watch::{Follower, Persistent};

/// The latch waits of one session (see [`latch_waits`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatchWaits {
    /// Waits parked on the session's persistent watches now: one per waiting participant and
    /// per leader of the session while the node it waits on exists.
    pub parked: usize,
    /// Waits woken since the session opened (a deletion of the awaited node, or a look again
    /// after a reconnect).
    pub woken: u64,
}

/// The latch waits of `backend`'s session.
pub fn latch_waits(backend: &crate::ZooKeeperBackend) -> LatchWaits {
    backend
        .shared
        .deletions
        .get()
        .map_or_else(LatchWaits::default, |d| LatchWaits {
            parked: d.lock().waits.len(),
            woken: d.woken.load(Ordering::Relaxed),
        })
}

/// The pause before registering a root's watch again after an interrupted attempt.
const RETRY: Duration = Duration::from_secs(1);

/// Whether a root's watch is registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Armed {
    /// Not yet registered in any session.
    Pending,
    /// Registered in this session generation (or a later one is being registered).
    In(u64),
    /// The server refused the watch: waiters use one-shot exists-watches.
    Unsupported,
    /// The backend closed.
    Closed,
}

/// The parked waits of one session's latches, and the watches that wake them.
pub(crate) struct Deletions {
    shared: Weak<Shared>,
    late: mpsc::UnboundedSender<(u64, Reply)>,
    hasher: RandomState,
    state: Mutex<State>,
    woken: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Each root's watch by znode path.
    roots: HashMap<String, watch::Sender<Armed>>,
    /// Parked waits.
    waits: Parked,
    /// Counts the registrations of roots' watches (a re-registration after a reconnect too), so
    /// a node created before one is never taken as watched since its creation.
    epoch: u64,
}

impl std::fmt::Debug for Deletions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deletions").finish_non_exhaustive()
    }
}

impl Deletions {
    /// The waits of `shared`'s latches; woken waits go to `late`.
    pub(crate) fn new(shared: Weak<Shared>, late: mpsc::UnboundedSender<(u64, Reply)>) -> Self {
        Self {
            shared,
            late,
            hasher: RandomState::new(),
            state: Mutex::default(),
            woken: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        tenure_core::sync::lock(&self.state)
    }

    /// Waits (request `seq` of `participation`, in session `generation`) until `path` is
    /// deleted, or `also` (the waiter's own node) is: [`Response::Parked`] once the wait is set
    /// (the wake-up comes late), [`Response::Watched`] if a node is missing or the wait could
    /// not be set (look again).
    pub(crate) async fn wait(
        self: Arc<Self>,
        client: zk::Client,
        generation: u64,
        participation: u64,
        seq: u64,
        path: String,
        also: Option<String>,
    ) -> Response {
        let Some(root) = self.root_of(&path) else {
            return oneshot_wait(client, path).await;
        };
        match self.armed(root, generation).await {
            Armed::In(_) => {}
            Armed::Unsupported => return oneshot_wait(client, path).await,
            Armed::Pending | Armed::Closed => return Response::Watched,
        }
        let hash = self.hasher.hash_one(&path);
        let also_hash = also.as_ref().map(|a| self.hasher.hash_one(a));
        let also = {
            let mut state = self.lock();
            let on = state.waits.parked_on(participation);
            let also_on = state.waits.also_on(participation);
            state.waits.park(hash, also_hash, participation, seq);
            if on == Some(hash) && also_on == also_hash {
                // Parked on these nodes already, since their creation or since an `exists`
                // found them, and neither a deletion of one nor a reconnect was seen since: no
                // read.
                return Response::Parked;
            }
            // The waiter's own node, parked on by the wait before this one (since its create),
            // needs no read either: its deletion since would have ended that wait.
            also.filter(|_| on != also_hash)
        };
        let exists = |path| {
            let client = client.clone();
            async move { matches!(client.check_stat(path).await, Ok(Some(_))) }
        };
        // Both reads in one round trip (the client pipelines them).
        let (found, also_found) = match &also {
            Some(a) => tokio::join!(exists(&path), exists(a)),
            None => (exists(&path).await, true),
        };
        if found && also_found {
            Response::Parked
        } else {
            self.lock().waits.unpark(participation, Some(seq));
            Response::Watched
        }
    }

    /// The znode path of the root `path` is below: the namespace's child on its way.
    fn root_of(&self, path: &str) -> Option<String> {
        let shared = self.shared.upgrade()?;
        let key = shared.paths().key(path)?;
        let first = key.split('/').next().filter(|s| !s.is_empty())?;
        Some(shared.paths().path(first))
    }

    /// Registers `root`'s watch if nobody did, and waits until it is registered in session
    /// `generation` or later (or cannot be).
    async fn armed(self: &Arc<Self>, root: String, generation: u64) -> Armed {
        let mut rx = self.root(root);
        let armed = rx
            .wait_for(|a| match a {
                Armed::Pending => false,
                Armed::In(g) => *g >= generation,
                Armed::Unsupported | Armed::Closed => true,
            })
            .await
            .map(|a| *a);
        armed.unwrap_or(Armed::Closed)
    }

    /// `root`'s registration state; the first call starts its registration.
    fn root(self: &Arc<Self>, root: String) -> watch::Receiver<Armed> {
        let mut state = self.lock();
        match state.roots.get(&root) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(Armed::Pending);
                state.roots.insert(root.clone(), tx);
                tokio::spawn(register(Arc::downgrade(self), root));
                rx
            }
        }
    }

    /// Before a node is created in the latch directory `dir` in session `generation`: if the
    /// watch of its root is registered in that session, the epoch to hand to
    /// [`Self::created`] (the node is then watched from its creation on).
    pub(crate) fn before_create(self: &Arc<Self>, dir: &str, generation: u64) -> Option<u64> {
        let root = self.root_of(dir)?;
        let armed = *self.root(root).borrow();
        let state = self.lock();
        (armed == Armed::In(generation)).then_some(state.epoch)
    }

    /// Node `path` was created by request `seq` of `participation`, with the root's watch
    /// registered since `epoch`: its deletion is awaited from now on, so the wait the recipe
    /// asks for next on it needs no read. Nothing if a registration came in between.
    pub(crate) fn created(&self, epoch: u64, participation: u64, seq: u64, path: &str) {
        let hash = self.hasher.hash_one(path);
        let mut state = self.lock();
        if state.epoch == epoch {
            state.waits.park(hash, None, participation, seq);
        }
    }

    fn set_armed(&self, root: &str, armed: Armed) {
        if let Some(tx) = self.lock().roots.get(root) {
            tx.send_replace(armed);
        }
    }

    /// Wakes the waits of `path` (it was deleted), telling them which path went.
    fn deleted(&self, path: &str) {
        let hash = self.hasher.hash_one(path);
        let woken = self.lock().waits.take_path(hash);
        for (participation, seq) in woken {
            self.wake(participation, seq, Response::Gone(path.to_owned()));
        }
    }

    /// Wakes every parked wait to look again (a deletion may have gone unseen).
    fn wake_all(&self) {
        let woken = self.lock().waits.take_all();
        for (participation, seq) in woken {
            self.wake(participation, seq, Response::Watched);
        }
    }

    /// Forgets the wait of `participation`, which is over.
    pub(crate) fn forget(&self, participation: u64) {
        self.lock().waits.unpark(participation, None);
    }

    fn wake(&self, participation: u64, seq: u64, response: Response) {
        self.woken.fetch_add(1, Ordering::Relaxed);
        let _ = self.late.send((participation, Reply { seq, response }));
    }
}

/// The one-shot exists-watch: resolves when `path` changes, or at once if it is missing or the
/// watch failed.
async fn oneshot_wait(client: zk::Client, path: String) -> Response {
    match client.check_and_watch_stat(&path).await {
        Ok((Some(_), w)) => {
            drop((client, path));
            // The client panics if it drops a watch without an event; that, too, means "look
            // again".
            let _ = AssertUnwindSafe(w.changed()).catch_unwind().await;
        }
        Ok((None, _)) => {}
        Err(e) => debug!(%path, error = %e, "latch watch failed; looking again"),
    }
    Response::Watched
}

/// Registers `root`'s watch in the current session and follows it until the backend closes.
async fn register(deletions: Weak<Deletions>, root: String) {
    let Some(shared) = deletions.upgrade().and_then(|d| d.shared.upgrade()) else {
        return;
    };
    let closed = shared.closed.clone();
    let mut status = shared.subscribe_status();
    drop(shared);
    // The first registration waits for a connected session. An interrupted one is tried again
    // after the next change of the session or a pause; a refusal (a server before 3.6) leaves
    // the root to one-shot exists-watches.
    let (watcher, generation) = loop {
        let attempt = match deletions.upgrade().and_then(|d| d.shared.upgrade()) {
            Some(shared) => shared.client_gen().ok(),
            None => return,
        };
        if let Some((client, g)) = attempt {
            match client
                .watch(&root, zk::AddWatchMode::PersistentRecursive)
                .await
            {
                Ok(w) => break (w, g),
                Err(e) if is_transient(&e) => {
                    debug!(%root, error = %e, "registering the latch watch was interrupted")
                }
                Err(e) => {
                    warn!(%root, error = %e, "no persistent watch of the latch root; latch waits use exists-watches");
                    if let Some(d) = deletions.upgrade() {
                        d.set_armed(&root, Armed::Unsupported);
                    }
                    return;
                }
            }
        }
        let changed = tokio::select! {
            _ = closed.cancelled() => false,
            changed = status.changed() => changed.is_ok(),
            () = tokio::time::sleep(RETRY) => true,
        };
        if !changed {
            return stop(&deletions, &root);
        }
    };
    let Some(d) = deletions.upgrade() else { return };
    d.lock().epoch += 1;
    d.set_armed(&root, Armed::In(generation));
    let persistent = Persistent {
        shared: d.shared.clone(),
        closed: closed.clone(),
        path: root.clone(),
    };
    let follower = Waker {
        deletions: deletions.clone(),
        root: root.clone(),
    };
    drop(d);
    persistent.follow(watcher, generation, follower).await;
    stop(&deletions, &root);
}

/// The backend closed: waits stop waiting.
fn stop(deletions: &Weak<Deletions>, root: &str) {
    if let Some(d) = deletions.upgrade() {
        d.set_armed(root, Armed::Closed);
        d.wake_all();
    }
}

/// Wakes waits on a root's deletions.
struct Waker {
    deletions: Weak<Deletions>,
    root: String,
}

impl Follower for Waker {
    async fn node_event(&self, event: zk::WatchedEvent) {
        if event.event_type == zk::EventType::NodeDeleted
            && let Some(d) = self.deletions.upgrade()
        {
            d.deleted(&event.path);
        }
    }

    fn registered(&self, generation: u64, again: bool) {
        if let Some(d) = self.deletions.upgrade() {
            // First the epoch, so a node created before this registration is not parked as
            // watched after the wake-up below.
            d.lock().epoch += 1;
            d.set_armed(&self.root, Armed::In(generation));
            if again {
                d.wake_all();
            }
        }
    }

    async fn unwanted(&self) {
        if let Some(d) = self.deletions.upgrade() {
            d.late.closed().await
        }
    }
}
