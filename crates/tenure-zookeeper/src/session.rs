//! The one ZooKeeper session of a process: opening it, following its state, and opening a new
//! one by itself after the old one expired.
//!
//! ZooKeeper's states map to the core's: `SyncConnected` ⇒ `Connected`, `Disconnected` (the
//! client lost its connection; the session may live) ⇒ `Suspended`, `Expired` / `AuthFailed` /
//! `Closed` ⇒ `Lost`. A session still disconnected after
//! `high-availability.zookeeper.client.simulated-session-expiration-percent` (default 100) of
//! its negotiated timeout is `Lost` too, as Curator simulates an expiry: the client would
//! otherwise declare it expired only later. After `Lost` a supervisor task opens a new session
//! (a new [`zk::Client`], on the servers the ensemble tracker found, see [`crate::ensemble`])
//! and reports `Connected` again; latches re-join and watches re-register there. Every session
//! sends `client.digest` and the `client.authorization` entries as `addAuth`; closing waits up
//! to `client.max-close-wait` for the session to close.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use tenure_core::config::ZooKeeperAcl;
use tenure_core::connection::ConnectionState;
use tenure_core::kv::KvError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zookeeper_client as zk;

use crate::paths::Paths;
use crate::security::Security;
use crate::settings::{ConnectError, ZooKeeperSettings};

/// What background tasks follow: the state of the current session, which session it is, and how
/// many times the connection was suspended (so a quick suspend/reconnect is never missed). The
/// latch recipes see exactly this.
pub(crate) type Status = tenure_core::driver::SessionView;

struct Current {
    client: zk::Client,
    generation: u64,
}

/// State shared by the backend handles and (weakly) by its background tasks.
pub(crate) struct Shared {
    pub settings: ZooKeeperSettings,
    /// TLS and SASL of every session, prepared at connect.
    security: Security,
    /// What every latch participation of this backend shares, with the session's znode paths.
    pub recipe: Arc<crate::latch::RecipeSettings>,
    slot: RwLock<Option<Current>>,
    status: watch::Sender<Status>,
    conn: watch::Sender<ConnectionState>,
    /// Fires when the backend is closed (explicitly or by dropping the last handle).
    pub closed: CancellationToken,
    session_id: AtomicI64,
    /// The session's driver (every latch and election of this backend), started on first use.
    pub driver: std::sync::OnceLock<tenure_core::driver::SessionDriver>,
    /// The session's KV watches, one ZooKeeper watch per prefix (see `watch.rs`).
    pub watch_hub: std::sync::OnceLock<tenure_core::watch_hub::WatchHub>,
    /// The latches' parked waits for deletions (see `deletions.rs`), made with the driver.
    pub deletions: std::sync::OnceLock<Arc<crate::deletions::Deletions>>,
    /// The ensemble's client addresses read by the ensemble tracker: the connect string of the
    /// next new session (see [`crate::ensemble`]).
    tracked_quorum: RwLock<Option<String>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

impl Shared {
    /// The session's znode paths (kept once, with the latch recipes' settings).
    pub fn paths(&self) -> &Paths {
        &self.recipe.paths
    }

