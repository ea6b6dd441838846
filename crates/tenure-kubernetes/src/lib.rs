//! The Kubernetes backend of tenure (Flink's HA mode `KUBERNETES`), in the ConfigMap layout real
//! Flink 1.15+ uses.
//!
//! One [`KubernetesBackend`] is one process's connection to the API server, shared by every
//! election, retrieval and store of that process. It implements [`HaBackend`] (latches on the
//! leader-election annotation, connection state) and [`VersionedKv`] (the core's keys mapped
//! onto ConfigMap data keys), so the core's elections, retrievals and stores run on it
//! unchanged.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tenure_core::election::ElectionService;
//! use tenure_core::ids::ComponentId;
//! use tenure_core::layout::Layout;
//! use tenure_kubernetes::{KubernetesBackend, KubernetesSettings};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Kubeconfig ($KUBECONFIG, ~/.kube/config) or the in-cluster service account.
//! let settings = KubernetesSettings::new("flink", "my-cluster");
//! let backend = Arc::new(KubernetesBackend::connect_inferred(settings).await?);
//! let layout = Layout::default();
//! let service = ElectionService::new(backend.clone(), layout, layout.cluster_latch());
//! let mut election = service.register(ComponentId::Dispatcher).await?;
//! let term = election.wait_for_leadership().await?;
//! election.confirm(term.session_id, "pekko.tcp://flink@host:6123/user/rpc/dispatcher_1").await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! See [`names`]: the cluster ConfigMap `<cluster-id>-cluster-config-map` (labels
//! `type=flink-native-kubernetes`, `app=<cluster-id>`, `configmap-type=high-availability`)
//! carries the leader-election annotation and the data keys
//! `org.apache.flink.k8s.leader.<component>` (`"<session uuid>,<address>"`), `executionPlan-<job>`,
//! ...; per job, `<cluster-id>-<job>-config-map` holds `checkpointID-<%019d>` and `counter`.
//!
//! # Versions, fencing, ephemeral keys
//!
//! - **Versions** ([`Version`](tenure_core::kv::Version)) are kept per key in the annotation
//!   `tenure/kv` (`{"<data key>": {"v": <version>}}`), so a write to one key does not conflict
//!   with writes to others in the same ConfigMap (the cluster ConfigMap changes at every lease
//!   renewal). A new version is one more than the highest resource version seen, so a key's
//!   versions only grow, even across deletion and re-creation. A key without an entry (written
//!   by Flink) has the ConfigMap's resource version as its version. Every write is a replace of
//!   the whole ConfigMap conditioned on its `resourceVersion`; a `409 Conflict` is re-read and
//!   retried, the per-key version check decides.
//! - **Fencing**: a write with a [`tenure_core::kv::FencingToken`] (`lock` = the
//!   ConfigMap holding the latch, `epoch` = its `leaderTransitions` when the term began) is
//!   refused with `NotLeader` unless this process still holds that term locally (granted, not
//!   revoked, last renewal within the renew deadline) *and* the leader annotation read shows it
//!   as holder with that `leaderTransitions`. On the cluster ConfigMap the annotation is read in
//!   the very object the write replaces (`resourceVersion`-conditioned): check and write are
//!   atomic. A write to a per-job ConfigMap (which Flink leaves unfenced) reads the lock's
//!   annotation first and writes its claim (`tenure/claim`: lock, holder, term) into the
//!   per-job ConfigMap in the same conditioned replace. A new term claims every existing
//!   per-job ConfigMap it fences before it is reported granted, so any write an older term
//!   prepared there fails on the changed `resourceVersion` and is re-checked (and refused).
//!   What no Kubernetes object can give is a transaction over two objects: a deposed leader
//!   that verified its term, then stalled, and resumes between the new term's acquisition and
//!   its claim of that ConfigMap (or creates a per-job ConfigMap that did not exist) can still
//!   land that one write. A holder also refuses its own fenced writes once its last confirmed
//!   renewal is older than the renew deadline, without asking the server.
//! - **Ephemeral keys**: each process has a session ConfigMap
//!   `<cluster-id>-tenure-session-<id>` with a lease record renewed every retry period. An
//!   ephemeral key records its owner session in `tenure/kv`. Closing the backend deletes its
//!   ephemeral keys and session; when a session's lease expires (by the same lease arithmetic
//!   as the leader lease), any live process deletes that session's ephemeral keys and its
//!   session ConfigMap. Flink itself has no ephemeral data on Kubernetes.
//!
//! # Connection state
//!
//! `Connected` while the session's renewals succeed; `Suspended` after a failed renewal;
//! `Lost` when no renewal succeeded for a lease duration (others may have removed this
//! session's ephemeral keys); `Connected` again after the next successful renewal. Leadership
//! does not follow the connection state (the policy is
//! [`SuspendedPolicy::TolerateSuspended`]): a leader steps down exactly when it cannot renew its
//! lease within the renew deadline.
//!
//! # Client-only backends
//!
//! A process that only reads (a CLI, a REST gateway; Flink's `ClientHighAvailabilityServices`)
//! connects with [`KubernetesSettings::for_client_only`] (or
//! [`KubernetesBackend::from_config_client`]; `tenure::connect_client` does this). It creates
//! no session ConfigMap, renews and reaps nothing, joins no latch and refuses every write with
//! [`KvError::Unauthorized`] before sending anything; it needs only `get`, `list` and `watch`.
//! Its requests carry the `User-Agent` `tenure-kubernetes/<version> (client-only)`, a full
//! process's `(process)` (see [`user_agent`]).
//!
//! # Watches and API load
//!
//! A process that runs elections keeps one label-selector watch of all the cluster's HA
//! ConfigMaps (it feeds the session reaper and wakes latches). A client-only process instead
//! watches each ConfigMap it follows by name (`fieldSelector=metadata.name=<name>`, as Flink
//! does since FLINK-33598): a leader retriever watches only the cluster ConfigMap. Every session
//! ConfigMap is renewed once per retry period, so a label watch receives one event per process
//! per retry period on top of the leader's lease renewal; the name watch receives only the
//! latter. Measured on the fake API server with an idle, confirmed leader and three processes
//! (`tests/client_only.rs`, 2 s at a 200 ms retry period, extrapolated to the default 5 s):
//! a client-only retriever receives **0** session-renewal events and about **12 events per
//! minute** (the leader's renewals of the cluster ConfigMap); a full process's label watch
//! receives about **47 per minute** (12 from the leader plus 12 per process's session, so
//! `12 × (1 + processes)` per minute). A session renewal changes no KV key, so it reaches no
//! [`KvWatch`](tenure_core::kv::KvWatch) and wakes no latch in either kind of process.
//!
//! # RBAC
//!
//! The backend needs these verbs on ConfigMaps in its namespace:
//!
//! ```yaml
//! apiVersion: rbac.authorization.k8s.io/v1
//! kind: Role
//! metadata:
//!   name: tenure-ha
//!   namespace: flink
//! rules:
//!   - apiGroups: [""]
//!     resources: ["configmaps"]
//!     verbs: ["get", "list", "watch", "create", "update", "delete"]
//! ```

