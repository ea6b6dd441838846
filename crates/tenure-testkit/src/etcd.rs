//! Real etcd servers for tests: one node ([`EtcdServer`]) or a cluster of several
//! ([`EtcdCluster`]), and the etcd backend as a [`BackendFactory`] ([`EtcdFactory`]).
//!
//! Each runs Debian's `etcd` (package `etcd-server`) on free loopback ports (client and peer)
//! with a temporary data directory, and start returns once the node answers `/health` with
//! `"health":"true"` (it has a leader). Nodes are stopped, killed, paused (SIGSTOP), resumed and
//! restarted by their process id, never by name, and killed when dropped. Every server picks
//! its own ports and directory, so tests run in parallel.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tenure_testkit::etcd::EtcdServer;
//! let server = EtcdServer::start().await;
//! println!("etcd at {}", server.endpoint());
//! # }
//! ```

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use tenure_core::connection::SuspendedPolicy;
use tenure_core::driver::HaBackend;
use tenure_etcd::{EtcdBackend, EtcdSettings};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::BackendFactory;
use crate::ports::server_port;
use crate::proxy::FaultProxy;
use crate::zookeeper::{kill_child, log_tail, signal_pid};

/// The etcd binary of the Debian package `etcd-server`.
pub const ETCD_BIN: &str = "/usr/bin/etcd";
/// How long a node (or a whole cluster) may take to report itself healthy.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// Panics with an install hint unless Debian's etcd server is there.
pub(crate) fn check_installed() {
    if !Path::new(ETCD_BIN).is_file() {
        panic!(
            "a real etcd server is needed: {ETCD_BIN} is missing; install the Debian package \
             `etcd-server` (apt-get install -y etcd-server)"
        );
    }
}

/// The ports and name of one node of a cluster.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
}

impl Member {
    pub(crate) fn new(index: usize) -> Self {
        Self {
            name: format!("n{index}"),
            client_port: server_port(),
            peer_port: server_port(),
        }
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub(crate) fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
}

/// `n0=http://127.0.0.1:p0,n1=...`: the `--initial-cluster` of `members`.
pub(crate) fn initial_cluster(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A cluster token of its own, so nodes of different test clusters never join each other.
pub(crate) fn new_token() -> String {
    format!("tenure-{}", uuid::Uuid::new_v4().simple())
}

/// One etcd node process. Dropping it kills the process.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    member: Member,
    cluster: String,
    token: String,
    dir: tempfile::TempDir,
    /// Security options (TLS, auth token TTL): see [`crate::etcd_security`].
    pub(crate) security: crate::etcd_security::Security,
}

impl EtcdServer {
    /// Starts a single-node cluster on free loopback ports with a fresh data directory and waits
    /// until it is healthy. Panics, with the server's log, if it does not become healthy.
    pub async fn start() -> Self {
        check_installed();
        let mut last = String::new();
        // A free port may be taken by someone else before etcd binds it: try other ports.
        for _ in 0..3 {
            let member = Member::new(0);
            let cluster = initial_cluster(std::slice::from_ref(&member));
            let mut server = Self::new(member, cluster, new_token());
            match server.launch().await {
                Ok(()) => return server,
                Err(e) => {
                    last = e;
                    server.kill();
                }
            }
        }
        panic!("etcd did not start: {last}");
    }

    pub(crate) fn new(member: Member, cluster: String, token: String) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tenure-etcd-")
            .tempdir()
            .expect("temporary directory");
        Self {
            child: None,
            member,
            cluster,
            token,
            dir,
            security: crate::etcd_security::Security::default(),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Starts the process (new or existing data) without waiting for it.
    fn spawn(&mut self) -> Result<(), String> {
        let data = self.dir.path().join("data");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("cannot open the etcd log: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cannot clone the log handle: {e}"))?;
        let m = &self.member;
        let client_url = self.endpoint();
        let child = Command::new(ETCD_BIN)
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &m.peer_url()])
            .args(["--initial-advertise-peer-urls", &m.peer_url()])
            .args(["--initial-cluster", &self.cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .args(self.security.args())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot run {ETCD_BIN}: {e}"))?;
        self.child = Some(child);
        Ok(())
    }

    pub(crate) async fn launch(&mut self) -> Result<(), String> {
        self.spawn()?;
        self.wait_healthy(tokio::time::Instant::now() + START_DEADLINE)
            .await
    }

    /// Polls `/health` until it reports healthy or `deadline` passes; fails early, with the
    /// log, if the process exits.
    async fn wait_healthy(&mut self, deadline: tokio::time::Instant) -> Result<(), String> {
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!(
                    "etcd on port {} exited ({status}); log:\n{}",
                    self.member.client_port,
                    log_tail(&self.log_path(), 4000)
                ));
            }
            let last = match health(self.health_port()).await {
                Ok(body) if body.contains("\"health\":\"true\"") => return Ok(()),
                Ok(body) => body,
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "etcd on port {} was not healthy in time (last answer: {last:?}); log:\n{}",
                    self.member.client_port,
                    log_tail(&self.log_path(), 4000)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The client URL, `http://127.0.0.1:<port>` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        self.security.client_url(&self.member)
    }

