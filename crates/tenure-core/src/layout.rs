//! Where each piece of HA data lives: every key of the HA layout is built here and nowhere else.
//!
//! The layout is Flink's ZooKeeper layout below the cluster namespace (`<path.root>/<cluster-id>`),
//! so a backend that maps keys to znodes one to one is compatible with Flink:
//!
//! ```text
//! leader/latch/...                         process-wide election (Flink 1.15+)
//! leader/<component>/latch/...             per-component election (Flink 1.14 style)
//! leader/<component>/connection_info       published leader information
//! leader/<name>/latch/...                  a service elected by name (`ComponentId::Named`)
//! leader/<name>/connection_info            its published leader information
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

/// Flink 2.x's job graph directory.
const EXECUTION_PLANS_DIR: &str = "execution-plans";
/// Flink 1.x's job graph directory (on ZooKeeper, `high-availability.zookeeper.path.jobgraphs`
/// may put it in another znode; the backend maps it, the layout's name stays this).
pub const FLINK1_JOB_GRAPHS_DIR: &str = "jobgraphs";
/// Flink ≤ 1.14's checkpoint directory (`checkpoints/<job>/<%019d>`).
const LEGACY_CHECKPOINTS_DIR: &str = "checkpoints";
/// Flink ≤ 1.14's checkpoint counter directory (`checkpoint-counter/<job>`).
const LEGACY_COUNTERS_DIR: &str = "checkpoint-counter";

/// One key of the HA layout, relative to the cluster namespace: what the key *is*, never how it
/// is spelled. [`Layout::key`] spells it in the layout's era; [`Layout::parse`] reads a key back,
/// accepting exactly the spellings `key` produces.
///
/// Free-form segments (`owner`, latch `node`) must be non-empty and must not contain `/`; a key
/// built from any other segment is not one `parse` returns.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HaKey {
    /// `leader`: the directory of all leader data.
    LeaderRoot,
    /// `leader/latch`: the process-wide election's latch directory (Flink 1.15+).
    ClusterLatch,
    /// `leader/latch/<node>`: a child of the process-wide latch.
    ClusterLatchNode(String),
    /// `leader/<component>`: a component's leader directory (deleted when its election ends).
    LeaderDir(ComponentId),
    /// `leader/<component>/connection_info`: the component's published leader information.
    LeaderInfo(ComponentId),
    /// `leader/<component>/latch`: a per-component election's latch directory (Flink 1.14
    /// style).
    LeaderLatch(ComponentId),
    /// `leader/<component>/latch/<node>`: a child of a per-component latch.
    LeaderLatchNode(ComponentId, String),
    /// `execution-plans` (Flink 1.x: `jobgraphs`): the job graph directory.
    ExecutionPlans,
    /// `execution-plans/<job>`: a job graph.
    ExecutionPlan(JobId),
    /// `execution-plans/<job>/locks`: the lock directory of a job graph.
    ExecutionPlanLocks(JobId),
    /// `execution-plans/<job>/locks/<owner>`: one process's lock on a job graph.
    ExecutionPlanLock(JobId, String),
    /// `jobs`: the directory of per-job data.
    Jobs,
    /// `jobs/<job>`: all data of one job (checkpoints, counter).
    JobDir(JobId),
    /// `jobs/<job>/checkpoints`: the checkpoint directory of a job.
    Checkpoints(JobId),
    /// `jobs/<job>/checkpoints/<%019d id>`: one completed checkpoint.
    Checkpoint(JobId, CheckpointId),
    /// `jobs/<job>/checkpoint_id_counter`: a job's checkpoint id counter.
    CheckpointCounter(JobId),
    /// `running_job_registry`: the running jobs registry.
    RunningJobs,
    /// `running_job_registry/<job>`: a job's registry entry.
    RunningJob(JobId),
    /// `job-results`: the job results (KV form).
    JobResults,
    /// `job-results/<job>[_DIRTY]`: a job's result, dirty or clean.
    JobResult {
        /// The job.
        job: JobId,
        /// Whether the result is dirty (its cleanup has not finished).
        dirty: bool,
    },
    /// `jobs/<job>/leader`: a job master's leader directory of Flink ≤ 1.14.
    LegacyJobLeaderDir(JobId),
    /// `jobs/<job>/leader/connection_info`: Flink ≤ 1.14 job master leader information.
    LegacyJobLeaderInfo(JobId),
    /// `jobs/<job>/leader/latch`: Flink ≤ 1.14 job master latch directory.
    LegacyJobLeaderLatch(JobId),
    /// `jobs/<job>/leader/latch/<node>`: a child of a Flink ≤ 1.14 job master latch.
    LegacyJobLeaderLatchNode(JobId, String),
    /// `checkpoints`: Flink ≤ 1.14's checkpoint directory.
    LegacyCheckpointsRoot,
    /// `checkpoints/<job>`: a job's checkpoints in Flink ≤ 1.14.
    LegacyCheckpoints(JobId),
    /// `checkpoints/<job>/<%019d id>`: one checkpoint in Flink ≤ 1.14.
    LegacyCheckpoint(JobId, CheckpointId),
    /// `checkpoint-counter`: Flink ≤ 1.14's checkpoint counter directory.
    LegacyCheckpointCountersRoot,
    /// `checkpoint-counter/<job>`: a job's checkpoint counter in Flink ≤ 1.14.
    LegacyCheckpointCounter(JobId),
}

