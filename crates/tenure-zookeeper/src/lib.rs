//! The ZooKeeper backend of tenure (Flink's HA mode `ZOOKEEPER`), compatible with Flink's znode
//! layout and Curator's leader latch.
//!
//! One [`ZooKeeperBackend`] is one ZooKeeper session of a process (Flink's one Curator client),
//! shared by every election, retrieval and store of that process. It implements
//! [`HaBackend`] (latches, connection state) and [`VersionedKv`] (znodes below the cluster
//! namespace `<path.root>/<cluster-id>`), so the core's elections, retrievals and stores run on
//! it unchanged.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tenure_core::election::ElectionService;
//! use tenure_core::ids::ComponentId;
//! use tenure_core::layout::Layout;
//! use tenure_zookeeper::{ZooKeeperBackend, ZooKeeperSettings};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = ZooKeeperSettings::new("127.0.0.1:2181", "/flink", "/default");
//! let backend = Arc::new(ZooKeeperBackend::connect(settings).await?);
//! let layout = Layout::default();
//! let service = ElectionService::new(backend.clone(), layout, layout.cluster_latch());
//! let mut election = service.register(ComponentId::Dispatcher).await?;
//! let term = election.wait_for_leadership().await?;
//! election.confirm(term.session_id, "pekko.tcp://flink@host:6123/user/rpc/dispatcher_1").await?;
//! # Ok(()) }
//! ```
//!
//! # Why `zookeeper-client`
//!
//! The client is [`zookeeper-client`](https://docs.rs/zookeeper-client) (re-exported as
//! [`zk`]): it is maintained, async and pure Rust (no C library, no JVM), runs on tokio (its
//! `tokio` feature), and has what this backend needs: `multi` with `check` operations (fenced
//! writes in one atomic request), persistent recursive watches (KV watches), typed session
//! states that tell a lost connection from an expired session, session re-establishment with a
//! known session id, and a Curator-compatible protected-mode naming of lock nodes. The older
//! `zookeeper` crate has a blocking API with callback watchers.
//!
//! # Mapping
//!
//! - Layout: keys are znode paths below the namespace (Flink's `generateZookeeperPath(root,
//!   cluster-id)`), so `leader/latch`, `leader/<component>/connection_info`, ... are the very
//!   znodes Flink uses. See [`store`] for versions, fencing and errors, [`latch`] for the leader
//!   latch and [`watch`] for watches.
//! - Connection state: `Disconnected` is [`ConnectionState::Suspended`], an expired session (or
//!   one disconnected for `client.simulated-session-expiration-percent` of its timeout) is
//!   [`ConnectionState::Lost`]; after that the backend opens a new session by itself (the
//!   state returns to `Connected`), latches join again and watches report
//!   [`KvEvent::Reset`](tenure_core::kv::KvEvent::Reset).
//!
//! # Security
//!
//! Keys are listed in [`tenure_core::config::zk_security`]; files are read when the backend
//! connects, and a file that is missing or invalid is an error naming the key and the path.
//! - TLS (feature `tls`, off by default: zookeeper-client's TLS compiles rustls' `aws-lc-rs`
//!   in beside the workspace's `ring`, and `ring` is installed as the process default):
//!   `high-availability.zookeeper.client.tls.ca-file` (or `zookeeper.client.secure: true`,
//!   which needs the CA file), optional client certificate `.tls.cert-file` + `.tls.key-file`.
//!   Before the first session one handshake per server checks the certificates, so a wrong CA
//!   or a refused client certificate fails at once with
//!   [`ConnectError::Tls`].
//! - SASL DIGEST-MD5 (feature `sasl-digest-md5`, on by default):
//!   `high-availability.zookeeper.client.sasl.username` with `.sasl.password` or
//!   `.sasl.password-file`, or a JAAS file (`.sasl.jaas-file`, section
//!   `zookeeper.sasl.login-context-name`, default `Client`, read by [`jaas`]).
//!   `zookeeper.sasl.disable: true` turns SASL off. `acl: creator` then gives the znodes to the
//!   SASL identity.
//! - Kerberos (feature `kerberos`, needs libkrb5-dev): `security.kerberos.login.principal`
//!   (and `.keytab`: tenure runs `kinit -k -t` into the ticket cache, `KRB5CCNAME`), or a JAAS
//!   `Krb5LoginModule` section; `zookeeper.sasl.service-name` (default `zookeeper`) is the
//!   servers' service principal. `scripts/kerberos-check` tests it against a throwaway KDC.
//!
//! [`ConnectionState::Suspended`]: tenure_core::connection::ConnectionState::Suspended
//! [`ConnectionState::Lost`]: tenure_core::connection::ConnectionState::Lost

