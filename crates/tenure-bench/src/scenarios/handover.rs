//! Graceful handover: the leader stops; time until the next contender knows it leads.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tenure::election::Leadership;
use tenure::services::ElectionMode;
use tenure_core::ids::ComponentId;
use tenure_core::layout::Layout;
use tenure_zookeeper::zk;
use tokio::sync::watch;

use crate::bench::{self, Ctx, Fewest, Zk, cluster_id, wait_children, znode};
use crate::clock::{mono_ns, us_between, us_signed};
use crate::results::{Group, Row, ScenarioResult, who};

use super::observer::Observer;

/// How long a trial waits for the observer to report the leader's node deleted.
const OBSERVER_PATIENCE: Duration = Duration::from_secs(5);
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
    out.method = "Two sessions (two simulated processes) on one latch; the leader has confirmed \
        its address (its leader information is published), the standby's node is in line and \
        its watch set (the harness waits until the latch has two nodes, then 20 ms); tenure's trials and \
        the same-requests floor's alternate, so both meet the server in the same state. From the \
        leader's stop call until the standby knows it leads. **tenure**: \
        `LeaderElection::stop()` → the standby's `leadership()` watch shows a term; `stop()` \
        removes the published leader information, the component's leader directory and the \
        latch node in one multi (the node's delete fences the others). **floor (same \
        requests)**: the same request made directly with zookeeper-client: `multi(delete \
        connection_info, delete leader directory, delete latch node)` → the standby's `exists` \
        watch fires, and it leads: like tenure's latch, it knows it is first without a read, \
        since its predecessor was the first of the line it read (sequence numbers only grow) \
        (then, untimed, it watches its own node: one `exists`, as tenure's latch sends before \
        parking a wait on a node it did not just create). \
        **floor (delete + notify only)**: the latch node's delete → the standby's watch fires, \
        and → + get-children (what Curator's recipe reads there); no leader information. \
        **Curator**: `LeaderLatch.close()` → the standby's `await()` returns (Curator's latch \
        publishes nothing). **kazoo**: `Lock.release()` → the waiting `acquire()` returns. \
        *requests*: the ZooKeeper requests of one handover, both sessions together, counted by \
        the server (`srvr`) over the untimed warm-up trials (fewest seen). The second table splits \
        tenure's and the same-requests floor's handover where an observer session (a persistent \
        watch on the latch) sees the leader's node deleted: the leader's part (stop → latch \
        node deleted, including the unpublish) and the standby's part (notification → leads, \
        with no read for the second of the line; negative when the standby led before the \
        observer's own notification came)."
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

    // tenure's trials and the same-requests floor's alternate, so both meet the server in the
    // same state (its JIT warm-up, its log, the machine's load).
    ctx.progress
        .begin("handover: tenure and floor, alternating");
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
    let mut requests = Fewest::default();

    let ca = zk.raw().await?;
    let cb = zk.raw().await?;
    let floor_cid = cluster_id("handover-floor");
    let layout = Layout::default();
    let dir = znode(&floor_cid, "raw/latch");
    let info = znode(&floor_cid, &layout.leader_info(&ComponentId::Dispatcher));
    let info_dir = znode(&floor_cid, &layout.leader_dir(&ComponentId::Dispatcher));
    ca.mkdir(&dir, &bench::persistent()).await?;
    let floor = Floor {
        ca: &ca,
        cb: &cb,
        dir: &dir,
        prefix_a: format!("{dir}/_c_{}-latch-", uuid::Uuid::new_v4()),
        prefix_b: format!("{dir}/_c_{}-latch-", uuid::Uuid::new_v4()),
        info: &info,
        info_dir: &info_dir,
        grant_timeout,
    };
    let floor_observer = Observer::start(zk, &dir).await?;
    let mut same = Vec::with_capacity(n);
    let mut floor_leader_side = Vec::with_capacity(n);
    let mut floor_standby_side = Vec::with_capacity(n);
    let mut floor_requests = Fewest::default();
    for i in 0..n + warmup {
        ctx.progress
            .detail(&format!("handover: trial {}/{}", i + 1, n + warmup));
        let mut leader = a.dispatcher_leader_election().await?;
        let term = leader.wait_for_leadership().await?;
        if !leader.confirm(term.session_id, "bench://handover").await? {
            bail!("the leader's confirmation was not published");
        }
        let standby = b.dispatcher_leader_election().await?;
        wait_children(&raw, &latch_dir, 2).await?;
        let waiter = granted_at(standby.leadership());
        let handover = async {
            let t0 = mono_ns();
            leader.stop().await?;
            let t1 = join_granted(waiter, grant_timeout).await?;
            anyhow::Ok((t0, t1))
        };
        let (t0, t1) = if i < warmup {
            let (t, count) = zk.counted(handover).await?;
            requests.add(count);
            t
        } else {
            handover.await?
        };
        let deleted = observer.deletion_after(t0, OBSERVER_PATIENCE).await;
        standby.stop().await?;
        wait_children(&raw, &latch_dir, 0).await?;
        if i >= warmup {
            samples.push(us_between(t0, t1));
            if let Some(d) = deleted {
                leader_side.push(us_between(t0, d));
                standby_side.push(us_signed(d, t1));
            }
        }

        let t = floor.trial(true, false, (i < warmup).then_some(zk)).await?;
        if let Some(count) = t.requests {
            floor_requests.add(count);
        }
        let deleted = floor_observer
            .deletion_after(t.start, OBSERVER_PATIENCE)
            .await;
        floor.cleanup(t.standby_node).await?;
        if i >= warmup {
            same.push(us_between(t.start, t.leader));
            if let Some(d) = deleted {
                floor_leader_side.push(us_between(t.start, d));
                floor_standby_side.push(us_signed(d, t.leader));
            }
        }
    }
    drop(observer);
    drop(floor_observer);
    a.close().await?;
    b.close().await?;
    group.rows.push(
        Row::new(
            who::TENURE,
            "stop() (one multi: information, directory, latch node) → standby's leadership watch",
            samples,
        )
        .with_requests(requests.get()),
    );
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

    ctx.progress.begin("handover: floor, delete + notify only");
    let mut notify = Vec::with_capacity(n);
    let mut recipe = Vec::with_capacity(n);
    let mut bare_requests = Fewest::default();
    for i in 0..n + warmup {
        let t = floor.trial(false, true, (i < warmup).then_some(zk)).await?;
        if let Some(count) = t.requests {
            bare_requests.add(count);
        }
        floor.cleanup(t.standby_node).await?;
        if i >= warmup {
            notify.push(us_between(t.start, t.notified));
            recipe.push(us_between(t.start, t.leader));
        }
    }
    split.rows.push(
        Row::new(
            who::FLOOR,
            "leader: one multi (information, directory, node) → its node is deleted",
            floor_leader_side,
        )
        .paired("leader"),
    );
    split.rows.push(
        Row::new(
            who::FLOOR,
            "standby: node deleted → notification",
            floor_standby_side,
        )
        .paired("standby"),
    );
    group.rows.push(
        Row::new(
            who::FLOOR,
            "same requests: multi(delete info, delete dir, delete latch node) → notification",
            same,
        )
        .with_requests(floor_requests.get()),
    );
    group.rows.push(
        Row::new(
            who::FLOOR,
            "delete + notify only: delete → watch notification",
            notify,
        )
        .with_requests(bare_requests.get()),
    );
    group.rows.push(
        Row::new(
            who::FLOOR,
            "delete + notify only: delete → notification → get-children",
            recipe,
        )
        .with_requests(bare_requests.get()),
    );
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