mod api;
pub mod cm;
pub mod codec;
mod latch;
mod latch_io;
pub mod lease;
pub mod names;
mod session;
pub mod settings;
mod store;
mod watch;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tenure_core::config::HaConfig;
use tenure_core::connection::{ConnectionState, SuspendedPolicy};
use tenure_core::driver::{HaBackend, SessionDriver, SessionView};
use tenure_core::kv::{FencingToken, KvError, VersionedKv};
use tenure_core::sync::lock;
use tokio::sync::watch as tokio_watch;
use tokio_util::sync::CancellationToken;

pub use names::Names;
pub use settings::{ConnectError, KubernetesSettings};

/// How connect errors name the service.
const API_SERVER: &str = "the Kubernetes API server";

use api::ConfigMaps;

/// One term this process holds on a latch ConfigMap.
#[derive(Clone, Debug)]
pub(crate) struct TermInfo {
    pub identity: String,
    pub last_renew_start_ms: u64,
}

/// State shared by the backend's handles and background tasks.
pub(crate) struct Shared {
    pub settings: KubernetesSettings,
    pub names: Names,
    pub api: ConfigMaps,
    pub session_id: u64,
    pub url: String,
    terms: Mutex<HashMap<(String, i64), TermInfo>>,
    pub connection: tokio_watch::Sender<ConnectionState>,
    pub cancel: CancellationToken,
    closed: AtomicBool,
    pub killed: AtomicBool,
    pub cleaned: AtomicBool,
    pub latches_active: tokio_watch::Sender<usize>,
    /// The session as the latch recipes see it (`Lost` once closing).
    pub view: tokio_watch::Sender<SessionView>,
    /// The session's driver, started on first use.
    pub driver: std::sync::OnceLock<SessionDriver>,
    pub watcher: Arc<watch::Watcher>,
    pub last_rv: Arc<AtomicI64>,
    /// The watches started so far (client-only: one per ConfigMap followed).
    watches: Mutex<Vec<api::Selection>>,
}

