//! The ConfigMap watches of a process (Flink's `KubernetesConfigMapSharedWatcher`), turned
//! into KV events.
//!
//! A watch lists its ConfigMaps, then watches from the list's resource version with bookmarks,
//! re-watching from the last version seen when a stream ends, and listing afresh when the
//! server answers `410 Gone` or the stream fails. The [`Watcher`] caches every ConfigMap's
//! decoded entries and reports the difference between the old and new entries of each changed
//! ConfigMap as [`KvEvent::Put`] / [`KvEvent::Deleted`], so a re-list after missed events
//! reports exactly what changed meanwhile. A renewal of a session ConfigMap changes no entry,
//! so it reaches no [`KvWatch`].
//!
//! Two ways to feed it ([`Selection`]):
//!
//! - A process that runs elections has one label-selector watch of every HA ConfigMap of the
//!   cluster, always on: it also feeds the session reaper (the cache) and wakes latches when
//!   their ConfigMap changes. Every [`KvWatch`] of the process is a filtered view of it, so the
//!   core's `WatchHub` is not used here.
//! - A client-only process watches each ConfigMap it follows by name
//!   (`fieldSelector=metadata.name=<name>`, Flink's FLINK-33598), started by the first
//!   [`KvWatch`] below it: renewals of other processes' sessions and changes of ConfigMaps it
//!   does not follow never reach it. Only a watch of every key (`""`, `jobs`) needs the label
//!   watch there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::WatchEvent;
use tenure_core::kv::{Entry, KvEvent, KvWatch, is_below};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::api::{ApiError, ConfigMaps, Selection};
use crate::cm;
use crate::names::{CmKind, Names};

/// How long the server keeps one watch request open.
const WATCH_TIMEOUT_SECS: u32 = 60;

struct Sub {
    prefix: String,
    tx: mpsc::UnboundedSender<KvEvent>,
}

struct Cached {
    cm: ConfigMap,
    entries: BTreeMap<String, Entry>,
}

/// The shared watch's state.
pub(crate) struct Watcher {
    names: Names,
    subs: Mutex<Vec<Sub>>,
    cache: Mutex<BTreeMap<String, Cached>>,
    /// The ConfigMaps whose first list has been applied (by name; [`ALL`] for the label watch).
    synced: watch::Sender<BTreeSet<String>>,
    changes: broadcast::Sender<String>,
    last_rv: Arc<AtomicI64>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

use tenure_core::sync::lock;

impl Watcher {
    pub fn new(names: Names, last_rv: Arc<AtomicI64>) -> Arc<Self> {
        Arc::new(Self {
            names,
            subs: Mutex::new(Vec::new()),
            cache: Mutex::new(BTreeMap::new()),
            synced: watch::channel(BTreeSet::new()).0,
            changes: broadcast::channel(1024).0,
            last_rv,
        })
    }

    /// Waits until the first list of ConfigMap `name` (`None`: of every ConfigMap, the label
    /// watch) has been applied; the label watch's list counts for every name.
    pub async fn wait_synced(&self, name: Option<&str>) {
        let mut rx = self.synced.subscribe();
        let _ = rx
            .wait_for(|s| s.contains(ALL) || name.is_some_and(|n| s.contains(n)))
            .await;
    }

    /// A KV watch of the keys below `prefix`, fed from the shared watch. Subscribers that were
    /// dropped are forgotten here too, not only when an event of theirs fails to send (a
    /// retriever of a component that never changes would otherwise stay forever).
    pub fn subscribe(&self, prefix: &str) -> KvWatch {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut subs = lock(&self.subs);
        subs.retain(|s| !s.tx.is_closed());
        subs.push(Sub {
            prefix: prefix.to_owned(),
            tx,
        });
        KvWatch::new(rx)
    }

    /// Ends every KV watch (the session is closed).
    pub fn close_subscriptions(&self) {
        lock(&self.subs).clear();
    }

