//! The one lease of a process: granting it, keeping it alive, and following its state.
//!
//! A task renews the lease every TTL/3. A confirmed renewal keeps the session `Connected`;
//! failing renewals while less than the TTL has passed since the last confirmed one make it
//! `Suspended` (the lease may still live); a keep-alive answer saying the lease is gone, or the
//! TTL passing without a confirmed renewal, makes it `Lost` (the lease and its keys are gone,
//! or must be assumed gone). After `Lost` the task grants a new lease (a new generation) and
//! the state returns to `Connected`: latches join again with keys under the new lease.
//!
//! With credentials, each confirmed renewal is followed by one count-only read of the
//! namespace's own key: etcd's auth token stays in use (it expires when idle, and lease
//! renewals do not use it), or is refreshed if the server forgot it (a restart).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use tenure_core::config::etcd_security::USERNAME_KEY;
use tenure_core::connect::ConnectError;
use tenure_core::connection::ConnectionState;
use tenure_core::driver::{SessionDriver, SessionView};
use tenure_core::kv::KvError;
use tenure_core::watch_hub::WatchHub;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::auth;
use crate::deletions::Deletions;
use crate::keys::Keys;
use crate::settings::EtcdSettings;
use crate::store::is_unsent;
use crate::tls::{self, TlsMaterial};

/// The longest the TLS handshake check before connecting may take per endpoint.
const CHECK_LIMIT: Duration = Duration::from_secs(3);

/// The HTTP/2 keep-alive ping interval. etcd closes a connection that pings more often than
/// its `--grpc-keepalive-min-time` (default 5 s) while no request is in flight (only an idle
/// watch): pings every second cut the connection every few seconds. Dead connections are
/// noticed by the lease renewals (every TTL/3) sooner anyway.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// How long a failed renewal waits before the next attempt.
const RETRY: Duration = Duration::from_millis(250);
/// With several endpoints: the pause between attempts of one renewal (see [`renew`]).
const RETRY_FAST: Duration = Duration::from_millis(25);

