//! The leader latch: fabric8's / client-go's leader election on the
//! `control-plane.alpha.kubernetes.io/leader` annotation of one ConfigMap.
//!
//! Every retry period (and at once when the ConfigMap changes, while not leading) the latch
//! reads the ConfigMap: it acquires the lease when the record is released or expired
//! ([`crate::lease::is_free`]), renews it while it holds it, and steps down (revokes) when it
//! cannot confirm a renewal within the renew deadline, or sees another holder. All writes are
//! replaces conditioned on `resourceVersion`. Each campaign uses a fresh holder identity, so
//! every acquisition changes the holder and increments `leaderTransitions`, which is the term
//! (the fencing token's epoch). Closing the latch releases the record (empty holder).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tenure_core::driver::{Latch, LatchEvent};
use tenure_core::kv::{FencingToken, KvError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::api::ApiError;
use crate::lease::{self, Observation};
use crate::names::CmKind;
use crate::store::{Landed, Plan};
use crate::{Shared, TermInfo, cm};

/// One process's place in a latch.
pub(crate) struct KubernetesLatch {
    lock_cm: String,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for KubernetesLatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesLatch")
            .field("lock", &self.lock_cm)
            .finish()
    }
}

#[async_trait]
impl Latch for KubernetesLatch {
    async fn close(&self) -> Result<(), KvError> {
        self.cancel.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        Ok(())
    }
}

impl Drop for KubernetesLatch {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Counts running latch tasks so a closing backend can wait for their releases.
struct Active(Arc<Shared>);

impl Active {
    fn new(sh: &Arc<Shared>) -> Self {
        sh.latches_active.send_modify(|n| *n += 1);
        Self(sh.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0
            .latches_active
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Waits (bounded) until every latch task has ended and released its record.
pub(crate) async fn wait_released(sh: &Shared) {
    let mut rx = sh.latches_active.subscribe();
    let _ = tokio::time::timeout(sh.settings.request_timeout * 3, rx.wait_for(|n| *n == 0)).await;
}

/// Joins the latch held in ConfigMap `lock_cm`.
pub(crate) fn join(
    sh: Arc<Shared>,
    lock_cm: String,
    events: mpsc::UnboundedSender<LatchEvent>,
) -> KubernetesLatch {
    let cancel = sh.cancel.child_token();
    let active = Active::new(&sh);
    let task = tokio::spawn(run(sh, lock_cm.clone(), events, cancel.clone(), active));
    KubernetesLatch {
        lock_cm,
        cancel,
        task: Mutex::new(Some(task)),
    }
}

fn new_identity() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The outcome of one round.
enum Step {
    /// This process holds the lease with this term.
    Leading(i64),
    /// Someone else holds it (or it vanished while this process held it).
    NotLeading,
    /// Could not tell (request failed, conflict); retry soon.
    Retry { soon: bool },
}

async fn run(
    sh: Arc<Shared>,
    lock_cm: String,
    events: mpsc::UnboundedSender<LatchEvent>,
    cancel: CancellationToken,
    _active: Active,
) {
    let deadline = sh.settings.effective_renew_deadline();
    let retry = sh.settings.retry_period;
    let mut identity = new_identity();
    let mut obs: Option<Observation> = None;
    // (term, start of the last confirmed renewal)
    let mut leading: Option<(i64, u64)> = None;
    let mut changes = sh.watcher.changes();
    let mut warned = false;
    let revoke = |leading: &mut Option<(i64, u64)>, identity: &mut String, why: &str| {
        if let Some((epoch, _)) = leading.take() {
            sh.revoke(&lock_cm, epoch);
            info!(lock = %lock_cm, term = epoch, "leadership lost: {why}");
            let _ = events.send(LatchEvent::Revoked);
            *identity = new_identity();
        }
    };
    loop {
        if cancel.is_cancelled() {
            break;
        }
        if let Some((_, last)) = leading
            && lease::must_step_down(last, sh.now(), deadline)
        {
            revoke(
                &mut leading,
                &mut identity,
                "no renewal confirmed within the renew deadline",
            );
        }
        let started = sh.now();
        let step = attempt(
            &sh,
            &lock_cm,
            &identity,
            leading.map(|l| l.0),
            &mut obs,
            started,
            &mut warned,
        )
        .await;
        let mut soon = false;
        match step {
            Step::Leading(epoch) => match leading {
                Some((e, _)) if e == epoch => {
                    sh.renewed(&lock_cm, epoch, started);
                    leading = Some((epoch, started));
                }
                _ => {
                    if leading.is_some() {
                        revoke(&mut leading, &mut identity, "term changed");
                        continue;
                    }
                    // A grant that comes too late to be safe is not given.
                    if lease::must_step_down(started, sh.now(), deadline) {
                        continue;
                    }
                    sh.grant(
                        &lock_cm,
                        epoch,
                        TermInfo {
                            identity: identity.clone(),
                            last_renew_start_ms: started,
                        },
                    );
                    leading = Some((epoch, started));
                    info!(lock = %lock_cm, term = epoch, %identity, "leadership acquired");
                    let token = FencingToken::new(lock_cm.as_str(), epoch);
                    sweep_claims(&sh, &token).await;
                    if events.send(LatchEvent::Granted(token)).is_err() {
                        break;
                    }
                }
            },
            Step::NotLeading => revoke(&mut leading, &mut identity, "another holder"),
            Step::Retry { soon: s } => soon = s,
        }
        let mut wait = if soon {
            Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 20) + 1)
        } else {
            retry
        };
        if let Some((_, last)) = leading {
            let until = (last + lease::ms(deadline)).saturating_sub(sh.now());
            wait = wait.min(Duration::from_millis(until));
        }
        let not_leading = leading.is_none();
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
            _ = changed(&mut changes, &lock_cm), if not_leading => {}
        }
    }
    if let Some((epoch, _)) = leading {
        sh.revoke(&lock_cm, epoch);
        if !sh.killed.load(Ordering::SeqCst) {
            release(&sh, &lock_cm, &identity).await;
        }
    }
}

/// Completes when ConfigMap `name` changed (or changes may have been missed).
async fn changed(rx: &mut tokio::sync::broadcast::Receiver<String>, name: &str) {
    loop {
        match rx.recv().await {
            Ok(n) if n == name => return,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await
            }
        }
    }
}

