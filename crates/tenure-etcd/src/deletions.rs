//! The latch waits of one session, all on one etcd watch stream.
//!
//! A waiting participant waits for one key to be deleted: its predecessor's, or, leading, its
//! own (so a deletion by anyone revokes it at once). An etcd watch per wait on a stream of its
//! own costs an HTTP/2 stream with its buffers (about 44 KiB of heap per election measured by
//! `tenure-bench etcd scale`) and a server-side stream per election. etcd multiplexes watches:
//! here every wait of the session is one watch (its own id, chosen by us) on one shared stream,
//! created from the revision after the line read that decided the wait, so a deletion between
//! that read and the watch's creation is still reported. A wait is then a map entry and a
//! oneshot channel.
//!
//! - A delete event of a wait's watch wakes the wait and cancels that watch on the server (a
//!   latch key is named by its lease and comes back when the same lease joins again, so a
//!   watch left behind would outlive its wait). A put does the same but wakes it to look again:
//!   nothing puts a latch key after its join but a hand, and a key put again without its lease
//!   is no participant any more (its fence fails too).
//! - A wait whose future is dropped (the participation left, the request was overtaken) cancels
//!   its watch.
//! - A watch the server cancels (its start revision was compacted, a permission refused) wakes
//!   its wait: the recipe reads the line again and waits from the new revision.
//! - When the stream breaks (the connection or the node went), every wait is woken to look
//!   again; the next wait opens a new stream. Waits are not moved across streams: a new line
//!   read gives each its new revision.
//!
//! A wake-up tells whether the awaited key was deleted (a delete event of that key on the
//! wait's own watch) or the wait must look again (every other wake-up); the recipe decides
//! which needs a fresh line read.
//!
//! A wait for the first of the line also follows the waiter's own key, from the same revision:
//! told of the first's deletion, the waiter leads without reading the line, which takes its
//! own key to be there. A deletion of its own key (by someone else) wakes the wait to look
//! again instead, and it joins again rather than lead beside whoever joined after it. Such a
//! wait is one watch over the key range from the lower of the two keys to the higher: etcd
//! reports one watch's events in revision order, so the own key's deletion is seen before a
//! later deletion of the awaited key. Two watches would not be: a watch created from a past
//! revision is caught up by a server loop that visits watches in no fixed order, and a watch
//! already in step gets the later event first. Changes of other keys in the range (other
//! participants between the two) are passed over.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};

use etcd_client::{Event, EventType, WatchOptions, WatchResponse};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::session::Shared;
use crate::store::until_sent;
use crate::watch::REOPEN_WAIT;

/// The latch waits of one session.
#[derive(Debug)]
pub(crate) struct Deletions {
    shared: Weak<Shared>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Commands to the task that owns the stream; `None` before the first wait, or once that
    /// task ended (the backend closed).
    commands: Option<mpsc::UnboundedSender<Command>>,
    /// Parked waits by their watch id.
    /// Each is sent whether its key was deleted (or else, the wait must look again).
    waits: HashMap<i64, oneshot::Sender<bool>>,
    /// The keys of each parked wait that also follows the waiter's own key (its watch covers
    /// the range between the two); waits of one key are not here.
    ranges: HashMap<i64, Pair>,
    /// The last watch id given (ids start at 1: 0 asks the server to choose).
    last_id: i64,
}

/// The two keys of a wait for the first of the line.
#[derive(Debug)]
struct Pair {
    /// The first of the line's key, whose deletion the wait is for.
    awaited: String,
    /// The waiter's own key: any change of it says look again.
    own: String,
}

/// What the stream's task is asked to send.
#[derive(Debug)]
enum Command {
    /// Watch `key` (up to `end`, exclusive, if given) for changes from `revision` + 1 on, as
    /// watch `id`.
    Create {
        id: i64,
        key: String,
        end: Option<Vec<u8>>,
        revision: i64,
    },
    /// Cancel watch `id`.
    Cancel(i64),
}

/// The latch waits of one session (see [`latch_waits`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatchWaits {
    /// Waits parked now, each a watch on the session's latch-wait stream: one per waiting
    /// participant and per leader of the session.
    pub parked: usize,
}

/// The latch waits of `backend`'s session.
pub fn latch_waits(backend: &crate::EtcdBackend) -> LatchWaits {
    backend.shared.deletions().waits()
}

