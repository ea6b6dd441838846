//! Scale: N concurrent per-job elections in one process on one session (time until all lead,
//! memory per election, handover latency while N are live), and N job masters under one
//! process-wide election publishing their leader information after a failover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::future::join_all;
use tenure::election::LeaderElection;
use tenure::services::ElectionMode;
use tenure_core::ids::{ComponentId, JobId};
use tenure_core::layout::Layout;
use tenure_zookeeper::zk;

use crate::bench::{self, Ctx, Zk, cluster_id, wait_children, znode};
use crate::clock::{mono_ns, ms, rss_bytes, us_between};
use crate::results::{Group, Row, ScenarioResult, who};

use super::handover::{granted_at, join_granted};

/// Untimed elections before a measurement (code paths, allocator pools).
const WARM: usize = 20;

/// Measures the scale scenarios.
pub async fn run(ctx: &Ctx, zk: &Zk, out: &mut ScenarioResult) -> anyhow::Result<()> {
    out.title = "6. Scale".into();
    out.method = "**Per-job elections**: N job master elections (`ElectionMode::PerComponent`, \
        one latch per job, Flink ≤ 1.14 style) started at once in one process on one session; \
        each series is the time from the start until each election is granted, so its max is \
        the time to acquire all (ratios compare those). Memory, like with like in two columns: \
        **heap per election** is tenure's live heap bytes (allocated and not freed, counted by \
        the harness's global allocator, `stats_alloc`) and Curator's JVM heap in use after \
        `System.gc()`, each from before the first election starts to after the last grant, ÷ N \
        (tenure's includes the caller's election handles, and is read once the session's driver \
        has no request in flight: each leader's `exists` right after its grant, before its wait \
        is parked, is done; the target row also gives the figure right at the last grant); \
        **RSS per election** is the growth \
        of the process's VmRSS (`/proc/self/status`) over the same span, ÷ N (tenure, Curator, \
        kazoo; coarse: pages, and memory the allocator keeps). *requests per election*: all \
        ZooKeeper requests from the start until every election leads and the session settled \
        (so every leader's `exists` is in), counted by the server (`srvr`), ÷ N. Then, with the N elections live, \
        handovers to a standby on a second session, one at a time (notification latency at that \
        scale). **floor**: the same znodes made directly, all N pipelined: one multi each (the \
        job's directory, its latch directory, the ephemeral-sequential node); like tenure, it \
        reads no line, since a node made in one transaction with its directory is that \
        directory's first child; a second floor row does the same under a persistent recursive \
        watch of the root, as tenure's session watches its latch root (three events per \
        election, drained by a task). \
        **Curator**: N `LeaderLatch`es on distinct paths on one client, all started at once. \
        **kazoo**: N `Lock`s on one client, acquired one after the other (the recipe blocks the \
        calling thread). **Process-wide**: M job masters registered under ONE process-wide \
        election of a standby process; the leader process stops; time until every job master is \
        granted, and until every one has confirmed and published its leader information \
        (fenced); floor: M fenced multis creating `leader/<job>/connection_info`, pipelined."
        .into();
    let mut handovers = Group::new(
        "scale-handover",
        "Handover latency with N elections live on the session (one at a time)",
        "µs",
    );
    for &n in &ctx.sizes.scale {
        let mut group = Group::new(
            &format!("scale-{n}"),
            format!("{n} concurrent per-job elections on one session: time until each is granted"),
            "ms",
        )
        .by_max();
        ctx.progress
            .begin(&format!("scale: tenure, {n} per-job elections"));
        let (row, handover) = tenure_per_job(ctx, zk, n).await?;
        group.rows.push(row);
        handovers.rows.push(handover);
        ctx.progress.end();

        ctx.progress
            .begin(&format!("scale: floor, {n} elections pipelined"));
        group.rows.push(floor_per_job(zk, n, false).await?);
        ctx.progress.end();
        ctx.progress.begin(&format!(
            "scale: floor, {n} elections pipelined under a watched root"
        ));
        group.rows.push(floor_per_job(zk, n, true).await?);
        ctx.progress.end();
        out.groups.push(group);
    }

    let list = |sizes: &[usize]| {
        sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    for (peer, implementation, what, sizes) in [
        (
            &ctx.peers.curator,
            who::CURATOR,
            "LeaderLatch × N on one client, started at once",
            list(&ctx.sizes.curator_scale),
        ),
        (
            &ctx.peers.kazoo,
            who::KAZOO,
            "Lock × N on one client, acquired in turn",
            list(&ctx.sizes.kazoo_scale),
        ),
    ] {
        let Some(p) = peer else { continue };
        let r = ctx
            .peer(
                p,
                "scale",
                &zk.connect_string(),
                &[("sizes", sizes.clone())],
                &mut out.notes,
            )
            .await;
        for res in r.iter().filter(|r| r.scenario == "scale") {
            let Some(size) = res.num("size") else {
                continue;
            };
            let key = format!("scale-{}", size as usize);
            let Some(group) = out.groups.iter_mut().find(|g| g.key == key) else {
                continue;
            };
            let mut row = Row::new(implementation, what, res.samples_ms());
            row.extra.insert("size".into(), size);
            if let Some(t) = res.num("total_ns") {
                row.extra.insert("total_ms".into(), t / 1e6);
            }
            if let Some(b) = res.num("rss_delta_bytes") {
                row.extra.insert("rss_bytes_per_election".into(), b / size);
            }
            if let Some(b) = res.num("heap_delta_bytes") {
                row.extra.insert("heap_bytes_per_election".into(), b / size);
            }
            group.rows.push(row);
        }
    }
    out.groups.push(handovers);

    let m = ctx.sizes.process_wide;
    ctx.progress.begin(&format!(
        "scale: tenure, {m} job masters under one process-wide election"
    ));
    let mut group = Group::new(
        "process-wide",
        format!(
            "{m} job masters under one process-wide election: leader stops → every job master \
             granted / published"
        ),
        "ms",
    )
    .by_max();
    let (granted, published) = tenure_process_wide(ctx, zk, m).await?;
    group.rows.push(granted.paired("granted"));
    group.rows.push(published);
    ctx.progress.end();
    ctx.progress
        .begin(&format!("scale: floor, {m} fenced publishes"));
    group.rows.push(floor_process_wide(zk, m).await?);
    ctx.progress.end();
    out.groups.push(group);
    Ok(())
}

async fn tenure_per_job(ctx: &Ctx, zk: &Zk, n: usize) -> anyhow::Result<(Row, Row)> {
    let cid = cluster_id(&format!("scale{n}"));
    let services = Arc::new(
        zk.services(&cid, ElectionMode::PerComponent, ctx.blob_dir.path())
            .await?,
    );
    for _ in 0..WARM {
        let mut e = services
            .job_master_leader_election(JobId::new_random())
            .await?;
        e.wait_for_leadership().await?;
        e.stop().await?;
    }
    let received0 = zk.received().await?;
    let rss0 = rss_bytes().unwrap_or(0);
    let live0 = crate::alloc::live_bytes();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let services = services.clone();
            tokio::spawn(async move {
                let job = JobId::new_random();
                let mut e = services.job_master_leader_election(job).await?;
                e.wait_for_leadership().await?;
                anyhow::Ok((job, e, Instant::now()))
            })
        })
        .collect();
    let mut elections: Vec<(JobId, LeaderElection)> = Vec::with_capacity(n);
    let mut granted = Vec::with_capacity(n);
    for t in tasks {
        let (job, e, at) = t.await??;
        granted.push(ms(at - t0));
        elections.push((job, e));
    }
    let total = t0.elapsed();
    let at_grant = crate::alloc::live_bytes();
    // What N held elections cost, once the session has settled: the leaders' requests right
    // after their grants (each one's `exists` before its wait is parked) are done.
    settled(&services).await?;
    let rss1 = rss_bytes().unwrap_or(0);
    // The timing vector and the held handles are part of the figure: they are what a caller
    // holding N elections holds.
    let live1 = crate::alloc::live_bytes();
    let per_election = live1.saturating_sub(live0) as f64 / n as f64;
    let per_election_at_grant = at_grant.saturating_sub(live0) as f64 / n as f64;
    let rss_per_election = rss1.saturating_sub(rss0) as f64 / n as f64;
    let requests = zk.requests_since(received0).await? as f64 / n as f64;
    let row = Row::new(
        who::TENURE,
        "per-job elections (PerComponent) on one session",
        granted,
    )
    .with("size", n as f64)
    .with("total_ms", ms(total))
    .with("bytes_per_election", per_election)
    .with("bytes_per_election_at_grant", per_election_at_grant)
    .with("rss_bytes_per_election", rss_per_election)
    .with("requests_per_election", requests);

    // Handovers while the N elections are live.
    let k = ctx.sizes.scale_handovers.min(n);
    let standby_services = zk
        .services(&cid, ElectionMode::PerComponent, ctx.blob_dir.path())
        .await?;
    let raw = zk.raw().await?;
    let layout = Layout::default();
    let mut samples = Vec::with_capacity(k);
    for _ in 0..k {
        let Some((job, leader)) = elections.pop() else {
            break;
        };
        let standby = standby_services.job_master_leader_election(job).await?;
        let latch = znode(&cid, &layout.component_latch(&ComponentId::JobMaster(job)));
        wait_children(&raw, &latch, 2).await?;
        let waiter = granted_at(standby.leadership());
        let t = mono_ns();
        leader.stop().await?;
        let t1 = join_granted(waiter, Duration::from_secs(10)).await?;
        samples.push(us_between(t, t1));
        standby.stop().await?;
    }
    let handover = Row::new(who::TENURE, format!("N = {n}"), samples).with("size", n as f64);
    standby_services.close().await?;
    // Closing the session ends every election at once (their nodes are ephemeral).
    match Arc::try_unwrap(services) {
        Ok(s) => s.close().await?,
        Err(_) => bail!("the scale services are still shared"),
    }
    drop(elections);
    Ok((row, handover))
}