async fn attempt(
    sh: &Shared,
    lock_cm: &str,
    identity: &str,
    leading: Option<i64>,
    obs: &mut Option<Observation>,
    now: u64,
    warned: &mut bool,
) -> Step {
    let lease_duration = sh.settings.lease_duration;
    let current = match sh.api.get(lock_cm).await {
        Ok(c) => c,
        Err(e) => {
            debug!(lock = %lock_cm, error = %e, "reading the lock failed");
            return Step::Retry { soon: false };
        }
    };
    let written = |r: Result<k8s_openapi::api::core::v1::ConfigMap, ApiError>, epoch: i64| match r {
        Ok(c) => {
            sh.note_rv(cm::rv_num(&c));
            Step::Leading(epoch)
        }
        Err(ApiError::Conflict | ApiError::AlreadyExists | ApiError::NotFound) => {
            Step::Retry { soon: true }
        }
        Err(e) => {
            debug!(lock = %lock_cm, error = %e, "writing the lock failed");
            Step::Retry { soon: false }
        }
    };
    let Some(mut c) = current else {
        if leading.is_some() || sh.cleaned.load(Ordering::SeqCst) || sh.is_closed() {
            return Step::NotLeading;
        }
        let mut c = cm::new_cm(&sh.names, lock_cm);
        let record = lease::acquired(None, identity, lease_duration, now);
        cm::set_leader_record(&mut c, &record);
        return written(sh.api.create(&c).await, record.leader_transitions);
    };
    sh.note_rv(cm::rv_num(&c));
    let record = match cm::leader_record(&c) {
        Ok(r) => {
            *warned = false;
            r
        }
        Err(reason) => {
            // Never overwrite a record that cannot be read.
            if !*warned {
                warn!("{reason}; not contending until it is readable");
                *warned = true;
            }
            return if leading.is_some() {
                Step::NotLeading
            } else {
                Step::Retry { soon: false }
            };
        }
    };
    match record {
        Some(r) if r.holder_identity == identity => {
            if leading.is_some_and(|e| e != r.leader_transitions) {
                return Step::NotLeading;
            }
            cm::set_leader_record(&mut c, &lease::renewed(&r, now));
            written(sh.api.replace(lock_cm, &c).await, r.leader_transitions)
        }
        Some(r) => {
            if leading.is_some() {
                return Step::NotLeading;
            }
            let o = Observation::observe(obs.take(), &r, now);
            let free = lease::is_free(&r, &o, now, lease_duration, sh.settings.skew_allowance);
            *obs = Some(o);
            if !free || sh.is_closed() {
                return Step::NotLeading;
            }
            let new = lease::acquired(Some(&r), identity, lease_duration, now);
            cm::set_leader_record(&mut c, &new);
            written(sh.api.replace(lock_cm, &c).await, new.leader_transitions)
        }
        None => {
            if leading.is_some() {
                return Step::NotLeading;
            }
            if sh.is_closed() {
                return Step::NotLeading;
            }
            let new = lease::acquired(None, identity, lease_duration, now);
            cm::set_leader_record(&mut c, &new);
            written(sh.api.replace(lock_cm, &c).await, new.leader_transitions)
        }
    }
}

