//! Graceful handover on etcd: the leader steps down; time until the standby knows it leads.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tenure::services::ElectionMode;
use tenure_core::ids::ComponentId;
use tenure_core::layout::Layout;

use crate::bench::{Ctx, cluster_id};
use crate::clock::{mono_ns, us_between, us_signed};
use crate::results::{Group, Row, ScenarioResult, who};
use crate::scenarios::handover::{granted_at, join_granted};

use super::deletions::Deletions;
use super::etcdctl::Etcdctl;
use super::metrics::FewestRequests;
use super::raw::{RawSession, deleted, watch};
use super::server::{Etcd, SESSION_TTL, etcd_key};

/// The samples of one implementation: total, leader's part, standby's part (µs).
#[derive(Default)]
struct Split {
    total: Vec<f64>,
    leader: Vec<f64>,
    standby: Vec<f64>,
}

impl Split {
    /// Records one handover from `start` to `granted`, split where the observer saw `key`
    /// deleted.
    async fn record(&mut self, observer: &Deletions, key: &str, start: u64, granted: u64) {
        self.total.push(us_between(start, granted));
        if let Some(d) = observer.wait_at(key, start).await {
            self.leader.push(us_between(start, d));
            self.standby.push(us_signed(d, granted));
        }
    }

    fn rows(self, implementation: &str, what: &str, leader: &str, standby: &str) -> [Row; 3] {
        [
            Row::new(implementation, what, self.total),
            Row::new(implementation, leader, self.leader).paired("leader"),
            Row::new(implementation, standby, self.standby).paired("standby"),
        ]
    }
}