impl HaKey {
    /// The job this key belongs to (job graphs, per-job data, registry entries, results, job
    /// masters' leader data), if any.
    pub fn job(&self) -> Option<JobId> {
        match self {
            HaKey::LeaderDir(c)
            | HaKey::LeaderInfo(c)
            | HaKey::LeaderLatch(c)
            | HaKey::LeaderLatchNode(c, _) => match c {
                ComponentId::JobMaster(job) => Some(*job),
                _ => None,
            },
            HaKey::ExecutionPlan(j)
            | HaKey::ExecutionPlanLocks(j)
            | HaKey::ExecutionPlanLock(j, _)
            | HaKey::JobDir(j)
            | HaKey::Checkpoints(j)
            | HaKey::Checkpoint(j, _)
            | HaKey::CheckpointCounter(j)
            | HaKey::RunningJob(j)
            | HaKey::JobResult { job: j, .. }
            | HaKey::LegacyJobLeaderDir(j)
            | HaKey::LegacyJobLeaderInfo(j)
            | HaKey::LegacyJobLeaderLatch(j)
            | HaKey::LegacyJobLeaderLatchNode(j, _)
            | HaKey::LegacyCheckpoints(j)
            | HaKey::LegacyCheckpoint(j, _)
            | HaKey::LegacyCheckpointCounter(j) => Some(*j),
            HaKey::LeaderRoot
            | HaKey::ClusterLatch
            | HaKey::ClusterLatchNode(_)
            | HaKey::ExecutionPlans
            | HaKey::Jobs
            | HaKey::RunningJobs
            | HaKey::JobResults
            | HaKey::LegacyCheckpointsRoot
            | HaKey::LegacyCheckpointCountersRoot => None,
        }
    }

    /// Whether the key is data the HA services write: every key except a latch child that is
    /// not a well-formed latch node ([`latch::is_participant`]), which is foreign junk in a
    /// directory of ours.
    pub fn is_ha_data(&self) -> bool {
        match self {
            HaKey::ClusterLatchNode(node)
            | HaKey::LeaderLatchNode(_, node)
            | HaKey::LegacyJobLeaderLatchNode(_, node) => latch::is_participant(node),
            _ => true,
        }
    }
}

/// Whether `s` can be a free-form segment (owner, latch node) of a key.
fn is_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains('/')
}

impl Layout {
    /// A layout writing `naming`'s names.
    pub const fn new(naming: NamingEra) -> Self {
        Self { naming }
    }