mod client_options;
mod deletions;
pub mod ensemble;
mod error;
pub mod jaas;
mod known_dirs;
pub mod latch;
mod latch_io;
mod parked;
pub mod paths;
mod sasl;
mod security;
mod session;
pub mod settings;
pub mod store;
#[cfg(feature = "tls")]
mod tls;
pub mod watch;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tenure_core::config::HaConfig;
use tenure_core::connection::{ConnectionState, SuspendedPolicy};
use tenure_core::driver::{HaBackend, SessionDriver};
use tenure_core::kv::{KvError, VersionedKv, validate_key};
use tokio::sync::watch as tokio_watch;

pub use deletions::{LatchWaits, latch_waits};
pub use settings::{ConnectError, ZooKeeperSettings};
pub use store::MAX_VALUE_BYTES;
/// The ZooKeeper client crate this backend is built on.
pub use zookeeper_client as zk;

use session::Shared;

/// One process's ZooKeeper session, implementing [`HaBackend`] and [`VersionedKv`] below one
/// cluster namespace. Cheap to clone; clones share the session. The session closes with
/// [`HaBackend::close`] or when the last clone (and every election, retriever and store using
/// it) is dropped.
#[derive(Clone)]
pub struct ZooKeeperBackend {
    shared: Arc<Shared>,
}

impl fmt::Debug for ZooKeeperBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperBackend")
            .field("quorum", &self.shared.settings.quorum)
            .field("namespace", &self.shared.paths().namespace())
            .field("session", &format_args!("{:#x}", self.shared.session_id()))
            .finish()
    }
}

impl ZooKeeperBackend {
    /// Opens a session with `settings`, giving up after the connection timeout
    /// (`high-availability.zookeeper.client.connection-timeout`, Flink's default 15 s) with
    /// [`ConnectError::Unreachable`] naming the servers. Within that bound, up to
    /// `1 + max_retry_attempts` attempts are made `retry_wait` (doubling) apart.
    pub async fn connect(settings: ZooKeeperSettings) -> Result<Self, ConnectError> {
        Ok(Self {
            shared: Shared::connect(settings).await?,
        })
    }

    /// Opens a session from an HA configuration (`high-availability.zookeeper.*`,
    /// `high-availability.cluster-id`).
    pub async fn from_config(config: &HaConfig) -> Result<Self, ConnectError> {
        Self::connect(ZooKeeperSettings::from_ha_config(config)?).await
    }

    /// The settings the backend was opened with.
    pub fn settings(&self) -> &ZooKeeperSettings {
        &self.shared.settings
    }

    /// The namespace znode (`/flink/<cluster-id>`).
    pub fn namespace(&self) -> &str {
        self.shared.paths().namespace()
    }

    /// The znode path of a key.
    pub fn znode_path(&self, key: &str) -> Result<String, KvError> {
        validate_key(key)?;
        Ok(self.shared.paths().path(key))
    }

    /// The current session's client, for tools and tests that need raw znode access. Holding
    /// it keeps the session open past [`HaBackend::close`] until it is dropped.
    pub fn client(&self) -> Result<zk::Client, KvError> {
        self.shared.client()
    }

    /// The current session's id and password (to expire it from another connection in tests).
    pub fn session_info(&self) -> Result<zk::SessionInfo, KvError> {
        self.shared.client().map(|c| c.session().clone())
    }

    /// How many sessions this backend has had (1 until the first session expired).
    pub fn session_generation(&self) -> u64 {
        self.shared.status().generation
    }

    /// The servers the next new session connects to: with the ensemble tracker on, the client
    /// addresses read from the ensemble's `/zookeeper/config` (see [`ensemble`]); otherwise, or
    /// when it names none, the configured quorum.
    pub fn next_session_quorum(&self) -> String {
        self.shared.next_session_quorum()
    }
}

#[async_trait]
impl HaBackend for ZooKeeperBackend {
    fn kind(&self) -> &'static str {
        "zookeeper"
    }

    fn kv(&self) -> Arc<dyn VersionedKv> {
        Arc::new(self.clone())
    }

    fn connection_state(&self) -> tokio_watch::Receiver<ConnectionState> {
        self.shared.subscribe_connection()
    }

    fn suspended_policy(&self) -> SuspendedPolicy {
        self.shared.settings.suspended_policy
    }

    fn driver(&self) -> Result<SessionDriver, KvError> {
        self.shared.client()?;
        Ok(self
            .shared
            .driver
            .get_or_init(|| SessionDriver::spawn(latch_io::Io::new(&self.shared)))
            .clone())
    }

    async fn close(&self) -> Result<(), KvError> {
        self.shared.close().await;
        Ok(())
    }
}
