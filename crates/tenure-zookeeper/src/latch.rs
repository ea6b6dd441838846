//! The leader latch: Curator's `LeaderLatch` recipe, so tenure and Flink contenders on one latch
//! agree who leads.
//!
//! - Each participant creates an EPHEMERAL_SEQUENTIAL znode `<latch dir>/_c_<uuid>-latch-<seq>`
//!   (Curator's protected mode: the `_c_<uuid>-` prefix finds the node again when the reply of
//!   the create was lost) with empty data.
//! - The participant whose node has the smallest sequence number (sorted by the number after
//!   `latch-`, not by name) leads; children that are not well-formed latch nodes are never in
//!   line ([`tenure_core::latch`] is the rule, shared with the tools). Every other participant
//!   watches only its predecessor, so a change wakes one participant (no herd effect). The
//!   leader watches its own node, so its deletion by anyone is noticed at once.
//! - Connection suspended: under [`SuspendedPolicy::RevokeOnSuspended`] leadership is revoked
//!   at once and, on reconnect, the old node is deleted and a new one created (Curator's
//!   `reset()`); under [`SuspendedPolicy::TolerateSuspended`] leadership is kept until the session
//!   is lost. Session lost: revoked; the node died with the session and a new one is created in
//!   the backend's new session.
//! - The fencing token is `(<latch node path>, <sequence>)`; fenced writes check that node.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use tenure_core::connection::{ConnectionState, SuspendedPolicy};
use tenure_core::driver::{Latch, LatchEvent};
use tenure_core::kv::{FencingToken, KvError};
use tenure_core::latch::{sequence as latch_sequence, sorted_participants};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};
use uuid::Uuid;
use zookeeper_client as zk;

use crate::error::is_transient;
use crate::paths::{child_path, latch_node_prefix, protected_prefix};
use crate::session::{Shared, Status, backoff};

/// A participation in a latch, returned by `join_latch`. Dropping it leaves the latch in the
/// background.
#[derive(Debug)]
pub(crate) struct ZkLatch {
    commands: mpsc::UnboundedSender<oneshot::Sender<Result<(), KvError>>>,
    stop: CancellationToken,
}

impl Drop for ZkLatch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[async_trait]
impl Latch for ZkLatch {
    async fn close(&self) -> Result<(), KvError> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(tx).is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }
}

/// Joins the latch whose directory znode is `dir`.
pub(crate) fn join(
    shared: &Arc<Shared>,
    dir: String,
    events: mpsc::UnboundedSender<LatchEvent>,
) -> Result<ZkLatch, KvError> {
    // Fail at once when the session is closed, so the election reports it.
    shared.client()?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let status = shared.subscribe_status();
    let task = LatchTask {
        shared: Arc::downgrade(shared),
        policy: shared.settings.suspended_policy,
        dir: dir.clone(),
        node: None,
        pending: None,
        leader: false,
        need_reset: false,
        seen: *status.borrow(),
        events,
        failures: 0,
    };
    let span = info_span!("latch", dir = %dir);
    tokio::spawn(
        task.run(cmd_rx, status, stop.clone(), shared.closed.clone())
            .instrument(span),
    );
    Ok(ZkLatch {
        commands: cmd_tx,
        stop,
    })
}

#[derive(Clone, Debug)]
struct Node {
    path: String,
    name: String,
    seq: i64,
    generation: u64,
}

/// A create whose reply was not seen (interrupted or lost with the connection).
#[derive(Clone, Copy, Debug)]
struct Pending {
    protection: Uuid,
    generation: u64,
}

struct LatchTask {
    shared: Weak<Shared>,
    policy: SuspendedPolicy,
    dir: String,
    node: Option<Node>,
    pending: Option<Pending>,
    leader: bool,
    need_reset: bool,
    seen: Status,
    events: mpsc::UnboundedSender<LatchEvent>,
    failures: u32,
}

/// What one step of the recipe leaves to wait for.
enum Wait {
    /// Step again right away.
    Again,
    /// Step again when this watch fires.
    Watch(zk::OneshotWatcher),
    /// Step again after a pause (a transient failure).
    Pause(Duration),
}

