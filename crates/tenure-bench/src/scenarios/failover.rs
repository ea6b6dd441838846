//! Crash failover: the leader process is killed with SIGKILL; time until the standby leads, for
//! each session timeout. The floor is the timeout itself, so the tables show the excess; an
//! observer session also sees the moment the server expires the leader's session, which splits
//! the excess into the server's share and the standby's reaction.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tenure::services::ElectionMode;

use crate::bench::{self, Ctx, Zk, cluster_id, wait_children, znode};
use crate::child::{Spawned, raw_latch_dir};
use crate::clock::{mono_ns, us_between, us_signed};
use crate::peers::PeerResult;
use crate::results::{Group, Row, ScenarioResult, who};

use super::handover::{granted_at, join_granted};
use super::observer::Observer;

/// Reads the child's `LEADER <negotiated ms>` line.
async fn leader_line(child: &mut Spawned) -> anyhow::Result<f64> {
    let line = child.line(Duration::from_secs(60)).await?;
    line.strip_prefix("LEADER ")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("the child leader printed {line:?}"))
}

/// One crash series: totals (ms), and the moments (mono ns) of each kill and grant.
#[derive(Default)]
struct Crashes {
    totals_ms: Vec<f64>,
    kills: Vec<u64>,
    grants: Vec<u64>,
    negotiated_ms: f64,
}

impl Crashes {
    /// The excess row and the reaction row (from the observer's expiry moments).
    fn rows(
        &self,
        observer: &Observer,
        implementation: &str,
        what: &str,
        reaction: &str,
    ) -> (Row, Row) {
        let excess: Vec<f64> = self
            .totals_ms
            .iter()
            .map(|t| t - self.negotiated_ms)
            .collect();
        let total = crate::stats::summarize(&self.totals_ms);
        let expiries = observer.deletions_after(&self.kills);
        let mut server = Vec::new();
        let mut reactions = Vec::new();
        for (i, e) in expiries.iter().enumerate() {
            let Some(e) = *e else { continue };
            if let Some(k) = self.kills.get(i) {
                server.push(us_between(*k, e) / 1e3 - self.negotiated_ms);
            }
            reactions.push(us_signed(e, self.grants[i]));
        }
        let server = crate::stats::summarize(&server);
        let excess = Row::new(implementation, what, excess)
            .with("negotiated_timeout_ms", self.negotiated_ms)
            .with("failover_median_ms", total.map_or(f64::NAN, |s| s.median))
            .with("failover_max_ms", total.map_or(f64::NAN, |s| s.max))
            .with(
                "server_share_median_ms",
                server.map_or(f64::NAN, |s| s.median),
            );
        (excess, Row::new(implementation, reaction, reactions))
    }
}

/// The server's tick (the testkit's `tickTime`).
const TICK: Duration = tenure_testkit::zookeeper::TICK;
/// Where in a tick a dead session's timeout ends when the kill is aligned.
const PHASE: Duration = Duration::from_millis(100);

/// Waits until the moment M at which M + `timeout` lies [`PHASE`] into a server tick. ZooKeeper
/// rounds a session's expiry up to a multiple of its tick (in its JVM's `System.nanoTime()`
/// milliseconds, which is CLOCK_MONOTONIC, like [`mono_ns`]); a kill at M makes the session
/// expire `TICK - PHASE` after its timeout, the same for every implementation, instead of a
/// random 0–`TICK`.
async fn align_kill(timeout: Duration) {
    let tick = TICK.as_nanos() as u64;
    let want = (PHASE.as_nanos() as u64 + tick - (timeout.as_nanos() as u64 % tick)) % tick;
    let now = mono_ns();
    let mut target = now - now % tick + want;
    while target < now + 5_000_000 {
        target += tick;
    }
    let sleep = Duration::from_nanos(target - now).saturating_sub(Duration::from_millis(2));
    tokio::time::sleep(sleep).await;
    while mono_ns() < target {
        std::hint::spin_loop();
    }
}