    /// The key of `key` in this layout's names.
    pub fn key(&self, key: &HaKey) -> String {
        match key {
            HaKey::LeaderRoot => LEADER_DIR.to_owned(),
            HaKey::ClusterLatch => format!("{LEADER_DIR}/latch"),
            HaKey::ClusterLatchNode(node) => format!("{LEADER_DIR}/latch/{node}"),
            HaKey::LeaderDir(c) => format!("{LEADER_DIR}/{}", self.component_name(c)),
            HaKey::LeaderInfo(c) => {
                format!("{LEADER_DIR}/{}/connection_info", self.component_name(c))
            }
            HaKey::LeaderLatch(c) => format!("{LEADER_DIR}/{}/latch", self.component_name(c)),
            HaKey::LeaderLatchNode(c, node) => {
                format!("{LEADER_DIR}/{}/latch/{node}", self.component_name(c))
            }
            HaKey::ExecutionPlans => self.job_graphs_dir().to_owned(),
            HaKey::ExecutionPlan(job) => format!("{}/{job}", self.job_graphs_dir()),
            HaKey::ExecutionPlanLocks(job) => format!("{}/{job}/locks", self.job_graphs_dir()),
            HaKey::ExecutionPlanLock(job, owner) => {
                format!("{}/{job}/locks/{owner}", self.job_graphs_dir())
            }
            HaKey::Jobs => JOBS_DIR.to_owned(),
            HaKey::JobDir(job) => format!("{JOBS_DIR}/{job}"),
            HaKey::Checkpoints(job) => format!("{JOBS_DIR}/{job}/checkpoints"),
            HaKey::Checkpoint(job, id) => {
                format!("{JOBS_DIR}/{job}/checkpoints/{}", id.padded())
            }
            HaKey::CheckpointCounter(job) => format!("{JOBS_DIR}/{job}/checkpoint_id_counter"),
            HaKey::RunningJobs => RUNNING_JOBS_DIR.to_owned(),
            HaKey::RunningJob(job) => format!("{RUNNING_JOBS_DIR}/{job}"),
            HaKey::JobResults => JOB_RESULTS_DIR.to_owned(),
            HaKey::JobResult { job, dirty: true } => {
                format!("{JOB_RESULTS_DIR}/{job}{DIRTY_SUFFIX}")
            }
            HaKey::JobResult { job, dirty: false } => format!("{JOB_RESULTS_DIR}/{job}"),
            HaKey::LegacyJobLeaderDir(job) => format!("{JOBS_DIR}/{job}/{LEADER_DIR}"),
            HaKey::LegacyJobLeaderInfo(job) => {
                format!("{JOBS_DIR}/{job}/{LEADER_DIR}/connection_info")
            }
            HaKey::LegacyJobLeaderLatch(job) => format!("{JOBS_DIR}/{job}/{LEADER_DIR}/latch"),
            HaKey::LegacyJobLeaderLatchNode(job, node) => {
                format!("{JOBS_DIR}/{job}/{LEADER_DIR}/latch/{node}")
            }
            HaKey::LegacyCheckpointsRoot => LEGACY_CHECKPOINTS_DIR.to_owned(),
            HaKey::LegacyCheckpoints(job) => format!("{LEGACY_CHECKPOINTS_DIR}/{job}"),
            HaKey::LegacyCheckpoint(job, id) => {
                format!("{LEGACY_CHECKPOINTS_DIR}/{job}/{}", id.padded())
            }
            HaKey::LegacyCheckpointCountersRoot => LEGACY_COUNTERS_DIR.to_owned(),
            HaKey::LegacyCheckpointCounter(job) => format!("{LEGACY_COUNTERS_DIR}/{job}"),
        }
    }

    /// What `key` is in this layout's names: `Some(k)` exactly when `self.key(&k) == key`.
    /// Other spellings (the other era's names, upper-case job ids, unpadded checkpoint ids,
    /// Kubernetes component names) give `None`; so does anything outside the layout. Never
    /// panics, whatever the input.
    pub fn parse(&self, key: &str) -> Option<HaKey> {
        let parsed = self.parse_segments(key)?;
        (self.key(&parsed) == key).then_some(parsed)
    }

    /// What `key` is in either era's names, and the layout whose names it uses (Flink 2.x
    /// first, for keys both eras spell alike): `Some((l, k))` exactly when `l.key(&k) == key`.
    pub fn parse_any_era(key: &str) -> Option<(Layout, HaKey)> {
        [NamingEra::Flink2, NamingEra::Flink1]
            .into_iter()
            .map(Layout::new)
            .find_map(|l| l.parse(key).map(|k| (l, k)))
    }