    /// Names of ConfigMaps as they change.
    pub fn changes(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// The cached ConfigMaps.
    pub fn snapshot(&self) -> Vec<ConfigMap> {
        lock(&self.cache).values().map(|c| c.cm.clone()).collect()
    }

    fn note_rv(&self, cm: &ConfigMap) {
        self.last_rv.fetch_max(cm::rv_num(cm), Ordering::SeqCst);
    }

    /// Applies the new state of ConfigMap `name` (`None`: deleted) and reports the differences.
    fn apply(&self, name: &str, new: Option<ConfigMap>) {
        if let Some(cm) = &new {
            self.note_rv(cm);
        }
        let new_entries = new
            .as_ref()
            .map(|cm| cm::lenient_entries(&self.names, cm))
            .unwrap_or_default();
        let old = {
            let mut cache = lock(&self.cache);
            match new {
                Some(cm) => cache.insert(
                    name.to_owned(),
                    Cached {
                        cm,
                        entries: new_entries.clone(),
                    },
                ),
                None => cache.remove(name),
            }
        };
        let old_entries = old.map(|c| c.entries).unwrap_or_default();
        let mut events = Vec::new();
        for (k, e) in &new_entries {
            if old_entries.get(k) != Some(e) {
                events.push(KvEvent::Put(e.clone()));
            }
        }
        for k in old_entries.keys() {
            if !new_entries.contains_key(k) {
                events.push(KvEvent::Deleted { key: k.clone() });
            }
        }
        if !events.is_empty() {
            let mut subs = lock(&self.subs);
            for ev in events {
                let key = match &ev {
                    KvEvent::Put(e) => e.key.as_str(),
                    KvEvent::Deleted { key } => key.as_str(),
                    KvEvent::Reset => "",
                };
                subs.retain(|s| !is_below(&s.prefix, key) || s.tx.send(ev.clone()).is_ok());
            }
        }
        // Latches wait for their lock ConfigMap, never a session's: a session renewal (one per
        // process per retry period) wakes none of them.
        if !matches!(self.names.classify(name), CmKind::Session(_)) {
            let _ = self.changes.send(name.to_owned());
        }
    }

    /// Applies a full list of what `selection` asks for: every listed ConfigMap, and deletion
    /// of cached ones it would have listed but did not.
    fn resync(&self, selection: &Selection, items: Vec<ConfigMap>) {
        let listed: Vec<String> = items
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        let gone: Vec<String> = lock(&self.cache)
            .keys()
            .filter(|k| !listed.contains(k))
            .filter(|k| match selection {
                Selection::Labels(_) => true,
                Selection::Name { name, .. } => *k == name,
            })
            .cloned()
            .collect();
        for name in gone {
            self.apply(&name, None);
        }
        for cm in items {
            if let Some(name) = cm.metadata.name.clone() {
                self.apply(&name, Some(cm));
            }
        }
        let synced = match selection {
            Selection::Labels(_) => ALL.to_owned(),
            Selection::Name { name, .. } => name.clone(),
        };
        self.synced.send_if_modified(|s| s.insert(synced));
    }
}

/// The name under which the label watch's first list is noted as synced (never a ConfigMap's).
const ALL: &str = "";

/// Runs one watch of what `selection` asks for until `cancel` fires; `listed` is told whether
/// each list succeeded (a client-only process derives its connection state from it).
pub(crate) async fn run(
    api: ConfigMaps,
    watcher: Arc<Watcher>,
    cancel: CancellationToken,
    retry: Duration,
    selection: Selection,
    listed: impl Fn(bool) + Send + 'static,
) {
    let selector = &selection;
    let pause = retry.min(Duration::from_secs(1));
    'list: loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = api.list_selected(selector) => r,
        };
        listed(result.is_ok());
        let (items, mut rv) = match result {
            Ok(l) => l,
            Err(e) => {
                debug!(error = %e, ?selection, "listing ConfigMaps failed; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(pause) => continue 'list,
                }
            }
        };
        watcher.resync(selector, items);
        loop {
            let started = tokio::select! {
                _ = cancel.cancelled() => return,
                s = api.watch(selector, &rv, WATCH_TIMEOUT_SECS) => s,
            };
            let stream = match started {
                Ok(s) => s,
                Err(ApiError::Gone) => continue 'list,
                Err(e) => {
                    debug!(error = %e, "watch failed; listing again");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(pause) => continue 'list,
                    }
                }
            };
            let mut stream = std::pin::pin!(stream);
            loop {
                let ev = tokio::select! {
                    _ = cancel.cancelled() => return,
                    ev = stream.next() => ev,
                };
                match ev {
                    // The server ended the watch: resume from the last version seen.
                    None => break,
                    Some(Ok(WatchEvent::Added(cm) | WatchEvent::Modified(cm))) => {
                        if let Some(v) = cm::rv(&cm) {
                            rv = v.to_owned();
                        }
                        if let Some(name) = cm.metadata.name.clone() {
                            watcher.apply(&name, Some(cm));
                        }
                    }
                    Some(Ok(WatchEvent::Deleted(cm))) => {
                        if let Some(v) = cm::rv(&cm) {
                            rv = v.to_owned();
                        }
                        if let Some(name) = cm.metadata.name.clone() {
                            watcher.apply(&name, None);
                        }
                    }
                    Some(Ok(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                    Some(Ok(WatchEvent::Error(s))) => {
                        if s.code != 410 {
                            warn!(code = s.code, message = %s.message, "watch error; listing again");
                        }
                        continue 'list;
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "watch stream failed; listing again");
                        continue 'list;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_subscribers_are_forgotten_even_without_events_of_theirs() {
        let watcher = Watcher::new(Names::new("c"), Arc::new(AtomicI64::new(0)));
        for _ in 0..100 {
            drop(watcher.subscribe("leader/dispatcher"));
        }
        let _kept = watcher.subscribe("leader/rest_server");
        assert_eq!(lock(&watcher.subs).len(), 1);
    }

    #[test]
    fn a_list_by_name_resyncs_that_configmap_alone() {
        let names = Names::new("c");
        let watcher = Watcher::new(names.clone(), Arc::new(AtomicI64::new(0)));
        let cluster = names.cluster_cm();
        let session = names.session_cm(7);
        let labels = Selection::Labels(names.label_selector());
        watcher.resync(
            &labels,
            vec![cm::new_cm(&names, &cluster), cm::new_cm(&names, &session)],
        );
        let by_name = Selection::Name {
            name: cluster.clone(),
            labels: names.label_selector(),
        };
        watcher.resync(&by_name, Vec::new());
        let cached: Vec<String> = lock(&watcher.cache).keys().cloned().collect();
        assert_eq!(cached, vec![session]);
        let synced = watcher.synced.borrow().clone();
        assert!(
            synced.contains(ALL) && synced.contains(&cluster),
            "{synced:?}"
        );
    }
}