impl Shared {
    pub fn now(&self) -> u64 {
        self.settings.clock.now_millis()
    }

    pub fn check_open(&self) -> Result<(), KvError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(KvError::Closed)
        } else {
            Ok(())
        }
    }

    /// Registers a term granted to this process.
    pub fn grant(&self, lock_cm: &str, epoch: i64, info: TermInfo) {
        lock(&self.terms).insert((lock_cm.to_owned(), epoch), info);
    }

    /// Notes a confirmed renewal of a term.
    pub fn renewed(&self, lock_cm: &str, epoch: i64, started_ms: u64) {
        if let Some(t) = lock(&self.terms).get_mut(&(lock_cm.to_owned(), epoch)) {
            t.last_renew_start_ms = started_ms;
        }
    }

    /// Forgets a term (revoked or released).
    pub fn revoke(&self, lock_cm: &str, epoch: i64) {
        lock(&self.terms).remove(&(lock_cm.to_owned(), epoch));
    }

    /// The term of `token` if this process holds it and renewed it within the renew deadline.
    pub fn term(&self, token: &FencingToken) -> Result<TermInfo, KvError> {
        let info = lock(&self.terms)
            .get(&(token.lock().to_string(), token.epoch()))
            .cloned();
        match info {
            Some(t)
                if !lease::must_step_down(
                    t.last_renew_start_ms,
                    self.now(),
                    self.settings.effective_renew_deadline(),
                ) =>
            {
                Ok(t)
            }
            _ => Err(KvError::NotLeader {
                token: token.clone(),
            }),
        }
    }

    /// The next version for a write to a ConfigMap at resource version `cm_rv`.
    pub fn next_version(&self, cm_rv: i64) -> i64 {
        let seen = self.last_rv.load(Ordering::SeqCst);
        seen.max(cm_rv).saturating_add(1)
    }

    /// Tells the latch recipes the session is over (they release what they hold unless killed).
    pub fn end_view(&self) {
        self.view.send_modify(|v| v.state = ConnectionState::Lost);
    }

    pub fn note_rv(&self, rv: i64) {
        self.last_rv.fetch_max(rv, Ordering::SeqCst);
    }

    /// Refuses a write (`op` on `key`) of a client-only backend.
    pub fn check_writable(&self, op: &str, key: &str) -> Result<(), KvError> {
        if self.settings.client_only {
            return Err(KvError::Unauthorized {
                key: key.to_owned(),
                reason: format!(
                    "this Kubernetes backend is client-only (read-only): {op} is refused; \
                     connect the full HA services to write"
                ),
            });
        }
        Ok(())
    }

    /// Starts the watch of `selection` unless it runs already. A client-only backend's
    /// watches report its connection state: `Suspended` while a list fails, `Connected` once
    /// one succeeds.
    pub fn ensure_watch(self: &Arc<Self>, selection: api::Selection) {
        {
            let mut started = lock(&self.watches);
            if started.contains(&selection) {
                return;
            }
            started.push(selection.clone());
        }
        let report = self.settings.client_only.then(|| Arc::downgrade(self));
        tokio::spawn(watch::run(
            self.api.clone(),
            self.watcher.clone(),
            self.cancel.child_token(),
            self.settings.retry_period,
            selection,
            move |ok| {
                let Some(sh) = report.as_ref().and_then(std::sync::Weak::upgrade) else {
                    return;
                };
                if sh.closed.load(Ordering::SeqCst) {
                    return;
                }
                let state = if ok {
                    ConnectionState::Connected
                } else {
                    ConnectionState::Suspended
                };
                sh.connection.send_if_modified(|s| {
                    let changed = *s != state;
                    *s = state;
                    changed
                });
            },
        ));
    }

    /// The selection that watches the ConfigMaps of `scope`: by name on a client-only
    /// backend, else the process's one label watch.
    pub fn selection(&self, scope: &names::Scope) -> api::Selection {
        let labels = self.names.label_selector();
        match scope {
            names::Scope::One(name) if self.settings.client_only => api::Selection::Name {
                name: name.clone(),
                labels,
            },
            _ => api::Selection::Labels(labels),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Ends the background tasks when the last handle is dropped.
pub(crate) struct DropGuard(CancellationToken);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// One process's connection to the Kubernetes API server for one cluster id, implementing
/// [`HaBackend`] and [`VersionedKv`]. Cheap to clone; clones share the connection. It ends
/// with [`HaBackend::close`] (graceful: latches released, ephemeral keys and the session
/// deleted), with [`KubernetesBackend::kill`] (as a crash), or when the last clone is dropped
/// (as a crash: leases run out).
#[derive(Clone)]
pub struct KubernetesBackend {
    shared: Arc<Shared>,
    _guard: Arc<DropGuard>,
}

impl fmt::Debug for KubernetesBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesBackend")
            .field("url", &self.shared.url)
            .field("namespace", &self.shared.settings.namespace)
            .field("cluster_id", &self.shared.settings.cluster_id)
            .field("session", &format_args!("{:016x}", self.shared.session_id))
            .finish()
    }
}