    /// The candidate key of `key`'s segments; [`Layout::parse`] checks the spelling.
    fn parse_segments(&self, key: &str) -> Option<HaKey> {
        let segs: Vec<&str> = key.split('/').collect();
        let job = |s: &str| JobId::parse(s).ok();
        let component = |s: &str| ComponentId::parse(s).ok();
        let id = |s: &str| s.parse::<CheckpointId>().ok();
        let plans = self.job_graphs_dir();
        Some(match segs.as_slice() {
            [LEADER_DIR] => HaKey::LeaderRoot,
            [LEADER_DIR, "latch"] => HaKey::ClusterLatch,
            [LEADER_DIR, "latch", node] if is_segment(node) => {
                HaKey::ClusterLatchNode((*node).to_owned())
            }
            [LEADER_DIR, c] => HaKey::LeaderDir(component(c)?),
            [LEADER_DIR, c, "connection_info"] => HaKey::LeaderInfo(component(c)?),
            [LEADER_DIR, c, "latch"] => HaKey::LeaderLatch(component(c)?),
            [LEADER_DIR, c, "latch", node] if is_segment(node) => {
                HaKey::LeaderLatchNode(component(c)?, (*node).to_owned())
            }
            [dir] if *dir == plans => HaKey::ExecutionPlans,
            [dir, j] if *dir == plans => HaKey::ExecutionPlan(job(j)?),
            [dir, j, "locks"] if *dir == plans => HaKey::ExecutionPlanLocks(job(j)?),
            [dir, j, "locks", owner] if *dir == plans && is_segment(owner) => {
                HaKey::ExecutionPlanLock(job(j)?, (*owner).to_owned())
            }
            [JOBS_DIR] => HaKey::Jobs,
            [JOBS_DIR, j] => HaKey::JobDir(job(j)?),
            [JOBS_DIR, j, "checkpoints"] => HaKey::Checkpoints(job(j)?),
            [JOBS_DIR, j, "checkpoints", c] => HaKey::Checkpoint(job(j)?, id(c)?),
            [JOBS_DIR, j, "checkpoint_id_counter"] => HaKey::CheckpointCounter(job(j)?),
            [JOBS_DIR, j, LEADER_DIR] => HaKey::LegacyJobLeaderDir(job(j)?),
            [JOBS_DIR, j, LEADER_DIR, "connection_info"] => HaKey::LegacyJobLeaderInfo(job(j)?),
            [JOBS_DIR, j, LEADER_DIR, "latch"] => HaKey::LegacyJobLeaderLatch(job(j)?),
            [JOBS_DIR, j, LEADER_DIR, "latch", node] if is_segment(node) => {
                HaKey::LegacyJobLeaderLatchNode(job(j)?, (*node).to_owned())
            }
            [RUNNING_JOBS_DIR] => HaKey::RunningJobs,
            [RUNNING_JOBS_DIR, j] => HaKey::RunningJob(job(j)?),
            [JOB_RESULTS_DIR] => HaKey::JobResults,
            [JOB_RESULTS_DIR, name] => match name.strip_suffix(DIRTY_SUFFIX) {
                Some(j) => HaKey::JobResult {
                    job: job(j)?,
                    dirty: true,
                },
                None => HaKey::JobResult {
                    job: job(name)?,
                    dirty: false,
                },
            },
            [LEGACY_CHECKPOINTS_DIR] => HaKey::LegacyCheckpointsRoot,
            [LEGACY_CHECKPOINTS_DIR, j] => HaKey::LegacyCheckpoints(job(j)?),
            [LEGACY_CHECKPOINTS_DIR, j, c] => HaKey::LegacyCheckpoint(job(j)?, id(c)?),
            [LEGACY_COUNTERS_DIR] => HaKey::LegacyCheckpointCountersRoot,
            [LEGACY_COUNTERS_DIR, j] => HaKey::LegacyCheckpointCounter(job(j)?),
            _ => return None,
        })
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
        self.key(&HaKey::ClusterLatch)
    }

    /// A per-component election's latch directory.
    pub fn component_latch(&self, component: &ComponentId) -> String {
        self.key(&HaKey::LeaderLatch(component.clone()))
    }

    /// The component's leader directory (deleted when its election ends).
    pub fn leader_dir(&self, component: &ComponentId) -> String {
        self.key(&HaKey::LeaderDir(component.clone()))
    }

    /// The key holding the component's published leader information.
    pub fn leader_info(&self, component: &ComponentId) -> String {
        self.key(&HaKey::LeaderInfo(component.clone()))
    }

