//! Uncontended election: campaign on an open session until "I am leader" is known.

use std::time::Instant;

use anyhow::bail;
use tenure::services::ElectionMode;

use crate::bench::{self, Ctx, Fewest, Zk, cluster_id, znode};
use crate::clock::us;
use crate::results::{Group, Row, ScenarioResult, who};

use super::peer_row_us;

/// Measures uncontended elections.
pub async fn run(ctx: &Ctx, zk: &Zk, out: &mut ScenarioResult) -> anyhow::Result<()> {
    out.title = "1. Uncontended election".into();
    out.method = "On an open session, from the call that starts campaigning until the contender \
        knows it leads; then it stops (untimed) and the next trial starts. **tenure**: \
        `HaServices::dispatcher_leader_election()` + `wait_for_leadership()` (process-wide latch \
        `leader/latch`, Curator-compatible node names). **floor**: the same ZooKeeper operations \
        made directly with zookeeper-client: one create (ephemeral sequential, protected name) and \
        one get-children sent right behind it without awaiting the create, i.e. one round trip \
        as in tenure's latch (whose leader then waits for its node's deletion on the session's \
        persistent watch of the latch root, parked at the create: no request). tenure's and the floor's trials alternate, so both meet the \
        server in the same state. *requests*: ZooKeeper requests of one election, counted by \
        the server (`srvr`) over the untimed warm-up trials (fewest seen). **Curator**: `new LeaderLatch` + `start()` + `await()`. **kazoo**: \
        `Lock.acquire()` (kazoo's `Election` runs the same `Lock`)."
        .into();
    let n = ctx.sizes.election;
    let warmup = ctx.sizes.warmup;
    let mut group = Group::new("election", "Uncontended election", "µs").with_cdf();

    // tenure's trials and the floor's alternate, so both meet the server in the same state
    // (its JIT warm-up, its log, the machine's load) instead of one after the other.
    ctx.progress
        .begin("election: tenure and floor, alternating");
    let cid = cluster_id("election");
    let services = zk
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let client = zk.raw().await?;
    let floor_cid = cluster_id("election-floor");
    let dir = znode(&floor_cid, "raw/latch");
    client.mkdir(&dir, &bench::persistent()).await?;
    let prefix = format!("{dir}/_c_{}-latch-", uuid::Uuid::new_v4());
    let mut samples = Vec::with_capacity(n);
    let mut floor_samples = Vec::with_capacity(n);
    let mut requests = Fewest::default();
    let mut floor_requests = Fewest::default();
    for i in 0..n + warmup {
        ctx.progress
            .detail(&format!("election: trial {}/{}", i + 1, n + warmup));
        let campaign = async {
            let t0 = Instant::now();
            let mut election = services.dispatcher_leader_election().await?;
            election.wait_for_leadership().await?;
            anyhow::Ok((election, t0.elapsed()))
        };
        let (election, dt) = if i < warmup {
            let (out, count) = zk.counted(campaign).await?;
            requests.add(count);
            out
        } else {
            campaign.await?
        };
        election.stop().await?;
        if i >= warmup {
            samples.push(us(dt));
        }

        let before = if i < warmup {
            Some(zk.received().await?)
        } else {
            None
        };
        let t0 = Instant::now();
        // The get-children rides right behind the create (one round trip), as tenure's does.
        let (created, listed) = futures::future::join(
            client.create(&prefix, &[], &bench::ephemeral_sequential()),
            client.list_children(&dir),
        )
        .await;
        let (_, seq) = created?;
        let line = bench::sorted_line(listed?);
        let dt = t0.elapsed();
        if line.first().and_then(|c| bench::sequence(c)) != Some(seq.into_i64()) {
            bail!("the floor contender is not first: {line:?}");
        }
        // No more requests: tenure's leader waits for its node's deletion on the session's
        // persistent watch of the latch root, parked at the create without a request.
        let node = format!("{prefix}{seq}");
        if let Some(before) = before {
            floor_requests.add(zk.requests_since(before).await?);
        }
        client.delete(&node, None).await?;
        if i >= warmup {
            floor_samples.push(us(dt));
        }
    }
    services.close().await?;
    group.rows.push(
        Row::new(who::TENURE, "register + wait_for_leadership", samples)
            .with_requests(requests.get()),
    );
    group.rows.push(
        Row::new(
            who::FLOOR,
            "create ephemeral-sequential + get-children pipelined",
            floor_samples,
        )
        .with_requests(floor_requests.get()),
    );
    ctx.progress.end();

    let args = [("n", n.to_string()), ("warmup", warmup.to_string())];
    if let Some(p) = &ctx.peers.curator {
        let r = ctx
            .peer(p, "acquire", &zk.connect_string(), &args, &mut out.notes)
            .await;
        group.rows.extend(peer_row_us(
            who::CURATOR,
            "LeaderLatch start + await",
            &r,
            "acquire",
        ));
    }
    if let Some(p) = &ctx.peers.kazoo {
        let r = ctx
            .peer(p, "acquire", &zk.connect_string(), &args, &mut out.notes)
            .await;
        group
            .rows
            .extend(peer_row_us(who::KAZOO, "Lock.acquire", &r, "acquire"));
    }
    out.groups.push(group);
    Ok(())
}