/// Waits until the session's driver has no request in flight (bounded), then a settle pause
/// for the events already on their way.
async fn settled(services: &tenure_core::services::HaServices) -> anyhow::Result<()> {
    let driver = services.backend().driver()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while driver.stats().await.is_some_and(|s| s.in_flight > 0) {
        if Instant::now() > deadline {
            bail!("the session's requests did not settle in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(bench::SETTLE).await;
    Ok(())
}

/// The per-job floor: N multis pipelined on one session. `watched`: under a persistent
/// recursive watch of their root, as tenure's session keeps one on its latch root (every node
/// created below it, three per election, comes to the session as an event; a task drains them).
async fn floor_per_job(zk: &Zk, n: usize, watched: bool) -> anyhow::Result<Row> {
    let client = zk.raw().await?;
    let suffix = if watched { "-watched" } else { "" };
    let cid = cluster_id(&format!("scale{n}-floor{suffix}"));
    let base = znode(&cid, "raw");
    client.mkdir(&base, &bench::persistent()).await?;
    let drain = if watched {
        let mut watcher = client
            .watch(&base, zk::AddWatchMode::PersistentRecursive)
            .await
            .context("floor's root watch")?;
        Some(tokio::spawn(async move {
            for _ in 0..3 * n {
                watcher.changed().await;
            }
        }))
    } else {
        None
    };
    let received0 = zk.received().await?;
    let t0 = Instant::now();
    let one = |i: usize| {
        let client = &client;
        let base = &base;
        async move {
            let job = format!("{base}/{i}");
            let dir = format!("{job}/latch");
            let mut w = client.new_multi_writer();
            w.add_create(&job, &[], &bench::persistent())?;
            w.add_create(&dir, &[], &bench::persistent())?;
            w.add_create(
                &format!("{dir}/latch-"),
                &[],
                &bench::ephemeral_sequential(),
            )?;
            let results = w.commit().await.context("floor multi")?;
            // The directory is new, so its first node leads: no line to read.
            let Some(zk::MultiWriteResult::Create { .. }) = results.last() else {
                bail!("the floor multi returned no create");
            };
            anyhow::Ok(Instant::now())
        }
    };
    let done = join_all((0..n).map(one)).await;
    let total = t0.elapsed();
    let requests = zk.requests_since(received0).await? as f64 / n as f64;
    let mut granted = Vec::with_capacity(n);
    for d in done {
        granted.push(ms(d? - t0));
    }
    if let Some(drain) = drain {
        tokio::time::timeout(Duration::from_secs(30), drain)
            .await
            .context("the floor's watch events did not all come in 30 s")??;
    }
    let what = if watched {
        "multi(create dirs + node), all pipelined, root watched (persistent, recursive)"
    } else {
        "multi(create dirs + node), all pipelined"
    };
    Ok(Row::new(who::FLOOR, what, granted)
        .with("size", n as f64)
        .with("total_ms", ms(total))
        .with("requests_per_election", requests))
}

async fn tenure_process_wide(ctx: &Ctx, zk: &Zk, m: usize) -> anyhow::Result<(Row, Row)> {
    let cid = cluster_id("process-wide");
    let old = zk
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let mut old_leader = old.dispatcher_leader_election().await?;
    old_leader.wait_for_leadership().await?;
    let standby = zk
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let dispatcher = standby.dispatcher_leader_election().await?;
    let mut tasks = Vec::with_capacity(m);
    for i in 0..m {
        let mut e = standby
            .job_master_leader_election(JobId::new_random())
            .await?;
        tasks.push(tokio::spawn(async move {
            let term = e.wait_for_leadership().await?;
            let granted = Instant::now();
            if !e
                .confirm(term.session_id, format!("bench://jm-{i}"))
                .await?
            {
                bail!("a job master's confirmation was not published");
            }
            anyhow::Ok((e, granted, Instant::now()))
        }));
    }
    let raw = zk.raw().await?;
    wait_children(&raw, &znode(&cid, "leader/latch"), 2).await?;
    let t0 = Instant::now();
    old_leader.stop().await?;
    let mut granted = Vec::with_capacity(m);
    let mut published = Vec::with_capacity(m);
    let mut elections = Vec::with_capacity(m);
    for t in tasks {
        let (e, g, p) = tokio::time::timeout(Duration::from_secs(600), t)
            .await
            .context("job masters not published within 10 minutes")???;
        granted.push(ms(g - t0));
        published.push(ms(p - t0));
        elections.push(e);
    }
    old.close().await?;
    standby.close().await?;
    drop(elections);
    drop(dispatcher);
    Ok((
        Row::new(
            who::TENURE,
            "old leader stops → every job master granted",
            granted,
        )
        .with("size", m as f64),
        Row::new(
            who::TENURE,
            "old leader stops → every job master's leader information published",
            published,
        )
        .with("size", m as f64),
    ))
}

async fn floor_process_wide(zk: &Zk, m: usize) -> anyhow::Result<Row> {
    let client = zk.raw().await?;
    let cid = cluster_id("process-wide-floor");
    let dir = znode(&cid, "raw/latch");
    let leader_dir = znode(&cid, "raw/leader");
    client.mkdir(&leader_dir, &bench::persistent()).await?;
    let lock = bench::raw_term(&client, &dir).await?;
    let t0 = Instant::now();
    let one = |i: usize| {
        let (client, lock, leader_dir) = (&client, &lock, &leader_dir);
        async move {
            let job = format!("{leader_dir}/{}", JobId::new_random());
            let info = format!("bench://jm-{i}");
            let mut w = client.new_multi_writer();
            w.add_check_version(lock, 0)?;
            w.add_create(&job, &[], &bench::persistent())?;
            w.add_create(
                &format!("{job}/connection_info"),
                info.as_bytes(),
                &bench::ephemeral(),
            )?;
            w.commit().await.context("floor publish")?;
            anyhow::Ok(Instant::now())
        }
    };
    let done = join_all((0..m).map(one)).await;
    let mut published = Vec::with_capacity(m);
    for d in done {
        published.push(ms(d? - t0));
    }
    Ok(Row::new(
        who::FLOOR,
        "fenced multi(create leader/<job>, connection_info), all pipelined",
        published,
    )
    .with("size", m as f64))
}
