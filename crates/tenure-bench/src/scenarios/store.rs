//! Store throughput and latency: fenced checkpoint adds (retain 3), job graph puts (graph in the
//! blob store, pointer in ZooKeeper), checkpoint counter increments; one after the other, and
//! from 16 concurrent workers on the one session.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use tenure::services::ElectionMode;
use tenure_core::ids::{CheckpointId, JobId};
use tenure_core::kv::FencingToken;
use tenure_core::layout::{Layout, NamingEra};
use tenure_core::store::{CompletedCheckpoint, Payload, encode_checkpoint, fnv1a64};
use tenure_zookeeper::zk;

use crate::bench::{self, Ctx, Fewest, Zk, cluster_id, znode};
use crate::clock::us;
use crate::results::{Group, Row, ScenarioResult, who};

/// Bytes of checkpoint metadata (stored inline in the znode, as small metadata is).
const CHECKPOINT_METADATA: usize = 256;
/// Bytes of a job graph (above the 1 KiB inline threshold: it goes to the blob store).
const JOB_GRAPH: usize = 16 * 1024;
/// Checkpoints retained.
const RETAIN: usize = 3;

/// The checkpoint the `i`-th add of a series writes (ids from 1), for tenure and the floors.
pub(crate) fn nth_checkpoint(job: JobId, i: usize, metadata: Bytes) -> CompletedCheckpoint {
    CompletedCheckpoint {
        job_id: job,
        id: CheckpointId(i as u64 + 1),
        timestamp_ms: i as u64,
        metadata,
    }
}

/// The oldest retained checkpoint once `retained` holds `retain` of them: the one a floor's
/// add subsumes in the same write, as tenure's does.
pub(crate) fn subsumed<T: Clone>(retained: &Mutex<VecDeque<T>>, retain: usize) -> Option<T> {
    let r = tenure_core::sync::lock(retained);
    (r.len() >= retain).then(|| r.front().cloned()).flatten()
}

/// One store operation; its argument numbers the operations of a worker.
pub(crate) type Op = Arc<dyn Fn(usize) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Latencies of timed operations and the wall time they took together.
pub(crate) struct Series {
    latencies: Vec<f64>,
    wall: Duration,
}

impl Series {
    /// Adds another part of the series.
    fn extend(&mut self, part: Series) {
        self.latencies.extend(part.latencies);
        self.wall += part.wall;
    }

    /// The row of the series, with its throughput.
    pub(crate) fn row(self, implementation: &str, what: &str) -> Row {
        let n = self.latencies.len() as f64;
        let throughput = n / self.wall.as_secs_f64();
        Row::new(implementation, what, self.latencies).with("throughput_ops_s", throughput)
    }
}

/// Rounds in which tenure's timed operations and the floor's alternate.
const ROUNDS: usize = 4;

/// Runs `warmup` untimed operations on every worker of tenure's and the floor's, then
/// `per_worker` timed ones per worker in [`ROUNDS`] rounds that alternate tenure's workers and
/// the floor's (each side's workers concurrently), so a drift of the machine's state (load, the
/// disk's write-back, the server's log) falls on both alike. Returns tenure's series and the
/// floor's.
pub(crate) async fn measure_pair(
    tenure: Vec<Op>,
    floor: Vec<Op>,
    warmup: usize,
    per_worker: usize,
) -> anyhow::Result<(Series, Series)> {
    run_ops(&tenure, 0..warmup).await?;
    run_ops(&floor, 0..warmup).await?;
    let mut t = Series {
        latencies: Vec::with_capacity(per_worker * tenure.len()),
        wall: Duration::ZERO,
    };
    let mut f = Series {
        latencies: Vec::with_capacity(per_worker * floor.len()),
        wall: Duration::ZERO,
    };
    let chunk = per_worker.div_ceil(ROUNDS).max(1);
    let end = warmup + per_worker;
    let mut next = warmup;
    while next < end {
        let round = next..(next + chunk).min(end);
        t.extend(run_ops(&tenure, round.clone()).await?);
        f.extend(run_ops(&floor, round.clone()).await?);
        next = round.end;
    }
    Ok((t, f))
}