impl Deletions {
    /// The waits of `shared`'s latches.
    pub(crate) fn new(shared: Weak<Shared>) -> Self {
        Self {
            shared,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        tenure_core::sync::lock(&self.state)
    }

    /// What is parked now.
    pub(crate) fn waits(&self) -> LatchWaits {
        LatchWaits {
            parked: self.lock().waits.len(),
        }
    }

    /// Resolves to true once `key` is deleted after `revision`, or to false when the wait must
    /// look again (the stream broke, the server cancelled the watch, the backend closed, or
    /// `also`, the waiter's own key, was deleted after `revision`).
    pub(crate) fn wait(
        self: &Arc<Self>,
        key: String,
        revision: i64,
        also: Option<String>,
    ) -> impl Future<Output = bool> + use<> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut state = self.lock();
            state.last_id += 1;
            let id = state.last_id;
            state.waits.insert(id, tx);
            let command = match also {
                None => Command::Create {
                    id,
                    key,
                    end: None,
                    revision,
                },
                Some(own) => {
                    // The range from the lower key to just after the higher one (the key
                    // followed by a zero byte is the next key there can be).
                    let (low, high) = if key <= own {
                        (&key, &own)
                    } else {
                        (&own, &key)
                    };
                    let mut end = high.clone().into_bytes();
                    end.push(0);
                    let command = Command::Create {
                        id,
                        key: low.clone(),
                        end: Some(end),
                        revision,
                    };
                    let pair = Pair { awaited: key, own };
                    state.ranges.insert(id, pair);
                    command
                }
            };
            self.create(&mut state, command);
            id
        };
        let guard = Forget {
            deletions: Arc::downgrade(self),
            id,
        };
        async move {
            let _guard = guard;
            rx.await.unwrap_or(false)
        }
    }

    /// Sends `command` to the task that follows the stream, starting one if none does.
    fn create(self: &Arc<Self>, state: &mut State, command: Command) {
        let sent = match &state.commands {
            Some(commands) => commands.send(command),
            None => Err(mpsc::error::SendError(command)),
        };
        if let Err(mpsc::error::SendError(command)) = sent {
            // No task follows a stream yet (or it ended): start one with this command.
            let (commands, queue) = mpsc::unbounded_channel();
            let _ = commands.send(command);
            state.commands = Some(commands);
            tokio::spawn(follow(Arc::downgrade(self), self.shared.clone(), queue));
        }
    }

    /// What `events` (of watch `id`, in revision order) tell its wait: `Some(true)` the
    /// awaited key was deleted, `Some(false)` look again, `None` nothing that concerns it.
    /// A wait of one key is told of a deletion if any event is one, and to look again on a
    /// put. A wait of a range is decided by the first event of either of its keys: the
    /// awaited key's deletion, or else look again; other keys' events are passed over.
    fn verdict(&self, id: i64, events: &[Event]) -> Option<bool> {
        let state = self.lock();
        let Some(pair) = state.ranges.get(&id) else {
            let deleted = events.iter().any(|e| e.event_type() == EventType::Delete);
            return (!events.is_empty()).then_some(deleted);
        };
        events.iter().find_map(|e| {
            let key = e.kv().map(etcd_client::KeyValue::key)?;
            if key == pair.awaited.as_bytes() {
                Some(e.event_type() == EventType::Delete)
            } else {
                (key == pair.own.as_bytes()).then_some(false)
            }
        })
    }

    /// Wakes the wait of watch `id` if it is still parked, telling it whether its key was
    /// `deleted`; true if it was parked.
    fn wake(&self, id: i64, deleted: bool) -> bool {
        let tx = {
            let mut state = self.lock();
            state.ranges.remove(&id);
            state.waits.remove(&id)
        };
        tx.is_some_and(|tx| {
            let _ = tx.send(deleted);
            true
        })
    }

    /// Wakes every parked wait to look again (their watches are gone with the stream).
    fn wake_all(&self) {
        let waits: Vec<_> = {
            let mut state = self.lock();
            state.ranges.clear();
            state.waits.drain().collect()
        };
        for (_, tx) in waits {
            let _ = tx.send(false);
        }
    }

    /// Whether watch `id` belongs to a parked wait.
    fn is_parked(&self, id: i64) -> bool {
        self.lock().waits.contains_key(&id)
    }
}

/// Removes a wait whose future ended or was dropped, and cancels its watch if it was parked.
struct Forget {
    deletions: Weak<Deletions>,
    id: i64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        let Some(d) = self.deletions.upgrade() else {
            return;
        };
        let mut state = d.lock();
        state.ranges.remove(&self.id);
        if state.waits.remove(&self.id).is_some()
            && let Some(commands) = &state.commands
        {
            let _ = commands.send(Command::Cancel(self.id));
        }
    }
}