/// Measures crash failovers.
pub async fn run(ctx: &Ctx, zk: &Zk, out: &mut ScenarioResult) -> anyhow::Result<()> {
    out.title = "3. Crash failover".into();
    out.method = "The leader runs in a child process with the session timeout under test and \
        keeps its session busy (a read every 10 ms, so its last contact with the server is the \
        moment of the kill); the standby (another session, in the measuring process) is in line \
        with its watch set. **Excess** = from SIGKILL of the leader until the standby knows it \
        leads, minus the negotiated session timeout. The server expires sessions on its tick \
        (200 ms here), so 0–200 ms of the excess is the server's, spread at random and the same \
        for everyone: with few trials it dominates the comparison. The **reaction** table takes \
        it out: an observer session (a persistent watch on the latch, in the measuring process) \
        records when the server deletes the dead leader's node (the first deletion after the \
        kill), and the reaction is the time from that moment to the standby knowing it leads \
        (notification, and a re-read of the line where the recipe needs one); negative when \
        the standby led before the observer's own notification came. \
        **tenure**: `tenure-bench child leader --impl tenure` (HA services, dispatcher \
        election) and a tenure standby. **floor**: a raw-client leader child and a raw standby \
        that watches its predecessor, the first of the line, and leads when notified (no \
        read: sequence numbers only grow; tenure's latch does the same, Curator's re-reads). \
        **Curator** / **kazoo**: their peer programs do the same with a child JVM / Python process \
        (`destroyForcibly()` / `kill()` = SIGKILL)."
        .into();
    for &(timeout, n) in &ctx.sizes.crash {
        let secs = timeout.as_secs();
        let mut group = Group::new(
            &format!("failover-{secs}s"),
            format!("Crash failover, session timeout {secs} s: excess over the timeout"),
            "ms",
        )
        .with_cdf();
        let mut reaction = Group::new(
            &format!("failover-{secs}s-reaction"),
            format!(
                "Crash failover, session timeout {secs} s: reaction (server deletes the dead \
                 leader's node → standby leads)"
            ),
            "µs",
        );

        ctx.progress
            .begin(&format!("failover {secs} s: tenure ({n} trials)"));
        let cid = cluster_id("crash");
        let latch_dir = znode(&cid, "leader/latch");
        let observer = Observer::start(zk, &latch_dir).await?;
        let c = tenure_crashes(ctx, zk, &cid, timeout, n).await?;
        let (e, r) = c.rows(
            &observer,
            who::TENURE,
            "SIGKILL → standby's leadership watch",
            "node deleted → standby's leadership watch",
        );
        group.rows.push(e);
        reaction.rows.push(r);
        drop(observer);
        ctx.progress.end();

        ctx.progress
            .begin(&format!("failover {secs} s: floor ({n} trials)"));
        let cid = cluster_id("crash-floor");
        let observer = Observer::start(zk, &raw_latch_dir(&cid)).await?;
        let c = floor_crashes(ctx, zk, &cid, timeout, n).await?;
        let (e, r) = c.rows(
            &observer,
            who::FLOOR,
            "SIGKILL → expiry → notification",
            "node deleted → notification",
        );
        group.rows.push(e);
        reaction.rows.push(r);
        drop(observer);
        ctx.progress.end();

        let args = [
            ("n", n.to_string()),
            ("timeout-ms", timeout.as_millis().to_string()),
            ("tick-ms", TICK.as_millis().to_string()),
            ("phase-ms", PHASE.as_millis().to_string()),
        ];
        for (peer, implementation, what, root) in [
            (
                &ctx.peers.curator,
                who::CURATOR,
                "LeaderLatch: SIGKILL of the leader JVM → standby's await()",
                "/bench-curator",
            ),
            (
                &ctx.peers.kazoo,
                who::KAZOO,
                "Lock: SIGKILL of the holder → waiter's acquire()",
                "/bench-kazoo",
            ),
        ] {
            let Some(p) = peer else { continue };
            let observer =
                Observer::start(zk, &format!("{root}/crash-{}", timeout.as_millis())).await?;
            let r = ctx
                .peer(p, "crash", &zk.connect_string(), &args, &mut out.notes)
                .await;
            if let Some(c) = peer_crashes(&r, timeout) {
                let (e, r) = c.rows(
                    &observer,
                    implementation,
                    what,
                    "node deleted → standby leads",
                );
                group.rows.push(e);
                reaction.rows.push(r);
            }
        }
        out.groups.push(group);
        out.groups.push(reaction);
    }
    Ok(())
}