impl KubernetesBackend {
    /// Connects with `client` (whose default namespace is ignored: `settings.namespace` is
    /// used). `url` is only shown in messages. Checks that the API server answers (up to
    /// `1 + max_retries` attempts), then starts the session, its watch and its renewals.
    pub async fn connect(
        settings: KubernetesSettings,
        client: kube::Client,
        url: impl Into<String>,
    ) -> Result<Self, ConnectError> {
        settings.validate()?;
        let url = url.into();
        let names = Names::new(settings.cluster_id.clone());
        let api = ConfigMaps::new(client, &settings.namespace, settings.request_timeout);
        let unreachable =
            |url: String, attempts: u32, e: api::ApiError| ConnectError::Unreachable {
                service: API_SERVER,
                address: url,
                attempts,
                limit: None,
                source: Box::new(e),
            };
        let mut backoff = settings.retry_policy().backoff();
        loop {
            match api.get(&names.cluster_cm()).await {
                Ok(_) => break,
                Err(e @ api::ApiError::Refused(_)) => {
                    return Err(unreachable(url, backoff.attempts() + 1, e));
                }
                Err(e) if backoff.attempts() >= settings.max_retries => {
                    return Err(unreachable(url, backoff.attempts() + 1, e));
                }
                Err(_) => tokio::time::sleep(backoff.next_wait()).await,
            }
        }
        let session_id = loop {
            let id = u64::from_be_bytes(
                uuid::Uuid::new_v4().as_bytes()[..8]
                    .try_into()
                    .unwrap_or([1; 8]),
            );
            if id != 0 {
                break id;
            }
        };
        let last_rv = Arc::new(AtomicI64::new(0));
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            watcher: watch::Watcher::new(names.clone(), last_rv.clone()),
            settings,
            names,
            api,
            session_id,
            url,
            terms: Mutex::new(HashMap::new()),
            connection: tokio_watch::channel(ConnectionState::Connected).0,
            cancel: cancel.clone(),
            closed: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            cleaned: AtomicBool::new(false),
            latches_active: tokio_watch::channel(0).0,
            view: tokio_watch::channel(SessionView::CONNECTED).0,
            driver: std::sync::OnceLock::new(),
            last_rv,
            watches: Mutex::new(Vec::new()),
        });
        // A client-only backend writes nothing: no session, no renewals, no reaper, and its
        // watches start with the first KV watch that needs them.
        if !shared.settings.client_only {
            session::start(&shared)
                .await
                .map_err(|(attempts, e)| ConnectError::Unreachable {
                    service: API_SERVER,
                    address: shared.url.clone(),
                    attempts,
                    limit: Some("creating this process's session ConfigMap".into()),
                    source: Box::new(e),
                })?;
            shared.ensure_watch(shared.selection(&names::Scope::All));
            tokio::spawn(session::run(shared.clone(), cancel.child_token()));
        }
        Ok(Self {
            shared,
            _guard: Arc::new(DropGuard(cancel)),
        })
    }

    /// Connects to the API server at `url` over plain HTTP without authentication (a local
    /// proxy such as `kubectl proxy`, or a test server).
    pub async fn connect_url(
        settings: KubernetesSettings,
        url: &str,
    ) -> Result<Self, ConnectError> {
        let uri = url.parse().map_err(|e| ConnectError::InvalidConfig {
            key: "api server url",
            reason: format!("{url:?}: {e}"),
        })?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = settings.namespace.clone();
        Self::connect_with_config(settings, config).await
    }

    /// Connects with a client configuration.
    ///
    /// Every request carries the `User-Agent` `tenure-kubernetes/<version>` with
    /// `(client-only)` or `(process)` after it, so the API server's audit log tells a
    /// client-only reader's requests from those of a process that runs elections.
    pub async fn connect_with_config(
        settings: KubernetesSettings,
        mut config: kube::Config,
    ) -> Result<Self, ConnectError> {
        install_crypto_provider();
        let agent = user_agent(settings.client_only);
        if let Ok(value) = http::HeaderValue::from_str(&agent) {
            config.headers.push((http::header::USER_AGENT, value));
        }
        let url = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| ConnectError::Unreachable {
            service: API_SERVER,
            address: url.clone(),
            attempts: 0,
            limit: Some("the client could not be built".into()),
            source: Box::new(e),
        })?;
        Self::connect(settings, client, url).await
    }

    /// Connects with the configuration found as `kubectl` finds it: `$KUBECONFIG` or
    /// `~/.kube/config`, else the in-cluster service account.
    pub async fn connect_inferred(settings: KubernetesSettings) -> Result<Self, ConnectError> {
        let config = kube::Config::infer()
            .await
            .map_err(|e| ConnectError::NoClientConfig {
                service: "Kubernetes",
                origin: None,
                source: Box::new(e),
            })?;
        Self::connect_with_config(settings, config).await
    }

    /// Connects from an HA configuration (`kubernetes.namespace`, `kubernetes.cluster-id`, the
    /// leader-election timings), finding the client configuration as
    /// [`connect_inferred`](Self::connect_inferred) does.
    /// `kubernetes.config.file` and `kubernetes.context` choose another kubeconfig or context.
    pub async fn from_config(config: &HaConfig) -> Result<Self, ConnectError> {
        let settings = KubernetesSettings::from_ha_config(config)?;
        Self::from_settings_and_config(settings, config).await
    }

    /// Connects with `settings`, finding the client configuration as
    /// [`from_config`](Self::from_config) does.
    async fn from_settings_and_config(
        settings: KubernetesSettings,
        config: &HaConfig,
    ) -> Result<Self, ConnectError> {
        let k = &config.kubernetes;
        if k.config_file.is_none() && k.context.is_none() {
            return Self::connect_inferred(settings).await;
        }
        let options = kube::config::KubeConfigOptions {
            context: k.context.clone(),
            ..Default::default()
        };
        let no_config = |e: kube::config::KubeconfigError| ConnectError::NoClientConfig {
            service: "Kubernetes",
            origin: k
                .config_file
                .as_ref()
                .map(|path| format!("kubernetes.config.file {path:?}")),
            source: Box::new(e),
        };
        let client_config = match &k.config_file {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(no_config)?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
            }
            None => kube::Config::from_kubeconfig(&options).await,
        }
        .map_err(no_config)?;
        Self::connect_with_config(settings, client_config).await
    }

    /// Connects a client-only backend from an HA configuration (see
    /// [`KubernetesSettings::for_client_only`]): as [`from_config`](Self::from_config), but
    /// the backend creates no session ConfigMap, renews nothing, refuses every write and
    /// watches the ConfigMaps it follows by name.
    pub async fn from_config_client(config: &HaConfig) -> Result<Self, ConnectError> {
        let settings = KubernetesSettings::from_ha_config(config)?.for_client_only();
        Self::from_settings_and_config(settings, config).await
    }

    /// The settings.
    pub fn settings(&self) -> &KubernetesSettings {
        &self.shared.settings
    }

    /// The names of this cluster's ConfigMaps and keys.
    pub fn names(&self) -> &Names {
        &self.shared.names
    }

    /// Ends the backend abruptly, as a crashed process: renewals stop, nothing is released or
    /// deleted; leases and the session run out, and other processes clean up after it.
    pub fn kill(&self) {
        self.shared.killed.store(true, Ordering::SeqCst);
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.cancel.cancel();
        self.shared.end_view();
        self.shared.watcher.close_subscriptions();
        self.shared.connection.send_replace(ConnectionState::Lost);
    }
}

