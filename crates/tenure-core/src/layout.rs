//! Where each piece of HA data lives: every key of the HA layout is built here and nowhere else.
//!
//! The layout is Flink's ZooKeeper layout below the cluster namespace (`<path.root>/<cluster-id>`),
//! so a backend that maps keys to znodes one to one is compatible with Flink:
//!
//! ```text
//! leader/latch/...                         process-wide election (Flink 1.15+)
//! leader/<component>/latch/...             per-component election (Flink 1.14 style)
//! leader/<component>/connection_info       published leader information
//! execution-plans/<job-id>                 job graphs (Flink 1.x: jobgraphs/<job-id>)
//! execution-plans/<job-id>/locks/<owner>   per-process locks on a job graph
//! jobs/<job-id>/checkpoints/<%019d id>     completed checkpoints
//! jobs/<job-id>/checkpoint_id_counter      checkpoint id counter (4-byte big-endian)
//! running_job_registry/<job-id>            running jobs registry
//! job-results/<job-id>[_DIRTY]             job results (KV form)
//! ```

use crate::ids::{CheckpointId, ComponentId, JobId};
use crate::latch;

/// Which Flink release's names the layout uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NamingEra {
    /// Flink 2.x: `execution-plans/`, job masters as `job-<job-id>`.
    #[default]
    Flink2,
    /// Flink 1.15–1.20: `jobgraphs/`, job masters as the bare job id.
    Flink1,
}

/// Builds every key of the HA layout. Reading accepts both eras' names where they differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Layout {
    /// The names written.
    pub naming: NamingEra,
}

/// Directory of all leader data.
pub const LEADER_DIR: &str = "leader";
/// Directory of per-job data (checkpoints, counter).
pub const JOBS_DIR: &str = "jobs";
/// Directory of the running jobs registry.
pub const RUNNING_JOBS_DIR: &str = "running_job_registry";
/// Directory of job results in the KV form.
pub const JOB_RESULTS_DIR: &str = "job-results";
/// Suffix that marks a dirty job result.
pub const DIRTY_SUFFIX: &str = "_DIRTY";

impl Layout {
    /// A layout writing `naming`'s names.
    pub const fn new(naming: NamingEra) -> Self {
        Self { naming }
    }

    /// The component's directory name under `leader/`.
    pub fn component_name(&self, component: &ComponentId) -> String {
        match (self.naming, component) {
            (NamingEra::Flink1, ComponentId::JobMaster(job)) => job.to_string(),
            _ => component.name(),
        }
    }

    /// The process-wide election's latch directory.
    pub fn cluster_latch(&self) -> String {
        format!("{LEADER_DIR}/latch")
    }

    /// A per-component election's latch directory.
    pub fn component_latch(&self, component: &ComponentId) -> String {
        format!("{LEADER_DIR}/{}/latch", self.component_name(component))
    }

    /// The component's leader directory (deleted when its election ends).
    pub fn leader_dir(&self, component: &ComponentId) -> String {
        format!("{LEADER_DIR}/{}", self.component_name(component))
    }

    /// The key holding the component's published leader information.
    pub fn leader_info(&self, component: &ComponentId) -> String {
        format!("{}/connection_info", self.leader_dir(component))
    }

    /// Parses `leader/<component>/connection_info` back into the component (either era's names).
    pub fn parse_leader_info_key(&self, key: &str) -> Option<ComponentId> {
        let rest = key.strip_prefix(LEADER_DIR)?.strip_prefix('/')?;
        let name = rest.strip_suffix("/connection_info")?;
        if name.contains('/') {
            return None;
        }
        ComponentId::parse(name).ok()
    }

    /// The job graph directory written by this layout.
    pub fn job_graphs_dir(&self) -> &'static str {
        match self.naming {
            NamingEra::Flink2 => "execution-plans",
            NamingEra::Flink1 => "jobgraphs",
        }
    }

    /// Both eras' job graph directories, for reading.
    pub fn all_job_graph_dirs(&self) -> [&'static str; 2] {
        ["execution-plans", "jobgraphs"]
    }

    /// The key of a job graph.
    pub fn job_graph(&self, job: &JobId) -> String {
        format!("{}/{job}", self.job_graphs_dir())
    }

    /// The lock directory of a job graph.
    pub fn job_graph_locks(&self, job: &JobId) -> String {
        format!("{}/locks", self.job_graph(job))
    }

    /// One process's lock on a job graph.
    pub fn job_graph_lock(&self, job: &JobId, owner: &str) -> String {
        format!("{}/{owner}", self.job_graph_locks(job))
    }

    /// All data of one job (checkpoints, counter).
    pub fn job_dir(&self, job: &JobId) -> String {
        format!("{JOBS_DIR}/{job}")
    }

    /// The checkpoint directory of a job.
    pub fn checkpoints_dir(&self, job: &JobId) -> String {
        format!("{}/checkpoints", self.job_dir(job))
    }

    /// The key of one completed checkpoint.
    pub fn checkpoint(&self, job: &JobId, id: CheckpointId) -> String {
        format!("{}/{}", self.checkpoints_dir(job), id.padded())
    }

    /// The key of a job's checkpoint id counter.
    pub fn checkpoint_counter(&self, job: &JobId) -> String {
        format!("{}/checkpoint_id_counter", self.job_dir(job))
    }

    /// The key of a job's running-jobs-registry entry.
    pub fn running_job(&self, job: &JobId) -> String {
        format!("{RUNNING_JOBS_DIR}/{job}")
    }

    /// The key of a job's result, dirty or clean.
    pub fn job_result(&self, job: &JobId, dirty: bool) -> String {
        if dirty {
            format!("{JOB_RESULTS_DIR}/{job}{DIRTY_SUFFIX}")
        } else {
            format!("{JOB_RESULTS_DIR}/{job}")
        }
    }
}

