//! Crash failover on etcd: the leader process is killed with SIGKILL right after a renewal of
//! its lease; time until the standby leads, and its excess over the lease TTL.

use std::time::Duration;

use anyhow::{Context as _, bail};
use etcd_client::Client;
use tenure::services::ElectionMode;

use crate::bench::{Ctx, cluster_id};
use crate::child::Spawned;
use crate::clock::{mono_ns, us_between, us_signed};
use crate::results::{Group, Row, ScenarioResult, who};
use crate::scenarios::handover::{granted_at, join_granted};

use super::child::raw_latch_dir;
use super::deletions::Deletions;
use super::etcdctl::{ETCDCTL_TTL, Etcdctl, lease_of};
use super::raw::{RawSession, deleted, watch};
use super::server::{Etcd, SESSION_TTL, etcd_key};

/// One crash series: per trial the kill, the observer's deletion and the grant ([`mono_ns`]).
#[derive(Default)]
struct Crashes {
    kills: Vec<u64>,
    deletions: Vec<Option<u64>>,
    grants: Vec<u64>,
}

impl Crashes {
    fn push(&mut self, kill: u64, deletion: Option<u64>, grant: u64) {
        self.kills.push(kill);
        self.deletions.push(deletion);
        self.grants.push(grant);
    }

    /// The excess row (ms over the TTL) and the reaction row (µs from the deletion).
    fn rows(&self, ttl: Duration, implementation: &str, what: &str, reaction: &str) -> (Row, Row) {
        let ttl_ms = ttl.as_secs_f64() * 1e3;
        let totals: Vec<f64> = self
            .kills
            .iter()
            .zip(&self.grants)
            .map(|(k, g)| us_between(*k, *g) / 1e3)
            .collect();
        let excess: Vec<f64> = totals.iter().map(|t| t - ttl_ms).collect();
        let mut server = Vec::new();
        let mut reactions = Vec::new();
        for ((k, d), g) in self.kills.iter().zip(&self.deletions).zip(&self.grants) {
            if let Some(d) = d {
                server.push(us_between(*k, *d) / 1e3 - ttl_ms);
                reactions.push(us_signed(*d, *g));
            }
        }
        let mut excess =
            Row::new(implementation, what, excess).with("negotiated_timeout_ms", ttl_ms);
        // Only figures that exist: a NaN would be written as JSON `null` and not read back.
        if let Some(total) = crate::stats::summarize(&totals) {
            excess = excess
                .with("failover_median_ms", total.median)
                .with("failover_max_ms", total.max);
        }
        if let Some(server) = crate::stats::summarize(&server) {
            excess = excess.with("server_share_median_ms", server.median);
        }
        (excess, Row::new(implementation, reaction, reactions))
    }
}

