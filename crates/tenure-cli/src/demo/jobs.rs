//! What the leader does with jobs in the demo: submits them, completes checkpoints, recovers
//! them after a failover (checking nothing acknowledged was lost), and finishes them.

use bytes::Bytes;
use tenure::election::LeaderTerm;
use tenure::ids::JobId;
use tenure::store::CompletedCheckpoint;

use super::jobmanager::JobManager;
use super::run::{Demo, GRAPH_SIZE, short, store_err};
use super::timeline::Timeline;
use crate::exit::CliError;

impl Demo {
    pub(super) async fn recover(
        &mut self,
        jm: &JobManager,
        term: &LeaderTerm,
        tl: &mut Timeline,
    ) -> Result<(), CliError> {
        if self.jobs.is_empty() {
            return Ok(());
        }
        let stores = jm.services.leader_stores(term);
        let graphs = stores.job_graphs();
        let mut problems = Vec::new();
        let ids = graphs
            .job_ids()
            .await
            .map_err(store_err(&jm.name, "listing job graphs"))?;
        for (job, bytes) in &self.ledger.graphs {
            if !ids.contains(job) {
                problems.push(format!("job graph of {job} missing"));
                continue;
            }
            match graphs.recover(*job).await {
                Ok(b) if b == *bytes => {}
                Ok(_) => problems.push(format!("job graph of {job} differs")),
                Err(e) => problems.push(format!("job graph of {job}: {e}")),
            }
        }
        let factory = stores.checkpoint_recovery_factory();
        let retain = self.config.num_retained_checkpoints;
        let mut summary = Vec::new();
        for (job, acked) in &self.ledger.checkpoints {
            let store = factory
                .create_completed_checkpoint_store(*job, retain)
                .map_err(store_err(&jm.name, "checkpoint store"))?;
            let got: Vec<u64> = match store.recover().await {
                Ok(cps) => cps.iter().map(|c| c.id.0).collect(),
                Err(e) => {
                    problems.push(format!("checkpoints of {job}: {e}"));
                    continue;
                }
            };
            let want: Vec<u64> = acked.iter().rev().take(retain).rev().map(|c| c.0).collect();
            if got != want {
                problems.push(format!(
                    "job {job}: recovered checkpoints {got:?}, acknowledged {want:?}"
                ));
            }
            let next = factory
                .create_checkpoint_id_counter(*job)
                .get()
                .await
                .map_err(store_err(&jm.name, "counter"))?;
            if acked.last().is_some_and(|last| next <= *last) {
                problems.push(format!("job {job}: counter at {next} would reuse an id"));
            }
            summary.push(format!("{} -> {:?} next {next}", short(job), got));
        }
        tl.push(
            &jm.name,
            "recovered",
            format!(
                "{} job graphs; checkpoints {}",
                ids.len(),
                summary.join(", ")
            ),
        );
        self.ledger.recovered(problems);
        Ok(())
    }

    pub(super) async fn submit_jobs(
        &mut self,
        jm: &JobManager,
        term: &LeaderTerm,
        tl: &mut Timeline,
    ) -> Result<(), CliError> {
        let stores = jm.services.leader_stores(term);
        let graphs = stores.job_graphs();
        let registry = stores.running_jobs();
        for i in 0..self.args.jobs {
            let job = JobId::new_random();
            let mut graph = format!("job graph {i} of job {job}\n").into_bytes();
            graph.resize(GRAPH_SIZE, b'.');
            let graph = Bytes::from(graph);
            graphs
                .put(job, graph.clone())
                .await
                .map_err(store_err(&jm.name, "submitting a job"))?;
            registry
                .set_running(job)
                .await
                .map_err(store_err(&jm.name, "registry"))?;
            self.ledger
                .acknowledged(term.fencing_token.epoch(), "job graph");
            self.ledger.graphs.insert(job, graph);
            self.ledger.checkpoints.insert(job, Vec::new());
            self.jobs.push(job);
            tl.push(
                &jm.name,
                "job submitted",
                format!("job {job} ({GRAPH_SIZE} B graph in the blob store)"),
            );
        }
        Ok(())
    }

    pub(super) async fn run_checkpoints(
        &mut self,
        jm: &JobManager,
        term: &LeaderTerm,
        tl: &mut Timeline,
    ) -> Result<(), CliError> {
        let stores = jm.services.leader_stores(term);
        let factory = stores.checkpoint_recovery_factory();
        let retain = self.config.num_retained_checkpoints;
        for job in self.jobs.clone() {
            let store = factory
                .create_completed_checkpoint_store(job, retain)
                .map_err(store_err(&jm.name, "checkpoint store"))?;
            let counter = factory.create_checkpoint_id_counter(job);
            counter
                .start()
                .await
                .map_err(store_err(&jm.name, "counter"))?;
            let mut done = Vec::new();
            let mut subsumed = Vec::new();
            for _ in 0..self.args.checkpoints {
                let id = counter
                    .get_and_increment()
                    .await
                    .map_err(store_err(&jm.name, "counter"))?;
                let cp = CompletedCheckpoint {
                    job_id: job,
                    id,
                    timestamp_ms: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0),
                    metadata: Bytes::from(format!("metadata of checkpoint {id} of job {job}")),
                };
                subsumed.extend(
                    store
                        .add(cp)
                        .await
                        .map_err(store_err(&jm.name, "adding a checkpoint"))?,
                );
                self.ledger
                    .acknowledged(term.fencing_token.epoch(), "checkpoint");
                self.ledger.checkpoints.entry(job).or_default().push(id);
                done.push(id.0);
            }
            tl.push(
                &jm.name,
                "checkpoints",
                format!(
                    "job {}: completed {:?}, subsumed {:?}",
                    short(job),
                    done,
                    subsumed.iter().map(|c| c.0).collect::<Vec<_>>()
                ),
            );
        }
        Ok(())
    }

    pub(super) async fn finish(
        &mut self,
        jm: &mut JobManager,
        tl: &mut Timeline,
    ) -> Result<(), CliError> {
        let term = jm.term().ok_or_else(|| {
            CliError::Other(format!("{} lost leadership before finishing", jm.name))
        })?;
        for job in self.jobs.clone() {
            jm.stop_job_master(job).await;
            self.job_finished(jm, job).await?;
            tl.push(
                &jm.name,
                "job finished",
                format!("job {job}: dirty result written"),
            );
            self.clean_up(jm, &term, job, tl).await;
        }
        let dirty = jm
            .services
            .job_result_store()
            .dirty_results()
            .await
            .map_err(store_err(&jm.name, "job results"))?;
        if !dirty.is_empty() {
            self.ledger
                .recovered(vec![format!("{} job results left dirty", dirty.len())]);
        }
        Ok(())
    }
}