/// Measures graceful handovers.
pub async fn run(
    ctx: &Ctx,
    etcd: &Etcd,
    etcdctl: Option<&Etcdctl>,
    out: &mut ScenarioResult,
) -> anyhow::Result<()> {
    out.title = "E2. Graceful handover (etcd)".into();
    out.method = "Two sessions (two simulated processes, two leases) on one latch; the leader \
        has confirmed its address (its leader information is published), the standby's key is \
        in line and its watch of the leader's key set (the harness waits until the latch has \
        two keys, then 20 ms). From the leader's step-down until the standby knows it leads. \
        **tenure**: `LeaderElection::stop()` → the standby's `leadership()` watch shows a term; \
        `stop()` is one transaction deleting the published leader information, the \
        component's leader key and the latch key while the latch key exists. **floor (same \
        requests)**: that transaction made directly with etcd-client → the standby's watch \
        sees the delete, and it leads: like tenure's latch, it knows it is first without a \
        read, since its predecessor was the first of the line it read (create revisions only \
        grow) (then, untimed, it watches its own key from that read). **etcdctl**: two \
        long-lived `etcdctl elect` processes on one election; SIGINT to the leader (it \
        resigns: one transaction deleting its key) → the standby's `Campaign` returns (a read \
        of the line), it reads its key and prints it; the time is from the signal to the \
        standby's first output line arriving on our pipe (no process start in it). The second \
        table splits each handover where an observer connection (a watch of the latch, in the \
        measuring process) sees the leader's key deleted (the standby's part is negative when \
        it heard of the deletion before the observer). *requests*: gRPC messages the server \
        received during one handover, every connection together, keep-alives left out \
        (warm-up trials, fewest seen)."
        .into();
    let n = ctx.sizes.handover;
    let warmup = ctx.sizes.warmup;
    let grant_timeout = Duration::from_secs(10);
    let mut group = Group::new("etcd-handover", "Graceful handover on etcd", "µs").with_cdf();
    let mut split = Group::new(
        "etcd-handover-split",
        "Graceful handover on etcd, split where an observer sees the leader's key deleted",
        "µs",
    );

    ctx.progress.begin("etcd handover: tenure");
    let cid = cluster_id("etcd-handover");
    let (a, a_backend) = etcd
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let (b, _b_backend) = etcd
        .services(&cid, ElectionMode::ProcessWide, ctx.blob_dir.path())
        .await?;
    let latch = etcd_key(&cid, "leader/latch");
    let leader_key = format!("{latch}/{:x}", a_backend.lease_id());
    let observer = Deletions::start(&etcd.endpoint(), &latch).await?;
    let mut s = Split::default();
    let mut requests = FewestRequests::default();
    for i in 0..n + warmup {
        ctx.progress.detail(&format!(
            "etcd handover: tenure trial {}/{}",
            i + 1,
            n + warmup
        ));
        let mut leader = a.dispatcher_leader_election().await?;
        let term = leader.wait_for_leadership().await?;
        if !leader.confirm(term.session_id, "bench://handover").await? {
            bail!("the leader's confirmation was not published");
        }
        let standby = b.dispatcher_leader_election().await?;
        etcd.wait_keys(&latch, 2).await?;
        let waiter = granted_at(standby.leadership());
        let handover = async {
            let t0 = mono_ns();
            leader.stop().await?;
            let t1 = join_granted(waiter, grant_timeout).await?;
            anyhow::Ok((t0, t1))
        };
        let (t0, t1) = if i < warmup {
            let (t, count) = etcd.counted(handover).await?;
            requests.add(count);
            t
        } else {
            handover.await?
        };
        if i >= warmup {
            s.record(&observer, &leader_key, t0, t1).await;
        }
        standby.stop().await?;
        etcd.wait_keys(&latch, 0).await?;
    }
    drop(observer);
    a.close().await?;
    b.close().await?;
    let [total, leader, standby] = s.rows(
        who::TENURE,
        "stop() (one txn: information, leader key, latch key) → standby's leadership watch",
        "leader: stop() → its key is deleted",
        "standby: key deleted → leadership watch shows the term",
    );
    group.rows.push(requests.on(total));
    split.rows.push(leader);
    split.rows.push(standby);
    ctx.progress.end();

    ctx.progress.begin("etcd handover: floor");
    let cid = cluster_id("etcd-handover-floor");
    let ra = RawSession::open(&etcd.endpoint(), SESSION_TTL).await?;
    let rb = RawSession::open(&etcd.endpoint(), SESSION_TTL).await?;
    let latch = etcd_key(&cid, "raw/latch");
    let layout = Layout::default();
    let info = etcd_key(&cid, &layout.leader_info(&ComponentId::Dispatcher));
    let info_dir = etcd_key(&cid, &layout.leader_dir(&ComponentId::Dispatcher));
    let unpublish = [info.clone(), info_dir];
    let observer = Deletions::start(&etcd.endpoint(), &latch).await?;
    let mut s = Split::default();
    let mut requests = FewestRequests::default();
    for i in 0..n + warmup {
        let lead = ra.campaign(&latch).await?;
        if lead.predecessor.is_some() {
            bail!("the floor leader is not first");
        }
        let own_a = watch(&ra.client(), &lead.key, lead.revision).await?;
        publish(&ra, &lead.key, &info).await?;
        let wait = rb.campaign(&latch).await?;
        let Some(predecessor) = wait.predecessor.clone() else {
            bail!("the floor standby leads before the handover");
        };
        let mut pred = watch(&rb.client(), &predecessor, wait.revision).await?;
        etcd.wait_keys(&latch, 2).await?;
        // Second behind the first of the line: first once its key is deleted.
        let revision = wait.revision;
        let standby = async move {
            deleted(&mut pred).await;
            anyhow::Ok((mono_ns(), revision))
        };
        let handover = async {
            let t0 = mono_ns();
            let (left, granted) = tokio::join!(ra.leave(&lead.key, &unpublish), async {
                tokio::time::timeout(grant_timeout, standby)
                    .await
                    .context("the floor standby was not granted in time")?
            });
            left?;
            let (t1, revision) = granted?;
            // The new leader watches its own key (untimed), as tenure's latch does.
            let own_b = watch(&rb.client(), &wait.key, revision).await?;
            anyhow::Ok((t0, t1, own_b))
        };
        let (t0, t1, own_b) = if i < warmup {
            let (t, count) = etcd.counted(handover).await?;
            requests.add(count);
            t
        } else {
            handover.await?
        };
        if i >= warmup {
            s.record(&observer, &lead.key, t0, t1).await;
        }
        drop(own_a);
        rb.leave(&wait.key, &[]).await?;
        drop(own_b);
    }
    drop(observer);
    ra.revoke().await;
    rb.revoke().await;
    let [total, leader, standby] = s.rows(
        who::FLOOR,
        "same requests: txn(delete information, leader key, latch key) → watch event",
        "leader: the txn → its key is deleted",
        "standby: key deleted → watch event",
    );
    group.rows.push(requests.on(total));
    split.rows.push(leader);
    split.rows.push(standby);
    ctx.progress.end();

    if let Some(p) = etcdctl {
        ctx.progress.begin("etcd handover: etcdctl");
        let k = ctx.sizes.etcdctl;
        let name = format!("/bench-etcdctl/{}", cluster_id("handover"));
        let observer = Deletions::start(&etcd.endpoint(), &name).await?;
        let mut s = Split::default();
        let mut requests = FewestRequests::default();
        let timeout = Duration::from_secs(30);
        let w = warmup.min(3);
        for i in 0..k + w {
            ctx.progress
                .detail(&format!("etcd handover: etcdctl trial {}/{}", i + 1, k + w));
            let mut a = p.elect(&etcd.endpoint(), &name, "a")?;
            let (_, key_a) = a.line_at(timeout).await?;
            let watches = etcd.requests().await?.of("Watch");
            let mut b = p.elect(&etcd.endpoint(), &name, "b")?;
            etcd.wait_keys(&name, 2).await?;
            // A new process is slow to get going: the standby is in place once its watch
            // request reached the server.
            etcd.wait_requests("Watch", watches + 1).await?;
            let handover = async {
                let t0 = mono_ns();
                a.interrupt()?;
                let (t1, key_b) = b.line_at(timeout).await?;
                anyhow::Ok((t0, t1, key_b))
            };
            let (t0, t1, key_b) = if i < w {
                let (t, count) = etcd.counted(handover).await?;
                requests.add(count);
                t
            } else {
                handover.await?
            };
            if !key_b.starts_with(&name) || key_b == key_a {
                bail!("the etcdctl standby printed {key_b:?}, not its key");
            }
            if i >= w {
                s.record(&observer, &key_a, t0, t1).await;
            }
            a.exit_within(timeout).await;
            b.interrupt()?;
            b.exit_within(timeout).await;
            etcd.wait_keys(&name, 0).await?;
        }
        drop(observer);
        let [total, leader, standby] = s.rows(
            who::ETCDCTL,
            "SIGINT to the leader (resign txn) → the standby's key printed",
            "leader: SIGINT → its key is deleted",
            "standby: key deleted → watch event → reads → its key printed",
        );
        group.rows.push(requests.on(total));
        split.rows.push(leader);
        split.rows.push(standby);
        ctx.progress.end();
    }
    out.groups.push(group);
    out.groups.push(split);
    Ok(())
}

/// The leader's fenced publication of its information (untimed setup): one transaction
/// comparing its latch key's create revision, putting the information under its lease.
async fn publish(s: &RawSession, latch_key: &str, info: &str) -> anyhow::Result<()> {
    use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
    let mut c = s.client();
    let rev = c
        .get(latch_key, None)
        .await?
        .kvs()
        .first()
        .map(|kv| kv.create_revision())
        .context("the floor leader's key is gone")?;
    let txn = Txn::new()
        .when([Compare::create_revision(latch_key, CompareOp::Equal, rev)])
        .and_then([TxnOp::put(
            info,
            "bench://handover",
            Some(PutOptions::new().with_lease(s.lease())),
        )]);
    if !c.txn(txn).await?.succeeded() {
        bail!("the floor leader's publication was fenced off");
    }
    Ok(())
}