/// The `User-Agent` of this backend's requests: `tenure-kubernetes/<version> (client-only)` or
/// `(process)`.
pub fn user_agent(client_only: bool) -> String {
    let role = if client_only {
        "client-only"
    } else {
        "process"
    };
    format!("tenure-kubernetes/{} ({role})", env!("CARGO_PKG_VERSION"))
}

/// Installs rustls' `ring` provider as the process default unless one is installed, so a
/// build that also compiles `aws-lc-rs` in (through another dependency) does not panic.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[async_trait]
impl HaBackend for KubernetesBackend {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn kv(&self) -> Arc<dyn VersionedKv> {
        Arc::new(self.clone())
    }

    fn connection_state(&self) -> tokio_watch::Receiver<ConnectionState> {
        self.shared.connection.subscribe()
    }

    fn suspended_policy(&self) -> SuspendedPolicy {
        SuspendedPolicy::TolerateSuspended
    }

    fn driver(&self) -> Result<SessionDriver, KvError> {
        self.shared.check_open()?;
        Ok(self
            .shared
            .driver
            .get_or_init(|| {
                SessionDriver::spawn(latch_io::Io {
                    shared: Arc::downgrade(&self.shared),
                    guard: Arc::downgrade(&self._guard),
                    view: self.shared.view.subscribe(),
                })
            })
            .clone())
    }

    async fn close(&self) -> Result<(), KvError> {
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Latches release their records when the session ends; wait for them briefly.
        self.shared.end_view();
        latch_io::wait_released(&self.shared).await;
        self.shared.cancel.cancel();
        let result = if self.shared.settings.client_only {
            Ok(())
        } else {
            session::end(&self.shared).await
        };
        self.shared.watcher.close_subscriptions();
        self.shared.connection.send_replace(ConnectionState::Lost);
        result
    }
}
