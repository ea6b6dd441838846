//! KV watches as ZooKeeper persistent recursive watches, one per prefix per session.
//!
//! Every [`KvWatch`] of a session goes through the session's [`WatchHub`]: the first watch of a
//! prefix registers one `addWatch(<prefix znode>, PERSISTENT_RECURSIVE)`, later watches of that
//! prefix (or of a prefix below it) share it, and the watch is removed from the server when the
//! last of them is dropped. So N retrievers of one component in a process cost one server-side
//! watch, one event per change and one re-read per change, not N.
//!
//! `NodeCreated` and `NodeDataChanged` are re-read to give a [`KvEvent::Put`] with the entry;
//! `NodeDeleted` is [`KvEvent::Deleted`]. After a reconnect (events may have been missed,
//! ZOOKEEPER-4698) and in a new session the watch is registered again, then [`KvEvent::Reset`]
//! is delivered to every sharer, so a consumer that re-reads on `Reset` misses nothing.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::FutureExt;
use tenure_core::connection::ConnectionState;
use tenure_core::kv::{Entry, KvError, KvEvent, KvWatch, Version, is_below};
use tenure_core::watch_hub::{WatchHub, WatchSource};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use zookeeper_client as zk;

use crate::ZooKeeperBackend;
use crate::error::map_read;
use crate::session::{Shared, sleep_until};

/// A watch of the keys below `prefix`, on the session's shared ZooKeeper watch of it.
pub(crate) async fn start(shared: &Arc<Shared>, prefix: &str) -> Result<KvWatch, KvError> {
    hub(shared).watch(prefix).await
}

fn hub(shared: &Arc<Shared>) -> &WatchHub {
    shared
        .watch_hub
        .get_or_init(|| WatchHub::new(Source(Arc::downgrade(shared))))
}

/// How a session's KV watches map to ZooKeeper watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchStats {
    /// Persistent recursive watches the session holds now (one per watched prefix).
    pub persistent_watches: usize,
    /// Persistent recursive watches registered since the session opened (re-registrations after
    /// a reconnect not counted).
    pub registered: u64,
}

/// How `backend`'s KV watches map to ZooKeeper watches.
pub fn stats(backend: &ZooKeeperBackend) -> WatchStats {
    match backend.shared.watch_hub.get() {
        Some(hub) => WatchStats {
            persistent_watches: hub.backend_watches(),
            registered: hub.backend_watches_opened(),
        },
        None => WatchStats {
            persistent_watches: 0,
            registered: 0,
        },
    }
}

/// Opens the ZooKeeper watch of a prefix for the hub.
struct Source(Weak<Shared>);

impl WatchSource for Source {
    fn open(
        &self,
        prefix: &str,
    ) -> Pin<Box<dyn Future<Output = Result<KvWatch, KvError>> + Send + '_>> {
        let prefix = prefix.to_owned();
        Box::pin(async move {
            let shared = self.0.upgrade().ok_or(KvError::Closed)?;
            open(&shared, &prefix).await
        })
    }
}

/// Registers one persistent recursive watch and starts the task that turns its events into
/// [`KvEvent`]s; dropping the returned watch ends the task and removes the server-side watch.
async fn open(shared: &Arc<Shared>, prefix: &str) -> Result<KvWatch, KvError> {
    let (client, generation) = shared.client_gen()?;
    let path = shared.paths().prefix_path(prefix);
    let watcher = client
        .watch(&path, zk::AddWatchMode::PersistentRecursive)
        .await
        .map_err(|e| map_read(e, prefix))?;
    drop(client);
    let (tx, rx) = mpsc::unbounded_channel();
    let pump = Pump {
        shared: Arc::downgrade(shared),
        prefix: prefix.to_owned(),
        tx,
    };
    let persistent = Persistent {
        shared: Arc::downgrade(shared),
        closed: shared.closed.clone(),
        path,
    };
    tokio::spawn(persistent.follow(watcher, generation, pump));
    Ok(KvWatch::new(rx))
}

