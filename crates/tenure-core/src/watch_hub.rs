//! One backend watch per prefix, shared by every [`KvWatch`] of a process that follows it.
//!
//! A backend registers a [`WatchSource`] (how to open one backend watch below a prefix) in a
//! [`WatchHub`] and answers [`VersionedKv::watch`](crate::kv::VersionedKv::watch) with
//! [`WatchHub::watch`]. The first subscriber of a prefix opens the backend watch; later
//! subscribers of that prefix, or of a prefix below one already watched, join it; when the last
//! subscriber of a feed is dropped the backend watch is dropped too (its server-side watch goes).
//! Every subscriber gets the events strictly below its own prefix, and every
//! [`KvEvent::Reset`]. A subscriber joins a running feed before [`WatchHub::watch`] returns, so it
//! gets every event that follows (and possibly a few queued just before, which re-reading on the
//! watch's start makes harmless: events of a key stay in order).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};

use crate::kv::{KvError, KvEvent, KvWatch, is_below};

/// Opens one backend watch below a prefix (a ZooKeeper persistent recursive watch, ...).
pub trait WatchSource: Send + Sync + 'static {
    /// Starts a backend watch of the keys strictly below `prefix`. Dropping the returned
    /// [`KvWatch`]'s feed (the sender side) or the watch itself ends it.
    fn open(
        &self,
        prefix: &str,
    ) -> Pin<Box<dyn Future<Output = Result<KvWatch, KvError>> + Send + '_>>;
}

struct Sub {
    prefix: String,
    tx: mpsc::UnboundedSender<KvEvent>,
}

/// One backend watch and the channel that adds subscribers to its pump.
struct Feed {
    adds: mpsc::UnboundedSender<Sub>,
}

/// A feed being opened: later subscribers of its prefix wait for it.
enum Slot {
    Opening(Vec<oneshot::Sender<()>>),
    Open(Feed),
}

struct State {
    feeds: HashMap<String, Slot>,
    /// Backend watches opened so far (for tests and diagnostics).
    opened: u64,
}

struct Inner {
    source: Box<dyn WatchSource>,
    state: Mutex<State>,
}

/// Shares one backend watch per prefix among a process's watchers; cheap to clone.
#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<Inner>,
}

impl fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("WatchHub")
            .field("feeds", &state.feeds.keys().collect::<Vec<_>>())
            .field("opened", &state.opened)
            .finish()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }
}

/// The prefix of the open or opening feed that covers `prefix` (itself or an ancestor).
fn covering(state: &State, prefix: &str) -> Option<String> {
    state
        .feeds
        .keys()
        .filter(|p| p.as_str() == prefix || is_below(p, prefix))
        // The nearest ancestor: fewer events to filter.
        .max_by_key(|p| p.len())
        .cloned()
}

impl WatchHub {
    /// A hub opening backend watches with `source`.
    pub fn new(source: impl WatchSource) -> Self {
        Self {
            inner: Arc::new(Inner {
                source: Box::new(source),
                state: Mutex::new(State {
                    feeds: HashMap::new(),
                    opened: 0,
                }),
            }),
        }
    }

    /// How many backend watches are running now.
    pub fn backend_watches(&self) -> usize {
        self.inner
            .lock()
            .feeds
            .values()
            .filter(|s| matches!(s, Slot::Open(_)))
            .count()
    }

    /// How many backend watches were opened since the hub was made.
    pub fn backend_watches_opened(&self) -> u64 {
        self.inner.lock().opened
    }

