//! Leader retrievals run by the session driver: each follows one component's leader key with a
//! [`RetrievalState`] and shows a `watch` of [`LeaderState`].
//!
//! Per retrieval the driver keeps one watch of the component's leader directory (the backend
//! shares one backend watch per prefix among all of them) and reads the key after the watch
//! starts and after every `Reset` or reconnect, so nothing between the two is missed and a stale
//! leader is never shown as current. Both are requests in flight on the driver's one task;
//! dropping a retrieval aborts its watch at once.

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::codec::decode_leader_info;
use crate::connection::ConnectionState;
use crate::kv::{Entry, KvError, KvEvent, KvWatch, VersionedKv};
use crate::leader_info::LeaderInformation;
use crate::retrieval::{LeaderState, RetrievalState};

/// One retrieval.
pub(crate) struct Retrieval {
    key: String,
    dir: String,
    state: RetrievalState,
    tx: watch::Sender<LeaderState>,
    /// Tells the completions of the current watch from those of an older one.
    epoch: u64,
    /// Cancels the current watch's requests.
    cancel: Option<CancellationToken>,
}

/// A finished request of a retrieval.
pub(crate) enum Done {
    /// The watch started (or failed to).
    Watching(Result<KvWatch, KvError>),
    /// The watch's next event (`None`: the watch ended), and the watch.
    Event(Option<KvEvent>, KvWatch),
    /// The key was read.
    Read(Result<Option<Entry>, KvError>),
}

/// A retrieval's request in flight: which retrieval, which watch epoch, what finished.
pub(crate) type Request = BoxFuture<'static, Option<(u64, u64, Done)>>;

impl Retrieval {
    pub(crate) fn new(
        key: String,
        dir: String,
        state: RetrievalState,
        tx: watch::Sender<LeaderState>,
    ) -> Self {
        Self {
            key,
            dir,
            state,
            tx,
            epoch: 0,
            cancel: None,
        }
    }

    fn set(&self, s: LeaderState) {
        self.tx.send_if_modified(|cur| {
            let changed = *cur != s;
            *cur = s;
            changed
        });
    }

    /// The connection changed: show what the state machine says; once connected, watch and
    /// read afresh (events may have been missed).
    pub(crate) fn connection(
        &mut self,
        id: u64,
        state: ConnectionState,
        kv: Result<std::sync::Arc<dyn VersionedKv>, KvError>,
        out: &mut Vec<Request>,
    ) {
        let shown = self.state.connection(state);
        self.set(shown);
        self.stop();
        if state != ConnectionState::Connected {
            return;
        }
        let Ok(kv) = kv else { return };
        self.epoch += 1;
        let dir = self.dir.clone();
        out.push(self.abortable(id, async move { Done::Watching(kv.watch(&dir).await) }));
    }

    /// Aborts the current watch's requests.
    pub(crate) fn stop(&mut self) {
        if let Some(c) = self.cancel.take() {
            c.cancel();
        }
    }

    fn abortable(
        &mut self,
        id: u64,
        fut: impl std::future::Future<Output = Done> + Send + 'static,
    ) -> Request {
        let cancel = self
            .cancel
            .get_or_insert_with(CancellationToken::new)
            .clone();
        let epoch = self.epoch;
        Box::pin(async move {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => None,
                done = fut => Some((id, epoch, done)),
            }
        })
    }

    /// A request of this retrieval finished.
    pub(crate) fn done(
        &mut self,
        id: u64,
        epoch: u64,
        done: Done,
        kv: Result<std::sync::Arc<dyn VersionedKv>, KvError>,
        out: &mut Vec<Request>,
    ) {
        if epoch != self.epoch {
            return;
        }
        match done {
            Done::Watching(Ok(w)) => {
                out.push(self.abortable(id, next_event(w)));
                self.read(id, kv, out);
            }
            Done::Watching(Err(e)) => {
                warn!(key = %self.key, error = %e, "cannot watch leader information");
            }
            Done::Event(Some(ev), w) => {
                match ev {
                    KvEvent::Put(e) if e.key == self.key => {
                        let s = self.state.published(read(Some(e)));
                        self.set(s);
                    }
                    KvEvent::Deleted { key } if key == self.key => {
                        let s = self.state.published(None);
                        self.set(s);
                    }
                    KvEvent::Reset => self.read(id, kv, out),
                    _ => {}
                }
                out.push(self.abortable(id, next_event(w)));
            }
            Done::Event(None, _) => {}
            Done::Read(Ok(e)) => {
                let s = self.state.published(read(e));
                self.set(s);
            }
            Done::Read(Err(e)) => {
                debug!(key = %self.key, error = %e, "reading leader information failed");
            }
        }
    }

    fn read(
        &mut self,
        id: u64,
        kv: Result<std::sync::Arc<dyn VersionedKv>, KvError>,
        out: &mut Vec<Request>,
    ) {
        let Ok(kv) = kv else { return };
        let key = self.key.clone();
        out.push(self.abortable(id, async move { Done::Read(kv.get(&key).await) }));
    }
}

async fn next_event(mut w: KvWatch) -> Done {
    let ev = w.next().await;
    Done::Event(ev, w)
}

fn read(e: Option<Entry>) -> Option<LeaderInformation> {
    let e = e?;
    match decode_leader_info(&e.value) {
        Ok(info) => info,
        Err(err) => {
            warn!(key = %e.key, error = %err, "unreadable leader information");
            None
        }
    }
}
