//! KV watches as etcd watches by revision, one per prefix per session (through the core's
//! [`WatchHub`]).
//!
//! An etcd watch of the key range below the prefix turns puts into [`KvEvent::Put`] (with the
//! entry, version = `mod_revision`) and deletes into [`KvEvent::Deleted`]. When the watch
//! stream breaks (connection lost, server restarted) it is opened again from the revision after
//! the last one seen, so nothing is missed; if that revision was compacted away, the watch is
//! opened from now and [`KvEvent::Reset`] tells its subscribers to re-read.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use etcd_client::{EventType, WatchOptions, WatchResponse, WatchStream};
use tenure_core::kv::{KvError, KvEvent, KvWatch, is_below};
use tenure_core::watch_hub::{WatchHub, WatchSource};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::EtcdBackend;
use crate::error::{client_error, timed_out};
use crate::session::Shared;
use crate::store::{entry, is_unsent};

/// How long a broken watch waits before it is opened again.
pub(crate) const REOPEN_WAIT: Duration = Duration::from_millis(200);

/// A watch of the keys below `prefix`, on the session's shared etcd watch of it.
pub(crate) async fn start(shared: &Arc<Shared>, prefix: &str) -> Result<KvWatch, KvError> {
    hub(shared).watch(prefix).await
}

fn hub(shared: &Arc<Shared>) -> &WatchHub {
    shared
        .watch_hub
        .get_or_init(|| WatchHub::new(Source(Arc::downgrade(shared))))
}

/// How many etcd watches `backend` holds now (one per watched prefix).
pub fn backend_watches(backend: &EtcdBackend) -> usize {
    backend
        .shared
        .watch_hub
        .get()
        .map_or(0, WatchHub::backend_watches)
}

/// Opens the etcd watch of a prefix for the hub.
struct Source(Weak<Shared>);

impl WatchSource for Source {
    fn open(
        &self,
        prefix: &str,
    ) -> Pin<Box<dyn Future<Output = Result<KvWatch, KvError>> + Send + '_>> {
        let prefix = prefix.to_owned();
        Box::pin(async move {
            let shared = self.0.upgrade().ok_or(KvError::Closed)?;
            let (stream, revision) = open_stream(&shared, &prefix, None).await?;
            let (tx, rx) = mpsc::unbounded_channel();
            let pump = Pump {
                shared: Arc::downgrade(&shared),
                closed: shared.closed.clone(),
                prefix,
                tx,
            };
            tokio::spawn(pump.run(stream, revision));
            Ok(KvWatch::new(rx))
        })
    }
}

/// What opening a watch from a revision found.
enum Opened {
    /// Open from this revision (the watch's current revision).
    Ok(Box<WatchStream>, i64),
    /// The requested revision was compacted.
    Compacted,
}

/// Opens an etcd watch of the range below `prefix` (from `start` if given) and waits for its
/// creation; returns it with the revision it starts after.
async fn open_stream(
    shared: &Shared,
    prefix: &str,
    start: Option<i64>,
) -> Result<(WatchStream, i64), KvError> {
    match open_from(shared, prefix, start).await? {
        Opened::Ok(s, r) => Ok((*s, r)),
        Opened::Compacted => Err(KvError::Backend(format!(
            "the watch of {prefix:?} started at a compacted revision"
        ))),
    }
}

async fn open_from(shared: &Shared, prefix: &str, start: Option<i64>) -> Result<Opened, KvError> {
    let (begin, end) = shared.keys.range_below(prefix);
    let mut options = WatchOptions::new().with_range(end);
    if let Some(rev) = start {
        options = options.with_start_revision(rev);
    }
    let client = shared.client()?;
    let timeout = shared.settings.request_timeout;
    let opened = async {
        loop {
            let attempt = async {
                let mut stream = client
                    .clone()
                    .watch(begin.clone(), Some(options.clone()))
                    .await?;
                let first = stream.message().await?;
                Ok::<_, etcd_client::Error>((stream, first))
            };
            match attempt.await {
                Err(e) if is_unsent(&e) => tokio::time::sleep(REOPEN_WAIT).await,
                r => return r,
            }
        }
    };
    let (stream, first) = match tokio::time::timeout(timeout, opened).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(client_error(e, prefix, "watch")),
        Err(_) => return Err(timed_out(prefix, "watch", timeout)),
    };
    let Some(first) = first else {
        return Err(KvError::Backend(format!(
            "the etcd watch of {prefix:?} ended before it was created"
        )));
    };
    if first.compact_revision() > 0 {
        return Ok(Opened::Compacted);
    }
    if first.canceled() {
        // Refused, not compacted (e.g. an expired auth token or a missing permission): an
        // error naming etcd's reason, and the pump tries again.
        let reason = first.cancel_reason();
        let err = if reason.contains("permission denied") {
            KvError::Unauthorized {
                key: prefix.to_owned(),
                reason: format!("etcd refused the watch: {reason}"),
            }
        } else {
            KvError::Backend(format!("etcd cancelled the watch of {prefix:?}: {reason}"))
        };
        return Err(err);
    }
    let revision = first.header().map_or(0, |h| h.revision());
    Ok(Opened::Ok(Box::new(stream), revision))
}

