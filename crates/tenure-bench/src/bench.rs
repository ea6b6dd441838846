//! What every scenario shares: the run's sizes, the ZooKeeper server of a scenario, sessions of
//! tenure and of the raw client, and small helpers to wait on znodes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tenure::services::{ElectionMode, HaServices, HaServicesOptions, JobResultStorage};
use tenure_core::blob::BlobStore;
use tenure_core::driver::HaBackend;
use tenure_core::layout::Layout;
use tenure_testkit::zookeeper::ZooKeeperServer;
use tenure_zookeeper::{ZooKeeperBackend, ZooKeeperSettings, zk};

use crate::peers::{Peer, PeerResult, Peers};
use crate::progress::Progress;

/// The ZooKeeper root of every cluster namespace (Flink's `path.root` default).
pub const ROOT: &str = "/flink";

/// How long the harness waits for a standby to register its watch after its node appeared.
pub const SETTLE: Duration = Duration::from_millis(20);

/// Session timeout of every session that is not the subject of a crash.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How big a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Tiny sizes: checks that the harness runs (CI), figures mean nothing.
    Smoke,
    /// Small sizes, under two minutes.
    Quick,
    /// The sizes the report is meant for, under fifteen minutes on two cores.
    Default,
}

impl Mode {
    /// The mode's name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Default => "default",
        }
    }
}

/// The sizes of one run.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Round trips for the RTT.
    pub rtt: usize,
    /// Untimed trials before each latency series.
    pub warmup: usize,
    /// Uncontended elections.
    pub election: usize,
    /// Graceful handovers.
    pub handover: usize,
    /// Crash failovers: (session timeout, trials).
    pub crash: Vec<(Duration, usize)>,
    /// Confirm-to-retrieval trials.
    pub retrieval: usize,
    /// Store operations, sequential, per kind.
    pub store_sequential: usize,
    /// Store operations, concurrent, per kind (spread over the workers).
    pub store_concurrent: usize,
    /// Concurrent store workers.
    pub concurrency: usize,
    /// Numbers of per-job elections on one session.
    pub scale: Vec<usize>,
    /// Numbers of latches for Curator's scale runs.
    pub curator_scale: Vec<usize>,
    /// Numbers of locks for kazoo's scale runs (acquired one after the other).
    pub kazoo_scale: Vec<usize>,
    /// Handovers sampled at each scale.
    pub scale_handovers: usize,
    /// Job masters under one process-wide election.
    pub process_wide: usize,
    /// etcd crash failovers: (lease TTL, trials).
    pub etcd_crash: Vec<(Duration, usize)>,
    /// etcdctl crash failovers (its lease TTL is fixed at 60 s; 0: not measured).
    pub etcdctl_crash: usize,
    /// Numbers of per-job elections on one etcd lease.
    pub etcd_scale: Vec<usize>,
    /// etcdctl processes started per series (each start takes tens of milliseconds).
    pub etcdctl: usize,
}

