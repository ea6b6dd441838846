//! The demo's script: rounds of leadership, each ending in a crash or a step-down.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use tenure::config::HaMode;
use tenure::election::LeaderTerm;
use tenure::embedded::EmbeddedCluster;
use tenure::ids::ComponentId;
use tenure::ids::{CheckpointId, JobId};
use tenure::retrieval::{LeaderRetriever, LeaderState};
use tenure::store::{
    CheckpointIdCounter, CompletedCheckpoint, CompletedCheckpointStore, JobGraphStore,
};
use tenure::{HaConfig, HaServices, HaServicesOptions};

use super::DemoArgs;
use super::checks::{Ledger, Verdict};
use super::jobmanager::{JobManager, Parked};
use super::timeline::Timeline;
use crate::exit::CliError;

/// How long the demo waits for a leader before giving up.
const LEADER_DEADLINE: Duration = Duration::from_secs(60);
/// Job graphs are this large, so they go to the blob store with a pointer in the KV.
pub(super) const GRAPH_SIZE: usize = 4096;

/// A deposed leader's stores, still holding its old fencing token.
struct Zombie {
    parked: Parked,
    graphs: JobGraphStore,
    checkpoints: CompletedCheckpointStore,
    counter: CheckpointIdCounter,
    job: JobId,
}

/// The demo's state.
pub struct Demo {
    pub(super) args: DemoArgs,
    pub(super) config: HaConfig,
    pub(super) options: HaServicesOptions,
    pub(super) cluster: Option<EmbeddedCluster>,
    pub(super) ledger: Ledger,
    pub(super) jobs: Vec<JobId>,
    pub(super) started: u32,
}

pub(super) fn short(s: impl ToString) -> String {
    s.to_string().chars().take(8).collect()
}

pub(super) fn store_err(who: &str, what: &str) -> impl Fn(tenure::store::StoreError) -> CliError {
    let msg = format!("{who}: {what}");
    move |e| CliError::Other(format!("{msg}: {e}"))
}

impl Demo {
    /// Prepares the demo; a bad configuration fails here, before anything starts.
    pub fn new(args: &DemoArgs, config: HaConfig) -> Result<Self, CliError> {
        let options =
            HaServicesOptions::from_config(&config).map_err(|e| CliError::Usage(e.to_string()))?;
        // NONE: every simulated job manager is a session of one in-process cluster. Other
        // modes: every job manager opens its own session on the configured backend.
        let cluster = (config.mode == HaMode::None).then(EmbeddedCluster::new);
        Ok(Self {
            args: args.clone(),
            config,
            options,
            cluster,
            ledger: Ledger::default(),
            jobs: Vec::new(),
            started: 0,
        })
    }

    fn backend_name(&self) -> String {
        match self.config.mode {
            HaMode::None => "embedded".into(),
            ref other => format!("{other:?}").to_lowercase(),
        }
    }

    async fn start_job_manager(&mut self, tl: &mut Timeline) -> Result<JobManager, CliError> {
        self.started += 1;
        let name = format!("jm-{}", self.started);
        let (services, session) = match &self.cluster {
            Some(cluster) => {
                let session = cluster.connect();
                let services = HaServices::new(Arc::new(session.clone()), self.options.clone());
                (services, Some(session))
            }
            None => (connect(&self.config, &name).await?, None),
        };
        crate::metrics::observe(&services);
        let jm = JobManager::start(name.clone(), services, session).await?;
        tl.push(
            &name,
            "started",
            "contending for dispatcher, resource manager, rest server",
        );
        Ok(jm)
    }