struct Pump {
    shared: Weak<Shared>,
    closed: CancellationToken,
    prefix: String,
    tx: mpsc::UnboundedSender<KvEvent>,
}

impl Pump {
    async fn run(self, mut stream: WatchStream, mut seen: i64) {
        loop {
            // Follow one etcd watch until it breaks (or its start revision was compacted).
            let mut compacted = false;
            loop {
                let msg = tokio::select! {
                    _ = self.closed.cancelled() => return,
                    _ = self.tx.closed() => return,
                    m = stream.message() => m,
                };
                match msg {
                    Ok(Some(resp)) => {
                        if resp.compact_revision() > 0 {
                            debug!(prefix = %self.prefix, revision = resp.compact_revision(), "the etcd watch's revisions were compacted");
                            compacted = true;
                            break;
                        }
                        if resp.canceled() {
                            debug!(prefix = %self.prefix, reason = resp.cancel_reason(), "the etcd watch was cancelled; opening it again");
                            break;
                        }
                        self.deliver(&resp);
                        if let Some(h) = resp.header() {
                            seen = seen.max(h.revision());
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        debug!(prefix = %self.prefix, error = %e, "the etcd watch broke");
                        break;
                    }
                }
            }
            drop(stream);
            match self.reopen(seen, compacted).await {
                Some((s, r, reset)) => {
                    stream = s;
                    seen = r;
                    if reset {
                        let _ = self.tx.send(KvEvent::Reset);
                    }
                }
                None => return,
            }
        }
    }

    fn deliver(&self, resp: &WatchResponse) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let Some(key) = shared.keys.key_of(kv.key()) else {
                continue;
            };
            if !is_below(&self.prefix, &key) {
                continue;
            }
            let event = match event.event_type() {
                EventType::Put => match entry(&shared.keys, kv) {
                    Some(e) => KvEvent::Put(e),
                    None => continue,
                },
                EventType::Delete => KvEvent::Deleted { key },
            };
            let _ = self.tx.send(event);
        }
    }

    /// Opens the watch again after revision `seen`; from now (and `true`: subscribers must
    /// re-read) if that was compacted (known already: `compacted`, or found on opening). `None` once closed or unsubscribed.
    async fn reopen(&self, seen: i64, compacted: bool) -> Option<(WatchStream, i64, bool)> {
        loop {
            let shared = self.shared.upgrade()?;
            let start = (!compacted).then_some(seen + 1);
            let opened = tokio::select! {
                _ = self.closed.cancelled() => return None,
                _ = self.tx.closed() => return None,
                r = open_from(&shared, &self.prefix, start) => r,
            };
            match opened {
                Ok(Opened::Ok(s, r)) if compacted => return Some((*s, r, true)),
                Ok(Opened::Ok(s, _)) => return Some((*s, seen, false)),
                Ok(Opened::Compacted) => {
                    debug!(prefix = %self.prefix, revision = seen + 1, "watch revision compacted; re-reading");
                    let now = tokio::select! {
                        _ = self.closed.cancelled() => return None,
                        r = open_from(&shared, &self.prefix, None) => r,
                    };
                    if let Ok(Opened::Ok(s, r)) = now {
                        return Some((*s, r, true));
                    }
                }
                Err(KvError::Closed) => return None,
                Err(e) => {
                    debug!(prefix = %self.prefix, error = %e, "re-opening the etcd watch failed")
                }
            }
            drop(shared);
            tokio::select! {
                _ = self.closed.cancelled() => return None,
                _ = self.tx.closed() => return None,
                _ = tokio::time::sleep(REOPEN_WAIT) => {}
            }
        }
    }
}