/// State shared by the backend handles and (weakly) by its background tasks.
pub(crate) struct Shared {
    pub settings: EtcdSettings,
    pub keys: Keys,
    client: Client,
    lease: AtomicI64,
    status: watch::Sender<SessionView>,
    conn: watch::Sender<ConnectionState>,
    /// Fires when the backend is closed (explicitly or by dropping the last handle).
    pub closed: CancellationToken,
    /// The session's driver (every latch and election of this backend), started on first use.
    pub driver: OnceLock<SessionDriver>,
    /// The session's KV watches, one etcd watch per prefix (see `watch.rs`).
    pub watch_hub: OnceLock<WatchHub>,
    /// The session's latch waits, on one etcd watch stream (see `deletions.rs`).
    latch_waits: OnceLock<Arc<Deletions>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

fn endpoints(settings: &EtcdSettings) -> String {
    settings.endpoints.join(",")
}

impl Shared {
    /// Connects (TLS and credentials as the settings say), grants the process's lease and
    /// starts keeping it alive. Gives up after the request timeout: with
    /// [`ConnectError::Tls`] when a TLS handshake failed, [`ConnectError::AuthFailed`] when
    /// the credentials were refused, else [`ConnectError::Unreachable`], each naming the
    /// endpoints.
    pub async fn connect(settings: EtcdSettings) -> Result<Arc<Self>, ConnectError> {
        let keys = settings.keys()?;
        let bound = settings.request_timeout;
        let unreachable =
            |source: Box<dyn std::error::Error + Send + Sync>| ConnectError::Unreachable {
                service: "etcd",
                address: endpoints(&settings),
                attempts: 1,
                limit: Some(format!("the connect gives up after {bound:?}")),
                source,
            };
        let tls = TlsMaterial::load(&settings.tls, &settings.endpoints)?;
        // One deadline for the whole connect: the handshake check takes a share of it (a server
        // that answers does so at once), the client the rest.
        let deadline = Instant::now() + bound;
        tls::check(
            tls.as_ref(),
            &settings.endpoints,
            (bound / 2).min(CHECK_LIMIT),
        )
        .await?;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(bound)
            .with_keep_alive(KEEP_ALIVE, bound);
        if let Some(tls) = tls {
            options = options.with_tls(tls.options);
        }
        if let Some(c) = &settings.credentials {
            options = options
                .with_user(c.username.clone(), c.password())
                .with_auto_token_refresh(true);
        }
        let opened = tokio::time::timeout_at(deadline, async {
            let mut client = Client::connect(&settings.endpoints, Some(options)).await?;
            let lease = if settings.client_only {
                crate::client_only::probe(&mut client, &keys).await?;
                0
            } else {
                client
                    .lease_grant(settings.lease_ttl_secs(), None)
                    .await?
                    .id()
            };
            Ok::<_, etcd_client::Error>((client, lease))
        })
        .await;
        let (client, lease) = match opened {
            Ok(Ok(ok)) => ok,
            Ok(Err(e)) if settings.credentials.is_some() && auth::is_refused(&e) => {
                return Err(ConnectError::AuthFailed {
                    service: "etcd",
                    address: endpoints(&settings),
                    setting: USERNAME_KEY,
                    source: Box::new(e),
                });
            }
            Ok(Err(e)) => return Err(unreachable(Box::new(e))),
            Err(_) => {
                return Err(unreachable(
                    format!("no answer (lease grant or first read) within {bound:?}").into(),
                ));
            }
        };
        if settings.client_only {
            info!(namespace = %keys.namespace(), "etcd client-only session (no lease)");
        } else {
            info!(lease = format_args!("{lease:x}"), namespace = %keys.namespace(), "etcd lease granted");
        }
        let (status, _) = watch::channel(SessionView::CONNECTED);
        let (conn, _) = watch::channel(ConnectionState::Connected);
        let shared = Arc::new(Self {
            settings,
            keys,
            client,
            lease: AtomicI64::new(lease),
            status,
            conn,
            closed: CancellationToken::new(),
            driver: OnceLock::new(),
            watch_hub: OnceLock::new(),
            latch_waits: OnceLock::new(),
        });
        let (weak, closed) = (Arc::downgrade(&shared), shared.closed.clone());
        if shared.settings.client_only {
            tokio::spawn(crate::client_only::follow(weak, closed));
        } else {
            tokio::spawn(keep_alive(weak, closed));
        }
        Ok(shared)
    }

    /// The session's latch waits (made on first use).
    pub(crate) fn deletions(self: &Arc<Self>) -> &Arc<Deletions> {
        self.latch_waits
            .get_or_init(|| Arc::new(Deletions::new(Arc::downgrade(self))))
    }

    /// A client handle (cheap clone), or [`KvError::Closed`] once closed.
    pub fn client(&self) -> Result<Client, KvError> {
        if self.closed.is_cancelled() {
            return Err(KvError::Closed);
        }
        Ok(self.client.clone())
    }

    /// The client, also after closing (for the session's own tasks).
    pub(crate) fn raw_client(&self) -> Client {
        self.client.clone()
    }

    /// The current lease id (the owner of this process's ephemeral keys); 0 in a client-only
    /// session.
    pub fn lease(&self) -> i64 {
        self.lease.load(Ordering::SeqCst)
    }

    pub fn status(&self) -> SessionView {
        *self.status.borrow()
    }

    pub fn subscribe_status(&self) -> watch::Receiver<SessionView> {
        self.status.subscribe()
    }

    pub fn subscribe_connection(&self) -> watch::Receiver<ConnectionState> {
        self.conn.subscribe()
    }

    pub(crate) fn set_state(&self, state: ConnectionState) {
        self.status.send_if_modified(|s| {
            if s.state == state {
                return false;
            }
            if state == ConnectionState::Suspended {
                s.count_suspension();
            }
            s.state = state;
            true
        });
        self.conn.send_if_modified(|c| {
            let changed = *c != state;
            *c = state;
            changed
        });
    }