impl Sizes {
    /// The sizes of `mode`.
    pub fn of(mode: Mode) -> Self {
        let s = Duration::from_secs;
        match mode {
            Mode::Smoke => Self {
                rtt: 50,
                warmup: 3,
                election: 10,
                handover: 5,
                crash: vec![(s(2), 1)],
                retrieval: 5,
                store_sequential: 10,
                store_concurrent: 32,
                concurrency: 16,
                scale: vec![10, 100],
                curator_scale: vec![10, 100],
                kazoo_scale: vec![10, 100],
                scale_handovers: 3,
                process_wide: 100,
                etcd_crash: vec![(s(4), 1)],
                etcdctl_crash: 0,
                etcd_scale: vec![100],
                etcdctl: 3,
            },
            Mode::Quick => Self {
                rtt: 300,
                warmup: 10,
                election: 50,
                handover: 30,
                crash: vec![(s(2), 3), (s(6), 1)],
                retrieval: 30,
                store_sequential: 100,
                store_concurrent: 480,
                concurrency: 16,
                scale: vec![10, 100, 1_000],
                curator_scale: vec![10, 100, 1_000],
                kazoo_scale: vec![10, 100, 1_000],
                scale_handovers: 10,
                process_wide: 1_000,
                etcd_crash: vec![(s(4), 3)],
                etcdctl_crash: 0,
                etcd_scale: vec![100, 1_000],
                etcdctl: 20,
            },
            Mode::Default => Self {
                rtt: 2_000,
                warmup: 20,
                election: 300,
                handover: 100,
                crash: vec![(s(2), 10), (s(6), 5)],
                retrieval: 200,
                store_sequential: 500,
                store_concurrent: 4_000,
                concurrency: 16,
                scale: vec![10, 100, 1_000, 10_000],
                curator_scale: vec![10, 100, 1_000, 10_000],
                kazoo_scale: vec![10, 100, 1_000],
                scale_handovers: 20,
                process_wide: 10_000,
                etcd_crash: vec![(s(4), 10)],
                etcdctl_crash: 1,
                etcd_scale: vec![100, 1_000],
                etcdctl: 100,
            },
        }
    }
}

/// The run: its mode and sizes, the peers, the progress bar, a directory for blobs.
#[derive(Debug)]
pub struct Ctx {
    /// The mode.
    pub mode: Mode,
    /// The sizes.
    pub sizes: Sizes,
    /// The peers found.
    pub peers: Peers,
    /// The progress bar.
    pub progress: Progress,
    /// Blobs (`high-availability.storageDir`) of every cluster of the run.
    pub blob_dir: tempfile::TempDir,
    /// Versions of what was compared, as reported by the peers and the server.
    pub versions: Mutex<BTreeMap<String, String>>,
}

impl Ctx {
    /// Runs a peer scenario as one progress step; a failure becomes a note, not an error.
    pub async fn peer(
        &self,
        peer: &Peer,
        scenario: &str,
        connect: &str,
        args: &[(&str, String)],
        notes: &mut Vec<String>,
    ) -> Vec<PeerResult> {
        self.progress.begin(&format!("{scenario}: {}", peer.name));
        let timeout = Duration::from_secs(900);
        let out = match peer.run(scenario, connect, args, timeout).await {
            Ok(out) => out,
            Err(e) => {
                let msg = format!("{} {scenario} failed: {e:#}", peer.name);
                self.progress.println(&format!("warning: {msg}"));
                notes.push(msg);
                Vec::new()
            }
        };
        self.progress.end();
        if let Some(first) = out.first() {
            let mut versions = tenure_core::sync::lock(&self.versions);
            for (key, name) in [
                ("java", "Java (Curator peer)"),
                ("curator", "Apache Curator"),
                ("python", "Python (kazoo peer)"),
                ("kazoo", "kazoo"),
            ] {
                if let Some(v) = first.text(key) {
                    versions.insert(name.to_owned(), v);
                }
            }
        }
        out
    }

    /// Records a version for the report.
    pub fn version(&self, what: &str, version: String) {
        tenure_core::sync::lock(&self.versions).insert(what.to_owned(), version);
    }
}

/// The ZooKeeper server of one scenario (a fresh one per scenario, so no scenario inherits
/// another's znodes, watches or garbage).
#[derive(Debug)]
pub struct Zk {
    server: ZooKeeperServer,
    /// What one `srvr` adds to the server's `Received` count (it counts itself), measured once.
    srvr_overhead: tokio::sync::OnceCell<u64>,
}