    /// Parses `leader/<component>/connection_info` back into the component (either era's names).
    pub fn parse_leader_info_key(&self, key: &str) -> Option<ComponentId> {
        match Self::parse_any_era(key)? {
            (_, HaKey::LeaderInfo(c)) => Some(c),
            _ => None,
        }
    }

    /// The job graph directory written by this layout.
    pub fn job_graphs_dir(&self) -> &'static str {
        match self.naming {
            NamingEra::Flink2 => EXECUTION_PLANS_DIR,
            NamingEra::Flink1 => FLINK1_JOB_GRAPHS_DIR,
        }
    }

    /// Both eras' job graph directories, for reading.
    pub fn all_job_graph_dirs(&self) -> [&'static str; 2] {
        [EXECUTION_PLANS_DIR, FLINK1_JOB_GRAPHS_DIR]
    }

    /// The key of a job graph.
    pub fn job_graph(&self, job: &JobId) -> String {
        self.key(&HaKey::ExecutionPlan(*job))
    }

    /// The lock directory of a job graph.
    pub fn job_graph_locks(&self, job: &JobId) -> String {
        self.key(&HaKey::ExecutionPlanLocks(*job))
    }

    /// One process's lock on a job graph.
    pub fn job_graph_lock(&self, job: &JobId, owner: &str) -> String {
        self.key(&HaKey::ExecutionPlanLock(*job, owner.to_owned()))
    }

    /// All data of one job (checkpoints, counter).
    pub fn job_dir(&self, job: &JobId) -> String {
        self.key(&HaKey::JobDir(*job))
    }

    /// The checkpoint directory of a job.
    pub fn checkpoints_dir(&self, job: &JobId) -> String {
        self.key(&HaKey::Checkpoints(*job))
    }

    /// The key of one completed checkpoint.
    pub fn checkpoint(&self, job: &JobId, id: CheckpointId) -> String {
        self.key(&HaKey::Checkpoint(*job, id))
    }

    /// The key of a job's checkpoint id counter.
    pub fn checkpoint_counter(&self, job: &JobId) -> String {
        self.key(&HaKey::CheckpointCounter(*job))
    }

    /// The key of a job's running-jobs-registry entry.
    pub fn running_job(&self, job: &JobId) -> String {
        self.key(&HaKey::RunningJob(*job))
    }

    /// The key of a job's result, dirty or clean.
    pub fn job_result(&self, job: &JobId, dirty: bool) -> String {
        self.key(&HaKey::JobResult { job: *job, dirty })
    }
}

/// Whether `key` (relative to the cluster namespace) is a key of the HA layout: tenure's and
/// Flink 2.x names, Flink 1.15–1.20 names (`jobgraphs/`, bare job ids), Flink 1.14's per-job
/// leader nodes and the older `checkpoints/<job>` and `checkpoint-counter/<job>` nodes. A latch
/// child counts only when it is a well-formed latch node ([`HaKey::is_ha_data`]).
pub fn is_layout_key(key: &str) -> bool {
    Layout::parse_any_era(key).is_some_and(|(_, k)| k.is_ha_data())
}