/// The raw-client handover: two sessions on one latch directory.
struct Floor<'a> {
    ca: &'a zk::Client,
    cb: &'a zk::Client,
    dir: &'a str,
    prefix_a: String,
    prefix_b: String,
    info: &'a str,
    info_dir: &'a str,
    grant_timeout: Duration,
}

/// When the steps of one raw handover happened ([`mono_ns`]).
struct FloorTrial {
    /// The leader starts to stop.
    start: u64,
    /// The standby's watch fired.
    notified: u64,
    /// The standby knew it leads: at the notification, or when its get-children showed it
    /// first.
    leader: u64,
    /// The standby's node, with the watch it keeps on it while it leads.
    standby_node: (String, zk::OneshotWatcher),
    /// The requests from `start` until the new leader's own-node watch is set, when counted.
    requests: Option<u64>,
}

impl Floor<'_> {
    /// One handover: A leads (and, with `publish`, has published its leader information), B
    /// waits on A's node; A stops (with `publish`: removing the information and its directory
    /// in the multi that deletes the node, as tenure's `stop()` does); B is notified and leads
    /// (with `reread`: after reading the line again). With `count`, the server's request
    /// counter is read right before and after the handover (untimed reads).
    async fn trial(
        &self,
        publish: bool,
        reread: bool,
        count: Option<&Zk>,
    ) -> anyhow::Result<FloorTrial> {
        let (ca, cb, dir) = (self.ca, self.cb, self.dir);
        let (_, sa) = ca
            .create(&self.prefix_a, &[], &bench::ephemeral_sequential())
            .await?;
        let path_a = format!("{}{sa}", self.prefix_a);
        // The leader watches its own node, as tenure's latch does; the watch stays set until
        // the node's deletion fires it (dropping it earlier would send a RemoveWatches).
        let (stat, own_a) = ca.check_and_watch_stat(&path_a).await?;
        if stat.is_none() {
            bail!("the floor leader's node vanished");
        }
        if publish {
            // What tenure's first confirmation of a term does when the leader directory is
            // missing (the previous stop removed it): the fenced create fails NoNode, the
            // directory is made, the fenced create again.
            let create = |w: &mut zk::MultiWriter<'_>| {
                w.add_check_version(&path_a, 0)?;
                w.add_create(self.info, b"bench://handover", &bench::ephemeral())
            };
            let mut w = ca.new_multi_writer();
            create(&mut w)?;
            if w.commit().await.is_err() {
                ca.mkdir(self.info_dir, &bench::persistent()).await?;
                let mut w = ca.new_multi_writer();
                create(&mut w)?;
                w.commit().await.context("floor publish")?;
            }
        }
        let (_, sb) = cb
            .create(&self.prefix_b, &[], &bench::ephemeral_sequential())
            .await?;
        let path_b = format!("{}{sb}", self.prefix_b);
        let line = bench::sorted_line(cb.list_children(dir).await?);
        if line.len() != 2 || !path_a.ends_with(&line[0]) {
            bail!("unexpected floor line {line:?}");
        }
        let (stat, watcher) = cb.check_and_watch_stat(&path_a).await?;
        if stat.is_none() {
            bail!("the floor leader's node vanished");
        }
        let (cb2, dir2, b_seq) = (cb.clone(), dir.to_owned(), sb.into_i64());
        let waiter = tokio::spawn(async move {
            watcher.changed().await;
            let t_notify = mono_ns();
            if !reread {
                // Second behind the first of the line: first now.
                return anyhow::Ok((t_notify, t_notify));
            }
            let line = bench::sorted_line(cb2.list_children(&dir2).await?);
            let t_leader = mono_ns();
            if line.first().and_then(|c| bench::sequence(c)) != Some(b_seq) {
                bail!("the floor standby is not first after the delete: {line:?}");
            }
            anyhow::Ok((t_notify, t_leader))
        });
        // The same pause before the stop as tenure's trials have (`wait_children`): both stop
        // from an idle moment, not one right on the heels of the standby's watch.
        tokio::time::sleep(bench::SETTLE).await;
        let before = match count {
            Some(zk) => Some(zk.received().await?),
            None => None,
        };
        let start = mono_ns();
        if publish {
            // What tenure's `stop()` sends: one multi deleting the leader information, its
            // directory and the latch node (the node's delete fences the others).
            let mut w = ca.new_multi_writer();
            w.add_delete(self.info, None)?;
            w.add_delete(self.info_dir, None)?;
            w.add_delete(&path_a, None)?;
            w.commit().await.context("floor stop")?;
        } else {
            ca.delete(&path_a, None).await?;
        }
        let (notified, leader) = tokio::time::timeout(self.grant_timeout, waiter).await???;
        own_a.changed().await;
        // The new leader watches its own node, as tenure's latch does (untimed).
        let (stat, own_b) = cb.check_and_watch_stat(&path_b).await?;
        if stat.is_none() {
            bail!("the floor standby's node vanished");
        }
        let requests = match (count, before) {
            (Some(zk), Some(before)) => Some(zk.requests_since(before).await?),
            _ => None,
        };
        Ok(FloorTrial {
            start,
            notified,
            leader,
            standby_node: (path_b, own_b),
            requests,
        })
    }

    /// The standby stops (untimed): its node is deleted, which fires its own-node watch.
    async fn cleanup(&self, (path, own): (String, zk::OneshotWatcher)) -> anyhow::Result<()> {
        self.cb.delete(&path, None).await?;
        own.changed().await;
        Ok(())
    }
}