/// Returns right after the server renewed `lease`: its remaining TTL, which the server reports
/// in whole seconds rounded down, went up between two reads a few milliseconds apart. The
/// lease then expires one TTL from now. Needs a TTL of at least 4 s (with a renewal every third
/// of it, a smaller TTL's whole seconds never rise).
async fn after_renewal(client: &mut Client, lease: i64, ttl: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + ttl + Duration::from_secs(5);
    let mut last = i64::MAX;
    loop {
        let left = client
            .lease_time_to_live(lease, None)
            .await
            .context("reading the leader's lease TTL")?
            .ttl();
        if left < 0 {
            bail!("the leader's lease {lease:x} is gone before the kill");
        }
        if left > last {
            return Ok(());
        }
        last = left;
        if tokio::time::Instant::now() > deadline {
            bail!("no renewal of the leader's lease {lease:x} seen within {ttl:?} + 5 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Reads the child's `LEADER <lease id>` line.
async fn leader_line(child: &mut Spawned) -> anyhow::Result<i64> {
    let line = child.line(Duration::from_secs(60)).await?;
    line.strip_prefix("LEADER ")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .with_context(|| format!("the child leader printed {line:?}"))
}

/// Measures crash failovers.
pub async fn run(
    ctx: &Ctx,
    etcd: &Etcd,
    etcdctl: Option<&Etcdctl>,
    out: &mut ScenarioResult,
) -> anyhow::Result<()> {
    out.title = "E3. Crash failover (etcd)".into();
    out.method = "The leader runs in a child process with the lease TTL under test and renews \
        its lease every third of the TTL (tenure: its session's own keep-alive; floor: the same \
        cadence); the standby (another session, in the measuring process) is in line with its \
        watch of the leader's key set. The harness reads the leader's lease TTL (etcd reports \
        whole seconds, rounded down) every 2 ms and kills the child with SIGKILL as soon as it \
        rises, i.e. right after a renewal, so the lease expires one TTL after the kill for every \
        implementation (without that, the kill falls anywhere in the renewal period and the \
        lease expires between ⅔ TTL and one TTL after it). **Excess** = from SIGKILL until the \
        standby knows it leads, minus the TTL. etcd revokes expired leases in a loop every \
        500 ms, so up to ~500 ms of the excess is the server's, spread at random and the same \
        for everyone; the **server's share** column is kill → an observer connection sees the \
        key deleted, minus the TTL. The **reaction** table takes it out: from that deletion to \
        the standby knowing it leads (watch event, and a read of the line where the recipe \
        needs one; negative when the standby heard of the deletion before the observer). \
        **tenure**: \
        `tenure-bench etcd-child --impl tenure` (HA services, dispatcher election) and a \
        tenure standby. **floor**: a raw-client leader child (the same join and read) and a \
        raw standby watching its predecessor, the first of the line, and leading when it is \
        deleted (no read: create revisions only grow; tenure's latch does the same). \
        **etcdctl**: two `etcdctl elect` processes; etcdctl 3.4's `elect` has no TTL flag \
        (its session's lease is Go's default 60 s, renewed every 20 s), so its rows have a TTL \
        of 60 s, not the one of the table; only the reaction compares directly."
        .into();
    for &(ttl, n) in &ctx.sizes.etcd_crash {
        let secs = ttl.as_secs();
        let mut group = Group::new(
            &format!("etcd-failover-{secs}s"),
            format!("Crash failover on etcd, lease TTL {secs} s: excess over the TTL"),
            "ms",
        )
        .with_cdf();
        let mut reaction = Group::new(
            &format!("etcd-failover-{secs}s-reaction"),
            format!(
                "Crash failover on etcd, lease TTL {secs} s: reaction (the server deletes the \
                 dead leader's key → standby leads)"
            ),
            "µs",
        );

        ctx.progress
            .begin(&format!("etcd failover {secs} s: tenure ({n} trials)"));
        let c = tenure_crashes(ctx, etcd, ttl, n).await?;
        let (e, r) = c.rows(
            ttl,
            who::TENURE,
            "SIGKILL → standby's leadership watch",
            "key deleted → standby's leadership watch",
        );
        group.rows.push(e);
        reaction.rows.push(r);
        ctx.progress.end();

        ctx.progress
            .begin(&format!("etcd failover {secs} s: floor ({n} trials)"));
        let c = floor_crashes(ctx, etcd, ttl, n).await?;
        let (e, r) = c.rows(
            ttl,
            who::FLOOR,
            "SIGKILL → lease expiry → watch event",
            "key deleted → watch event",
        );
        group.rows.push(e);
        reaction.rows.push(r);
        ctx.progress.end();

        if let Some(p) = etcdctl
            && ctx.sizes.etcdctl_crash > 0
        {
            let k = ctx.sizes.etcdctl_crash;
            ctx.progress
                .begin(&format!("etcd failover: etcdctl, 60 s lease ({k} trials)"));
            let c = etcdctl_crashes(ctx, etcd, p, k).await?;
            let (e, r) = c.rows(
                ETCDCTL_TTL,
                who::ETCDCTL,
                "etcdctl elect, lease TTL 60 s (fixed): SIGKILL → the standby's key printed",
                "key deleted → the standby's key printed",
            );
            group.rows.push(e.paired("etcdctl-60s"));
            reaction.rows.push(r);
            ctx.progress.end();
        } else if etcdctl.is_some() {
            out.notes.push(
                "etcdctl's crash failover is measured in the default run only: its lease TTL \
                 is fixed at 60 s."
                    .into(),
            );
        }
        out.groups.push(group);
        out.groups.push(reaction);
    }
    Ok(())
}

async fn tenure_crashes(
    ctx: &Ctx,
    etcd: &Etcd,
    ttl: Duration,
    n: usize,
) -> anyhow::Result<Crashes> {
    let secs = ttl.as_secs();
    let cid = cluster_id("etcd-crash");
    let (standby_services, _backend) = etcd
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let latch = etcd_key(&cid, "leader/latch");
    let observer = Deletions::start(&etcd.endpoint(), &latch).await?;
    let mut client = etcd.raw().await?;
    let grant_timeout = ttl * 3 + Duration::from_secs(10);
    let mut c = Crashes::default();
    for i in 0..n {
        ctx.progress.detail(&format!(
            "etcd failover {secs} s: tenure trial {}/{n}",
            i + 1
        ));
        let mut child = Spawned::this_binary(&[
            "etcd-child",
            "--impl",
            "tenure",
            "--endpoint",
            &etcd.endpoint(),
            "--cluster-id",
            &cid,
            "--ttl-s",
            &secs.to_string(),
        ])?;
        let lease = leader_line(&mut child).await?;
        let standby = standby_services.dispatcher_leader_election().await?;
        etcd.wait_keys(&latch, 2).await?;
        let waiter = granted_at(standby.leadership());
        after_renewal(&mut client, lease, ttl).await?;
        let t0 = mono_ns();
        child.kill()?;
        let t1 = join_granted(waiter, grant_timeout).await?;
        child.stop().await;
        let deletion = observer.wait_at(&format!("{latch}/{lease:x}"), t0).await;
        c.push(t0, deletion, t1);
        standby.stop().await?;
        etcd.wait_keys(&latch, 0).await?;
    }
    standby_services.close().await?;
    Ok(c)
}

async fn floor_crashes(ctx: &Ctx, etcd: &Etcd, ttl: Duration, n: usize) -> anyhow::Result<Crashes> {
    let secs = ttl.as_secs();
    let cid = cluster_id("etcd-crash-floor");
    let latch = raw_latch_dir(&cid);
    let standby = RawSession::open(&etcd.endpoint(), SESSION_TTL).await?;
    let observer = Deletions::start(&etcd.endpoint(), &latch).await?;
    let mut client = etcd.raw().await?;
    let grant_timeout = ttl * 3 + Duration::from_secs(10);
    let mut c = Crashes::default();
    for i in 0..n {
        ctx.progress.detail(&format!(
            "etcd failover {secs} s: floor trial {}/{n}",
            i + 1
        ));
        let mut child = Spawned::this_binary(&[
            "etcd-child",
            "--impl",
            "raw",
            "--endpoint",
            &etcd.endpoint(),
            "--cluster-id",
            &cid,
            "--ttl-s",
            &secs.to_string(),
        ])?;
        let lease = leader_line(&mut child).await?;
        let wait = standby.campaign(&latch).await?;
        let Some(predecessor) = wait.predecessor.clone() else {
            bail!("the floor standby leads before the crash");
        };
        let mut pred = watch(&standby.client(), &predecessor, wait.revision).await?;
        // Second behind the first of the line: first once its key is deleted.
        let waiter = tokio::spawn(async move {
            deleted(&mut pred).await;
            anyhow::Ok(mono_ns())
        });
        after_renewal(&mut client, lease, ttl).await?;
        let t0 = mono_ns();
        child.kill()?;
        let t1 = tokio::time::timeout(grant_timeout, waiter)
            .await
            .context("the floor standby was not granted in time")???;
        child.stop().await;
        let deletion = observer.wait_at(&predecessor, t0).await;
        c.push(t0, deletion, t1);
        standby.leave(&wait.key, &[]).await?;
    }
    standby.revoke().await;
    Ok(c)
}

async fn etcdctl_crashes(ctx: &Ctx, etcd: &Etcd, p: &Etcdctl, n: usize) -> anyhow::Result<Crashes> {
    let name = format!("/bench-etcdctl/{}", cluster_id("crash"));
    let observer = Deletions::start(&etcd.endpoint(), &name).await?;
    let mut client = etcd.raw().await?;
    let timeout = ETCDCTL_TTL * 2 + Duration::from_secs(30);
    let mut c = Crashes::default();
    for i in 0..n {
        ctx.progress
            .detail(&format!("etcd failover: etcdctl trial {}/{n}", i + 1));
        let mut a = p.elect(&etcd.endpoint(), &name, "a")?;
        let (_, key_a) = a.line_at(Duration::from_secs(30)).await?;
        let lease = lease_of(&key_a).with_context(|| format!("no lease in {key_a:?}"))?;
        let mut b = p.elect(&etcd.endpoint(), &name, "b")?;
        etcd.wait_keys(&name, 2).await?;
        after_renewal(&mut client, lease, ETCDCTL_TTL).await?;
        let t0 = mono_ns();
        a.kill()?;
        let (t1, key_b) = b.line_at(timeout).await?;
        if key_b == key_a || !key_b.starts_with(&name) {
            bail!("the etcdctl standby printed {key_b:?}, not its key");
        }
        a.stop().await;
        let deletion = observer.wait_at(&key_a, t0).await;
        c.push(t0, deletion, t1);
        b.interrupt()?;
        b.exit_within(Duration::from_secs(30)).await;
        etcd.wait_keys(&name, 0).await?;
    }
    Ok(c)
}
