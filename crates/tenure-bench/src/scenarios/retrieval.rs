//! Confirm-to-retrieval: the leader confirms a new address; time until a retriever in another
//! process sees it.

use std::time::Duration;

use anyhow::bail;
use tenure::services::ElectionMode;

use crate::bench::{self, Ctx, Fewest, Zk, cluster_id};
use crate::child::{Spawned, raw_info_node};
use crate::clock::{mono_ns, us_between};
use crate::results::{Group, Row, ScenarioResult, who};

/// Waits for the child's line announcing `address`; returns its timestamp (CLOCK_MONOTONIC ns).
async fn seen(child: &mut Spawned, address: &str) -> anyhow::Result<u64> {
    loop {
        let line = child.line(Duration::from_secs(30)).await?;
        let Some((ns, addr)) = line.split_once(' ') else {
            continue;
        };
        if addr == address {
            return match ns.parse() {
                Ok(ns) => Ok(ns),
                Err(_) => bail!("the retriever printed {line:?}"),
            };
        }
    }
}

/// The server's request counter before an untimed (warm-up) trial, when `now`.
async fn counting(zk: &Zk, now: bool) -> anyhow::Result<Option<u64>> {
    Ok(if now {
        Some(zk.received().await?)
    } else {
        None
    })
}

/// Adds the requests since `before` (and a settling pause, so the retriever's re-arming of its
/// watch is in) to `fewest`.
async fn count(zk: &Zk, before: Option<u64>, fewest: &mut Fewest) -> anyhow::Result<()> {
    if let Some(before) = before {
        tokio::time::sleep(bench::SETTLE).await;
        fewest.add(zk.requests_since(before).await?);
    }
    Ok(())
}

/// Measures confirm-to-retrieval.
pub async fn run(ctx: &Ctx, zk: &Zk, out: &mut ScenarioResult) -> anyhow::Result<()> {
    out.title = "4. Confirm-to-retrieval".into();
    out.method = "The leader (this process) publishes a new address; a retriever in a child \
        process prints the moment it sees it (both read CLOCK_MONOTONIC, which is the same for \
        every process of the machine). **tenure**: `LeaderElection::confirm(session, address)` \
        → the child's `LeaderRetriever` (`dispatcher_leader_retriever()`) shows it. **floor**: \
        the same fenced write made with zookeeper-client, one `multi` of `check` (the leader's \
        latch node, version 0) and `setData` of the leader-information znode → the child's data \
        watch fires → it re-reads the znode (`getData`, re-arming the watch). tenure's trials and the floor's \
        alternate, so both meet the server in the same state. Also shown: how long the leader's \
        call itself takes. *requests*: ZooKeeper requests of one confirmation until the \
        retriever has seen it (both processes), counted by the server (`srvr`) over the untimed \
        warm-up trials (fewest seen). No peer: Curator and kazoo have no leader-address recipe \
        of their own (Flink builds one on Curator's caches)."
        .into();
    let n = ctx.sizes.retrieval;
    let warmup = ctx.sizes.warmup;
    let mut group = Group::new(
        "retrieval",
        "Confirm → seen by a retriever in another process",
        "µs",
    )
    .with_cdf();

    // tenure's trials and the floor's alternate, so both meet the server in the same state
    // (its JIT warm-up, its log, the machine's load).
    ctx.progress
        .begin("retrieval: tenure and floor, alternating");
    let cid = cluster_id("retrieval");
    let services = zk
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let mut election = services.dispatcher_leader_election().await?;
    let term = election.wait_for_leadership().await?;
    election.confirm(term.session_id, "bench://initial").await?;
    let mut child = Spawned::start(
        "retriever",
        "tenure",
        &zk.connect_string(),
        &cid,
        bench::SESSION_TIMEOUT,
    )?;
    seen(&mut child, "bench://initial").await?;

    let floor_cid = cluster_id("retrieval-floor");
    let client = zk.raw().await?;
    let node = raw_info_node(&floor_cid);
    let parent = node.rsplit_once('/').map_or("/", |(p, _)| p).to_owned();
    client.mkdir(&parent, &bench::persistent()).await?;
    client
        .create(&node, b"bench://initial", &bench::persistent())
        .await?;
    // The floor's term: a latch node whose existence fences every publication, as tenure's.
    let lock = bench::raw_term(&client, &format!("{parent}/latch")).await?;
    let mut floor_child = Spawned::start(
        "retriever",
        "raw",
        &zk.connect_string(),
        &floor_cid,
        bench::SESSION_TIMEOUT,
    )?;
    seen(&mut floor_child, "bench://initial").await?;

    let mut seen_us = Vec::with_capacity(n);
    let mut call_us = Vec::with_capacity(n);
    let mut requests = Fewest::default();
    let mut floor_seen_us = Vec::with_capacity(n);
    let mut floor_call_us = Vec::with_capacity(n);
    let mut floor_requests = Fewest::default();
    for i in 0..n + warmup {
        ctx.progress
            .detail(&format!("retrieval: trial {}/{}", i + 1, n + warmup));
        let address = format!("bench://leader-{i}");
        let before = counting(zk, i < warmup).await?;
        let t0 = mono_ns();
        if !election.confirm(term.session_id, address.clone()).await? {
            bail!("the confirmation was not published");
        }
        let t_call = mono_ns();
        let t1 = seen(&mut child, &address).await?;
        count(zk, before, &mut requests).await?;
        if i >= warmup {
            seen_us.push(us_between(t0, t1));
            call_us.push(us_between(t0, t_call));
        }

        let before = counting(zk, i < warmup).await?;
        let t0 = mono_ns();
        let mut fenced = client.new_multi_writer();
        fenced.add_check_version(&lock, 0)?;
        fenced.add_set_data(&node, address.as_bytes(), None)?;
        fenced.commit().await?;
        let t_call = mono_ns();
        let t1 = seen(&mut floor_child, &address).await?;
        count(zk, before, &mut floor_requests).await?;
        if i >= warmup {
            floor_seen_us.push(us_between(t0, t1));
            floor_call_us.push(us_between(t0, t_call));
        }
    }
    child.stop().await;
    floor_child.stop().await;
    election.stop().await?;
    services.close().await?;
    group.rows.push(
        Row::new(
            who::TENURE,
            "confirm() → retriever in another process",
            seen_us,
        )
        .with_requests(requests.get()),
    );
    group.rows.push(
        Row::new(who::TENURE, "confirm() call returns (leader side)", call_us).paired("call"),
    );
    group.rows.push(
        Row::new(
            who::FLOOR,
            "multi(check latch node, setData) → watch → getData in another process",
            floor_seen_us,
        )
        .with_requests(floor_requests.get()),
    );
    group
        .rows
        .push(Row::new(who::FLOOR, "fenced multi call returns", floor_call_us).paired("call"));
    ctx.progress.end();
    out.groups.push(group);
    Ok(())
}
