//! `tenure-bench child ...`: the processes a scenario starts and kills (crash failover) or reads
//! from (confirm-to-retrieval). Each prints lines on stdout:
//!
//! - `leader`: `LEADER <negotiated session timeout ms>` once it leads, then keeps its session busy
//!   (a read every 10 ms, so the session's last contact with the server is the moment it is
//!   killed) until killed.
//! - `retriever`: `<CLOCK_MONOTONIC ns> <address>` every time the leader address it sees changes
//!   (the first line once it follows the address already published).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tenure::services::ElectionMode;
use tenure_core::ids::ComponentId;
use tenure_zookeeper::{ZooKeeperBackend, zk};

use crate::bench;
use crate::clock::mono_ns;

/// Which implementation a child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Impl {
    /// tenure's HA services.
    Tenure,
    /// The raw client recipe (the floor).
    Raw,
}

/// What a child does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Lead, then stay busy until killed.
    Leader,
    /// Follow the dispatcher's leader address and print every change.
    Retriever,
}

/// Arguments of `tenure-bench child`.
#[derive(Clone, Debug, clap::Args)]
pub struct ChildArgs {
    /// What to do.
    #[arg(value_enum)]
    pub role: Role,
    /// Which implementation.
    #[arg(long = "impl", value_enum)]
    pub implementation: Impl,
    /// The ZooKeeper server.
    #[arg(long)]
    pub connect: String,
    /// The cluster id (namespace `/flink/<id>`).
    #[arg(long)]
    pub cluster_id: String,
    /// The session timeout asked for, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub session_timeout_ms: u64,
}

/// The raw recipe's latch directory of a cluster.
pub fn raw_latch_dir(cluster_id: &str) -> String {
    bench::znode(cluster_id, "raw/latch")
}

/// The raw recipe's leader-information znode of a cluster.
pub fn raw_info_node(cluster_id: &str) -> String {
    bench::znode(cluster_id, "raw/connection_info")
}

fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Runs the child until it is killed (or fails).
pub async fn run(args: ChildArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(args.session_timeout_ms);
    match (args.role, args.implementation) {
        (Role::Leader, Impl::Tenure) => tenure_leader(&args, timeout).await,
        (Role::Leader, Impl::Raw) => raw_leader(&args, timeout).await,
        (Role::Retriever, Impl::Tenure) => tenure_retriever(&args, timeout).await,
        (Role::Retriever, Impl::Raw) => raw_retriever(&args, timeout).await,
    }
}