/// Whether `key` (relative to the cluster namespace) is a key of the HA layout: tenure's and
/// Flink 2.x names, Flink 1.15–1.20 names (`jobgraphs/`, bare job ids), Flink 1.14's per-job
/// leader nodes and the older `checkpoints/<job>` and `checkpoint-counter/<job>` nodes.
pub fn is_layout_key(key: &str) -> bool {
    let segs: Vec<&str> = key.split('/').collect();
    let job = |s: &str| JobId::parse(s).is_ok();
    let component = |s: &str| ComponentId::parse(s).is_ok();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match segs.as_slice() {
        [LEADER_DIR] | [LEADER_DIR, "latch"] => true,
        [LEADER_DIR, "latch", node] => latch::is_participant(node),
        [LEADER_DIR, c] | [LEADER_DIR, c, "connection_info" | "latch"] => component(c),
        [LEADER_DIR, c, "latch", node] => component(c) && latch::is_participant(node),
        ["execution-plans" | "jobgraphs"] => true,
        ["execution-plans" | "jobgraphs", j] | ["execution-plans" | "jobgraphs", j, "locks"] => {
            job(j)
        }
        ["execution-plans" | "jobgraphs", j, "locks", owner] => job(j) && !owner.is_empty(),
        [JOBS_DIR] => true,
        [JOBS_DIR, j]
        | [
            JOBS_DIR,
            j,
            "checkpoints" | "checkpoint_id_counter" | LEADER_DIR,
        ] => job(j),
        [JOBS_DIR, j, "checkpoints", id] => job(j) && digits(id),
        [JOBS_DIR, j, LEADER_DIR, "connection_info" | "latch"] => job(j),
        [JOBS_DIR, j, LEADER_DIR, "latch", node] => job(j) && latch::is_participant(node),
        ["checkpoints" | "checkpoint-counter" | RUNNING_JOBS_DIR | JOB_RESULTS_DIR] => true,
        ["checkpoints" | "checkpoint-counter" | RUNNING_JOBS_DIR, j] => job(j),
        ["checkpoints", j, id] => job(j) && digits(id),
        [JOB_RESULTS_DIR, name] => job(name.strip_suffix(DIRTY_SUFFIX).unwrap_or(name)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink2_layout_matches_real_flink_paths() {
        let job: JobId = "58c7b669261b7be65fa686cc039885b6".parse().unwrap();
        let l = Layout::default();
        assert_eq!(l.cluster_latch(), "leader/latch");
        assert_eq!(
            l.leader_info(&ComponentId::RestServer),
            "leader/rest_server/connection_info"
        );
        assert_eq!(
            l.leader_info(&ComponentId::JobMaster(job)),
            "leader/job-58c7b669261b7be65fa686cc039885b6/connection_info"
        );
        assert_eq!(
            l.job_graph_lock(&job, "abc"),
            "execution-plans/58c7b669261b7be65fa686cc039885b6/locks/abc"
        );
        assert_eq!(
            l.checkpoint(&job, CheckpointId(7)),
            "jobs/58c7b669261b7be65fa686cc039885b6/checkpoints/0000000000000000007"
        );
        assert_eq!(
            l.checkpoint_counter(&job),
            "jobs/58c7b669261b7be65fa686cc039885b6/checkpoint_id_counter"
        );
    }

    #[test]
    fn flink1_layout_uses_old_names_and_reading_accepts_both() {
        let job = JobId::new_random();
        let l = Layout::new(NamingEra::Flink1);
        assert_eq!(l.job_graph(&job), format!("jobgraphs/{job}"));
        assert_eq!(
            l.leader_info(&ComponentId::JobMaster(job)),
            format!("leader/{job}/connection_info")
        );
        for key in [
            format!("leader/{job}/connection_info"),
            format!("leader/job-{job}/connection_info"),
        ] {
            assert_eq!(
                l.parse_leader_info_key(&key),
                Some(ComponentId::JobMaster(job))
            );
        }
        assert_eq!(l.parse_leader_info_key("leader/latch/x"), None);
    }

    #[test]
    fn layout_keys_of_both_eras_are_ours_and_nothing_else() {
        const JOB: &str = "58c7b669261b7be65fa686cc039885b6";
        for key in [
            "leader".to_owned(),
            "leader/latch".to_owned(),
            "leader/latch/_c_3f0b-latch-0000000003".to_owned(),
            "leader/rest_server/connection_info".to_owned(),
            format!("leader/job-{JOB}/latch/_c_x-latch-0000000001"),
            format!("leader/{JOB}/connection_info"),
            format!("execution-plans/{JOB}/locks/owner-1"),
            format!("jobgraphs/{JOB}"),
            format!("jobs/{JOB}/checkpoints/0000000000000000007"),
            format!("jobs/{JOB}/checkpoint_id_counter"),
            format!("checkpoint-counter/{JOB}"),
            format!("running_job_registry/{JOB}"),
            format!("job-results/{JOB}_DIRTY"),
        ] {
            assert!(is_layout_key(&key), "{key}");
        }
        for key in [
            "data",
            "important",
            "leader/latch/junk☃",
            "leader/my-cron/connection_info",
            "execution-plans/not-a-job",
            "jobs/x/checkpoints/1",
            "other-cluster/leader/latch",
            "leader/rest_server/connection_info/extra",
        ] {
            assert!(!is_layout_key(key), "{key}");
        }
    }
}
