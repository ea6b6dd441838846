//! Graceful handover: the leader stops; time until the next contender knows it leads.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tenure::election::Leadership;
use tenure::services::ElectionMode;
use tokio::sync::watch;

use crate::bench::{self, Ctx, Zk, cluster_id, wait_children, znode};
use crate::clock::{mono_ns, us_between};
use crate::results::{Group, Row, ScenarioResult, who};

use super::observer::Observer;
use super::peer_row_us;

/// Waits (in a task) until `rx` shows a live term and returns when that was seen
/// ([`mono_ns`]).
pub fn granted_at(
    mut rx: watch::Receiver<Leadership>,
) -> tokio::task::JoinHandle<anyhow::Result<u64>> {
    tokio::spawn(async move {
        loop {
            if rx.borrow_and_update().term().is_some() {
                return Ok(mono_ns());
            }
            rx.changed().await.context("the election closed")?;
        }
    })
}

/// Awaits a [`granted_at`] task within `timeout`.
pub async fn join_granted(
    task: tokio::task::JoinHandle<anyhow::Result<u64>>,
    timeout: Duration,
) -> anyhow::Result<u64> {
    match tokio::time::timeout(timeout, task).await {
        Ok(joined) => joined?,
        Err(_) => bail!("the standby was not granted within {timeout:?}"),
    }
}

