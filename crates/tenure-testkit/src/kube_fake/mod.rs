//! A fake Kubernetes API server for tests: no real API server can be installed on these
//! machines, so this one implements exactly the API semantics the Kubernetes backend relies on,
//! strictly, over real HTTP on a free loopback port.
//!
//! Served (for `v1` ConfigMaps under `/api/v1/...` and `coordination.k8s.io/v1` Leases under
//! `/apis/coordination.k8s.io/v1/...`):
//!
//! - `POST` create (`409 AlreadyExists`; `generateName`; a set `resourceVersion` is refused),
//!   `GET` get (`404 NotFound`), `PUT` replace (`409 Conflict` when the body's
//!   `metadata.resourceVersion` is stale; unconditional without one; a no-op replace keeps the
//!   resource version), `PATCH` with `application/merge-patch+json` (RFC 7386; a strategic merge
//!   patch is treated the same, which is exact for these resources), `DELETE` (preconditions on
//!   `resourceVersion` and `uid`, answered with a `Status` of `Success`), `DELETE` on a
//!   collection (delete-collection with selectors);
//! - list and watch with `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, exists, `!`) and
//!   `fieldSelector` (`metadata.name`, `metadata.namespace` with `=`, `==`, `!=`; any other
//!   field is `400 BadRequest` `field label not supported: <field>`, as the real server answers
//!   for ConfigMaps), `limit` / `continue`;
//! - watch (`?watch=true`) from a `resourceVersion` (events after it), or without one / with
//!   `"0"` (the current objects as `ADDED` first), `allowWatchBookmarks` (periodic `BOOKMARK`s
//!   carrying the last resource version the stream has passed), `timeoutSeconds`; a resource
//!   version older than the kept history gets an `ERROR` event with a `410 Expired` Status, as
//!   the real server's watch cache sends; objects that start or stop matching a selector are
//!   seen as `ADDED` / `DELETED`;
//! - validation: DNS-1123 names, config keys, `data` + `binaryData` at most 1 MiB and
//!   annotations at most 256 KiB (`422 Invalid` with causes);
//! - every error body is a `Status` object; resource versions are one global counter, as
//!   etcd's revision, so they increase monotonically across all objects.
//!
//! Not served: other resources, server-side apply, JSON patch, `managedFields`, `immutable`
//! ConfigMaps, namespaces as objects (every namespace exists), authentication.
//!
//! Fault knobs: [`FakeApiServer::fail_next`] (the next N requests fail with 500 / 503 / 429),
//! [`FakeApiServer::set_delay`] (every response is delayed), [`FakeApiServer::drop_watches`]
//! (every open watch stream ends), [`FakeApiServer::compact`] (watches from an older resource
//! version get 410).
//!
//! What the server saw: [`FakeApiServer::requests`] (every request),
//! [`FakeApiServer::served`] (with each request's `User-Agent`, so a client's requests can be
//! told apart) and [`FakeApiServer::watches`] (every watch with its selectors and the events it
//! sent, by object name).
//!
//! The fake is checked against request/response pairs transcribed from the Kubernetes API
//! reference (`kube_fake/fixtures/*.json`, run by `tests/suite/kubernetes_fake.rs`), so it is not
//! tuned to one client.

mod factory;
mod http;
mod process;
pub mod selector;
pub mod store;

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;
use tenure_core::sync::lock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use factory::{KubernetesFactory, test_settings};

pub use process::ProcessSetup;
pub use store::{ApiError, Resource};

/// The default interval of watch bookmarks.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// The shared state of one fake server.
#[derive(Debug)]
pub(crate) struct Inner {
    store: Mutex<store::Store>,
    failures: Mutex<VecDeque<u16>>,
    delay: Mutex<Duration>,
    bookmark_interval: Mutex<Duration>,
    drop_watches: watch::Sender<u64>,
    requests: Mutex<Vec<String>>,
    served: Mutex<Vec<Served>>,
    watches: Mutex<Vec<(WatchInfo, Arc<Sent>)>>,
}

/// The events one watch sent, by the name of the object each was about (`ERROR`: `""`).
#[derive(Debug, Default)]
pub(crate) struct Sent(Mutex<BTreeMap<String, u64>>);

impl Sent {
    /// Notes one event (a rendered watch event line's JSON).
    pub(crate) fn note(&self, event: &Value) {
        let name = event
            .pointer("/object/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        *lock(&self.0).entry(name.to_owned()).or_default() += 1;
    }
}

/// One request served, with the client's `User-Agent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// The path and query.
    pub uri: String,
    /// The `User-Agent` header (empty when none was sent).
    pub user_agent: String,
}

impl Served {
    /// Whether the request could change an object (anything but `GET`, which also lists and
    /// watches).
    pub fn writes(&self) -> bool {
        self.method != "GET"
    }
}

/// A watch the server opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchInfo {
    /// The path and query of the watch request.
    pub uri: String,
    /// Its `labelSelector` (empty: none).
    pub label_selector: String,
    /// Its `fieldSelector` (empty: none).
    pub field_selector: String,
    /// The `User-Agent` of the client that opened it.
    pub user_agent: String,
}

/// A watch the server opened and the events it sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchStats {
    /// The watch.
    pub watch: WatchInfo,
    /// `ADDED`, `MODIFIED`, `DELETED` and `ERROR` events sent on it, by the name of the object
    /// each was about (`ERROR` events under `""`); bookmarks are not counted.
    pub by_object: BTreeMap<String, u64>,
}

