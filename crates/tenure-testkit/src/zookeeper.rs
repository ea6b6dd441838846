//! A real ZooKeeper server for tests (like Curator's `TestingServer`), and the ZooKeeper backend
//! as a [`BackendFactory`].
//!
//! [`ZooKeeperServer::start`] runs the Debian `zookeeper` package's server in its own JVM on a
//! free loopback port with a temporary data directory, and waits until it answers `ruok`. It is
//! stopped by its process id ([`ZooKeeperServer::stop`], or when dropped) and can be restarted on
//! the same port and data. Each test starts its own server, so tests are parallel-safe and
//! leave nothing running.
//! [`ZooKeeperEnsemble`](crate::ensemble::ZooKeeperEnsemble) runs several such servers as one
//! quorum, with the same command and settings.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tenure_testkit::zookeeper::ZooKeeperFactory;
//! let factory = ZooKeeperFactory::start().await;
//! let backend = factory.connect_zk().await;
//! # }
//! ```

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenure_core::connection::SuspendedPolicy;
use tenure_core::driver::HaBackend;
use tenure_zookeeper::{ZooKeeperBackend, ZooKeeperSettings, zk};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::BackendFactory;
use crate::ports::server_port;
use crate::proxy::FaultProxy;

pub mod pki;

/// The ZooKeeper server jar of the Debian package.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// The Debian package's configuration directory (its logging configuration is used).
pub const ZOOKEEPER_CONF_DIR: &str = "/etc/zookeeper/conf";
/// The server's tick: short, so sessions of a few seconds are allowed and expire promptly.
pub const TICK: Duration = Duration::from_millis(200);
/// How long a server may take to answer `ruok` after its JVM was started.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// One ZooKeeper server process on a free loopback port. Dropping it kills the process.
#[derive(Debug)]
pub struct ZooKeeperServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    security: ServerSecurity,
    secure_port: Option<u16>,
}

/// A TLS-only client port (`secureClientPort`, Netty) beside the plain one.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The server's PKCS12 keystore (key and certificate).
    pub keystore: PathBuf,
    /// The PKCS12 truststore of the CAs that sign client certificates.
    pub truststore: PathBuf,
    /// The password of both stores.
    pub password: String,
    /// `ssl.clientAuth=need` (clients must show a trusted certificate) rather than `none`.
    pub need_client_auth: bool,
}

impl ServerTls {
    /// The stores of `pki`, with or without required client certificates.
    pub fn from_pki(pki: &pki::TestPki, need_client_auth: bool) -> Self {
        Self {
            keystore: pki.server_keystore(),
            truststore: pki.server_truststore(),
            password: pki::STORE_PASSWORD.to_owned(),
            need_client_auth,
        }
    }
}

/// Security of a test server: a TLS port, SASL DIGEST-MD5 users.
#[derive(Debug, Clone, Default)]
pub struct ServerSecurity {
    /// A TLS-only client port (see [`ZooKeeperServer::secure_connect_string`]).
    pub tls: Option<ServerTls>,
    /// DIGEST-MD5 users (`user_<name>="<password>"` of the JAAS `Server` section); empty: no
    /// SASL.
    pub sasl_users: Vec<(String, String)>,
    /// Refuse sessions that did not authenticate with SASL (`enforce.auth.enabled=true`,
    /// `enforce.auth.schemes=sasl`).
    pub require_sasl: bool,
}

impl ServerSecurity {
    /// The `zoo.cfg` lines (the secure port is `secure_port`).
    fn zoo_cfg(&self, secure_port: Option<u16>) -> String {
        let mut text = String::new();
        if let (Some(tls), Some(port)) = (&self.tls, secure_port) {
            text.push_str(&format!(
                "secureClientPort={port}\n\
                 secureClientPortAddress=127.0.0.1\n\
                 serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
                 ssl.keyStore.location={ks}\n\
                 ssl.keyStore.password={pw}\n\
                 ssl.keyStore.type=PKCS12\n\
                 ssl.trustStore.location={ts}\n\
                 ssl.trustStore.password={pw}\n\
                 ssl.trustStore.type=PKCS12\n\
                 ssl.clientAuth={auth}\n",
                ks = tls.keystore.display(),
                ts = tls.truststore.display(),
                pw = tls.password,
                auth = if tls.need_client_auth { "need" } else { "none" },
            ));
        }
        if !self.sasl_users.is_empty() {
            text.push_str(
                "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n",
            );
            if self.require_sasl {
                text.push_str("enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n");
            }
        }
        text
    }