    /// Follows the keys strictly below `prefix`, on a shared backend watch of `prefix` or of an
    /// ancestor of it.
    pub async fn watch(&self, prefix: &str) -> Result<KvWatch, KvError> {
        loop {
            let (tx, rx) = mpsc::unbounded_channel();
            let wait = {
                let mut state = self.inner.lock();
                match covering(&state, prefix) {
                    Some(feed_prefix) => match state.feeds.get_mut(&feed_prefix) {
                        Some(Slot::Open(feed)) => {
                            let sub = Sub {
                                prefix: prefix.to_owned(),
                                tx,
                            };
                            if feed.adds.send(sub).is_ok() {
                                return Ok(KvWatch::new(rx));
                            }
                            // The pump ended (its backend watch closed): open afresh.
                            state.feeds.remove(&feed_prefix);
                            continue;
                        }
                        Some(Slot::Opening(waiters)) => {
                            let (wtx, wrx) = oneshot::channel();
                            waiters.push(wtx);
                            Some(wrx)
                        }
                        None => None,
                    },
                    None => {
                        state
                            .feeds
                            .insert(prefix.to_owned(), Slot::Opening(Vec::new()));
                        None
                    }
                }
            };
            if let Some(wrx) = wait {
                // Whether it opened or failed, look again.
                let _ = wrx.await;
                continue;
            }
            return self
                .open(
                    prefix,
                    Sub {
                        prefix: prefix.to_owned(),
                        tx,
                    },
                )
                .await
                .map(|()| KvWatch::new(rx));
        }
    }

    /// Opens the backend watch of `prefix` (whose slot is `Opening`) with `first` subscribed.
    async fn open(&self, prefix: &str, first: Sub) -> Result<(), KvError> {
        // If this future is dropped mid-open (its caller was cancelled), the slot is freed and
        // the waiters look again rather than wait forever.
        let mut abandoned = Abandoned {
            inner: &self.inner,
            prefix,
            armed: true,
        };
        let opened = self.inner.source.open(prefix).await;
        abandoned.armed = false;
        let mut state = self.inner.lock();
        let waiters = match state.feeds.remove(prefix) {
            Some(Slot::Opening(waiters)) => waiters,
            _ => Vec::new(),
        };
        let result = match opened {
            Ok(watch) => {
                state.opened += 1;
                let (adds, adds_rx) = mpsc::unbounded_channel();
                let pump = Pump {
                    hub: Arc::downgrade(&self.inner),
                    prefix: prefix.to_owned(),
                    subs: HashMap::new(),
                    next_id: 0,
                    adds: adds_rx,
                };
                let _ = adds.send(first);
                state
                    .feeds
                    .insert(prefix.to_owned(), Slot::Open(Feed { adds }));
                tokio::spawn(pump.run(watch));
                Ok(())
            }
            Err(e) => Err(e),
        };
        drop(state);
        for w in waiters {
            let _ = w.send(());
        }
        result
    }
}

/// Frees an `Opening` slot whose opener was dropped before it finished.
struct Abandoned<'a> {
    inner: &'a Inner,
    prefix: &'a str,
    armed: bool,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.inner.lock();
            if matches!(state.feeds.get(self.prefix), Some(Slot::Opening(_))) {
                // Dropping the waiters' senders wakes them.
                state.feeds.remove(self.prefix);
            }
        }
    }
}

/// Moves one backend watch's events to its subscribers.
struct Pump {
    hub: Weak<Inner>,
    prefix: String,
    subs: HashMap<u64, Sub>,
    next_id: u64,
    adds: mpsc::UnboundedReceiver<Sub>,
}

type Closed = Pin<Box<dyn Future<Output = u64> + Send>>;

impl Pump {
    fn add(&mut self, sub: Sub, closed: &mut FuturesUnordered<Closed>) {
        let id = self.next_id;
        self.next_id += 1;
        let tx = sub.tx.clone();
        closed.push(Box::pin(async move {
            tx.closed().await;
            id
        }));
        self.subs.insert(id, sub);
    }

    async fn run(mut self, mut watch: KvWatch) {
        let mut closed: FuturesUnordered<Closed> = FuturesUnordered::new();
        loop {
            tokio::select! {
                biased;
                // Subscribers first: one that joined before an event is processed gets it.
                Some(sub) = self.adds.recv() => self.add(sub, &mut closed),
                Some(id) = closed.next() => {
                    self.subs.remove(&id);
                    if self.subs.is_empty() && self.retire(&mut closed) {
                        return;
                    }
                }
                event = watch.next() => match event {
                    Some(event) => self.fan_out(&event),
                    None => {
                        // The backend watch ended (session closed): so do its subscribers.
                        if let Some(hub) = self.hub.upgrade() {
                            let mut state = hub.lock();
                            // While this pump runs, the open feed of its prefix is its own.
                            if matches!(state.feeds.get(&self.prefix), Some(Slot::Open(_))) {
                                state.feeds.remove(&self.prefix);
                            }
                        }
                        return;
                    }
                },
            }
        }
    }