impl WatchStats {
    /// Every event sent on the watch (bookmarks not counted).
    pub fn events(&self) -> u64 {
        self.by_object.values().sum()
    }
}

impl Inner {
    pub(crate) fn store(&self) -> MutexGuard<'_, store::Store> {
        lock(&self.store)
    }

    pub(crate) fn take_failure(&self) -> Option<u16> {
        lock(&self.failures).pop_front()
    }

    pub(crate) fn delay(&self) -> Duration {
        *lock(&self.delay)
    }

    pub(crate) fn bookmark_interval(&self) -> Duration {
        *lock(&self.bookmark_interval)
    }

    pub(crate) fn drop_signal(&self) -> watch::Receiver<u64> {
        self.drop_watches.subscribe()
    }

    pub(crate) fn log_request(&self, method: &Method, uri: &Uri, headers: &HeaderMap) {
        lock(&self.requests).push(format!("{method} {uri}"));
        lock(&self.served).push(Served {
            method: method.to_string(),
            uri: uri.to_string(),
            user_agent: user_agent(headers),
        });
    }

    /// Registers a watch; every event sent on it is noted in the returned [`Sent`].
    pub(crate) fn open_watch(&self, info: WatchInfo) -> Arc<Sent> {
        let sent = Arc::new(Sent::default());
        lock(&self.watches).push((info, sent.clone()));
        sent
    }
}

/// The `User-Agent` of a request (empty when none was sent).
pub(crate) fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// A fake Kubernetes API server on a free loopback port. Dropping it stops it.
#[derive(Debug)]
pub struct FakeApiServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
        // End open watch streams so clients see the server go.
        self.drop_watches();
    }
}

impl FakeApiServer {
    /// Starts a server on a free loopback port (plain HTTP). Must be called inside a tokio
    /// runtime.
    pub async fn start() -> Self {
        let (drop_tx, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            store: Mutex::new(store::Store::default()),
            failures: Mutex::new(VecDeque::new()),
            delay: Mutex::new(Duration::ZERO),
            bookmark_interval: Mutex::new(DEFAULT_BOOKMARK_INTERVAL),
            drop_watches: drop_tx,
            requests: Mutex::new(Vec::new()),
            served: Mutex::new(Vec::new()),
            watches: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a free loopback port");
        let addr = listener.local_addr().expect("local address");
        let app = Router::new()
            .fallback(
                |State(inner): State<Arc<Inner>>,
                 method: Method,
                 uri: Uri,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    http::handle(inner, method, uri, headers, body).await
                },
            )
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("fake API server stopped: {e}");
            }
        });
        Self { inner, addr, task }
    }

    /// The server's base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next `n` requests fail with `code` (500, 503 or 429), each with a `Status` body.
    pub fn fail_next(&self, n: usize, code: u16) {
        lock(&self.inner.failures).extend(std::iter::repeat_n(code, n));
    }

    /// Cancels the failures [`fail_next`](Self::fail_next) queued and not yet used.
    pub fn clear_failures(&self) {
        lock(&self.inner.failures).clear();
    }

    /// Delays every response by `delay` (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.inner.delay) = delay;
    }

    /// Ends every open watch stream now (clients see the stream close and must re-watch).
    pub fn drop_watches(&self) {
        self.inner.drop_watches.send_modify(|g| *g += 1);
    }

    /// Forgets the event history: a watch from an older resource version gets `410 Expired`.
    pub fn compact(&self) {
        self.inner.store().compact();
    }

    /// Keeps at most `n` events for watches that resume from a resource version.
    pub fn set_history_limit(&self, n: usize) {
        self.inner.store().set_history_limit(n);
    }

    /// How often watches with `allowWatchBookmarks` get a bookmark (for new watches).
    pub fn set_bookmark_interval(&self, every: Duration) {
        *lock(&self.inner.bookmark_interval) = every.max(Duration::from_millis(10));
    }

    /// The current resource version (of the latest change).
    pub fn resource_version(&self) -> u64 {
        self.inner.store().resource_version()
    }

    /// One object as stored, if it exists.
    pub fn object(&self, res: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.inner.store().get(res, namespace, name).cloned()
    }

    /// The objects of one resource in `namespace`, sorted by name.
    pub fn objects(&self, res: Resource, namespace: &str) -> Vec<Value> {
        self.inner.store().list(res, Some(namespace), |_| true)
    }

    /// Stores `object` bypassing validation (a new resource version; watchers are told): for
    /// tests with data a client would not write, such as corrupt values.
    pub fn put_raw(&self, res: Resource, namespace: &str, object: Value) -> Value {
        self.inner.store().put_raw(res, namespace, object)
    }

    /// Every request served so far, as `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.inner.requests).clone()
    }

    /// Every request served so far, with its `User-Agent`.
    pub fn served(&self) -> Vec<Served> {
        lock(&self.inner.served).clone()
    }

    /// Every watch opened so far (ended ones too), with the events it sent until now.
    pub fn watches(&self) -> Vec<WatchStats> {
        lock(&self.inner.watches)
            .iter()
            .map(|(w, sent)| WatchStats {
                watch: w.clone(),
                by_object: lock(&sent.0).clone(),
            })
            .collect()
    }
}
