//! Performs the latch recipe's requests: reads and conditional writes of the lock ConfigMap,
//! the process's term registry (which fences store writes), claims of a new term, releases.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use futures::future::BoxFuture;
use tenure_core::driver::{LatchIo, SessionView};
use tenure_core::kv::{FencingToken, KvError, VersionedKv};
use tokio::sync::watch;
use tracing::{debug, info};

use crate::api::ApiError;
use crate::latch::{Op, Recipe, Reply, Request, Response};
use crate::names::CmKind;
use crate::store::{Landed, Plan};
use crate::{KubernetesBackend, Shared, TermInfo, cm, lease};

/// The IO half of the Kubernetes latch, for the session driver.
pub(crate) struct Io {
    pub shared: Weak<Shared>,
    pub guard: Weak<crate::DropGuard>,
    pub view: watch::Receiver<SessionView>,
}

impl LatchIo for Io {
    type Recipe = Recipe;

    fn recipe(&self, latch: &Arc<str>) -> Result<Recipe, KvError> {
        let sh = self.shared.upgrade().ok_or(KvError::Closed)?;
        sh.check_open()?;
        sh.check_writable("joining a leader latch", latch)?;
        let lock_cm = sh.names.latch_cm(latch)?;
        Ok(Recipe::new(lock_cm, &sh.settings, Active::new(&sh)))
    }

    fn perform(&self, _participation: u64, request: Request) -> BoxFuture<'static, Reply> {
        let Some(sh) = self.shared.upgrade() else {
            let seq = request.seq;
            return Box::pin(async move {
                Reply {
                    seq,
                    response: Response::Gone,
                }
            });
        };
        let seq = request.seq;
        // Term bookkeeping happens now, in the order the recipe decided it.
        match &request.op {
            Op::TermGranted {
                lock,
                epoch,
                identity,
                started,
            } => {
                sh.grant(
                    lock,
                    *epoch,
                    TermInfo {
                        identity: identity.clone(),
                        last_renew_start_ms: *started,
                    },
                );
            }
            Op::TermRenewed {
                lock,
                epoch,
                started,
            } => sh.renewed(lock, *epoch, *started),
            Op::TermOver { lock, epoch } => sh.revoke(lock, *epoch),
            _ => {}
        }
        let weak = self.shared.clone();
        Box::pin(async move {
            let response = perform(sh, weak, request.op).await;
            Reply { seq, response }
        })
    }

    fn session(&self) -> watch::Receiver<SessionView> {
        self.view.clone()
    }

    fn kv(&self) -> Result<Arc<dyn VersionedKv>, KvError> {
        let shared = self.shared.upgrade().ok_or(KvError::Closed)?;
        let guard = self.guard.upgrade().ok_or(KvError::Closed)?;
        Ok(Arc::new(KubernetesBackend {
            shared,
            _guard: guard,
        }))
    }
}

async fn perform(sh: Arc<Shared>, weak: Weak<Shared>, op: Op) -> Response {
    match op {
        Op::Get { lock } => {
            let r = sh.api.get(&lock).await.map(|c| c.map(Box::new));
            if let Ok(Some(c)) = &r {
                sh.note_rv(cm::rv_num(c));
            }
            Response::Got {
                cm: r,
                cleaned: sh.cleaned.load(Ordering::SeqCst),
            }
        }
        Op::Create { lock, record } => {
            let mut c = cm::new_cm(&sh.names, &lock);
            cm::set_leader_record(&mut c, &record);
            Response::Written(noted(&sh, sh.api.create(&c).await))
        }
        Op::Replace { lock, cm } => Response::Written(noted(&sh, sh.api.replace(&lock, &cm).await)),
        Op::WaitChange { lock } => {
            let mut changes = sh.watcher.changes();
            drop(sh);
            changed(&mut changes, &lock).await;
            drop(weak);
            Response::Changed
        }
        Op::Sweep { token } => {
            sweep_claims(&sh, &token).await;
            Response::Swept
        }
        Op::Release { lock, identity } => {
            if !sh.killed.load(Ordering::SeqCst) {
                release(&sh, &lock, &identity).await;
            }
            Response::Released
        }
        Op::TermGranted { .. } | Op::TermRenewed { .. } | Op::TermOver { .. } => Response::Noted,
    }
}

fn noted(
    sh: &Shared,
    r: Result<k8s_openapi::api::core::v1::ConfigMap, ApiError>,
) -> Result<(), ApiError> {
    r.map(|c| sh.note_rv(cm::rv_num(&c)))
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

/// Counts live latch recipes so a closing backend can wait for their releases.
pub(crate) struct Active(Weak<Shared>);

impl Active {
    fn new(sh: &Arc<Shared>) -> Self {
        sh.latches_active.send_modify(|n| *n += 1);
        Self(Arc::downgrade(sh))
    }
}

#[cfg(test)]
impl Active {
    /// A guard counted by no backend, for recipes driven by tests.
    pub(crate) fn detached() -> Self {
        Self(Weak::new())
    }
}

impl std::fmt::Debug for Active {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Active")
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(sh) = self.0.upgrade() {
            sh.latches_active.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

/// Waits (bounded) until every latch has ended and released its record.
pub(crate) async fn wait_released(sh: &Shared) {
    let mut rx = sh.latches_active.subscribe();
    let _ = tokio::time::timeout(sh.settings.request_timeout * 3, rx.wait_for(|n| *n == 0)).await;
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