async fn tenure_crashes(
    ctx: &Ctx,
    zk: &Zk,
    cid: &str,
    timeout: Duration,
    n: usize,
) -> anyhow::Result<Crashes> {
    let secs = timeout.as_secs();
    let standby_services = zk
        .services(cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let raw = zk.raw().await?;
    let latch_dir = znode(cid, "leader/latch");
    let grant_timeout = timeout * 3 + Duration::from_secs(10);
    let mut c = Crashes::default();
    for i in 0..n {
        ctx.progress
            .detail(&format!("failover {secs} s: tenure trial {}/{n}", i + 1));
        let mut child = Spawned::start("leader", "tenure", &zk.connect_string(), cid, timeout)?;
        c.negotiated_ms = leader_line(&mut child).await?;
        let standby = standby_services.dispatcher_leader_election().await?;
        wait_children(&raw, &latch_dir, 2).await?;
        let waiter = granted_at(standby.leadership());
        align_kill(Duration::from_secs_f64(c.negotiated_ms / 1e3)).await;
        let t0 = mono_ns();
        child.kill()?;
        let t1 = join_granted(waiter, grant_timeout).await?;
        child.stop().await;
        standby.stop().await?;
        wait_children(&raw, &latch_dir, 0).await?;
        c.totals_ms.push(us_between(t0, t1) / 1e3);
        c.kills.push(t0);
        c.grants.push(t1);
    }
    standby_services.close().await?;
    Ok(c)
}

async fn floor_crashes(
    ctx: &Ctx,
    zk: &Zk,
    cid: &str,
    timeout: Duration,
    n: usize,
) -> anyhow::Result<Crashes> {
    let secs = timeout.as_secs();
    let dir = raw_latch_dir(cid);
    let standby = zk.raw().await?;
    let grant_timeout = timeout * 3 + Duration::from_secs(10);
    let mut c = Crashes::default();
    for i in 0..n {
        ctx.progress
            .detail(&format!("failover {secs} s: floor trial {}/{n}", i + 1));
        let mut child = Spawned::start("leader", "raw", &zk.connect_string(), cid, timeout)?;
        c.negotiated_ms = leader_line(&mut child).await?;
        let prefix = format!("{dir}/latch-");
        let (_, seq) = standby
            .create(&prefix, &[], &bench::ephemeral_sequential())
            .await?;
        let line = bench::sorted_line(standby.list_children(&dir).await?);
        if line.len() != 2 {
            bail!("unexpected floor line {line:?}");
        }
        let (stat, watcher) = standby
            .check_and_watch_stat(&format!("{dir}/{}", line[0]))
            .await?;
        if stat.is_none() {
            bail!("the floor leader's node vanished before the kill");
        }
        // Second behind the first of the line: the deletion's notification makes it first,
        // with no read (as tenure's latch).
        let waiter = tokio::spawn(async move {
            watcher.changed().await;
            anyhow::Ok(mono_ns())
        });
        align_kill(Duration::from_secs_f64(c.negotiated_ms / 1e3)).await;
        let t0 = mono_ns();
        child.kill()?;
        let t1 = tokio::time::timeout(grant_timeout, waiter).await???;
        child.stop().await;
        standby.delete(&format!("{prefix}{seq}"), None).await?;
        c.totals_ms.push(us_between(t0, t1) / 1e3);
        c.kills.push(t0);
        c.grants.push(t1);
    }
    Ok(c)
}

fn peer_crashes(results: &[PeerResult], timeout: Duration) -> Option<Crashes> {
    let crash = results.iter().find(|r| r.scenario == "crash")?;
    let moments = |scenario: &str| -> Vec<u64> {
        results
            .iter()
            .find(|r| r.scenario == scenario)
            .map(|r| r.samples_ns.iter().map(|g| *g as u64).collect())
            .unwrap_or_default()
    };
    Some(Crashes {
        totals_ms: crash.samples_ms(),
        kills: moments("crash-kills"),
        grants: moments("crash-grants"),
        negotiated_ms: crash
            .num("negotiated_timeout_ms")
            .unwrap_or(timeout.as_millis() as f64),
    })
}