/// Runs operations `range` on every worker of `ops`, the workers concurrently.
async fn run_ops(ops: &[Op], range: std::ops::Range<usize>) -> anyhow::Result<Series> {
    let start = Instant::now();
    let tasks: Vec<_> = ops
        .iter()
        .cloned()
        .map(|op| {
            let range = range.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(range.len());
                for i in range {
                    let t0 = Instant::now();
                    op(i).await?;
                    lat.push(us(t0.elapsed()));
                }
                anyhow::Ok(lat)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok(Series {
        latencies,
        wall: start.elapsed(),
    })
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Checkpoint,
    JobGraph,
    Counter,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Checkpoint => "checkpoint",
            Kind::JobGraph => "jobgraph",
            Kind::Counter => "counter",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Checkpoint => "Fenced checkpoint add (retain 3)",
            Kind::JobGraph => "Fenced job graph put (16 KiB graph → blob + pointer)",
            Kind::Counter => "Fenced checkpoint id counter increment",
        }
    }

    fn tenure_what(self) -> &'static str {
        match self {
            Kind::Checkpoint => "CompletedCheckpointStore::add",
            Kind::JobGraph => "JobGraphStore::put (new job)",
            Kind::Counter => "CheckpointIdCounter::get_and_increment",
        }
    }

    fn floor_what(self) -> &'static str {
        match self {
            Kind::Checkpoint => "multi(check, create [, delete oldest])",
            Kind::JobGraph => {
                "getData × 2 (both eras' keys) + blob file write + multi(check, create graph, \
                 locks, lock)"
            }
            Kind::Counter => "getData + multi(check, setData@version)",
        }
    }
}

/// What the workers share.
struct Setup {
    client: zk::Client,
    token: FencingToken,
    /// The leader term's stores (every write fenced by `token`).
    stores: tenure::ha_stores::HaStores,
    cid: String,
    blob_dir: PathBuf,
    metadata: Bytes,
    graph: Bytes,
}

fn tenure_op(s: &Setup, kind: Kind) -> anyhow::Result<Op> {
    let job = JobId::new_random();
    Ok(match kind {
        Kind::Checkpoint => {
            let store = s
                .stores
                .checkpoint_recovery_factory()
                .create_completed_checkpoint_store(job, RETAIN)?;
            let metadata = s.metadata.clone();
            Arc::new(move |i| {
                let (store, metadata) = (store.clone(), metadata.clone());
                Box::pin(async move {
                    store.add(nth_checkpoint(job, i, metadata)).await?;
                    Ok(())
                })
            })
        }
        Kind::JobGraph => {
            let graphs = s.stores.job_graphs();
            let graph = s.graph.clone();
            Arc::new(move |_| {
                let (graphs, graph) = (graphs.clone(), graph.clone());
                Box::pin(async move {
                    graphs.put(JobId::new_random(), graph).await?;
                    Ok(())
                })
            })
        }
        Kind::Counter => {
            let counter = s
                .stores
                .checkpoint_recovery_factory()
                .create_checkpoint_id_counter(job);
            Arc::new(move |_| {
                let counter = counter.clone();
                Box::pin(async move {
                    counter.get_and_increment().await?;
                    Ok(())
                })
            })
        }
    })
}