/// The job whose per-job directory `jobs/<job>` holds `key` (the directory itself or any key
/// below it, whether or not the layout names it), spelled canonically; `None` otherwise.
pub fn job_dir_of(key: &str) -> Option<JobId> {
    let mut segs = key.split('/');
    if segs.next()? != JOBS_DIR {
        return None;
    }
    let seg = segs.next()?;
    let job = JobId::parse(seg).ok()?;
    (job.to_string() == seg).then_some(job)
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
            "leader/my-cron".to_owned(),
            "leader/my-cron/connection_info".to_owned(),
            "leader/my-cron/latch".to_owned(),
            "leader/my-cron/latch/_c_3f0b-latch-0000000003".to_owned(),
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
            "leader/my-cron/latch/junk",
            "leader/My-Cron/connection_info",
            "leader/my_cron/connection_info",
            "leader/latch/connection_info",
            "leader/dispatcher/latch/x/y",
            "execution-plans/not-a-job",
            "jobs/x/checkpoints/1",
            "other-cluster/leader/latch",
            "leader/rest_server/connection_info/extra",
        ] {
            assert!(!is_layout_key(key), "{key}");
        }
    }

    #[test]
    fn parse_reads_each_eras_spelling_and_rejects_others() {
        const JOB: &str = "58c7b669261b7be65fa686cc039885b6";
        let job = JobId::parse(JOB).unwrap();
        let l2 = Layout::default();
        let l1 = Layout::new(NamingEra::Flink1);
        assert_eq!(
            l2.parse(&format!("jobs/{JOB}/checkpoints/0000000000000000042")),
            Some(HaKey::Checkpoint(job, CheckpointId(42)))
        );
        assert_eq!(l2.parse(&format!("jobs/{JOB}/checkpoints/42")), None);
        assert_eq!(
            l2.parse(&format!("job-results/{JOB}_DIRTY")),
            Some(HaKey::JobResult { job, dirty: true })
        );
        assert_eq!(l2.parse(&format!("jobgraphs/{JOB}")), None);
        assert_eq!(
            l1.parse(&format!("jobgraphs/{JOB}")),
            Some(HaKey::ExecutionPlan(job))
        );
        assert_eq!(
            l2.parse(&format!("execution-plans/{}", JOB.to_uppercase())),
            None
        );
        assert_eq!(l2.parse("leader/resourcemanager/connection_info"), None);
        assert_eq!(l1.parse(&format!("leader/job-{JOB}")), None);
        assert_eq!(
            Layout::parse_any_era(&format!("leader/{JOB}/latch")),
            Some((l1, HaKey::LeaderLatch(ComponentId::JobMaster(job))))
        );
        assert_eq!(
            Layout::parse_any_era("leader/dispatcher"),
            Some((l2, HaKey::LeaderDir(ComponentId::Dispatcher)))
        );
        assert_eq!(
            l2.parse("leader/latch/junk"),
            Some(HaKey::ClusterLatchNode("junk".into()))
        );
        let cron = ComponentId::parse("my-cron").unwrap();
        for l in [l1, l2] {
            assert_eq!(l.component_latch(&cron), "leader/my-cron/latch");
            assert_eq!(l.leader_info(&cron), "leader/my-cron/connection_info");
            assert_eq!(
                l.parse("leader/my-cron/latch/_c_x-latch-0000000001"),
                Some(HaKey::LeaderLatchNode(
                    cron.clone(),
                    "_c_x-latch-0000000001".into()
                ))
            );
        }
        assert_eq!(
            Layout::parse_any_era("leader/my-cron/connection_info"),
            Some((l2, HaKey::LeaderInfo(cron.clone())))
        );
        assert_eq!(HaKey::LeaderInfo(cron).job(), None);
        for bad in [
            "",
            "/",
            "leader/",
            "leader//latch",
            "leader/latch/",
            "jobs/",
        ] {
            assert_eq!(Layout::parse_any_era(bad), None, "{bad:?}");
        }
        assert_eq!(job_dir_of(&format!("jobs/{JOB}/anything/else")), Some(job));
        assert_eq!(job_dir_of(&format!("jobs/{JOB}")), Some(job));
        assert_eq!(job_dir_of(&format!("jobs/{}", JOB.to_uppercase())), None);
        assert_eq!(job_dir_of("jobs"), None);
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;
        use crate::ids::ServiceName;

        fn era() -> impl Strategy<Value = Layout> {
            prop_oneof![Just(NamingEra::Flink2), Just(NamingEra::Flink1)].prop_map(Layout::new)
        }

        fn job() -> impl Strategy<Value = JobId> {
            any::<[u8; 16]>().prop_map(JobId::from_bytes)
        }

        fn component() -> impl Strategy<Value = ComponentId> {
            prop_oneof![
                Just(ComponentId::ResourceManager),
                Just(ComponentId::Dispatcher),
                Just(ComponentId::RestServer),
                job().prop_map(ComponentId::JobMaster),
                "[a-z0-9][a-z0-9-]{0,20}[a-z0-9]"
                    .prop_filter_map("reserved", |s| ServiceName::new(&s).ok())
                    .prop_map(ComponentId::Named),
            ]
        }

        fn segment() -> impl Strategy<Value = String> {
            "[^/]{1,24}"
        }

        fn id() -> impl Strategy<Value = CheckpointId> {
            any::<u64>().prop_map(CheckpointId)
        }

        fn ha_key() -> impl Strategy<Value = HaKey> {
            prop_oneof![
                Just(HaKey::LeaderRoot),
                Just(HaKey::ClusterLatch),
                segment().prop_map(HaKey::ClusterLatchNode),
                component().prop_map(HaKey::LeaderDir),
                component().prop_map(HaKey::LeaderInfo),
                component().prop_map(HaKey::LeaderLatch),
                (component(), segment()).prop_map(|(c, n)| HaKey::LeaderLatchNode(c, n)),
                Just(HaKey::ExecutionPlans),
                job().prop_map(HaKey::ExecutionPlan),
                job().prop_map(HaKey::ExecutionPlanLocks),
                (job(), segment()).prop_map(|(j, o)| HaKey::ExecutionPlanLock(j, o)),
                Just(HaKey::Jobs),
                job().prop_map(HaKey::JobDir),
                job().prop_map(HaKey::Checkpoints),
                (job(), id()).prop_map(|(j, i)| HaKey::Checkpoint(j, i)),
                job().prop_map(HaKey::CheckpointCounter),
                Just(HaKey::RunningJobs),
                job().prop_map(HaKey::RunningJob),
                Just(HaKey::JobResults),
                (job(), any::<bool>()).prop_map(|(job, dirty)| HaKey::JobResult { job, dirty }),
                job().prop_map(HaKey::LegacyJobLeaderDir),
                job().prop_map(HaKey::LegacyJobLeaderInfo),
                job().prop_map(HaKey::LegacyJobLeaderLatch),
                (job(), segment()).prop_map(|(j, n)| HaKey::LegacyJobLeaderLatchNode(j, n)),
                Just(HaKey::LegacyCheckpointsRoot),
                job().prop_map(HaKey::LegacyCheckpoints),
                (job(), id()).prop_map(|(j, i)| HaKey::LegacyCheckpoint(j, i)),
                Just(HaKey::LegacyCheckpointCountersRoot),
                job().prop_map(HaKey::LegacyCheckpointCounter),
            ]
        }

        /// Strings near the layout: its segments, ids and junk joined by `/`.
        fn near_key() -> impl Strategy<Value = String> {
            let seg = prop_oneof![
                Just("leader".to_owned()),
                Just("latch".to_owned()),
                Just("connection_info".to_owned()),
                Just("execution-plans".to_owned()),
                Just("jobgraphs".to_owned()),
                Just("locks".to_owned()),
                Just("jobs".to_owned()),
                Just("checkpoints".to_owned()),
                Just("checkpoint_id_counter".to_owned()),
                Just("checkpoint-counter".to_owned()),
                Just("running_job_registry".to_owned()),
                Just("job-results".to_owned()),
                Just("58c7b669261b7be65fa686cc039885b6".to_owned()),
                Just("58C7B669261B7BE65FA686CC039885B6".to_owned()),
                Just("job-58c7b669261b7be65fa686cc039885b6".to_owned()),
                Just("58c7b669261b7be65fa686cc039885b6_DIRTY".to_owned()),
                Just("resource_manager".to_owned()),
                Just("resourcemanager".to_owned()),
                Just("my-cron".to_owned()),
                Just("My-Cron".to_owned()),
                Just("0000000000000000007".to_owned()),
                Just("7".to_owned()),
                Just("_c_x-latch-0000000001".to_owned()),
                ".{0,6}",
            ];
            proptest::collection::vec(seg, 1..6).prop_map(|v| v.join("/"))
        }

        proptest! {
            #[test]
            fn parse_inverts_key(l in era(), k in ha_key()) {
                let key = l.key(&k);
                prop_assert_eq!(l.parse(&key), Some(k.clone()));
                let (any, parsed) = Layout::parse_any_era(&key).unwrap();
                prop_assert_eq!(any.key(&parsed), key);
            }

            #[test]
            fn parse_accepts_only_what_key_spells(l in era(), s in prop_oneof![".*", near_key()]) {
                if let Some(k) = l.parse(&s) {
                    prop_assert_eq!(l.key(&k), s.clone());
                }
                if let Some((any, k)) = Layout::parse_any_era(&s) {
                    prop_assert_eq!(any.key(&k), s.clone());
                }
                let _ = is_layout_key(&s);
                let _ = job_dir_of(&s);
            }
        }
    }
}