    /// Opens the first session and starts the supervisor. The whole first connect is bounded by
    /// the connection timeout (`high-availability.zookeeper.client.connection-timeout`): attempts
    /// (each trying every server in turn) are retried `retry_wait` (doubling) apart, up to
    /// `max_retry_attempts` times, but only while time is left; then it gives up with
    /// [`ConnectError::Unreachable`] naming the servers. (Retrying each attempt for a full
    /// timeout, as before, made an unreachable quorum take minutes.)
    pub async fn connect(settings: ZooKeeperSettings) -> Result<Arc<Self>, ConnectError> {
        settings.validate()?;
        let bound = settings.connection_timeout;
        let deadline = tokio::time::Instant::now() + bound;
        let security = Security::prepare(&settings).await?;
        security.apply(zk::Client::connector())?;
        // Certificates that do not fit fail here with the reason, not after the whole timeout.
        security.check(&settings.quorum, bound / 2).await?;
        let max_attempts = settings.max_retry_attempts.saturating_add(1);
        let mut backoff = settings.retry_policy().backoff();
        let mut attempts = 0;
        let mut last = OpenError::TimedOut(bound);
        let mut client = None;
        while attempts < max_attempts {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            if attempts > 0 {
                let wait = backoff.next_wait();
                if wait >= left {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            attempts += 1;
            match open_client(&settings, &security, left).await {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(e @ OpenError::AuthFailed(_)) => {
                    return Err(ConnectError::AuthFailed {
                        service: "ZooKeeper",
                        address: settings.quorum.clone(),
                        setting: security.credentials_key(&settings),
                        source: Box::new(e),
                    });
                }
                Err(e) => {
                    warn!(quorum = %settings.quorum, attempt = attempts, error = %e, "connecting to ZooKeeper failed");
                    last = e;
                }
            }
        }
        let Some(client) = client else {
            let mut limit = format!(
                "the first connect gives up after the connection timeout, \
                 high-availability.zookeeper.client.connection-timeout = {bound:?}"
            );
            if !security.tls()
                && crate::security::accepts_tcp(&settings.quorum, Duration::from_millis(500)).await
            {
                limit = format!("{limit}; {}", crate::security::PLAINTEXT_HINT);
            }
            return Err(ConnectError::Unreachable {
                service: "ZooKeeper",
                address: settings.quorum.clone(),
                attempts,
                limit: Some(limit),
                source: Box::new(last),
            });
        };
        let state_watcher = client.state_watcher();
        let session_id = client.session_id().0;
        info!(session = %client.session_id(), timeout = ?client.session_timeout(), namespace = %settings.namespace, "ZooKeeper session established");
        let (status, _) = watch::channel(Status {
            state: ConnectionState::Connected,
            generation: 1,
            suspensions: 0,
        });
        let (conn, _) = watch::channel(ConnectionState::Connected);
        let paths = Paths::new(&settings.namespace).with_job_graphs_dir(&settings.job_graphs_dir);
        let recipe = Arc::new(crate::latch::RecipeSettings {
            paths,
            policy: settings.suspended_policy,
            retry: settings.retry_policy(),
            leave_wait: settings.connection_timeout,
        });
        let shared = Arc::new(Shared {
            recipe,
            settings,
            security,
            slot: RwLock::new(Some(Current {
                client,
                generation: 1,
            })),
            status,
            conn,
            closed: CancellationToken::new(),
            session_id: AtomicI64::new(session_id),
            driver: std::sync::OnceLock::new(),
            watch_hub: std::sync::OnceLock::new(),
            deletions: std::sync::OnceLock::new(),
            tracked_quorum: RwLock::new(None),
        });
        shared.track_ensemble().await;
        tokio::spawn(supervise(
            Arc::downgrade(&shared),
            shared.closed.clone(),
            state_watcher,
        ));
        Ok(shared)
    }

    /// The current session's client and its generation.
    pub fn client_gen(&self) -> Result<(zk::Client, u64), KvError> {
        if self.closed.is_cancelled() {
            return Err(KvError::Closed);
        }
        let slot = tenure_core::sync::read(&self.slot);
        slot.as_ref()
            .map(|c| (c.client.clone(), c.generation))
            .ok_or(KvError::Closed)
    }

    /// The current session's client.
    pub fn client(&self) -> Result<zk::Client, KvError> {
        self.client_gen().map(|(c, _)| c)
    }

    /// With the ensemble tracker on, reads the current session's `/zookeeper/config` and keeps
    /// the ensemble's client addresses for the next new session.
    async fn track_ensemble(&self) {
        if !self.settings.ensemble_tracker {
            return;
        }
        let Ok(client) = self.client() else { return };
        let bound = self.settings.connection_timeout;
        if let Some(q) =
            crate::ensemble::read_tracked_quorum(&client, &self.settings.quorum, bound).await
        {
            *tenure_core::sync::write(&self.tracked_quorum) = Some(q);
        }
    }

    /// The connect string a new session uses: the ensemble's tracked client addresses, or the
    /// configured quorum.
    pub fn next_session_quorum(&self) -> String {
        tenure_core::sync::read(&self.tracked_quorum)
            .clone()
            .unwrap_or_else(|| self.settings.quorum.clone())
    }

    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// Waits, until `deadline`, for a session that can serve a request which failed on the
    /// session of generation `failed_generation` (status `before` when it was sent): a new
    /// session after an expiry (`new_session`), or after a lost connection the same session
    /// reconnected (or a new one). `Ok(false)` at the deadline; [`KvError::Closed`] once the
    /// backend is closed.
    pub async fn wait_for_session(
        &self,
        failed_generation: u64,
        before: Status,
        new_session: bool,
        deadline: tokio::time::Instant,
    ) -> Result<bool, KvError> {
        // After a lost connection, any connected state that is not the one the request failed
        // in will do: a reconnect after a suspension, or a new session.
        let usable = |s: &Status| {
            s.state == ConnectionState::Connected
                && (s.generation > failed_generation
                    || (!new_session
                        && (before.state != ConnectionState::Connected
                            || s.suspensions != before.suspensions)))
        };
        let mut status = self.status.subscribe();
        let waited = tokio::select! {
            _ = self.closed.cancelled() => return Err(KvError::Closed),
            r = tokio::time::timeout_at(deadline, status.wait_for(usable)) => r,
        };
        match waited {
            Ok(Ok(_)) => Ok(true),
            // The sender lives in `self`: it cannot be gone while borrowed.
            Ok(Err(_)) => Err(KvError::Closed),
            Err(_) => Ok(false),
        }
    }

    pub fn subscribe_status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    pub fn subscribe_connection(&self) -> watch::Receiver<ConnectionState> {
        self.conn.subscribe()
    }

    pub fn session_id(&self) -> i64 {
        self.session_id.load(Ordering::SeqCst)
    }

    /// The ACL of created znodes.
    pub fn acls(&self) -> zk::Acls<'static> {
        match self.settings.acl {
            ZooKeeperAcl::Open => zk::Acls::anyone_all(),
            ZooKeeperAcl::Creator => zk::Acls::creator_all(),
        }
    }

    fn set_state(&self, state: ConnectionState, suspended: bool) {
        self.status.send_modify(|s| {
            s.state = state;
            if suspended {
                s.count_suspension();
            }
        });
        self.conn.send_if_modified(|c| {
            let changed = *c != state;
            *c = state;
            changed
        });
    }

    /// Installs a new session; `false` (and the client is dropped) if the backend was closed.
    fn install(&self, client: zk::Client) -> bool {
        let mut slot = tenure_core::sync::write(&self.slot);
        if self.closed.is_cancelled() {
            return false;
        }
        let generation = self.status().generation + 1;
        self.session_id
            .store(client.session_id().0, Ordering::SeqCst);
        info!(session = %client.session_id(), generation, "new ZooKeeper session established");
        *slot = Some(Current { client, generation });
        drop(slot);
        self.status.send_modify(|s| {
            s.generation = generation;
            s.state = ConnectionState::Connected;
        });
        self.conn.send_replace(ConnectionState::Connected);
        true
    }

    /// Closes the session: background tasks stop, the client is dropped (which closes the
    /// session on the server, removing its ephemeral znodes), and this waits until the client
    /// reports the session closed.
    pub async fn close(&self) {
        let first = !self.closed.is_cancelled();
        self.closed.cancel();
        let current = tenure_core::sync::write(&self.slot).take();
        self.set_state(ConnectionState::Lost, false);
        let Some(Current { client, .. }) = current else {
            return;
        };
        if first {
            debug!(session = %client.session_id(), "closing the ZooKeeper session");
        }
        let mut sw = client.state_watcher();
        drop(client);
        // Background tasks drop their clones as they stop; the session closes with the last.
        // `high-availability.zookeeper.client.max-close-wait` bounds the wait.
        let wait = self.settings.max_close_wait;
        let closed = tokio::time::timeout(wait, async {
            while !sw.state().is_terminated() {
                sw.changed().await;
            }
        })
        .await;
        if closed.is_err() {
            warn!("the ZooKeeper session did not report closed in {wait:?}");
        }
    }
}

/// Why one attempt to open a session failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The server refused the credentials: another attempt fails the same way.
    #[error("{0}")]
    AuthFailed(#[source] zk::Error),
    /// The client failed otherwise (unreachable, refused, ...).
    #[error("{0}")]
    Failed(#[source] zk::Error),
    /// No session was established within the time given (to the nearest millisecond).
    #[error("no session established within {0:?}")]
    TimedOut(Duration),
    /// The TLS or SASL settings could not be applied.
    #[error("{0}")]
    Setup(String),
}

/// Opens one new session: one attempt, trying the servers in turn for at most `bound`.
pub(crate) async fn open_client(
    settings: &ZooKeeperSettings,
    security: &Security,
    bound: Duration,
) -> Result<zk::Client, OpenError> {
    let mut connector = zk::Client::connector().with_session_timeout(settings.session_timeout);
    if let Some(digest) = &settings.digest_auth {
        connector = connector.with_auth("digest", digest.as_bytes());
    }
    connector = crate::client_options::with_authorization(connector, settings);
    let connector = security
        .apply(connector)
        .map_err(|e| OpenError::Setup(e.to_string()))?;
    let connect = async {
        #[cfg(feature = "tls")]
        if security.tls() {
            return connector.secure_connect(&settings.quorum).await;
        }
        connector.connect(&settings.quorum).await
    };
    match tokio::time::timeout(bound, connect).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e @ zk::Error::AuthFailed)) => Err(OpenError::AuthFailed(e)),
        Ok(Err(e)) => Err(OpenError::Failed(e)),
        // To the nearest millisecond: the first connect's last attempt gets what is left.
        Err(_) => Err(OpenError::TimedOut(Duration::from_millis(
            ((bound.as_micros() + 500) / 1000)
                .try_into()
                .unwrap_or(u64::MAX),
        ))),
    }
}