/// What is done with the events of one persistent recursive watch.
pub(crate) trait Follower: Send + Sync + 'static {
    /// A node below the watched path was created, changed or deleted.
    fn node_event(&self, event: zk::WatchedEvent) -> impl Future<Output = ()> + Send;
    /// The watch is registered (again) in session `generation`; after the first registration,
    /// events may have been missed since the last one.
    fn registered(&self, generation: u64, again: bool);
    /// Resolves when nobody needs the events any more.
    fn unwanted(&self) -> impl Future<Output = ()> + Send;
}

/// One persistent recursive watch of a session, kept registered across reconnects and new
/// sessions until the backend closes or its follower is gone.
pub(crate) struct Persistent {
    pub shared: Weak<Shared>,
    pub closed: CancellationToken,
    pub path: String,
}

/// The pause before registering a watch again after a failed re-registration.
const REREGISTER_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// The next event of `w`, or `None` if the client dropped the watch without a terminal event
/// (the client panics in that case; treat it as the session's end).
async fn next_event(w: &mut zk::PersistentWatcher) -> Option<zk::WatchedEvent> {
    AssertUnwindSafe(w.changed()).catch_unwind().await.ok()
}

impl Persistent {
    /// Follows the watch `first`, registered in session `generation`, feeding `follower`.
    pub(crate) async fn follow<F: Follower>(
        self,
        first: zk::PersistentWatcher,
        mut generation: u64,
        follower: F,
    ) {
        let mut watcher = first;
        loop {
            // Follow one session's watch until that session ends.
            let mut disconnected = false;
            // When to try a failed re-registration again (still connected).
            let mut retry: Option<tokio::time::Instant> = None;
            loop {
                let event = tokio::select! {
                    _ = self.closed.cancelled() => return,
                    _ = follower.unwanted() => return,
                    ev = next_event(&mut watcher) => ev,
                    () = sleep_until(retry) => {
                        retry = None;
                        if disconnected {
                            self.reregister_or_retry(
                                &mut watcher, &mut disconnected, &mut retry, generation, &follower,
                            )
                            .await;
                        }
                        continue;
                    }
                };
                let Some(event) = event else { break };
                match event.event_type {
                    zk::EventType::Session => match event.session_state {
                        zk::SessionState::Disconnected => {
                            disconnected = true;
                            retry = None;
                        }
                        zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                            // zookeeper-client 0.11.2 leaves persistent watches out of the
                            // `SetWatches` it sends on reconnect, so the server forgot this
                            // one: register it again (the old local watcher is dropped after
                            // the new one exists, so the server-side watch is never removed).
                            if disconnected {
                                self.reregister_or_retry(
                                    &mut watcher,
                                    &mut disconnected,
                                    &mut retry,
                                    generation,
                                    &follower,
                                )
                                .await;
                            }
                        }
                        // Terminal: the watch is gone with the session; never poll it again.
                        _ => break,
                    },
                    zk::EventType::NodeChildrenChanged => {}
                    _ => follower.node_event(event).await,
                }
            }
            drop(watcher);
            match self.rewatch(generation, &follower).await {
                Some((w, g)) => {
                    watcher = w;
                    generation = g;
                    follower.registered(generation, true);
                }
                None => return,
            }
        }
    }

    /// Registers the watch again after a reconnect and tells `follower`; if that fails while
    /// the connection stays up, it is tried again after [`REREGISTER_RETRY`] (no later
    /// reconnect may come to try it, and until it succeeds the follower misses events).
    async fn reregister_or_retry<F: Follower>(
        &self,
        watcher: &mut zk::PersistentWatcher,
        disconnected: &mut bool,
        retry: &mut Option<tokio::time::Instant>,
        generation: u64,
        follower: &F,
    ) {
        match self.reregister().await {
            Some(w) => {
                *watcher = w;
                *disconnected = false;
                follower.registered(generation, true);
            }
            None => *retry = Some(tokio::time::Instant::now() + REREGISTER_RETRY),
        }
    }

    /// Registers the watch again in the current session.
    async fn reregister(&self) -> Option<zk::PersistentWatcher> {
        let client = self.shared.upgrade()?.client().ok()?;
        match client
            .watch(&self.path, zk::AddWatchMode::PersistentRecursive)
            .await
        {
            Ok(w) => Some(w),
            Err(e) => {
                debug!(path = %self.path, error = %e, "re-registering a watch failed");
                None
            }
        }
    }

    /// Waits for a newer session than `generation` and registers the watch there.
    async fn rewatch(
        &self,
        generation: u64,
        follower: &impl Follower,
    ) -> Option<(zk::PersistentWatcher, u64)> {
        let mut status = self.shared.upgrade()?.subscribe_status();
        loop {
            let s = *status.borrow_and_update();
            if s.generation > generation && s.state == ConnectionState::Connected {
                let shared = self.shared.upgrade()?;
                let (client, g) = shared.client_gen().ok()?;
                drop(shared);
                match client
                    .watch(&self.path, zk::AddWatchMode::PersistentRecursive)
                    .await
                {
                    Ok(w) => return Some((w, g)),
                    Err(e) => {
                        debug!(path = %self.path, error = %e, "re-registering a watch failed")
                    }
                }
            }
            tokio::select! {
                _ = self.closed.cancelled() => return None,
                _ = follower.unwanted() => return None,
                changed = status.changed() => changed.ok()?,
            }
        }
    }
}