/// Owns the session's latch-wait stream: opens it with the first wait's watch, sends the later
/// creates and cancels on it, and wakes waits by the responses. Ends when the backend closes or
/// the waits are gone.
async fn follow(
    deletions: Weak<Deletions>,
    shared: Weak<Shared>,
    mut queue: mpsc::UnboundedReceiver<Command>,
) {
    let Some(closed) = shared.upgrade().map(|s| s.closed.clone()) else {
        return wake_all(&deletions);
    };
    loop {
        // The first create of a wait still parked opens the stream.
        let (id, key, end, revision) = loop {
            let command = tokio::select! {
                () = closed.cancelled() => return wake_all(&deletions),
                c = queue.recv() => c,
            };
            match command {
                Some(Command::Create {
                    id,
                    key,
                    end,
                    revision,
                }) if parked(&deletions, id) => break (id, key, end, revision),
                Some(_) => {}
                None => return,
            }
        };
        let opened = tokio::select! {
            () = closed.cancelled() => return wake_all(&deletions),
            s = open(&shared, id, &key, end, revision) => s,
        };
        let Some(stream) = opened else {
            // Waits look again (their line reads fail or succeed on their own); a pause keeps a
            // node that is down from being asked in a loop.
            wake_all(&deletions);
            tokio::select! {
                () = closed.cancelled() => return,
                () = tokio::time::sleep(REOPEN_WAIT) => {}
            }
            continue;
        };
        let (mut sender, responses) = stream.split();
        // Responses are read by a task of their own, so a send that waits for the server (a
        // burst of creates) never keeps the responses that would let the server go on unread.
        let (cancels, mut to_cancel) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read(deletions.clone(), responses, cancels));
        loop {
            let sent = tokio::select! {
                () = closed.cancelled() => {
                    reader.abort();
                    return wake_all(&deletions);
                }
                id = to_cancel.recv() => match id {
                    Some(id) => sender.cancel(id).await,
                    // The reader ended: the stream broke.
                    None => break,
                },
                command = queue.recv() => match command {
                    Some(Command::Create {
                        id,
                        key,
                        end,
                        revision,
                    }) if parked(&deletions, id) => {
                        sender.watch(key, Some(options(id, end, revision))).await
                    }
                    Some(Command::Create { .. }) => Ok(()),
                    Some(Command::Cancel(id)) => sender.cancel(id).await,
                    None => {
                        reader.abort();
                        return;
                    }
                },
            };
            if let Err(e) = sent {
                debug!(error = %e, "the latch-wait stream refused a request");
                break;
            }
        }
        reader.abort();
        // The stream's watches are gone with it: every wait looks again.
        wake_all(&deletions);
    }
}

/// Reads the stream's responses until it ends: wakes the waits whose key was deleted (their
/// watches go to `cancels`) or whose watch the server cancelled.
async fn read(
    deletions: Weak<Deletions>,
    mut responses: etcd_client::WatchResponseStream,
    cancels: mpsc::UnboundedSender<i64>,
) {
    loop {
        match responses.message().await {
            Ok(Some(resp)) => {
                if let Some(id) = deleted(&deletions, &resp) {
                    let _ = cancels.send(id);
                }
            }
            Ok(None) => return,
            Err(e) => {
                debug!(error = %e, "the latch-wait stream broke");
                return;
            }
        }
    }
}

/// Acts on one response of the stream; the id of a watch to cancel on the server (its key
/// changed and its wait was woken).
fn deleted(deletions: &Weak<Deletions>, resp: &WatchResponse) -> Option<i64> {
    let d = deletions.upgrade()?;
    let id = resp.watch_id();
    if resp.canceled() || resp.compact_revision() > 0 {
        debug!(
            id,
            reason = resp.cancel_reason(),
            "etcd cancelled a latch wait's watch; looking again"
        );
        d.wake(id, false);
        return None;
    }
    // No events: the watch's creation (or a progress notice), nothing changed. A put wakes the
    // wait to look again: only a hand puts a latch key after its join, and the key may have
    // left its lease (no participant then, and its fence fails).
    let gone = d.verdict(id, resp.events())?;
    d.wake(id, gone).then_some(id)
}

fn parked(deletions: &Weak<Deletions>, id: i64) -> bool {
    deletions.upgrade().is_some_and(|d| d.is_parked(id))
}

fn wake_all(deletions: &Weak<Deletions>) {
    if let Some(d) = deletions.upgrade() {
        d.wake_all();
    }
}

/// A watch of one key's changes (or, with `end`, of the keys up to `end`) from `revision` + 1
/// on, as watch `id`: deletions and puts (see [`Deletions::verdict`]).
fn options(id: i64, end: Option<Vec<u8>>, revision: i64) -> WatchOptions {
    let options = WatchOptions::new()
        .with_watch_id(id)
        .with_start_revision(revision + 1);
    match end {
        Some(end) => options.with_range(end),
        None => options,
    }
}

/// Opens the stream with watch `id` of `key` as its first, within the request timeout (a
/// stream routed to a node that is down is opened again on another).
async fn open(
    shared: &Weak<Shared>,
    id: i64,
    key: &str,
    end: Option<Vec<u8>>,
    revision: i64,
) -> Option<etcd_client::WatchStream> {
    let shared = shared.upgrade()?;
    let client = shared.client().ok()?;
    let bound = shared.settings.request_timeout;
    drop(shared);
    let opened = until_sent(client, |mut c| {
        let (key, end) = (key.to_owned(), end.clone());
        async move { c.watch(key, Some(options(id, end, revision))).await }
    });
    match tokio::time::timeout(bound, opened).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            debug!(error = %e, "the latch-wait stream could not be opened");
            None
        }
        Err(_) => {
            debug!(?bound, "the latch-wait stream was not opened in time");
            None
        }
    }
}

#[cfg(test)]
#[path = "deletions_tests.rs"]
mod tests;