/// Writes the released record (empty holder) if this identity still holds the lease.
async fn release(sh: &Shared, lock_cm: &str, identity: &str) {
    for _ in 0..3 {
        let Ok(Some(mut c)) = sh.api.get(lock_cm).await else {
            return;
        };
        let Ok(Some(r)) = cm::leader_record(&c) else {
            return;
        };
        if r.holder_identity != identity {
            return;
        }
        cm::set_leader_record(&mut c, &lease::released(&r, sh.now()));
        match sh.api.replace(lock_cm, &c).await {
            Ok(_) => {
                info!(lock = %lock_cm, "leadership released");
                return;
            }
            Err(ApiError::Conflict) => continue,
            Err(e) => {
                debug!(lock = %lock_cm, error = %e, "releasing the lock failed");
                return;
            }
        }
    }
}

/// Claims, for a new term, every per-job ConfigMap its lock fences (all of them for the cluster
/// latch, the job's own for a job master's latch), before the term is reported: a write that an
/// older term prepared against any of them then fails on the changed `resourceVersion` and is
/// re-checked. Best effort: a ConfigMap that cannot be claimed now is claimed by the first
/// write of the term there.
async fn sweep_claims(sh: &Shared, token: &FencingToken) {
    let jobs: Vec<String> = match sh.names.classify(token.lock()) {
        CmKind::Cluster => match sh.list_all().await {
            Ok(cms) => cms
                .into_iter()
                .filter_map(|c| c.metadata.name)
                .filter(|n| matches!(sh.names.classify(n), CmKind::Job(_)))
                .collect(),
            Err(e) => {
                debug!(error = %e, "listing per-job ConfigMaps to claim failed");
                return;
            }
        },
        CmKind::Lock => match sh.names.job_of_lock(token.lock()) {
            Some(job) => vec![sh.names.job_cm(&job)],
            None => return,
        },
        _ => return,
    };
    for name in jobs {
        let result = sh
            .update(&name, &name, Some(token), |cur| match cur {
                None => Ok(Plan::Keep(())),
                Some(c) => Ok(Plan::Write {
                    cm: Box::new(c),
                    create: false,
                    result: (),
                    landed: Landed::Claimed,
                }),
            })
            .await;
        match result {
            Ok(()) => {}
            Err(KvError::NotLeader { .. }) => return,
            Err(e) => debug!(cm = %name, error = %e, "claiming failed"),
        }
    }
}