/// Follows the session state; after the session is lost, opens a new one until closed. A
/// session disconnected for `simulated-session-expiration-percent` of its negotiated timeout
/// is declared lost as if it had expired (Curator's simulated expiration): the client is given
/// up and a new session opened.
async fn supervise(weak: Weak<Shared>, closed: CancellationToken, mut sw: zk::StateWatcher) {
    loop {
        // When the disconnected session is declared lost, if it is disconnected.
        let mut expire_at: Option<tokio::time::Instant> = None;
        loop {
            let state = tokio::select! {
                _ = closed.cancelled() => return,
                s = sw.changed() => Some(s),
                _ = sleep_until(expire_at) => None,
            };
            let Some(shared) = weak.upgrade() else { return };
            let Some(state) = state else {
                warn!(
                    percent = shared.settings.simulated_expiration_percent,
                    "ZooKeeper session lost: disconnected for the simulated expiration share of \
                     its timeout (high-availability.zookeeper.client.simulated-session-expiration-percent)"
                );
                shared.set_state(ConnectionState::Lost, false);
                break;
            };
            match state {
                zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                    info!("ZooKeeper connection re-established");
                    expire_at = None;
                    shared.set_state(ConnectionState::Connected, false);
                }
                zk::SessionState::Disconnected => {
                    warn!("ZooKeeper connection suspended");
                    if expire_at.is_none() {
                        expire_at = shared.client().ok().map(|c| {
                            tokio::time::Instant::now()
                                + crate::client_options::simulated_expiry(
                                    c.session_timeout(),
                                    shared.settings.simulated_expiration_percent,
                                )
                        });
                    }
                    shared.set_state(ConnectionState::Suspended, true);
                }
                terminal => {
                    if closed.is_cancelled() {
                        return;
                    }
                    warn!(state = %terminal, "ZooKeeper session lost");
                    shared.set_state(ConnectionState::Lost, false);
                    break;
                }
            }
        }
        let mut attempt = 0u32;
        loop {
            let Some(shared) = weak.upgrade() else { return };
            let settings = ZooKeeperSettings {
                quorum: shared.next_session_quorum(),
                ..shared.settings.clone()
            };
            let security = shared.security.clone();
            drop(shared);
            let opened = tokio::select! {
                _ = closed.cancelled() => return,
                r = open_client(&settings, &security, settings.connection_timeout) => r,
            };
            match opened {
                Ok(client) => {
                    let Some(shared) = weak.upgrade() else { return };
                    sw = client.state_watcher();
                    if !shared.install(client) {
                        return;
                    }
                    shared.track_ensemble().await;
                    break;
                }
                Err(e) => {
                    warn!(attempt, error = %e, "opening a new ZooKeeper session failed");
                    let wait = settings.retry_policy().wait(attempt);
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = closed.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }
}

/// Sleeps until `at`; forever without one.
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