/// Measures graceful handovers.
pub async fn run(ctx: &Ctx, zk: &Zk, out: &mut ScenarioResult) -> anyhow::Result<()> {
    out.title = "2. Graceful handover".into();
    out.method = "Two sessions (two simulated processes) on one latch; the standby's node is in \
        line and its watch set (the harness waits until the latch has two nodes, then 20 ms). \
        From the leader's stop call until the standby knows it leads. **tenure**: \
        `LeaderElection::stop()` → the standby's `leadership()` watch shows a term. **floor**: \
        raw delete of the leader's node → the standby's `exists` watch fires (*delete + notify*), \
        and → its get-children confirms it is first (*+ get-children*, what a correct recipe \
        must do). **Curator**: `LeaderLatch.close()` → the standby's `await()` returns. \
        **kazoo**: `Lock.release()` → the waiting `acquire()` returns. The second table splits \
        tenure's and the floor's handover where an observer session (a persistent watch on the \
        latch) sees the leader's node deleted: the leader's part (stop → delete done) and the \
        standby's part (notification → re-check → leads)."
        .into();
    let n = ctx.sizes.handover;
    let warmup = ctx.sizes.warmup;
    let mut group = Group::new("handover", "Graceful handover", "µs").with_cdf();
    let mut split = Group::new(
        "handover-split",
        "Graceful handover, split where an observer session sees the leader's node deleted",
        "µs",
    );
    let grant_timeout = Duration::from_secs(10);

    ctx.progress.begin("handover: tenure");
    let cid = cluster_id("handover");
    let a = zk
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let b = zk
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let raw = zk.raw().await?;
    let latch_dir = znode(&cid, "leader/latch");
    let observer = Observer::start(zk, &latch_dir).await?;
    let mut samples = Vec::with_capacity(n);
    let mut leader_side = Vec::with_capacity(n);
    let mut standby_side = Vec::with_capacity(n);
    for i in 0..n + warmup {
        ctx.progress
            .detail(&format!("handover: tenure trial {}/{}", i + 1, n + warmup));
        let mut leader = a.dispatcher_leader_election().await?;
        leader.wait_for_leadership().await?;
        let standby = b.dispatcher_leader_election().await?;
        wait_children(&raw, &latch_dir, 2).await?;
        let waiter = granted_at(standby.leadership());
        let t0 = mono_ns();
        leader.stop().await?;
        let t1 = join_granted(waiter, grant_timeout).await?;
        let deleted = observer.expiries(&[t1])[0];
        standby.stop().await?;
        wait_children(&raw, &latch_dir, 0).await?;
        if i >= warmup {
            samples.push(us_between(t0, t1));
            if let Some(d) = deleted {
                leader_side.push(us_between(t0, d));
                standby_side.push(us_between(d, t1));
            }
        }
    }
    drop(observer);
    a.close().await?;
    b.close().await?;
    group.rows.push(Row::new(
        who::TENURE,
        "stop() → standby's leadership watch",
        samples,
    ));
    split.rows.push(
        Row::new(
            who::TENURE,
            "leader: stop() → its node is deleted",
            leader_side,
        )
        .paired("leader"),
    );
    split.rows.push(
        Row::new(
            who::TENURE,
            "standby: node deleted → leadership watch shows the term",
            standby_side,
        )
        .paired("standby"),
    );
    ctx.progress.end();

    ctx.progress.begin("handover: floor");
    let ca = zk.raw().await?;
    let cb = zk.raw().await?;
    let cid = cluster_id("handover-floor");
    let dir = znode(&cid, "raw/latch");
    ca.mkdir(&dir, &bench::persistent()).await?;
    let prefix_a = format!("{dir}/_c_{}-latch-", uuid::Uuid::new_v4());
    let prefix_b = format!("{dir}/_c_{}-latch-", uuid::Uuid::new_v4());
    let observer = Observer::start(zk, &dir).await?;
    let mut notify = Vec::with_capacity(n);
    let mut recipe = Vec::with_capacity(n);
    let mut leader_side = Vec::with_capacity(n);
    let mut standby_side = Vec::with_capacity(n);
    for i in 0..n + warmup {
        let (_, sa) = ca
            .create(&prefix_a, &[], &bench::ephemeral_sequential())
            .await?;
        let path_a = format!("{prefix_a}{sa}");
        let (_, sb) = cb
            .create(&prefix_b, &[], &bench::ephemeral_sequential())
            .await?;
        let path_b = format!("{prefix_b}{sb}");
        let line = bench::sorted_line(cb.list_children(&dir).await?);
        if line.len() != 2 || !path_a.ends_with(&line[0]) {
            bail!("unexpected floor line {line:?}");
        }
        let (stat, watcher) = cb.check_and_watch_stat(&path_a).await?;
        if stat.is_none() {
            bail!("the floor leader's node vanished");
        }
        let (cb2, dir2, b_seq) = (cb.clone(), dir.clone(), sb.into_i64());
        let waiter = tokio::spawn(async move {
            watcher.changed().await;
            let t_notify = mono_ns();
            let line = bench::sorted_line(cb2.list_children(&dir2).await?);
            let t_leader = mono_ns();
            if line.first().and_then(|c| bench::sequence(c)) != Some(b_seq) {
                bail!("the floor standby is not first after the delete: {line:?}");
            }
            anyhow::Ok((t_notify, t_leader))
        });
        let t0 = mono_ns();
        ca.delete(&path_a, None).await?;
        let (t_notify, t_leader) = tokio::time::timeout(grant_timeout, waiter).await???;
        let deleted = observer.expiries(&[t_leader])[0];
        cb.delete(&path_b, None).await?;
        if i >= warmup {
            notify.push(us_between(t0, t_notify));
            recipe.push(us_between(t0, t_leader));
            if let Some(d) = deleted {
                leader_side.push(us_between(t0, d));
                standby_side.push(us_between(d, t_leader));
            }
        }
    }
    drop(observer);
    split.rows.push(
        Row::new(
            who::FLOOR,
            "leader: delete() → its node is deleted",
            leader_side,
        )
        .paired("leader"),
    );
    split.rows.push(
        Row::new(
            who::FLOOR,
            "standby: node deleted → notification → get-children",
            standby_side,
        )
        .paired("standby"),
    );
    group.rows.push(Row::new(
        who::FLOOR,
        "delete → watch notification (delete + notify)",
        notify,
    ));
    group.rows.push(Row::new(
        who::FLOOR,
        "delete → notification → get-children",
        recipe,
    ));
    ctx.progress.end();

    let args = [("n", n.to_string()), ("warmup", warmup.to_string())];
    if let Some(p) = &ctx.peers.curator {
        let r = ctx
            .peer(p, "handover", &zk.connect_string(), &args, &mut out.notes)
            .await;
        group.rows.extend(peer_row_us(
            who::CURATOR,
            "LeaderLatch close() → standby's await()",
            &r,
            "handover",
        ));
    }
    if let Some(p) = &ctx.peers.kazoo {
        let r = ctx
            .peer(p, "handover", &zk.connect_string(), &args, &mut out.notes)
            .await;
        group.rows.extend(peer_row_us(
            who::KAZOO,
            "Lock release() → waiter's acquire()",
            &r,
            "handover",
        ));
    }
    out.groups.push(group);
    out.groups.push(split);
    Ok(())
}