    /// Runs the whole demo and returns the backend's name and the verdicts.
    pub async fn run(mut self, tl: &mut Timeline) -> Result<(String, Vec<Verdict>), CliError> {
        let (observer_services, observer) = self.start_observer(tl).await?;
        let mut jms = Vec::new();
        for _ in 0..self.args.job_managers {
            jms.push(self.start_job_manager(tl).await?);
        }
        let mut zombie: Option<Zombie> = None;
        let mut leader_idx = 0;
        for round in 0..=self.args.failovers {
            let (idx, term) = next_leader(&jms).await?;
            leader_idx = idx;
            let leaders = jms.iter().filter(|j| j.term().is_some()).count();
            let epoch = term.fencing_token.epoch();
            self.ledger.granted(epoch, leaders);
            tl.push(
                &jms[idx].name,
                "granted",
                format!("leader session {} (fencing epoch {epoch})", term.session_id),
            );
            if let Some(z) = zombie.take() {
                jms.push(self.zombie_writes(z, tl).await?);
            }
            self.clean_up_dirty_results(&jms[idx], &term, tl).await?;
            self.recover(&jms[idx], &term, tl).await?;
            if round == 0 {
                self.submit_jobs(&jms[idx], &term, tl).await?;
            }
            for job in self.jobs.clone() {
                jms[idx].start_job_master(job).await?;
            }
            jms[idx].confirm_all(&term).await?;
            tl.push(
                &jms[idx].name,
                "confirmed",
                format!(
                    "published addresses of dispatcher, resource manager, rest server and {} job masters",
                    self.jobs.len()
                ),
            );
            self.observe(&observer, &jms[idx], &term, tl).await;
            self.run_checkpoints(&jms[idx], &term, tl).await?;
            if round == self.args.failovers {
                break;
            }
            let jm = jms.remove(idx);
            if round % 2 == 0 {
                // With jobs to spare, one finishes first and its leader crashes before the
                // cleanup: the next leader finds the dirty result and finishes it.
                if self.jobs.len() > 1 {
                    let job = self.jobs[0];
                    self.job_finished(&jm, job).await?;
                    tl.push(
                        &jm.name,
                        "job finished",
                        format!("job {job}: dirty result written; crashing before its cleanup"),
                    );
                }
                tl.push(
                    &jm.name,
                    "killed",
                    "process crashed: its backend session ends",
                );
                jm.kill().await;
                drop(jm);
                jms.push(self.start_job_manager(tl).await?);
            } else {
                let job = self.jobs[0];
                let stores = jm.services.leader_stores(&term);
                let factory = stores.checkpoint_recovery_factory();
                let retain = self.config.num_retained_checkpoints;
                let graphs = stores.job_graphs();
                let checkpoints = factory
                    .create_completed_checkpoint_store(job, retain)
                    .map_err(store_err(&jm.name, "checkpoint store"))?;
                let counter = factory.create_checkpoint_id_counter(job);
                let name = jm.name.clone();
                let parked = jm.stop_contending().await;
                tl.push(
                    &name,
                    "stepped down",
                    "alive, keeps its stores and its old fencing token",
                );
                zombie = Some(Zombie {
                    parked,
                    graphs,
                    checkpoints,
                    counter,
                    job,
                });
            }
        }
        self.finish(&mut jms[leader_idx], tl).await?;
        drop(observer);
        let _ = observer_services.close().await;
        let verdicts = self.shutdown(jms, tl).await;
        Ok((self.backend_name(), verdicts))
    }

    /// A task manager's view: a separate session following the dispatcher's leader.
    async fn start_observer(
        &mut self,
        tl: &mut Timeline,
    ) -> Result<(HaServices, LeaderRetriever), CliError> {
        let services = match &self.cluster {
            Some(cluster) => HaServices::new(Arc::new(cluster.connect()), self.options.clone()),
            None => connect(&self.config, "tm-1").await?,
        };
        let retriever = services.leader_retriever(ComponentId::Dispatcher);
        tl.push(
            "tm-1",
            "started",
            "task manager following the dispatcher's leader",
        );
        Ok((services, retriever))
    }

    /// Waits until the observer sees `jm` lead with `term`'s session.
    async fn observe(
        &mut self,
        observer: &LeaderRetriever,
        jm: &JobManager,
        term: &LeaderTerm,
        tl: &mut Timeline,
    ) {
        let mut rx = observer.leader();
        let want = term.session_id;
        let seen = tokio::time::timeout(
            LEADER_DEADLINE,
            rx.wait_for(
                |s| matches!(s, LeaderState::Leader { session_id, .. } if *session_id == want),
            ),
        )
        .await
        .ok()
        .and_then(|r| r.ok().map(|state| state.clone()));
        match seen {
            Some(state) => {
                let address = state.leader().map(|l| l.address).unwrap_or_default();
                tl.push("tm-1", "sees leader", format!("{} at {address}", jm.name));
                self.ledger.retrieved(None);
            }
            _ => {
                let now = format!("{:?}", *rx.borrow());
                tl.push("tm-1", "stale leader", now.clone());
                self.ledger.retrieved(Some(format!(
                    "task manager did not see {} lead (saw {now})",
                    jm.name
                )));
            }
        }
    }