enum Wake {
    Stop,
    Closed,
    Close(oneshot::Sender<Result<(), KvError>>),
    Status,
    Stepped(Result<Wait, String>),
    Ready,
}

async fn fired(w: zk::OneshotWatcher) {
    // The client panics if it drops a watch without an event; that, too, means "look again".
    let _ = AssertUnwindSafe(w.changed()).catch_unwind().await;
}

impl LatchTask {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<oneshot::Sender<Result<(), KvError>>>,
        mut status: watch::Receiver<Status>,
        stop: CancellationToken,
        closed: CancellationToken,
    ) {
        let mut wait = Wait::Again;
        loop {
            let st = *status.borrow_and_update();
            self.on_status(st);
            let connected = st.state == ConnectionState::Connected;
            // Wait for whatever the last step asked for (or only for a status change while not
            // connected).
            // The wait (possibly a watch on our own node) stays alive until this round is over:
            // leaving the latch deletes the node while the watch is still set, so the client
            // sends no RemoveWatches request ahead of the delete.
            let current = std::mem::replace(&mut wait, Wait::Again);
            let mut waiting = Box::pin(async move {
                match current {
                    _ if !connected => std::future::pending::<()>().await,
                    Wait::Again => {}
                    Wait::Watch(w) => fired(w).await,
                    Wait::Pause(d) => tokio::time::sleep(d).await,
                }
            });
            let wake = tokio::select! {
                biased;
                _ = stop.cancelled() => Wake::Stop,
                _ = closed.cancelled() => Wake::Closed,
                cmd = commands.recv() => cmd.map_or(Wake::Stop, Wake::Close),
                changed = status.changed() => if changed.is_ok() { Wake::Status } else { Wake::Closed },
                _ = &mut waiting => Wake::Ready,
            };
            let wake = match wake {
                Wake::Ready => {
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => Wake::Stop,
                        _ = closed.cancelled() => Wake::Closed,
                        cmd = commands.recv() => cmd.map_or(Wake::Stop, Wake::Close),
                        changed = status.changed() => if changed.is_ok() { Wake::Status } else { Wake::Closed },
                        r = self.step(st) => Wake::Stepped(r),
                    }
                }
                other => other,
            };
            match wake {
                Wake::Stop => {
                    self.leave().await;
                    drop(waiting);
                    return;
                }
                Wake::Closed => {
                    self.revoke();
                    return;
                }
                Wake::Close(reply) => {
                    self.leave().await;
                    drop(waiting);
                    let _ = reply.send(Ok(()));
                    return;
                }
                Wake::Status | Wake::Ready => {}
                Wake::Stepped(Ok(w)) => {
                    self.failures = 0;
                    wait = w;
                }
                Wake::Stepped(Err(reason)) => {
                    warn!(%reason, "leader latch failed");
                    self.revoke();
                    let _ = self.events.send(LatchEvent::Failed(reason));
                    // Keep the node out of the line: a failed latch must not block others.
                    self.leave().await;
                    return;
                }
            }
        }
    }

    fn revoke(&mut self) {
        if self.leader {
            self.leader = false;
            info!("leadership revoked");
            let _ = self.events.send(LatchEvent::Revoked);
        }
    }

    /// Bookkeeping for a session status change (revocations happen here, at once).
    fn on_status(&mut self, st: Status) {
        if st.suspensions != self.seen.suspensions
            && self.policy == SuspendedPolicy::RevokeOnSuspended
        {
            self.revoke();
            // Curator's LeaderLatch resets (new node) on RECONNECTED under this policy.
            self.need_reset = true;
        }
        if st.state == ConnectionState::Lost || st.generation != self.seen.generation {
            self.revoke();
            // The node died with its session.
            self.node = None;
            self.pending = None;
            self.need_reset = false;
        }
        self.seen = st;
    }

    /// One step of the recipe (connected): reset if asked, make sure our node exists, check the
    /// line and return what to watch.
    async fn step(&mut self, st: Status) -> Result<Wait, String> {
        let Some(shared) = self.shared.upgrade() else {
            return Ok(Wait::Pause(Duration::from_secs(3600)));
        };
        let Ok((client, generation)) = shared.client_gen() else {
            return Ok(Wait::Pause(Duration::from_secs(3600)));
        };
        let acls = shared.acls();
        let retry_wait = shared.settings.retry_wait;
        drop(shared);
        if generation != st.generation {
            // The status will catch up; step again then.
            return Ok(Wait::Pause(Duration::from_millis(50)));
        }
        match self.step_with(&client, generation, acls).await {
            Ok(w) => Ok(w),
            Err(e) if is_transient(&e) => {
                self.failures = self.failures.saturating_add(1);
                debug!(error = %e, "latch step interrupted; retrying");
                Ok(Wait::Pause(
                    backoff(retry_wait.min(Duration::from_millis(200)), self.failures)
                        .min(Duration::from_secs(5)),
                ))
            }
            Err(
                e @ (zk::Error::NoAuth
                | zk::Error::InvalidAcl
                | zk::Error::NoChildrenForEphemerals
                | zk::Error::BadArguments(_)
                | zk::Error::AuthFailed),
            ) => Err(format!("latch {}: {e}", self.dir)),
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                warn!(error = %e, "latch step failed; retrying");
                Ok(Wait::Pause(backoff(retry_wait, self.failures)))
            }
        }
    }

    async fn step_with(
        &mut self,
        client: &zk::Client,
        generation: u64,
        acls: zk::Acls<'static>,
    ) -> Result<Wait, zk::Error> {
        if self.need_reset {
            if let Some(node) = self.node.take() {
                info!(node = %node.path, "re-joining the latch after a suspended connection");
                match client.delete(&node.path, None).await {
                    Ok(()) | Err(zk::Error::NoNode) => {}
                    Err(e) => {
                        self.node = Some(node);
                        return Err(e);
                    }
                }
            }
            self.delete_pending(client).await?;
            self.need_reset = false;
        }
        if self.node.is_none() {
            self.adopt_pending(client, generation).await?;
        }
        if self.node.is_none() {
            self.create_node(client, generation, acls).await?;
        }
        let Some(node) = self.node.clone() else {
            return Ok(Wait::Again);
        };
        let children = match client.list_children(&self.dir).await {
            Ok(c) => c,
            Err(zk::Error::NoNode) => Vec::new(),
            Err(e) => return Err(e),
        };
        let line = sorted_participants(&children);
        match line.iter().position(|(_, name)| *name == node.name) {
            None => {
                // Our node is gone (deleted by someone): we do not lead; join again.
                warn!(node = %node.path, "the latch node disappeared; joining again");
                self.revoke();
                self.node = None;
                Ok(Wait::Again)
            }
            Some(0) => {
                if !self.leader {
                    self.leader = true;
                    info!(node = %node.path, "leadership granted");
                    let token = FencingToken::new(node.path.as_str(), node.seq);
                    let _ = self.events.send(LatchEvent::Granted(token));
                }
                match client.check_and_watch_stat(&node.path).await? {
                    (Some(_), w) => Ok(Wait::Watch(w)),
                    (None, _) => Ok(Wait::Again),
                }
            }
            Some(i) => {
                self.revoke();
                let predecessor = child_path(&self.dir, line[i - 1].1);
                debug!(%predecessor, "waiting for the predecessor");
                match client.check_and_watch_stat(&predecessor).await? {
                    (Some(_), w) => Ok(Wait::Watch(w)),
                    (None, _) => Ok(Wait::Again),
                }
            }
        }
    }

    async fn create_node(
        &mut self,
        client: &zk::Client,
        generation: u64,
        acls: zk::Acls<'static>,
    ) -> Result<(), zk::Error> {
        let protection = Uuid::new_v4();
        let prefix = latch_node_prefix(&self.dir, &protection);
        let opts = zk::CreateMode::EphemeralSequential.with_acls(acls);
        let parents = zk::CreateMode::Persistent.with_acls(acls);
        let mut tried_multi = false;
        for _ in 0..3 {
            self.pending = Some(Pending {
                protection,
                generation,
            });
            match client.create(&prefix, &[], &opts).await {
                Ok((_, seq)) => {
                    let path = format!("{prefix}{seq}");
                    let name = path.rsplit('/').next().unwrap_or_default().to_owned();
                    self.take_node(name, seq.into_i64(), generation, "joined the latch");
                    self.pending = None;
                    return Ok(());
                }
                Err(zk::Error::NoNode) => {
                    self.pending = None;
                    // A new latch (a job's own election) usually lacks its directory and that
                    // directory's parent: create both and the node in one multi (one write
                    // instead of three). If that guess is wrong, make the directories.
                    if !tried_multi {
                        tried_multi = true;
                        self.pending = Some(Pending {
                            protection,
                            generation,
                        });
                        match self
                            .create_with_dirs(client, &prefix, &opts, &parents)
                            .await
                        {
                            Ok(Some(name)) => {
                                self.pending = None;
                                return self.adopt_created(name, generation);
                            }
                            Ok(None) => self.pending = None,
                            // With the reply lost, the node may exist: `pending` finds it.
                            Err(e) => return Err(e),
                        }
                    }
                    match client.mkdir(&self.dir, &parents).await {
                        Ok(()) | Err(zk::Error::NodeExists) => {}
                        Err(e) => return Err(e),
                    }
                }
                // With the reply lost, the node may exist: `pending` finds it next step.
                Err(e) => return Err(e),
            }
        }
        Err(zk::Error::NoNode)
    }

    /// Creates the latch directory's parent, the directory and the node in one multi; the
    /// node's name, or `None` if a directory exists already or a deeper one is missing.
    async fn create_with_dirs(
        &self,
        client: &zk::Client,
        prefix: &str,
        node: &zk::CreateOptions<'_>,
        dirs: &zk::CreateOptions<'_>,
    ) -> Result<Option<String>, zk::Error> {
        let Some(parent) = crate::paths::parent_path(&self.dir).filter(|p| *p != "/") else {
            return Ok(None);
        };
        let mut w = client.new_multi_writer();
        w.add_create(parent, &[], dirs)?;
        w.add_create(&self.dir, &[], dirs)?;
        w.add_create(prefix, &[], node)?;
        match w.commit().await {
            Ok(results) => match results.into_iter().last() {
                Some(zk::MultiWriteResult::Create { path, .. }) => {
                    Ok(path.rsplit('/').next().map(str::to_owned))
                }
                _ => Err(zk::Error::UnexpectedError(
                    "a multi create returned no created node".into(),
                )),
            },
            Err(zk::MultiWriteError::OperationFailed { .. }) => Ok(None),
            Err(zk::MultiWriteError::RequestFailed { source }) => Err(source),
        }
    }

    /// Takes the node `name` created in this latch's directory as ours.
    fn adopt_created(&mut self, name: String, generation: u64) -> Result<(), zk::Error> {
        let seq = latch_sequence(&name).ok_or_else(|| {
            zk::Error::UnexpectedError(format!(
                "created latch node {} has no sequence",
                child_path(&self.dir, &name)
            ))
        })?;
        self.take_node(
            name,
            seq,
            generation,
            "joined the latch (directories created with the node)",
        );
        Ok(())
    }

    /// Takes the node `name` (sequence `seq`) in this latch's directory as ours.
    fn take_node(&mut self, name: String, seq: i64, generation: u64, how: &str) {
        let path = child_path(&self.dir, &name);
        debug!(node = %path, "{how}");
        self.node = Some(Node {
            path,
            name,
            seq,
            generation,
        });
    }

    /// Our nodes from an interrupted create (found by the protection prefix).
    async fn pending_nodes(&self, client: &zk::Client) -> Result<Vec<String>, zk::Error> {
        let Some(p) = self.pending else {
            return Ok(Vec::new());
        };
        let prefix = protected_prefix(&p.protection);
        match client.list_children(&self.dir).await {
            Ok(children) => Ok(children
                .into_iter()
                .filter(|c| c.starts_with(&prefix))
                .collect()),
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn adopt_pending(
        &mut self,
        client: &zk::Client,
        generation: u64,
    ) -> Result<(), zk::Error> {
        let Some(p) = self.pending else { return Ok(()) };
        if p.generation != generation {
            self.pending = None;
            return Ok(());
        }
        let found = self.pending_nodes(client).await?;
        self.pending = None;
        if let Some(name) = found.into_iter().next()
            && let Some(seq) = latch_sequence(&name)
        {
            self.take_node(
                name,
                seq,
                generation,
                "found the latch node of an interrupted create",
            );
        }
        Ok(())
    }

    async fn delete_pending(&mut self, client: &zk::Client) -> Result<(), zk::Error> {
        for name in self.pending_nodes(client).await? {
            match client.delete(&child_path(&self.dir, &name), None).await {
                Ok(()) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
        self.pending = None;
        Ok(())
    }

    /// Leaves the latch: deletes our node (in the background if the connection is down, as
    /// Curator's guaranteed delete does) so the next participant is granted.
    async fn leave(&mut self) {
        self.leader = false;
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let Ok((client, generation)) = shared.client_gen() else {
            return;
        };
        let timeout = shared.settings.connection_timeout;
        let status = shared.subscribe_status();
        drop(shared);
        let connected = {
            let s = *status.borrow();
            s.state == ConnectionState::Connected && s.generation == generation
        };
        let mut doomed: Vec<Target> = Vec::new();
        if let Some(node) = self.node.take()
            && node.generation == generation
        {
            doomed.push(Target::Path(node.path));
        }
        if let Some(p) = self.pending.take()
            && p.generation == generation
        {
            doomed.push(Target::Protected {
                dir: self.dir.clone(),
                prefix: protected_prefix(&p.protection),
            });
        }
        for target in doomed {
            if connected
                && let Ok(Ok(())) = tokio::time::timeout(timeout, target.delete(&client)).await
            {
                debug!(?target, "left the latch");
                continue;
            }
            debug!(?target, "deleting the latch node later");
            tokio::spawn(delete_later(
                self.shared.clone(),
                status.clone(),
                target,
                generation,
            ));
        }
    }
}

/// A latch node to delete: by path, or by the protection prefix of a create whose reply was
/// not seen.
#[derive(Debug)]
enum Target {
    Path(String),
    Protected { dir: String, prefix: String },
}

impl Target {
    async fn delete(&self, client: &zk::Client) -> Result<(), zk::Error> {
        let paths = match self {
            Target::Path(p) => vec![p.clone()],
            Target::Protected { dir, prefix } => match client.list_children(dir).await {
                Ok(children) => children
                    .iter()
                    .filter(|c| c.starts_with(prefix.as_str()))
                    .map(|c| child_path(dir, c))
                    .collect(),
                Err(zk::Error::NoNode) => Vec::new(),
                Err(e) => return Err(e),
            },
        };
        for p in paths {
            match client.delete(&p, None).await {
                Ok(()) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Deletes `target` once session `generation` is connected again; nothing to do once that
/// session is gone (its ephemeral node went with it).
async fn delete_later(
    shared: Weak<Shared>,
    mut status: watch::Receiver<Status>,
    target: Target,
    generation: u64,
) {
    loop {
        let s = *status.borrow_and_update();
        if s.generation != generation || s.state == ConnectionState::Lost {
            return;
        }
        if s.state == ConnectionState::Connected {
            let Some(sh) = shared.upgrade() else { return };
            let Ok((client, g)) = sh.client_gen() else {
                return;
            };
            drop(sh);
            if g != generation {
                return;
            }
            match target.delete(&client).await {
                Ok(()) => return,
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    warn!(?target, error = %e, "could not delete the latch node");
                    return;
                }
            }
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}