/// Commits one multi that starts with the fence check.
async fn fenced(
    client: &zk::Client,
    lock: &str,
    build: impl FnOnce(&mut zk::MultiWriter<'_>) -> Result<(), zk::Error>,
) -> anyhow::Result<()> {
    let mut w = client.new_multi_writer();
    w.add_check_version(lock, 0)?;
    build(&mut w)?;
    w.commit().await.context("fenced multi")?;
    Ok(())
}

async fn floor_op(s: &Setup, kind: Kind) -> anyhow::Result<Op> {
    let layout = Layout::default();
    let job = JobId::new_random();
    let client = s.client.clone();
    let lock: Arc<str> = s.token.lock().into();
    let cid = s.cid.clone();
    Ok(match kind {
        Kind::Checkpoint => {
            client
                .mkdir(
                    &znode(&cid, &layout.checkpoints_dir(&job)),
                    &bench::persistent(),
                )
                .await?;
            let retained = Arc::new(Mutex::new(VecDeque::<String>::new()));
            let metadata = s.metadata.clone();
            Arc::new(move |i| {
                let (client, lock, retained, cid) =
                    (client.clone(), lock.clone(), retained.clone(), cid.clone());
                let cp = nth_checkpoint(job, i, metadata.clone());
                Box::pin(async move {
                    let path = znode(&cid, &layout.checkpoint(&job, cp.id));
                    let value = Payload::Inline(encode_checkpoint(&cp)).encode();
                    // tenure's add: the new checkpoint and the subsumed oldest in ONE multi.
                    let oldest = subsumed(&retained, RETAIN);
                    fenced(&client, &lock, |w| {
                        w.add_create(&path, &value, &bench::persistent())?;
                        match &oldest {
                            Some(old) => w.add_delete(old, None),
                            None => Ok(()),
                        }
                    })
                    .await?;
                    let mut r = tenure_core::sync::lock(&retained);
                    r.push_back(path);
                    if oldest.is_some() {
                        r.pop_front();
                    }
                    Ok(())
                })
            })
        }
        Kind::JobGraph => {
            client
                .mkdir(&znode(&cid, layout.job_graphs_dir()), &bench::persistent())
                .await?;
            let dir = s.blob_dir.join(format!("{cid}-floor"));
            std::fs::create_dir_all(&dir)?;
            let graph = s.graph.clone();
            let owner = uuid::Uuid::new_v4().to_string();
            Arc::new(move |_| {
                let (client, lock, cid, dir, graph, owner) = (
                    client.clone(),
                    lock.clone(),
                    cid.clone(),
                    dir.clone(),
                    graph.clone(),
                    owner.clone(),
                );
                Box::pin(async move {
                    let job = JobId::new_random();
                    let name = format!(
                        "submittedExecutionPlan{}",
                        &uuid::Uuid::new_v4().simple().to_string()[..12]
                    );
                    let pointer = Payload::Blob {
                        name: name.clone(),
                        size: graph.len() as u64,
                        checksum: fnv1a64(&graph),
                    }
                    .encode();
                    // tenure's put: the graph's key in both naming eras (graphs written under
                    // Flink 1.x names are found), then the blob, then one fenced multi.
                    for era in [layout, Layout::new(NamingEra::Flink1)] {
                        match client.get_data(&znode(&cid, &era.job_graph(&job))).await {
                            Err(zk::Error::NoNode) => {}
                            Ok(_) => anyhow::bail!("the new job's graph exists already"),
                            Err(e) => return Err(e.into()),
                        }
                    }
                    // Create-new, as tenure's blob store writes a new blob.
                    let path = dir.join(&name);
                    let data = graph.clone();
                    tokio::task::spawn_blocking(move || {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(path)?
                            .write_all(&data)
                    })
                    .await??;
                    let node = znode(&cid, &layout.job_graph(&job));
                    let locks = znode(&cid, &layout.job_graph_locks(&job));
                    let mine = znode(&cid, &layout.job_graph_lock(&job, &owner));
                    fenced(&client, &lock, |w| {
                        w.add_create(&node, &pointer, &bench::persistent())?;
                        w.add_create(&locks, &[], &bench::persistent())?;
                        w.add_create(&mine, &[], &bench::ephemeral())
                    })
                    .await
                })
            })
        }
        Kind::Counter => {
            let node = znode(&cid, &layout.checkpoint_counter(&job));
            let parent = node.rsplit_once('/').map_or("/", |(p, _)| p).to_owned();
            client.mkdir(&parent, &bench::persistent()).await?;
            client
                .create(&node, &1i32.to_be_bytes(), &bench::persistent())
                .await?;
            Arc::new(move |_| {
                let (client, lock, node) = (client.clone(), lock.clone(), node.clone());
                Box::pin(async move {
                    let (data, stat) = client.get_data(&node).await?;
                    let v = <[u8; 4]>::try_from(data.as_slice())
                        .map(i32::from_be_bytes)
                        .map_err(|_| anyhow::anyhow!("counter is not 4 bytes"))?;
                    let next = (v + 1).to_be_bytes();
                    fenced(&client, &lock, |w| {
                        w.add_set_data(&node, &next, Some(stat.version))
                    })
                    .await
                })
            })
        }
    })
}

/// The fewest ZooKeeper requests of one operation of `op` in steady state: it runs
/// `RETAIN + 3` times on its own job (a checkpoint store deletes the oldest only once more than
/// `RETAIN` are stored); the last two are counted.
async fn requests_of(zk: &Zk, op: Op) -> anyhow::Result<Option<u64>> {
    let mut fewest = Fewest::default();
    for i in 0..RETAIN + 3 {
        if i <= RETAIN {
            op(i).await?;
        } else {
            let ((), count) = zk.counted(op(i)).await?;
            fewest.add(count);
        }
    }
    Ok(fewest.get())
}

/// Measures the stores.
pub async fn run(ctx: &Ctx, zk: &Zk, out: &mut ScenarioResult) -> anyhow::Result<()> {
    out.title = "5. Store throughput and latency".into();
    out.method = format!(
        "One session; the writer leads the process-wide election and every write is fenced by \
        its term (a ZooKeeper `multi` that starts with `check(latch node, version 0)`). \
        Sequential: one operation after the other; concurrent: {c} workers on the one session, \
        each on its own job. Throughput = operations ÷ wall time of the series; tenure's timed \
        operations and the floor's alternate in {ROUNDS} rounds, so both meet the machine in \
        the same state. \
        **tenure**: the typed stores of `HaServices` (blobs in a local storage directory). \
        **floor**: the ZooKeeper writes a store needs at the least, made directly: a checkpoint \
        add is one fenced multi creating the checkpoint and, past {RETAIN} retained, deleting the \
        oldest (ids kept in memory, as Flink's store does); a job graph put is the blob file plus one \
        fenced multi creating the graph pointer, its `locks` node and this process's lock, after \
        the two reads tenure's put makes first (the job's graph key in both naming eras, so a \
        graph written under Flink 1.x names is found); a counter increment is a read plus a fenced versioned set. Checkpoint metadata \
        {CHECKPOINT_METADATA} B (inline), job graph {} KiB (blob). No peer: Curator and kazoo \
        have no HA stores. *requests*: ZooKeeper requests of one operation in steady state \
        (past {RETAIN} retained checkpoints), counted by the server (`srvr`) over two untimed \
        operations (fewest seen).",
        JOB_GRAPH / 1024,
        c = ctx.sizes.concurrency,
    );
    let cid = cluster_id("store");
    let services = zk
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let mut election = services.dispatcher_leader_election().await?;
    let term = election.wait_for_leadership().await?;
    let setup = Setup {
        client: zk.raw().await?,
        token: term.fencing_token.clone(),
        stores: services.leader_stores(&term),
        cid: cid.clone(),
        blob_dir: ctx.blob_dir.path().to_path_buf(),
        metadata: Bytes::from(vec![7u8; CHECKPOINT_METADATA]),
        graph: Bytes::from((0..JOB_GRAPH).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
    };
    let warmup = ctx.sizes.warmup;
    let conc = ctx.sizes.concurrency;
    let seq_n = ctx.sizes.store_sequential;
    let per_worker = ctx.sizes.store_concurrent.div_ceil(conc);
    for kind in [Kind::Checkpoint, Kind::JobGraph, Kind::Counter] {
        ctx.progress
            .begin(&format!("store: {} sequential", kind.key()));
        let mut seq = Group::new(
            &format!("{}-seq", kind.key()),
            format!("{}, sequential", kind.title()),
            "µs",
        )
        .with_cdf();
        let t_requests = requests_of(zk, tenure_op(&setup, kind)?).await?;
        let f_requests = requests_of(zk, floor_op(&setup, kind).await?).await?;
        let (t, f) = measure_pair(
            vec![tenure_op(&setup, kind)?],
            vec![floor_op(&setup, kind).await?],
            warmup,
            seq_n,
        )
        .await?;
        seq.rows.push(
            t.row(who::TENURE, kind.tenure_what())
                .with_requests(t_requests),
        );
        seq.rows.push(
            f.row(who::FLOOR, kind.floor_what())
                .with_requests(f_requests),
        );
        out.groups.push(seq);
        ctx.progress.end();

        ctx.progress
            .begin(&format!("store: {} concurrency {conc}", kind.key()));
        let mut par = Group::new(
            &format!("{}-c{conc}", kind.key()),
            format!("{}, {conc} concurrent workers", kind.title()),
            "µs",
        );
        let ops = (0..conc)
            .map(|_| tenure_op(&setup, kind))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut floor_ops = Vec::with_capacity(conc);
        for _ in 0..conc {
            floor_ops.push(floor_op(&setup, kind).await?);
        }
        let (t, f) = measure_pair(ops, floor_ops, warmup.min(3), per_worker).await?;
        par.rows.push(
            t.row(who::TENURE, kind.tenure_what())
                .with_requests(t_requests),
        );
        par.rows.push(
            f.row(who::FLOOR, kind.floor_what())
                .with_requests(f_requests),
        );
        out.groups.push(par);
        ctx.progress.end();
    }
    election.stop().await?;
    drop(setup);
    services.close().await?;
    Ok(())
}