    /// Installs a new lease after the old one was lost.
    fn install(&self, lease: i64) {
        self.lease.store(lease, Ordering::SeqCst);
        self.status.send_modify(|s| {
            s.generation += 1;
            s.state = ConnectionState::Connected;
        });
        self.conn.send_replace(ConnectionState::Connected);
        info!(lease = format_args!("{lease:x}"), "new etcd lease granted");
    }

    /// Closes the session: the keep-alive stops and the lease is revoked, which deletes this
    /// process's ephemeral keys at once.
    pub async fn close(&self) {
        if self.closed.is_cancelled() {
            return;
        }
        self.closed.cancel();
        self.set_state(ConnectionState::Lost);
        if self.settings.client_only {
            return;
        }
        let lease = self.lease();
        let mut client = self.client.clone();
        match tokio::time::timeout(self.settings.request_timeout, client.lease_revoke(lease)).await
        {
            Ok(Ok(_)) => debug!(lease = format_args!("{lease:x}"), "etcd lease revoked"),
            Ok(Err(e)) => {
                warn!(error = %e, "revoking the etcd lease failed; it expires after its TTL")
            }
            Err(_) => warn!("revoking the etcd lease timed out; it expires after its TTL"),
        }
    }
}

/// What one renewal attempt found.
enum Renewal {
    /// The server confirmed the lease.
    Confirmed,
    /// The server says the lease is gone.
    Gone,
    /// No confirmation (unreachable, timed out, stream broken).
    Failed(String),
    /// Not sent: no connection to the endpoint the request was routed to.
    Unsent(String),
}

async fn renew_once(client: &mut Client, lease: i64, timeout: Duration) -> Renewal {
    let attempt = async {
        let (mut keeper, mut stream) = match client.lease_keep_alive(lease).await {
            Ok(ks) => ks,
            // "lease not found": the lease expired or was revoked.
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => return Renewal::Gone,
            Err(e) if is_unsent(&e) => return Renewal::Unsent(e.to_string()),
            Err(e) => return Renewal::Failed(e.to_string()),
        };
        if let Err(e) = keeper.keep_alive().await {
            return Renewal::Failed(e.to_string());
        }
        match stream.message().await {
            Ok(Some(resp)) if resp.ttl() > 0 => Renewal::Confirmed,
            Ok(Some(_)) => Renewal::Gone,
            Ok(None) => Renewal::Failed("the keep-alive stream ended".into()),
            Err(e) => Renewal::Failed(e.to_string()),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Renewal::Failed(format!("no answer within {timeout:?}")))
}

/// One renewal, given `timeout`. With `several` endpoints, an attempt that could not be sent
/// (its endpoint's node is down) is tried again while time is left: the client spreads requests
/// over the endpoints at random and keeps choosing a down one (its refused reconnect counts as
/// ready), so that attempt says nothing about the others.
async fn renew(client: &mut Client, lease: i64, timeout: Duration, several: bool) -> Renewal {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match renew_once(client, lease, left).await {
            Renewal::Unsent(why)
                if several && deadline.saturating_duration_since(Instant::now()) > RETRY_FAST =>
            {
                debug!(%why, "etcd lease renewal not sent; trying another endpoint");
                tokio::time::sleep(RETRY_FAST).await;
            }
            r => return r,
        }
    }
}

/// Renews the lease every TTL/3 and follows its state; grants a new lease after a loss.
async fn keep_alive(weak: Weak<Shared>, closed: CancellationToken) {
    let Some(shared) = weak.upgrade() else { return };
    let mut client = shared.client.clone();
    let ttl = Duration::from_secs(u64::try_from(shared.settings.lease_ttl_secs()).unwrap_or(1));
    let timeout = shared.settings.request_timeout.min(ttl / 3).max(RETRY);
    let several = shared.settings.endpoints.len() > 1;
    drop(shared);
    let interval = ttl / 3;
    let mut confirmed = Instant::now();
    loop {
        let wait = {
            let Some(shared) = weak.upgrade() else { return };
            let lease = shared.lease();
            drop(shared);
            let sent = Instant::now();
            // A renewal that would be confirmed only after the TTL ran out confirms nothing:
            // the attempt ends when the TTL does, so a lost lease is noticed in time.
            let left = (confirmed + ttl).saturating_duration_since(sent);
            let renewal = if left.is_zero() {
                Renewal::Failed("the TTL passed".into())
            } else {
                tokio::select! {
                    _ = closed.cancelled() => return,
                    r = renew(&mut client, lease, timeout.min(left), several) => r,
                }
            };
            let Some(shared) = weak.upgrade() else { return };
            if closed.is_cancelled() {
                return;
            }
            match renewal {
                Renewal::Confirmed => {
                    confirmed = sent;
                    if shared.status().state != ConnectionState::Connected {
                        info!("etcd lease renewals confirmed again");
                    }
                    shared.set_state(ConnectionState::Connected);
                    if shared.settings.credentials.is_some() {
                        let key = shared.keys.below("");
                        drop(shared);
                        tokio::select! {
                            _ = closed.cancelled() => return,
                            () = use_token(&mut client, key, timeout) => {}
                        }
                    }
                    interval
                }
                Renewal::Gone => {
                    warn!(lease = format_args!("{lease:x}"), "the etcd lease is gone");
                    shared.set_state(ConnectionState::Lost);
                    drop(shared);
                    if !regrant(&weak, &closed, &mut client, timeout).await {
                        return;
                    }
                    confirmed = Instant::now();
                    interval
                }
                Renewal::Failed(why) | Renewal::Unsent(why) if confirmed.elapsed() >= ttl => {
                    warn!(%why, "no etcd lease renewal confirmed within the TTL; the lease is lost");
                    shared.set_state(ConnectionState::Lost);
                    drop(shared);
                    if !regrant(&weak, &closed, &mut client, timeout).await {
                        return;
                    }
                    confirmed = Instant::now();
                    interval
                }
                Renewal::Failed(why) | Renewal::Unsent(why) => {
                    if shared.status().state == ConnectionState::Connected {
                        warn!(%why, "etcd lease renewal failed; connection suspended");
                    }
                    shared.set_state(ConnectionState::Suspended);
                    RETRY.min((confirmed + ttl).saturating_duration_since(Instant::now()))
                }
            }
        };
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One cheap authenticated read (a count of the namespace's own key): it keeps the user's
/// token from expiring while the session idles, and refreshes it if it did expire (a watch
/// opened with an expired token would be cancelled, not refused, so it cannot refresh it).
async fn use_token(client: &mut Client, key: String, timeout: Duration) {
    let read = client.get(key, Some(GetOptions::new().with_count_only()));
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => debug!(error = %e, "using the etcd auth token failed"),
        Err(_) => debug!("using the etcd auth token timed out"),
    }
}

/// Grants a new lease, retrying until it succeeds; false once the backend is closed.
async fn regrant(
    weak: &Weak<Shared>,
    closed: &CancellationToken,
    client: &mut Client,
    timeout: Duration,
) -> bool {
    loop {
        let Some(shared) = weak.upgrade() else {
            return false;
        };
        let ttl = shared.settings.lease_ttl_secs();
        drop(shared);
        let granted = tokio::select! {
            _ = closed.cancelled() => return false,
            r = tokio::time::timeout(timeout, client.lease_grant(ttl, None)) => r,
        };
        match granted {
            Ok(Ok(lease)) => {
                let Some(shared) = weak.upgrade() else {
                    return false;
                };
                if closed.is_cancelled() {
                    return false;
                }
                shared.install(lease.id());
                return true;
            }
            Ok(Err(e)) => debug!(error = %e, "granting a new etcd lease failed"),
            Err(_) => debug!("granting a new etcd lease timed out"),
        }
        tokio::select! {
            _ = closed.cancelled() => return false,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}