    /// With no subscriber left: unregisters the feed unless one is joining. Returns whether it
    /// did (the backend watch is then dropped with the pump).
    fn retire(&mut self, closed: &mut FuturesUnordered<Closed>) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return true;
        };
        let mut state = hub.lock();
        // Subscribers join under the hub's lock: any that joined is in the channel now.
        let mut joined = false;
        while let Ok(sub) = self.adds.try_recv() {
            self.add(sub, closed);
            joined = true;
        }
        if !joined {
            state.feeds.remove(&self.prefix);
        }
        !joined
    }

    fn fan_out(&mut self, event: &KvEvent) {
        let key = match event {
            KvEvent::Put(e) => Some(e.key.as_str()),
            KvEvent::Deleted { key } => Some(key.as_str()),
            KvEvent::Reset => None,
        };
        for sub in self.subs.values() {
            if key.is_none_or(|k| is_below(&sub.prefix, k)) {
                let _ = sub.tx.send(event.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Entry, Version};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    use tokio::sync::Semaphore;
    use tokio::time::timeout;

    const DEADLINE: Duration = Duration::from_secs(5);
    /// Permits of the fake's gate; a test holding them all stops every open.
    const GATE: usize = 1000;

    type Opened = Arc<Mutex<Vec<(String, mpsc::UnboundedSender<KvEvent>)>>>;

    /// A backend whose watches the test feeds by hand.
    #[derive(Clone)]
    struct Fake {
        opened: Opened,
        fail: Arc<AtomicBool>,
        gate: Arc<Semaphore>,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                opened: Arc::default(),
                fail: Arc::default(),
                gate: Arc::new(Semaphore::new(GATE)),
            }
        }

        fn feed(&self, i: usize) -> mpsc::UnboundedSender<KvEvent> {
            self.opened.lock().unwrap()[i].1.clone()
        }

        fn prefixes(&self) -> Vec<String> {
            self.opened
                .lock()
                .unwrap()
                .iter()
                .map(|(p, _)| p.clone())
                .collect()
        }
    }

    impl WatchSource for Fake {
        fn open(
            &self,
            prefix: &str,
        ) -> Pin<Box<dyn Future<Output = Result<KvWatch, KvError>> + Send + '_>> {
            let prefix = prefix.to_owned();
            Box::pin(async move {
                let _permit = self.gate.acquire().await.expect("gate");
                if self.fail.load(Ordering::SeqCst) {
                    return Err(KvError::Backend("refused".into()));
                }
                let (tx, rx) = mpsc::unbounded_channel();
                self.opened.lock().unwrap().push((prefix, tx));
                Ok(KvWatch::new(rx))
            })
        }
    }

    fn put(key: &str) -> KvEvent {
        KvEvent::Put(Entry {
            key: key.into(),
            value: Default::default(),
            version: Version(0),
            ephemeral_owner: None,
        })
    }

    async fn next(w: &mut KvWatch) -> Option<KvEvent> {
        timeout(DEADLINE, w.next())
            .await
            .expect("event within the deadline")
    }

    #[tokio::test]
    async fn subscribers_of_one_prefix_share_one_backend_watch_until_the_last_goes() {
        let fake = Fake::new();
        let hub = WatchHub::new(fake.clone());
        let mut a = hub.watch("leader/x").await.expect("a");
        let mut b = hub.watch("leader/x").await.expect("b");
        assert_eq!(fake.prefixes(), ["leader/x"]);
        assert_eq!(hub.backend_watches(), 1);
        let feed = fake.feed(0);
        feed.send(put("leader/x/connection_info")).unwrap();
        assert_eq!(next(&mut a).await, Some(put("leader/x/connection_info")));
        assert_eq!(next(&mut b).await, Some(put("leader/x/connection_info")));
        drop(a);
        feed.send(KvEvent::Reset).unwrap();
        assert_eq!(next(&mut b).await, Some(KvEvent::Reset));
        assert!(!feed.is_closed());
        drop(b);
        timeout(DEADLINE, feed.closed())
            .await
            .expect("backend watch dropped");
        assert_eq!(hub.backend_watches(), 0);
        // A new subscriber opens a new backend watch.
        let _c = hub.watch("leader/x").await.expect("c");
        assert_eq!(hub.backend_watches_opened(), 2);
    }

    #[tokio::test]
    async fn a_watch_below_a_watched_prefix_joins_it_and_sees_only_its_keys() {
        let fake = Fake::new();
        let hub = WatchHub::new(fake.clone());
        let mut all = hub.watch("leader").await.expect("all");
        let mut one = hub.watch("leader/x").await.expect("one");
        assert_eq!(fake.prefixes(), ["leader"]);
        let feed = fake.feed(0);
        for e in [put("leader/y/a"), put("leader/x/a"), KvEvent::Reset] {
            feed.send(e).unwrap();
        }
        feed.send(KvEvent::Deleted {
            key: "leader/x".into(),
        })
        .unwrap();
        assert_eq!(next(&mut one).await, Some(put("leader/x/a")));
        assert_eq!(next(&mut one).await, Some(KvEvent::Reset));
        for e in [put("leader/y/a"), put("leader/x/a"), KvEvent::Reset] {
            assert_eq!(next(&mut all).await, Some(e));
        }
        assert!(matches!(
            next(&mut all).await,
            Some(KvEvent::Deleted { .. })
        ));
        // `leader/x` itself is not strictly below `leader/x`.
        drop(feed);
        drop(all);
        fake.opened.lock().unwrap().clear();
        assert_eq!(next(&mut one).await, None);
    }

    #[tokio::test]
    async fn concurrent_first_subscribers_open_one_backend_watch() {
        let fake = Fake::new();
        let held = fake.gate.acquire_many(GATE as u32).await.expect("gate");
        let hub = WatchHub::new(fake.clone());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let hub = hub.clone();
                tokio::spawn(async move { hub.watch("jobs").await })
            })
            .collect();
        // Let every task reach the hub before the first open completes.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let mut watches = Vec::new();
        for t in tasks {
            watches.push(t.await.expect("task").expect("watch"));
        }
        assert_eq!(fake.prefixes(), ["jobs"]);
        fake.feed(0).send(put("jobs/j")).unwrap();
        for w in &mut watches {
            assert_eq!(next(w).await, Some(put("jobs/j")));
        }
    }

    #[tokio::test]
    async fn a_cancelled_first_subscriber_does_not_leave_the_others_waiting() {
        let fake = Fake::new();
        let held = fake.gate.acquire_many(GATE as u32).await.expect("gate");
        let hub = WatchHub::new(fake.clone());
        let first = tokio::spawn({
            let hub = hub.clone();
            async move { hub.watch("a").await }
        });
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let second = tokio::spawn({
            let hub = hub.clone();
            async move { hub.watch("a").await }
        });
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        first.abort();
        assert!(first.await.is_err(), "cancelled");
        drop(held);
        let w = timeout(DEADLINE, second)
            .await
            .expect("the second subscriber is not left waiting")
            .expect("task");
        assert!(w.is_ok());
        assert_eq!(hub.backend_watches(), 1);
    }

    #[tokio::test]
    async fn a_failed_open_is_reported_and_the_next_watch_tries_again() {
        let fake = Fake::new();
        let hub = WatchHub::new(fake.clone());
        fake.fail.store(true, Ordering::SeqCst);
        assert!(hub.watch("a").await.is_err());
        assert_eq!(hub.backend_watches(), 0);
        fake.fail.store(false, Ordering::SeqCst);
        let _w = hub.watch("a").await.expect("second try");
        assert_eq!(hub.backend_watches(), 1);
    }

    #[tokio::test]
    async fn when_the_backend_watch_ends_its_subscribers_end_and_a_new_one_reopens() {
        let fake = Fake::new();
        let hub = WatchHub::new(fake.clone());
        let mut w = hub.watch("a").await.expect("watch");
        fake.opened.lock().unwrap().clear();
        assert_eq!(next(&mut w).await, None);
        let _w2 = hub.watch("a").await.expect("reopened");
        assert_eq!(hub.backend_watches_opened(), 2);
    }
}