/// Turns a prefix's watch events into [`KvEvent`]s.
struct Pump {
    shared: Weak<Shared>,
    prefix: String,
    tx: mpsc::UnboundedSender<KvEvent>,
}

impl Follower for Pump {
    async fn node_event(&self, event: zk::WatchedEvent) {
        let Some(key) = self.key(&event.path) else {
            return;
        };
        match event.event_type {
            zk::EventType::NodeCreated | zk::EventType::NodeDataChanged => {
                let created = event.event_type == zk::EventType::NodeCreated;
                self.put(key, &event.path, created).await;
            }
            zk::EventType::NodeDeleted => self.send(KvEvent::Deleted { key }),
            _ => {}
        }
    }

    fn registered(&self, _generation: u64, again: bool) {
        if again {
            self.send(KvEvent::Reset);
        }
    }

    async fn unwanted(&self) {
        self.tx.closed().await
    }
}

impl Pump {
    fn send(&self, event: KvEvent) {
        let _ = self.tx.send(event);
    }

    fn key(&self, path: &str) -> Option<String> {
        let shared = self.shared.upgrade()?;
        let key = shared.paths().key(path)?;
        is_below(&self.prefix, &key).then(|| key.into_owned())
    }

    /// Re-reads a created or changed znode. A znode created and deleted before it could be read
    /// is reported as created with an empty value (its `Deleted` follows), so a watcher sees
    /// every creation; a changed znode that is gone is skipped (its `Deleted` follows).
    async fn put(&self, key: String, path: &str, created: bool) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let Ok(client) = shared.client() else { return };
        drop(shared);
        match client.get_data(path).await {
            Ok((data, stat)) => self.send(KvEvent::Put(Entry {
                key,
                value: Bytes::from(data),
                version: Version(i64::from(stat.version)),
                ephemeral_owner: (stat.ephemeral_owner != 0).then_some(stat.ephemeral_owner as u64),
            })),
            Err(zk::Error::NoNode) if created => self.send(KvEvent::Put(Entry {
                key,
                value: Bytes::new(),
                version: Version(0),
                ephemeral_owner: None,
            })),
            Err(zk::Error::NoNode) => {}
            Err(e) => {
                debug!(%key, error = %e, "re-reading a watched znode failed");
                self.send(KvEvent::Reset);
            }
        }
    }
}