    /// The JAAS `Server` section of the SASL users, if any.
    fn jaas(&self) -> Option<String> {
        if self.sasl_users.is_empty() {
            return None;
        }
        let users: String = self
            .sasl_users
            .iter()
            .map(|(name, pw)| format!("\n  user_{name}=\"{pw}\""))
            .collect();
        Some(format!(
            "Server {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required{users};\n}};\n"
        ))
    }
}

/// Panics with an install hint unless the Debian `zookeeper` package and `java` are there.
pub(crate) fn check_installed() {
    let java = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("java").is_file()))
        .unwrap_or(false);
    if !Path::new(ZOOKEEPER_JAR).is_file() || !java {
        panic!(
            "a real ZooKeeper server is needed: {ZOOKEEPER_JAR} {} and `java` {} on PATH; \
             install the Debian package `zookeeper` (apt-get install -y zookeeper)",
            if Path::new(ZOOKEEPER_JAR).is_file() {
                "exists"
            } else {
                "is missing"
            },
            if java { "is" } else { "is not" },
        );
    }
}

/// The last `max` bytes of a log file, for failure messages.
pub(crate) fn log_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return String::from("<no log>");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

/// Sends a four-letter-word command and returns the answer (within 2 s).
pub async fn four_letter_word(port: u16, cmd: &str) -> std::io::Result<String> {
    four_letter_word_within(port, cmd, Duration::from_secs(2)).await
}

/// Sends a four-letter-word command and returns the answer, within `timeout`.
pub(crate) async fn four_letter_word_within(
    port: u16,
    cmd: &str,
    timeout: Duration,
) -> std::io::Result<String> {
    let io = async {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        s.write_all(cmd.as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    };
    tokio::time::timeout(timeout, io).await.unwrap_or_else(|_| {
        Err(std::io::Error::other(format!(
            "no answer within {timeout:?}"
        )))
    })
}

/// The `zoo.cfg` settings every test server shares: a short tick (so sessions of a few seconds
/// are allowed and expire promptly), loopback only, no admin server, every 4lw command.
pub(crate) fn zoo_cfg(data: &Path, client_port: u16) -> String {
    format!(
        "tickTime={tick}\n\
         initLimit=10\n\
         syncLimit=5\n\
         dataDir={data}\n\
         clientPort={port}\n\
         clientPortAddress=127.0.0.1\n\
         maxClientCnxns=0\n\
         minSessionTimeout={min}\n\
         maxSessionTimeout=60000\n\
         admin.enableServer=false\n\
         4lw.commands.whitelist=*\n",
        tick = TICK.as_millis(),
        data = data.display(),
        port = client_port,
        min = (TICK * 2).as_millis(),
    )
}

/// Starts one server JVM (the Debian package's jars) on `cfg`, its output appended to `log_path`.
pub(crate) fn spawn_server(cfg: &Path, log_path: &Path) -> Result<Child, String> {
    spawn_server_with(cfg, log_path, &[])
}

/// [`spawn_server`] with extra JVM options (`-D...`).
fn spawn_server_with(cfg: &Path, log_path: &Path, jvm: &[String]) -> Result<Child, String> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("open the server log");
    let log2 = log.try_clone().expect("clone the log handle");
    let classpath = format!("{ZOOKEEPER_CONF_DIR}:{ZOOKEEPER_JAR}:/usr/share/java/*");
    Command::new("java")
        .args([
            "-Xms32m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.root.logger=INFO,CONSOLE",
        ])
        .args(jvm)
        .args([
            "-cp",
            &classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        ])
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("cannot run java: {e}"))
}