async fn tenure_leader(args: &ChildArgs, timeout: Duration) -> anyhow::Result<()> {
    let backend = Arc::new(
        ZooKeeperBackend::connect(bench::settings(&args.connect, &args.cluster_id, timeout))
            .await?,
    );
    let client = backend.client()?;
    let negotiated = client.session_timeout().as_millis();
    let blobs = tempfile::tempdir()?;
    let services = bench::services_on(
        backend.clone(),
        &args.cluster_id,
        ElectionMode::ProcessWide,
        blobs.path(),
    )?;
    let mut election = services.dispatcher_leader_election().await?;
    election.wait_for_leadership().await?;
    say(&format!("LEADER {negotiated}"))?;
    let kv = services.backend().kv();
    loop {
        let _ = kv.get("leader/latch").await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn raw_leader(args: &ChildArgs, timeout: Duration) -> anyhow::Result<()> {
    let client = bench::raw_client(&args.connect, timeout).await?;
    let negotiated = client.session_timeout().as_millis();
    let dir = raw_latch_dir(&args.cluster_id);
    let _ = client.mkdir(&dir, &bench::persistent()).await;
    let prefix = format!("{dir}/latch-");
    let (_, seq) = client
        .create(&prefix, &[], &bench::ephemeral_sequential())
        .await?;
    let line = bench::sorted_line(client.list_children(&dir).await?);
    if line.first().and_then(|n| bench::sequence(n)) != Some(seq.into_i64()) {
        bail!("the raw leader is not first in line: {line:?}");
    }
    say(&format!("LEADER {negotiated}"))?;
    loop {
        let _ = client.check_stat(&dir).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn tenure_retriever(args: &ChildArgs, timeout: Duration) -> anyhow::Result<()> {
    let backend = Arc::new(
        ZooKeeperBackend::connect(bench::settings(&args.connect, &args.cluster_id, timeout))
            .await?,
    );
    let blobs = tempfile::tempdir()?;
    let services = bench::services_on(
        backend,
        &args.cluster_id,
        ElectionMode::ProcessWide,
        blobs.path(),
    )?;
    let retriever = services.leader_retriever(ComponentId::Dispatcher);
    let mut rx = retriever.leader();
    let mut last: Option<String> = None;
    loop {
        let address = rx.borrow_and_update().leader().map(|l| l.address);
        if address != last {
            if let Some(a) = &address {
                say(&format!("{} {a}", mono_ns()))?;
            }
            last = address;
        }
        rx.changed().await.context("the retriever stopped")?;
    }
}

async fn raw_retriever(args: &ChildArgs, timeout: Duration) -> anyhow::Result<()> {
    let client = bench::raw_client(&args.connect, timeout).await?;
    let node = raw_info_node(&args.cluster_id);
    let mut last: Option<Vec<u8>> = None;
    loop {
        let watcher = match client.get_and_watch_data(&node).await {
            Ok((data, _, w)) => {
                if last.as_deref() != Some(&data[..]) {
                    say(&format!("{} {}", mono_ns(), String::from_utf8_lossy(&data)))?;
                    last = Some(data);
                }
                w
            }
            Err(zk::Error::NoNode) => match client.check_and_watch_stat(&node).await? {
                (Some(_), _) => continue,
                (None, w) => w,
            },
            Err(e) => return Err(e.into()),
        };
        watcher.changed().await;
    }
}

/// A child process of this binary (`tenure-bench child ...`) whose stdout lines are read as
/// they come. Dropping it kills the process.
#[derive(Debug)]
pub struct Spawned {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<(u64, String)>,
}

impl Spawned {
    /// Starts `tenure-bench child <role> --impl <implementation> ...` for `cluster_id`.
    pub fn start(
        role: &str,
        implementation: &str,
        connect: &str,
        cluster_id: &str,
        session_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let args = [
            "child",
            role,
            "--impl",
            implementation,
            "--connect",
            connect,
            "--cluster-id",
            cluster_id,
            "--session-timeout-ms",
            &session_timeout.as_millis().to_string(),
        ];
        Self::this_binary(&args)
    }

    /// Starts this binary (`tenure-bench`) with `args`.
    pub fn this_binary(args: &[&str]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("the path of tenure-bench")?;
        let mut command = tokio::process::Command::new(exe);
        command.args(args);
        Self::spawn(command)
    }

    /// Starts `command` (stdin closed, stderr inherited), reading its stdout lines as they
    /// come, each stamped with the moment it was read ([`mono_ns`]).
    pub fn spawn(mut command: tokio::process::Command) -> anyhow::Result<Self> {
        use tokio::io::AsyncBufReadExt as _;
        let mut child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {:?}", command.as_std().get_program()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send((mono_ns(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    /// The next line within `timeout`.
    pub async fn line(&mut self, timeout: Duration) -> anyhow::Result<String> {
        Ok(self.line_at(timeout).await?.1)
    }

    /// The next line within `timeout`, with the moment it was read ([`mono_ns`]).
    pub async fn line_at(&mut self, timeout: Duration) -> anyhow::Result<(u64, String)> {
        match tokio::time::timeout(timeout, self.lines.recv()).await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => bail!("the child process ended"),
            Err(_) => bail!("the child process printed nothing within {timeout:?}"),
        }
    }

    /// Sends SIGKILL.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.start_kill().context("killing the child")
    }

    /// Sends SIGINT (a Go program such as `etcdctl elect` resigns on it, then exits).
    pub fn interrupt(&self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the child process has ended")?;
        let pid = i32::try_from(pid).context("the child's process id")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGINT,
        )
        .context("sending SIGINT to the child")
    }

    /// Waits up to `timeout` for the process to exit by itself, then kills it; reaps it.
    pub async fn exit_within(mut self, timeout: Duration) {
        if tokio::time::timeout(timeout, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }

    /// Kills the process (if still running) and reaps it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
