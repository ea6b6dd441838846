//! A simulated job manager: one HA services instance contending for every component.

use std::sync::Arc;

use tenure::HaServices;
use tenure::driver::HaBackend;
use tenure::election::{LeaderElection, LeaderTerm};
use tenure::embedded::EmbeddedSession;
use tenure::ids::{ComponentId, JobId};

use crate::exit::CliError;

/// One simulated job manager process.
pub struct JobManager {
    /// Its name (`jm-1`, ...), also its host name in addresses.
    pub name: String,
    /// Its HA services.
    pub services: HaServices,
    session: Option<EmbeddedSession>,
    /// The dispatcher's election; the process leads when it is granted.
    pub dispatcher: LeaderElection,
    others: Vec<LeaderElection>,
    job_masters: Vec<LeaderElection>,
}

impl JobManager {
    /// Starts a job manager contending for the dispatcher, resource manager and REST endpoint.
    /// `session` is its embedded session, if on the embedded backend (for killing it).
    pub async fn start(
        name: String,
        services: HaServices,
        session: Option<EmbeddedSession>,
    ) -> Result<Self, CliError> {
        let fail = |e: tenure::election::ElectionError| {
            CliError::Other(format!("{name}: cannot start contending: {e}"))
        };
        let dispatcher = services.dispatcher_leader_election().await.map_err(fail)?;
        let others = vec![
            services
                .resource_manager_leader_election()
                .await
                .map_err(fail)?,
            services
                .rest_endpoint_leader_election()
                .await
                .map_err(fail)?,
        ];
        for e in std::iter::once(&dispatcher).chain(&others) {
            crate::metrics::contender(e);
        }
        Ok(Self {
            name,
            services,
            session,
            dispatcher,
            others,
            job_masters: Vec::new(),
        })
    }

    /// The current term, if this job manager leads.
    pub fn term(&self) -> Option<LeaderTerm> {
        self.dispatcher.current().term().cloned()
    }

    /// Confirms every component's address for `term`.
    pub async fn confirm_all(&self, term: &LeaderTerm) -> Result<(), CliError> {
        let host = &self.name;
        let addr = |c: ComponentId| match c {
            ComponentId::RestServer => format!("http://{host}:8081"),
            ComponentId::Dispatcher => {
                format!("pekko.tcp://flink@{host}:6123/user/rpc/dispatcher_1")
            }
            ComponentId::ResourceManager => {
                format!("pekko.tcp://flink@{host}:6123/user/rpc/resourcemanager_0")
            }
            ComponentId::JobMaster(_) => {
                format!("pekko.tcp://flink@{host}:6123/user/rpc/jobmanager_2")
            }
            // The demo elects only Flink's components.
            ComponentId::Named(service) => format!("{host}/{service}"),
        };
        for e in std::iter::once(&self.dispatcher)
            .chain(&self.others)
            .chain(&self.job_masters)
        {
            let published = e
                .confirm(term.session_id, addr(e.component()))
                .await
                .map_err(|err| CliError::Other(format!("{host}: confirm failed: {err}")))?;
            if !published {
                return Err(CliError::Other(format!(
                    "{host}: lost leadership while confirming {}",
                    e.component()
                )));
            }
        }
        Ok(())
    }

    /// Starts the job master of `job` on this process (granted at once while leading).
    pub async fn start_job_master(&mut self, job: JobId) -> Result<(), CliError> {
        let e = self
            .services
            .job_master_leader_election(job)
            .await
            .map_err(|err| CliError::Other(format!("{}: job master: {err}", self.name)))?;
        crate::metrics::contender(&e);
        self.job_masters.push(e);
        Ok(())
    }

    /// Stops the job master of `job` (the job finished): its leader data is handed over
    /// before the job's cleanup, as Flink stops a job master before the global cleanup.
    pub async fn stop_job_master(&mut self, job: JobId) {
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.job_masters)
            .into_iter()
            .partition(|e| e.component() == ComponentId::JobMaster(job));
        self.job_masters = running;
        for e in done {
            let _ = e.stop().await;
        }
    }

    /// Stops contending (graceful: leadership is handed over); the process stays alive and
    /// keeps its HA services.
    pub async fn stop_contending(self) -> Parked {
        for e in self.job_masters.into_iter().chain(self.others) {
            let _ = e.stop().await;
        }
        let _ = self.dispatcher.stop().await;
        Parked {
            name: self.name,
            services: self.services,
            session: self.session,
        }
    }

    /// Kills the process's backend session, as a crash does.
    pub async fn kill(&self) {
        match &self.session {
            Some(s) => s.kill(),
            None => {
                let backend: &Arc<dyn HaBackend> = self.services.backend();
                let _ = backend.close().await;
            }
        }
    }
}

/// A job manager process that is alive but not contending.
pub struct Parked {
    /// Its name.
    pub name: String,
    /// Its HA services.
    pub services: HaServices,
    /// Its embedded session, if any.
    pub session: Option<EmbeddedSession>,
}

impl Parked {
    /// Contends again, as a standby.
    pub async fn rejoin(self) -> Result<JobManager, CliError> {
        JobManager::start(self.name, self.services, self.session).await
    }
}

#[cfg(test)]
mod tests {
    use tenure::HaServicesOptions;
    use tenure::embedded::EmbeddedCluster;

    use super::*;

    #[test]
    fn a_standby_job_master_shows_in_the_metrics_at_0() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let job = JobId::new_random();
        rt.block_on(async {
            let cluster = EmbeddedCluster::new();
            let start = |name: &str| {
                let session = cluster.connect();
                let services =
                    HaServices::new(Arc::new(session.clone()), HaServicesOptions::default());
                crate::metrics::observe(&services);
                JobManager::start(name.into(), services, Some(session))
            };
            let mut leader = start("jm-1").await.expect("jm-1");
            leader
                .dispatcher
                .wait_for_leadership()
                .await
                .expect("jm-1 leads");
            let mut standby = start("jm-2").await.expect("jm-2");
            standby.start_job_master(job).await.expect("job master");
            let text = crate::metrics::metrics().render();
            let needle = format!("tenure_leadership{{component=\"job-{job}\"}} 0");
            assert!(text.contains(&needle), "{needle} missing from:\n{text}");
            standby.stop_contending().await;
            leader.stop_contending().await;
        });
    }
}