    /// The port answering plaintext `/health` (the client port, or the metrics port with TLS).
    fn health_port(&self) -> u16 {
        self.security.health_port.unwrap_or(self.member.client_port)
    }

    /// The sum of the node's Prometheus counters whose line starts with `series` (a metric
    /// name and the start of its labels, e.g. `grpc_server_started_total{grpc_method="Watch"`),
    /// read from its `/metrics`. Panics if the node does not answer.
    pub async fn counter(&self, series: &str) -> f64 {
        let text = http_get(self.health_port(), "/metrics")
            .await
            .unwrap_or_else(|e| panic!("reading the etcd node's /metrics: {e}"));
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The client address, `127.0.0.1:<port>` (for a fault proxy in front of it).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.member.client_port))
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.member.client_port
    }

    /// The node's name in its cluster (`n0`, `n1`, ...).
    pub fn name(&self) -> &str {
        &self.member.name
    }

    /// The process id while the node runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub(crate) fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// Stops the node abruptly (SIGKILL of its process). Its data stays for [`Self::restart`].
    pub fn stop(&mut self) {
        self.kill();
    }

    fn signal(&self, signal: &str) {
        signal_pid(self.pid().expect("the etcd node is running"), signal);
    }

    /// Freezes the node (SIGSTOP): connections stay open but nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Continues a node frozen by [`Self::pause`] (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Starts the node again on the same ports with the same data and waits until it is
    /// healthy (for a cluster node: until it sees a leader again).
    pub async fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.launch().await {
            self.kill();
            panic!("etcd did not restart: {e}");
        }
    }

    /// Whether the node answers `/health` as healthy now (within one second).
    pub async fn is_healthy(&self) -> bool {
        health(self.health_port())
            .await
            .is_ok_and(|b| b.contains("\"health\":\"true\""))
    }

    /// The node's log so far (for failure messages).
    pub fn log(&self) -> String {
        log_tail(&self.log_path(), 64 * 1024)
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET /health` of the node on `port`, within one second: the response body.
async fn health(port: u16) -> std::io::Result<String> {
    http_get(port, "/health").await
}

/// `GET path` on the plaintext HTTP `port` of a node, within a second: the whole response.
async fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let io = async {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    };
    tokio::time::timeout(Duration::from_secs(1), io)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("no answer within 1s")))
}

/// Several etcd nodes forming one cluster, each a separate process on its own ports.
#[derive(Debug)]
pub struct EtcdCluster {
    nodes: Vec<EtcdServer>,
}

impl EtcdCluster {
    /// Starts a cluster of `size` nodes and waits until every node is healthy. Panics, with the
    /// logs, if the cluster does not form.
    pub async fn start(size: usize) -> Self {
        check_installed();
        assert!(size > 0, "an etcd cluster needs at least one node");
        let mut last = String::new();
        for _ in 0..3 {
            let members: Vec<Member> = (0..size).map(Member::new).collect();
            let cluster = initial_cluster(&members);
            let token = new_token();
            let mut nodes: Vec<EtcdServer> = members
                .into_iter()
                .map(|m| EtcdServer::new(m, cluster.clone(), token.clone()))
                .collect();
            let spawned: Result<(), String> = nodes.iter_mut().try_for_each(EtcdServer::spawn);
            let result = match spawned {
                Ok(()) => {
                    let deadline = tokio::time::Instant::now() + START_DEADLINE;
                    let mut ready = Ok(());
                    for node in &mut nodes {
                        ready = node.wait_healthy(deadline).await;
                        if ready.is_err() {
                            break;
                        }
                    }
                    ready
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Self { nodes },
                Err(e) => last = e,
            }
        }
        panic!("the etcd cluster of {size} did not form: {last}");
    }

    /// The client URLs of every node.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(EtcdServer::endpoint).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[EtcdServer] {
        &self.nodes
    }

    /// Node `i`, to stop, pause or restart it.
    pub fn node_mut(&mut self, i: usize) -> &mut EtcdServer {
        &mut self.nodes[i]
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Short timings for tests: a 2 s lease, 5 s requests.
pub fn test_settings(endpoints: Vec<String>, cluster_id: &str) -> EtcdSettings {
    EtcdSettings::new(endpoints, "/flink", cluster_id)
        .with_lease_ttl(Duration::from_secs(2))
        .with_request_timeout(Duration::from_secs(5))
}

/// The etcd backend as a [`BackendFactory`]: its own server, a unique cluster id, one new
/// lease per simulated process; a crash revokes the lease so its ephemeral keys go at once.
#[derive(Debug)]
pub struct EtcdFactory {
    server: EtcdServer,
    cluster_id: String,
    policy: SuspendedPolicy,
}

impl EtcdFactory {
    /// Starts a server and picks a unique cluster id.
    pub async fn start() -> Self {
        Self {
            server: EtcdServer::start().await,
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
    pub fn server(&self) -> &EtcdServer {
        &self.server
    }

    /// The server, to stop, pause or restart it.
    pub fn server_mut(&mut self) -> &mut EtcdServer {
        &mut self.server
    }

    /// The cluster id of this factory's sessions.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The settings new sessions use.
    pub fn settings(&self) -> EtcdSettings {
        test_settings(vec![self.server.endpoint()], &self.cluster_id)
            .with_suspended_policy(self.policy)
    }

    /// A new session (lease), typed.
    pub async fn connect_etcd(&self) -> EtcdBackend {
        self.connect_with(self.settings()).await
    }

    /// A new session with other settings.
    pub async fn connect_with(&self, settings: EtcdSettings) -> EtcdBackend {
        EtcdBackend::connect(settings)
            .await
            .expect("connect to the test etcd")
    }

    /// A [`FaultProxy`] in front of the server.
    pub async fn start_proxy(&self) -> FaultProxy {
        FaultProxy::start(self.server.addr())
            .await
            .expect("start a fault proxy")
    }

    /// The settings of new sessions, connecting through `proxy`.
    pub fn settings_via(&self, proxy: &FaultProxy) -> EtcdSettings {
        EtcdSettings {
            endpoints: vec![format!("http://{}", proxy.addr())],
            ..self.settings()
        }
    }
}

#[async_trait]
impl BackendFactory for EtcdFactory {
    async fn connect(&self) -> Arc<dyn HaBackend> {
        Arc::new(self.connect_etcd().await)
    }

    async fn connect_client(&self) -> Arc<dyn HaBackend> {
        Arc::new(self.connect_with(self.settings().for_client_only()).await)
    }

    async fn crash(&self, backend: &Arc<dyn HaBackend>) {
        let _ = backend.close().await;
    }
}

impl EtcdCluster {
    /// The index of the node that is the raft leader, as the running nodes report it (etcd's
    /// `status()`: a node's member id and the member id of the leader it follows). Waits until
    /// every running node that answers names the same leader and that leader is one of them
    /// (after a leader dies, the others name it until they elect a new one). Panics after
    /// [`START_DEADLINE`] with what the nodes said.
    pub async fn raft_leader_index(&self) -> usize {
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            let mut views = Vec::new();
            for (i, node) in self.nodes.iter().enumerate() {
                if node.pid().is_some()
                    && let Some((member, leader)) = member_status(&node.endpoint()).await
                {
                    views.push((i, member, leader));
                }
            }
            if let Some(&(_, _, leader)) = views.first()
                && leader != 0
                && views.iter().all(|v| v.2 == leader)
                && let Some(&(i, _, _)) = views.iter().find(|v| v.1 == leader)
            {
                return i;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no raft leader agreed on within {START_DEADLINE:?}: (node, member, leader) \
                 {views:x?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `(member id, leader's member id)` as the node at `endpoint` reports them, or `None` if it
/// does not answer within a second.
async fn member_status(endpoint: &str) -> Option<(u64, u64)> {
    use tenure_etcd::etcd_client::{Client, ConnectOptions};
    let bound = Duration::from_secs(1);
    let ask = async {
        let options = ConnectOptions::new().with_connect_timeout(bound);
        let mut client = Client::connect([endpoint], Some(options)).await.ok()?;
        let status = client.status().await.ok()?;
        Some((status.header()?.member_id(), status.leader()))
    };
    tokio::time::timeout(bound, ask).await.ok().flatten()
}