/// Polls the four-letter word `cmd` on `port` until `accept` takes the answer, for at most
/// [`START_DEADLINE`]; fails early, with the log, if the server process exits.
/// Waits until `port` accepts connections: the TLS port (Netty) may open after the plain one
/// answered `ruok`, and a client that reached it too early would see a refused connection.
async fn wait_listening(port: u16, log_path: &Path) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + START_DEADLINE;
    loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(format!(
                    "the TLS port {port} did not accept connections within {START_DEADLINE:?} \
                     ({e}); log:\n{}",
                    log_tail(log_path, 4000)
                ));
            }
            // Polled: the JVM gives no other signal that the port is open.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub(crate) async fn wait_answer(
    child: &mut Option<Child>,
    port: u16,
    log_path: &Path,
    cmd: &str,
    accept: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + START_DEADLINE;
    loop {
        if let Some(c) = child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            return Err(format!(
                "the server on port {port} exited ({status}); log:\n{}",
                log_tail(log_path, 4000)
            ));
        }
        // A server still starting may accept the connection and not answer yet: ask again
        // soon rather than wait long on one connection.
        let last = match four_letter_word_within(port, cmd, Duration::from_millis(300)).await {
            Ok(answer) if accept(&answer) => return Ok(()),
            Ok(answer) => answer,
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the server on port {port} did not answer {cmd} as expected within \
                 {START_DEADLINE:?} (last answer: {last:?}); log:\n{}",
                log_tail(log_path, 4000)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills a server process (SIGKILL, by its process id, never by name) and reaps it.
pub(crate) fn kill_child(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends `signal` (e.g. `-STOP`) to one process, by its id.
pub(crate) fn signal_pid(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed: {status}");
}

impl ZooKeeperServer {
    /// Starts a standalone server on a free loopback port with a fresh data directory and waits
    /// until it answers `ruok` with `imok`. Panics, with the server's log, if it does not.
    pub async fn start() -> Self {
        Self::start_with(ServerSecurity::default()).await
    }

    /// [`Self::start`] with a TLS port and/or SASL users.
    pub async fn start_with(security: ServerSecurity) -> Self {
        check_installed();
        let dir = tempfile::Builder::new()
            .prefix("tenure-zk-")
            .tempdir()
            .expect("temporary directory");
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            security,
            secure_port: None,
        };
        let mut last = String::new();
        // The free port may be taken by someone else before the JVM binds it: try another.
        for _ in 0..3 {
            server.port = server_port();
            if server.security.tls.is_some() {
                server.secure_port = Some(server_port());
            }
            match server.launch().await {
                Ok(()) => return server,
                Err(e) => {
                    last = e;
                    server.kill();
                }
            }
        }
        panic!("ZooKeeper did not start: {last}");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("zookeeper.log")
    }

    fn write_config(&self) -> PathBuf {
        let data = self.dir.path().join("data");
        fs::create_dir_all(&data).expect("create the data directory");
        let cfg = self.dir.path().join("zoo.cfg");
        let text = zoo_cfg(&data, self.port) + &self.security.zoo_cfg(self.secure_port);
        fs::write(&cfg, text).expect("write zoo.cfg");
        cfg
    }

    /// The JVM options: the JAAS file of the SASL users, if any.
    fn jvm_options(&self) -> Vec<String> {
        let Some(jaas) = self.security.jaas() else {
            return Vec::new();
        };
        let path = self.dir.path().join("server.jaas");
        fs::write(&path, jaas).expect("write the JAAS file");
        vec![format!(
            "-Djava.security.auth.login.config={}",
            path.display()
        )]
    }

    async fn launch(&mut self) -> Result<(), String> {
        let cfg = self.write_config();
        let log_path = self.log_path();
        let jvm = self.jvm_options();
        self.child = Some(spawn_server_with(&cfg, &log_path, &jvm)?);
        wait_answer(&mut self.child, self.port, &log_path, "ruok", |a| {
            a == "imok"
        })
        .await?;
        match self.secure_port {
            Some(port) => wait_listening(port, &log_path).await,
            None => Ok(()),
        }
    }

    /// `127.0.0.1:<port>`, the quorum string of this server.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<secure port>`: the TLS-only port, when the server has one.
    pub fn secure_connect_string(&self) -> Option<String> {
        self.secure_port.map(|p| format!("127.0.0.1:{p}"))
    }

    /// The client address, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// Stops the server abruptly (SIGKILL of its process). Its data stays for [`Self::restart`];
    /// clients see their connection drop and their sessions live on until they expire.
    pub fn stop(&mut self) {
        self.kill();
    }

    fn signal(&self, signal: &str) {
        signal_pid(self.pid().expect("the server is running"), signal);
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered, as with a
    /// network black hole. [`Self::resume`] continues it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Continues a server frozen by [`Self::pause`] (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Starts the server again on the same port with the same data. Sessions that have not
    /// expired (by the server's clock, which restarts) can reconnect.
    pub async fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.launch().await {
            self.kill();
            panic!("ZooKeeper did not restart: {e}");
        }
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        log_tail(&self.log_path(), 64 * 1024)
    }
}

impl Drop for ZooKeeperServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Expires a session on demand: opens a second connection with the session's id and password
/// and closes it, which ends the session on the server; the session's own client finds it
/// expired when it next reaches the server.
///
/// The session's own client must be cut off from the server first (e.g. by
/// [`FaultProxy::black_hole`] and [`FaultProxy::cut`]): a connected client takes its session straight back when the
/// second connection attaches, and the two keep taking it from each other.
pub async fn expire_session(connect_string: &str, session: zk::SessionInfo) {
    let client = tokio::time::timeout(
        crate::DEADLINE,
        zk::Client::connector()
            .with_session(session)
            .connect(connect_string),
    )
    .await
    .expect("connect with the session in time")
    .expect("connect with the session");
    let mut states = client.state_watcher();
    drop(client);
    tokio::time::timeout(crate::DEADLINE, async {
        while !states.state().is_terminated() {
            states.changed().await;
        }
    })
    .await
    .expect("the session closed in time");
}

/// Short timeouts for tests: a 4 s session, quick retries.
pub fn test_settings(server: &ZooKeeperServer, cluster_id: &str) -> ZooKeeperSettings {
    ZooKeeperSettings::new(server.connect_string(), "/flink", cluster_id)
        .with_session_timeout(Duration::from_secs(4))
        .with_connection_timeout(Duration::from_secs(5))
        .with_retry(Duration::from_millis(100), 10)
}

/// The ZooKeeper backend as a [`BackendFactory`]: its own server, a unique cluster id, one new
/// session per simulated process; a crash closes the session so its ephemeral znodes go at once.
#[derive(Debug)]
pub struct ZooKeeperFactory {
    server: ZooKeeperServer,
    cluster_id: String,
    policy: SuspendedPolicy,
}

impl ZooKeeperFactory {
    /// Starts a server and picks a unique cluster id.
    pub async fn start() -> Self {
        Self {
            server: ZooKeeperServer::start().await,
            cluster_id: format!("test-{}", uuid::Uuid::new_v4().simple()),
            policy: SuspendedPolicy::RevokeOnSuspended,
        }
    }

    /// The same, with sessions following `policy` when suspended.
    pub async fn start_with_policy(policy: SuspendedPolicy) -> Self {
        Self {
            policy,
            ..Self::start().await
        }
    }

    /// The server.
    pub fn server(&self) -> &ZooKeeperServer {
        &self.server
    }

    /// The server, to stop or restart it.
    pub fn server_mut(&mut self) -> &mut ZooKeeperServer {
        &mut self.server
    }

    /// The cluster id of this factory's sessions.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The settings new sessions use.
    pub fn settings(&self) -> ZooKeeperSettings {
        test_settings(&self.server, &self.cluster_id).with_suspended_policy(self.policy)
    }

    /// A new session, typed.
    pub async fn connect_zk(&self) -> ZooKeeperBackend {
        self.connect_with(self.settings()).await
    }

    /// A new session with other settings (same server).
    pub async fn connect_with(&self, settings: ZooKeeperSettings) -> ZooKeeperBackend {
        ZooKeeperBackend::connect(settings)
            .await
            .expect("connect to the test ZooKeeper")
    }

    /// A [`FaultProxy`] in front of the server.
    pub async fn start_proxy(&self) -> FaultProxy {
        FaultProxy::start(self.server.addr())
            .await
            .expect("start a fault proxy")
    }

    /// The settings of new sessions, connecting through `proxy`.
    pub fn settings_via(&self, proxy: &FaultProxy) -> ZooKeeperSettings {
        ZooKeeperSettings {
            quorum: proxy.addr().to_string(),
            ..self.settings()
        }
    }

    /// A raw client of the server (no namespace), for inspecting znodes.
    pub async fn raw_client(&self) -> zk::Client {
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(&self.server.connect_string())
            .await
            .expect("raw ZooKeeper client")
    }
}

#[async_trait]
impl BackendFactory for ZooKeeperFactory {
    async fn connect(&self) -> Arc<dyn HaBackend> {
        Arc::new(self.connect_zk().await)
    }

    async fn crash(&self, backend: &Arc<dyn HaBackend>) {
        let _ = backend.close().await;
    }
}
