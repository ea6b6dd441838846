//! Loopback round trip: one `exists("/")` (a read the server answers from memory) with each
//! client, and one read through tenure's `VersionedKv::get`.

use std::time::Instant;

use crate::bench::{Ctx, Zk, cluster_id};
use crate::clock::us;
use crate::results::{Group, Row, ScenarioResult, who};

use super::peer_row_us;

/// Measures the round trips.
pub async fn run(ctx: &Ctx, zk: &Zk, out: &mut ScenarioResult) -> anyhow::Result<()> {
    out.title = "Loopback round trip (RTT)".into();
    out.method = "One `exists(\"/\")` after another on one open session, per client: the price of \
        one request on this machine, which every other figure is made of. tenure's row is one \
        `VersionedKv::get` of a missing key (one `getData` through tenure's ZooKeeper KV)."
        .into();
    let n = ctx.sizes.rtt;
    let warmup = ctx.sizes.warmup.max(10);
    let mut group = Group::new("rtt", "One round trip", "µs").with_cdf();

    ctx.progress.begin("rtt: zookeeper-client");
    let client = zk.raw().await?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + warmup {
        let t0 = Instant::now();
        client.check_stat("/").await?;
        let dt = t0.elapsed();
        if i >= warmup {
            samples.push(us(dt));
        }
    }
    group.rows.push(Row::new(
        who::FLOOR,
        "zookeeper-client 0.11 `exists` (the client tenure uses)",
        samples,
    ));
    ctx.progress.end();

    ctx.progress.begin("rtt: tenure");
    let backend = zk.backend(&cluster_id("rtt")).await?;
    let kv = tenure_core::driver::HaBackend::kv(&backend);
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + warmup {
        let t0 = Instant::now();
        kv.get("bench/missing").await?;
        let dt = t0.elapsed();
        if i >= warmup {
            samples.push(us(dt));
        }
    }
    group.rows.insert(
        0,
        Row::new(who::TENURE, "`VersionedKv::get` (one `getData`)", samples),
    );
    ctx.progress.end();

    let args = [("n", n.to_string()), ("warmup", warmup.to_string())];
    if let Some(p) = &ctx.peers.curator {
        let r = ctx
            .peer(p, "rtt", &zk.connect_string(), &args, &mut out.notes)
            .await;
        group.rows.extend(peer_row_us(
            who::CURATOR,
            "Curator `checkExists` (ZooKeeper Java client 3.8)",
            &r,
            "rtt",
        ));
    }
    if let Some(p) = &ctx.peers.kazoo {
        let r = ctx
            .peer(p, "rtt", &zk.connect_string(), &args, &mut out.notes)
            .await;
        group
            .rows
            .extend(peer_row_us(who::KAZOO, "kazoo `exists`", &r, "rtt"));
    }
    out.groups.push(group);
    Ok(())
}