    async fn zombie_writes(
        &mut self,
        z: Zombie,
        tl: &mut Timeline,
    ) -> Result<JobManager, CliError> {
        let name = z.parked.name.clone();
        let graph = z
            .graphs
            .put(z.job, Bytes::from_static(b"graph from a deposed leader"))
            .await;
        self.ledger.zombie_write("job graph write", graph.is_ok());
        let cp = CompletedCheckpoint {
            job_id: z.job,
            id: CheckpointId(u32::MAX as u64),
            timestamp_ms: 0,
            metadata: Bytes::from_static(b"checkpoint from a deposed leader"),
        };
        let add = z.checkpoints.add(cp).await;
        self.ledger.zombie_write("checkpoint", add.is_ok());
        let inc = z.counter.get_and_increment().await;
        self.ledger.zombie_write("counter increment", inc.is_ok());
        let describe = |ok: bool, e: Option<String>| {
            if ok {
                "ACCEPTED".to_owned()
            } else {
                e.unwrap_or_default()
            }
        };
        tl.push(
            &name,
            "zombie writes",
            format!(
                "job graph: {}; checkpoint: {}; counter: {}",
                describe(graph.is_ok(), graph.err().map(|e| reason(&e))),
                describe(add.is_ok(), add.err().map(|e| reason(&e))),
                describe(inc.is_ok(), inc.err().map(|e| reason(&e))),
            ),
        );
        let jm = z.parked.rejoin().await?;
        tl.push(&name, "rejoined", "contending again as a standby");
        Ok(jm)
    }

    async fn shutdown(&mut self, mut jms: Vec<JobManager>, tl: &mut Timeline) -> Vec<Verdict> {
        let mut verdicts = self.ledger.verdicts();
        let last = jms.pop();
        for jm in jms {
            let name = jm.name.clone();
            let parked = jm.stop_contending().await;
            let _ = parked.services.close().await;
            tl.push(&name, "closed", "HA services closed, data kept");
        }
        let Some(last) = last else { return verdicts };
        let name = last.name.clone();
        let parked = last.stop_contending().await;
        let cleanup = parked.services.close_and_cleanup_all_data().await;
        let left = match &self.cluster {
            Some(c) => c.all_keys(),
            None => match connect(&self.config, "checker").await {
                Ok(s) => {
                    let keys = s.backend().kv().list("").await;
                    let _ = s.close().await;
                    match keys {
                        Ok(entries) => entries.into_iter().map(|e| e.key).collect(),
                        Err(e) => vec![format!("<cannot list: {e}>")],
                    }
                }
                Err(e) => vec![format!("<cannot connect: {e}>")],
            },
        };
        let ok = cleanup.is_ok() && left.is_empty();
        tl.push(
            &name,
            "cleaned up",
            match &cleanup {
                Ok(()) => format!("close_and_cleanup_all_data: {} keys left", left.len()),
                Err(e) => format!("close_and_cleanup_all_data failed: {e}"),
            },
        );
        verdicts.push(Verdict {
            invariant: "cleanup removes all cluster data",
            ok,
            detail: if ok {
                "no key left in the backend after close_and_cleanup_all_data".into()
            } else {
                format!("left: {left:?} {:?}", cleanup.err())
            },
        });
        verdicts
    }
}

/// Opens one simulated process's HA services on the configured backend.
async fn connect(config: &HaConfig, who: &str) -> Result<HaServices, CliError> {
    tenure::connect(config).await.map_err(|e| match e {
        tenure::HaError::Unsupported(_) | tenure::HaError::Config(_) => {
            CliError::Usage(e.to_string())
        }
        other => CliError::Other(format!("{who}: cannot connect: {other}")),
    })
}

fn reason(e: &tenure::store::StoreError) -> String {
    if e.is_not_leader() {
        "rejected (not leader)".into()
    } else {
        format!("rejected ({e})")
    }
}

/// Waits until one of the job managers leads; returns its index and term.
async fn next_leader(jms: &[JobManager]) -> Result<(usize, LeaderTerm), CliError> {
    let deadline = tokio::time::Instant::now() + LEADER_DEADLINE;
    loop {
        let mut rxs: Vec<_> = jms.iter().map(|j| j.dispatcher.leadership()).collect();
        for (i, rx) in rxs.iter_mut().enumerate() {
            if let Some(t) = rx.borrow_and_update().term() {
                return Ok((i, t.clone()));
            }
        }
        let waits = rxs.iter_mut().map(|rx| Box::pin(rx.changed()));
        match tokio::time::timeout_at(deadline, select_all(waits)).await {
            Ok(_) => continue,
            Err(_) => {
                return Err(CliError::Other(format!(
                    "no job manager became leader within {LEADER_DEADLINE:?}"
                )));
            }
        }
    }
}
