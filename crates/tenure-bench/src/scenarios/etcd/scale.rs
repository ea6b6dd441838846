//! Many per-job elections on one etcd lease: time until all are granted.

use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use futures::future::join_all;
use tenure::election::LeaderElection;
use tenure::services::ElectionMode;
use tenure_core::ids::JobId;

use crate::bench::{Ctx, SETTLE, cluster_id};
use crate::clock::ms;
use crate::results::{Group, Row, ScenarioResult, who};

use super::raw::{RawSession, watch};
use super::server::{Etcd, SESSION_TTL, etcd_key};

/// Untimed elections before a measurement (code paths, allocator pools).
const WARM: usize = 20;

/// Measures per-job elections at each size.
pub async fn run(ctx: &Ctx, etcd: &Etcd, out: &mut ScenarioResult) -> anyhow::Result<()> {
    out.title = "E5. Per-job elections on one lease (etcd)".into();
    out.method = "N job master elections (`ElectionMode::PerComponent`, one latch per job) \
        started at once in one process on one session (one lease); each series is the time \
        from the start until each election is granted, so its max is the time until all are \
        (ratios compare those). **tenure**: N `job_master_leader_election` + \
        `wait_for_leadership`, each in its own task. **floor**: the same requests made directly \
        with etcd-client, all N pipelined on one connection: per job the join transaction and \
        the range read of its latch, then (after the grant is recorded, still in flight while \
        the others campaign) the watch of its own key that tenure's latch opens when it leads. \
        **heap per election**: tenure's live heap bytes (allocation counter) from before the \
        first election to after the last grant, ÷ N. *requests per election*: gRPC messages \
        the server received from the start until every election leads, ÷ N (keep-alives left \
        out). No peer: `etcdctl elect` campaigns once per process."
        .into();
    for &n in &ctx.sizes.etcd_scale {
        let mut group = Group::new(
            &format!("etcd-scale-{n}"),
            format!(
                "{n} concurrent per-job elections on one etcd lease: time until each is granted"
            ),
            "ms",
        )
        .by_max();
        ctx.progress
            .begin(&format!("etcd scale: tenure, {n} per-job elections"));
        group.rows.push(tenure_per_job(ctx, etcd, n).await?);
        ctx.progress.end();
        ctx.progress
            .begin(&format!("etcd scale: floor, {n} elections pipelined"));
        group.rows.push(floor_per_job(etcd, n).await?);
        ctx.progress.end();
        out.groups.push(group);
    }
    Ok(())
}

async fn tenure_per_job(ctx: &Ctx, etcd: &Etcd, n: usize) -> anyhow::Result<Row> {
    let cid = cluster_id(&format!("etcd-scale{n}"));
    let (services, _backend) = etcd
        .services(&cid, ElectionMode::PerComponent, ctx.blob_dir.path())
        .await?;
    let services = Arc::new(services);
    for _ in 0..WARM {
        let mut e = services
            .job_master_leader_election(JobId::new_random())
            .await?;
        e.wait_for_leadership().await?;
        e.stop().await?;
    }
    let before = etcd.requests().await?;
    let live0 = crate::alloc::live_bytes();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let services = services.clone();
            tokio::spawn(async move {
                let mut e = services
                    .job_master_leader_election(JobId::new_random())
                    .await?;
                e.wait_for_leadership().await?;
                anyhow::Ok((e, Instant::now()))
            })
        })
        .collect();
    let mut elections: Vec<LeaderElection> = Vec::with_capacity(n);
    let mut granted = Vec::with_capacity(n);
    for t in tasks {
        let (e, at) = t.await??;
        granted.push(ms(at - t0));
        elections.push(e);
    }
    let total = t0.elapsed();
    let live1 = crate::alloc::live_bytes();
    let per_election = live1.saturating_sub(live0) as f64 / n as f64;
    tokio::time::sleep(SETTLE).await;
    let requests = etcd.requests().await?.since(&before);
    let row = requests
        .on(
            Row::new(
                who::TENURE,
                "per-job elections (PerComponent) on one lease",
                granted,
            ),
            n,
        )
        .with("size", n as f64)
        .with("total_ms", ms(total))
        .with("bytes_per_election", per_election);
    // Revoking the lease ends every election at once (their keys are under it).
    match Arc::try_unwrap(services) {
        Ok(s) => s.close().await?,
        Err(_) => bail!("the scale services are still shared"),
    }
    drop(elections);
    Ok(row)
}

async fn floor_per_job(etcd: &Etcd, n: usize) -> anyhow::Result<Row> {
    let session = RawSession::open(&etcd.endpoint(), SESSION_TTL).await?;
    let base = etcd_key(&cluster_id(&format!("etcd-scale{n}-floor")), "raw");
    for i in 0..WARM {
        let c = session.campaign(&format!("{base}/warm{i}/latch")).await?;
        session.leave(&c.key, &[]).await?;
    }
    let before = etcd.requests().await?;
    let t0 = Instant::now();
    let one = |i: usize| {
        let (session, base) = (&session, &base);
        async move {
            let c = session.campaign(&format!("{base}/{i}/latch")).await?;
            let at = Instant::now();
            if c.predecessor.is_some() {
                bail!("the floor contender {i} is not first");
            }
            let own = watch(&session.client(), &c.key, c.revision).await?;
            anyhow::Ok((at, own))
        }
    };
    let done = join_all((0..n).map(one)).await;
    let mut granted = Vec::with_capacity(n);
    let mut watches = Vec::with_capacity(n);
    for d in done {
        let (at, own) = d?;
        granted.push(ms(at - t0));
        watches.push(own);
    }
    let total = granted.iter().copied().fold(0.0, f64::max);
    tokio::time::sleep(SETTLE).await;
    let requests = etcd.requests().await?.since(&before);
    session.revoke().await;
    drop(watches);
    Ok(requests
        .on(
            Row::new(
                who::FLOOR,
                "join txn + range read (+ own-key watch) per job, all pipelined",
                granted,
            ),
            n,
        )
        .with("size", n as f64)
        .with("total_ms", total))
}