impl Zk {
    /// Starts a server on a free loopback port (the testkit's harness: Debian's `zookeeper`,
    /// tick 200 ms, standalone, data in a temporary directory, fsync on).
    pub async fn start() -> anyhow::Result<Self> {
        let server = tokio::spawn(ZooKeeperServer::start()).await.context(
            "the ZooKeeper server did not start (is the Debian package `zookeeper` installed?)",
        )?;
        Ok(Self {
            server,
            srvr_overhead: tokio::sync::OnceCell::new(),
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn connect_string(&self) -> String {
        self.server.connect_string()
    }

    /// The server's `srvr` answer's version line.
    pub async fn version(&self) -> Option<String> {
        let srvr = tenure_testkit::zookeeper::four_letter_word(self.server.port(), "srvr")
            .await
            .ok()?;
        srvr.lines()
            .find_map(|l| l.strip_prefix("Zookeeper version: "))
            .map(|v| {
                let v = v.split(',').next().unwrap_or(v).trim();
                v.split('-').next().unwrap_or(v).to_owned()
            })
    }

    /// Packets the server has received so far, from every client together (`srvr`'s
    /// `Received`, which counts the `srvr` that asks, too: see [`Zk::requests_since`]).
    pub async fn received(&self) -> anyhow::Result<u64> {
        let srvr = tenure_testkit::zookeeper::four_letter_word(self.server.port(), "srvr")
            .await
            .context("srvr")?;
        srvr.lines()
            .find_map(|l| l.strip_prefix("Received: "))
            .and_then(|v| v.trim().parse().ok())
            .context("no `Received:` line in the server's srvr answer")
    }

    /// Requests the server received since [`Zk::received`] returned `before`, without the
    /// `srvr` commands that asked (their share is measured once: the fewest counted between two
    /// `srvr`s in a row, over a few tries).
    pub async fn requests_since(&self, before: u64) -> anyhow::Result<u64> {
        let after = self.received().await?;
        let overhead = *self
            .srvr_overhead
            .get_or_try_init(|| async {
                let mut fewest = u64::MAX;
                for _ in 0..3 {
                    let a = self.received().await?;
                    let b = self.received().await?;
                    fewest = fewest.min(b.saturating_sub(a));
                }
                anyhow::Ok(fewest)
            })
            .await?;
        Ok(after.saturating_sub(before).saturating_sub(overhead))
    }

    /// Runs `op` and returns its output with the number of requests the server received
    /// meanwhile (and in the [`SETTLE`] after it, so requests sent as it completes are in).
    /// Call it only while nothing else talks to the server.
    pub async fn counted<T>(
        &self,
        op: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<(T, u64)> {
        let before = self.received().await?;
        let out = op.await?;
        tokio::time::sleep(SETTLE).await;
        Ok((out, self.requests_since(before).await?))
    }

    /// tenure's settings for `cluster_id` with `session_timeout`.
    pub fn settings(&self, cluster_id: &str, session_timeout: Duration) -> ZooKeeperSettings {
        settings(&self.connect_string(), cluster_id, session_timeout)
    }

    /// A new tenure session (one process's `ZooKeeperBackend`).
    pub async fn backend(&self, cluster_id: &str) -> anyhow::Result<ZooKeeperBackend> {
        Ok(ZooKeeperBackend::connect(self.settings(cluster_id, SESSION_TIMEOUT)).await?)
    }

    /// HA services on a new session, elections in `mode`, blobs below `blob_dir`.
    pub async fn services(
        &self,
        cluster_id: &str,
        mode: ElectionMode,
        blob_dir: &std::path::Path,
    ) -> anyhow::Result<HaServices> {
        let backend = Arc::new(self.backend(cluster_id).await?);
        services_on(backend, cluster_id, mode, blob_dir)
    }

    /// A raw client session.
    pub async fn raw(&self) -> anyhow::Result<zk::Client> {
        raw_client(&self.connect_string(), SESSION_TIMEOUT).await
    }
}

/// tenure's settings for a cluster on `connect`.
pub fn settings(connect: &str, cluster_id: &str, session_timeout: Duration) -> ZooKeeperSettings {
    ZooKeeperSettings::new(connect, ROOT, cluster_id)
        .with_session_timeout(session_timeout)
        .with_connection_timeout(Duration::from_secs(15))
        .with_retry(Duration::from_millis(100), 10)
}

/// HA services on `backend` (a ZooKeeper or an etcd session).
pub fn services_on(
    backend: Arc<dyn HaBackend>,
    cluster_id: &str,
    mode: ElectionMode,
    blob_dir: &std::path::Path,
) -> anyhow::Result<HaServices> {
    let blobs = BlobStore::open(&blob_dir.display().to_string(), cluster_id)?;
    let options = HaServicesOptions {
        layout: Layout::default(),
        blobs,
        job_results: JobResultStorage::Kv,
        num_retained_checkpoints: 3,
        election_mode: mode,
    };
    Ok(HaServices::new(backend, options))
}

/// A raw client session with `session_timeout`.
pub async fn raw_client(connect: &str, session_timeout: Duration) -> anyhow::Result<zk::Client> {
    let connect_fut = zk::Client::connector()
        .with_session_timeout(session_timeout)
        .connect(connect);
    match tokio::time::timeout(Duration::from_secs(15), connect_fut).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => bail!("raw client cannot connect to {connect}: {e}"),
        Err(_) => bail!("raw client cannot connect to {connect} within 15 s"),
    }
}

/// The fewest requests seen over several counted trials (a session's ping that happens to fall
/// into one trial is left out that way).
#[derive(Clone, Copy, Debug, Default)]
pub struct Fewest(Option<u64>);

impl Fewest {
    /// Takes one trial's count into account.
    pub fn add(&mut self, count: u64) {
        self.0 = Some(self.0.map_or(count, |c| c.min(count)));
    }

    /// The fewest requests seen, if any trial was counted.
    pub fn get(self) -> Option<u64> {
        self.0
    }
}

/// A unique cluster id for one scenario step.
pub fn cluster_id(what: &str) -> String {
    format!(
        "bench-{what}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The znode of a tenure key in `cluster_id` (`/flink/<cluster>/<key>`).
pub fn znode(cluster_id: &str, key: &str) -> String {
    format!("{ROOT}/{cluster_id}/{key}")
}

/// Persistent, open ACL.
pub fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Ephemeral, open ACL.
pub fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

/// Ephemeral sequential, open ACL.
pub fn ephemeral_sequential() -> zk::CreateOptions<'static> {
    zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all())
}

/// A raw client's term: makes the latch directory `dir` and one ephemeral-sequential node in
/// it, and returns the node's path. Its existence fences the floor's writes, as a latch node
/// fences tenure's.
pub async fn raw_term(client: &zk::Client, dir: &str) -> anyhow::Result<String> {
    client.mkdir(dir, &persistent()).await?;
    let prefix = format!("{dir}/latch-");
    let (_, seq) = client.create(&prefix, &[], &ephemeral_sequential()).await?;
    Ok(format!("{prefix}{seq}"))
}

/// The number of children of `path` (0 if it does not exist).
pub async fn children(client: &zk::Client, path: &str) -> anyhow::Result<usize> {
    match client.list_children(path).await {
        Ok(c) => Ok(c.len()),
        Err(zk::Error::NoNode) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Waits until `path` has `count` children (then [`SETTLE`] more, when `count` > 1, so a
/// standby's watch is in place), within 30 s.
pub async fn wait_children(client: &zk::Client, path: &str, count: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let have = children(client, path).await?;
        if have == count {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{path} has {have} children, expected {count}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if count > 1 {
        tokio::time::sleep(SETTLE).await;
    }
    Ok(())
}

/// The sequence number of a latch node name (`..latch-0000000012` → 12).
pub fn sequence(name: &str) -> Option<i64> {
    name.rsplit('-').next()?.parse().ok()
}

/// The raw recipe's line: children of a latch directory sorted by sequence number.
pub fn sorted_line(mut children: Vec<String>) -> Vec<String> {
    children.sort_by_key(|c| sequence(c).unwrap_or(i64::MAX));
    children
}
