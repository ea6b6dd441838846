//! Uncontended election on etcd: campaign on an open session until "I am leader" is known.

use std::time::{Duration, Instant};

use anyhow::bail;
use tenure::services::ElectionMode;

use crate::bench::{Ctx, cluster_id};
use crate::clock::{us, us_between};
use crate::results::{Group, Row, ScenarioResult, who};

use super::etcdctl::Etcdctl;
use super::metrics::FewestRequests;
use super::raw::{RawSession, watch};
use super::server::{Etcd, SESSION_TTL, etcd_key};

/// Measures uncontended elections.
pub async fn run(
    ctx: &Ctx,
    etcd: &Etcd,
    etcdctl: Option<&Etcdctl>,
    out: &mut ScenarioResult,
) -> anyhow::Result<()> {
    out.title = "E1. Uncontended election (etcd)".into();
    out.method = "On an open session (a lease granted beforehand), from the call that starts \
        campaigning until the contender knows it leads; then it stops (untimed) and the next \
        trial starts. **tenure**: `HaServices::dispatcher_leader_election()` + \
        `wait_for_leadership()` (process-wide latch `leader/latch`, key `<lease hex>` under the \
        lease). **floor**: the same requests made directly with etcd-client: the join \
        transaction (`create_revision(key) == 0` ⇒ put under the lease + get, else get) and \
        the keys-only range read of the latch (then, untimed, a watch of its own key from the \
        read's revision, which tenure's latch opens once it leads). tenure's and the floor's \
        trials alternate, so both meet the server in the same state. **etcdctl**: `etcdctl \
        elect` cannot be timed from inside: the rows give the time from spawning the process \
        to its first output line (process start, connection, lease grant, campaign, the read \
        it prints), next to `etcdctl get` of one key (process start, connection, one read) as \
        the cost of starting it at all; their difference is roughly its lease grant + \
        campaign. These rows are not compared with tenure (the handover table has etcdctl's \
        campaign latency proper). *requests*: gRPC messages the server received during one \
        election (all connections together, lease keep-alives left out), from its \
        `grpc_server_msg_received_total` counters, over the untimed warm-up trials (fewest \
        seen)."
        .into();
    let n = ctx.sizes.election;
    let warmup = ctx.sizes.warmup;
    let mut group = Group::new("etcd-election", "Uncontended election on etcd", "µs").with_cdf();

    ctx.progress
        .begin("etcd election: tenure and floor, alternating");
    let cid = cluster_id("etcd-election");
    let (services, _backend) = etcd
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let session = RawSession::open(&etcd.endpoint(), SESSION_TTL).await?;
    let dir = etcd_key(&cluster_id("etcd-election-floor"), "raw/latch");
    let mut samples = Vec::with_capacity(n);
    let mut requests = FewestRequests::default();
    let mut floor_samples = Vec::with_capacity(n);
    let mut floor_requests = FewestRequests::default();
    // tenure's and the floor's trials alternate, so a drift of the shared machine weighs on
    // both alike.
    for i in 0..n + warmup {
        ctx.progress
            .detail(&format!("etcd election: trial {}/{}", i + 1, n + warmup));
        let campaign = async {
            let t0 = Instant::now();
            let mut election = services.dispatcher_leader_election().await?;
            election.wait_for_leadership().await?;
            anyhow::Ok((election, t0.elapsed()))
        };
        let (election, dt) = if i < warmup {
            let (out, count) = etcd.counted(campaign).await?;
            requests.add(count);
            out
        } else {
            campaign.await?
        };
        election.stop().await?;
        if i >= warmup {
            samples.push(us(dt));
        }

        let trial = async {
            let t0 = Instant::now();
            let c = session.campaign(&dir).await?;
            let dt = t0.elapsed();
            if c.predecessor.is_some() {
                bail!("the floor contender is not first");
            }
            // The leader watches its own key (untimed), as tenure's latch does once it leads.
            let own = watch(&session.client(), &c.key, c.revision).await?;
            anyhow::Ok((c, own, dt))
        };
        let (c, own, dt) = if i < warmup {
            let (out, count) = etcd.counted(trial).await?;
            floor_requests.add(count);
            out
        } else {
            trial.await?
        };
        session.leave(&c.key, &[]).await?;
        drop(own);
        if i >= warmup {
            floor_samples.push(us(dt));
        }
    }
    services.close().await?;
    session.revoke().await;
    group.rows.push(requests.on(Row::new(
        who::TENURE,
        "register + wait_for_leadership",
        samples,
    )));
    group.rows.push(floor_requests.on(Row::new(
        who::FLOOR,
        "join txn + range read of the line (+ own-key watch, untimed)",
        floor_samples,
    )));
    ctx.progress.end();

    if let Some(p) = etcdctl {
        ctx.progress.begin("etcd election: etcdctl");
        let k = ctx.sizes.etcdctl;
        let name = format!("/bench-etcdctl/{}", cluster_id("election"));
        let mut elect = Vec::with_capacity(k);
        let mut get = Vec::with_capacity(k);
        let timeout = Duration::from_secs(30);
        let probe = format!("{name}-probe");
        etcd.raw().await?.put(probe.as_str(), "x", None).await?;
        for i in 0..k + 1 {
            ctx.progress
                .detail(&format!("etcd election: etcdctl trial {}/{}", i + 1, k + 1));
            let t0 = crate::clock::mono_ns();
            let mut proc = p.elect(&etcd.endpoint(), &name, "bench")?;
            let (t1, line) = proc.line_at(timeout).await?;
            if !line.starts_with(&name) {
                bail!("etcdctl elect printed {line:?}, not its key");
            }
            proc.interrupt()?;
            proc.exit_within(timeout).await;
            let t2 = crate::clock::mono_ns();
            let mut proc = p.get(&etcd.endpoint(), &probe)?;
            let (t3, _) = proc.line_at(timeout).await?;
            proc.exit_within(timeout).await;
            // The first start of each is a warm-up (page cache).
            if i > 0 {
                elect.push(us_between(t0, t1));
                get.push(us_between(t2, t3));
            }
        }
        group.rows.push(
            Row::new(
                who::ETCDCTL,
                "etcdctl elect: spawn → first output line (process start + campaign)",
                elect,
            )
            .paired("process"),
        );
        group.rows.push(
            Row::new(
                who::ETCDCTL,
                "etcdctl get: spawn → first output line (process start + one read)",
                get,
            )
            .paired("process"),
        );
        ctx.progress.end();
    }
    out.groups.push(group);
    Ok(())
}
