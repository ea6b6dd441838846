//! `tenure jobs list | show JOB | remove JOB | cleanup JOB`: the stored job graphs (Flink's
//! execution plans), and removing what a finished job left.

#[path = "jobs_cleanup.rs"]
mod cleanup;

use clap::{Args, Subcommand};
use serde::Serialize;
use tenure::HaServices;
use tenure::ids::JobId;
use tenure::kv::{DeleteOptions, Entry, KvError};
use tenure::layout::{HaKey, Layout, NamingEra};
use tenure::store::{StoreError, fnv1a64};

use super::checkpoints::{self, CheckpointInfo, CounterInfo, corrupt_entry};
use super::{Origin, require_yes};
use crate::conn::{ConnArgs, Connection, Storage, connect, connect_reading};
use crate::exit::CliError;
use crate::inspect::{self, ComponentLeader, LeaderSnapshot};
use crate::output::{OutputFormat, Table, or_dash, print_json, print_line};

/// Examples shown by `tenure jobs --help`.
pub const EXAMPLES: &str = "Examples:
  tenure jobs list --config conf/config.yaml
  tenure jobs show 58c7b669261b7be65fa686cc039885b6 --output json
  tenure jobs remove 58c7b669261b7be65fa686cc039885b6 --yes             job graph only
  tenure jobs remove 58c7b669261b7be65fa686cc039885b6 --all-data --yes  also checkpoints, counter, registry entry, leader data
  tenure jobs cleanup 58c7b669261b7be65fa686cc039885b6 --dry-run        what a finished job's cleanup would remove
  tenure jobs cleanup 58c7b669261b7be65fa686cc039885b6 --yes            remove it all and mark the job result clean";

/// `tenure jobs` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum JobsCmd {
    /// Lists the stored job graphs.
    #[command(after_help = EXAMPLES)]
    List,
    /// Shows one job: its graph, locks, checkpoints, counter, registry status, result, leader.
    #[command(after_help = EXAMPLES)]
    Show {
        /// The job id (32 hexadecimal characters).
        job: JobId,
    },
    /// Removes a job's graph (and with --all-data its checkpoints, counter and registry entry).
    #[command(after_help = EXAMPLES)]
    Remove(RemoveArgs),
    /// Removes everything a finished job left (graph, locks, checkpoints and their blobs,
    /// counter, registry entry, job master leader data) and marks its job result clean.
    #[command(after_help = EXAMPLES)]
    Cleanup(cleanup::CleanupJobArgs),
}

/// Options of `tenure jobs remove`.
#[derive(Debug, Clone, Args)]
pub struct RemoveArgs {
    /// The job id (32 hexadecimal characters).
    pub job: JobId,
    /// Do it (without --yes nothing is changed).
    #[arg(long)]
    pub yes: bool,
    /// Go ahead although the cluster looks live, and remove other processes' locks.
    #[arg(long)]
    pub force: bool,
    /// Also remove the job's checkpoints, checkpoint id counter, running-jobs-registry entry
    /// and job master leader data (what `jobs cleanup` removes, without marking the result).
    #[arg(long)]
    pub all_data: bool,
}

/// One job graph as `tenure jobs` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobGraphInfo {
    /// The job id.
    pub job_id: String,
    /// The key holding the graph (`execution-plans/<id>` or Flink 1.x `jobgraphs/<id>`).
    pub key: String,
    /// Where the value came from and where its payload is.
    #[serde(flatten)]
    pub origin: Origin,
    /// Owners of the locks on the graph (one per process using it).
    pub locks: Vec<String>,
    /// Whether the graph is marked for deletion (its `locks` node is gone).
    pub marked_for_deletion: bool,
}

/// Finds the job's graph entry under either era's directory.
async fn graph_entry(
    services: &HaServices,
    job: JobId,
) -> Result<Option<(Layout, Entry)>, CliError> {
    let kv = services.backend().kv();
    let own = services.layout();
    let other = Layout::new(match own.naming {
        NamingEra::Flink2 => NamingEra::Flink1,
        NamingEra::Flink1 => NamingEra::Flink2,
    });
    for layout in [own, other] {
        let key = layout.job_graph(&job);
        if let Some(e) = kv
            .get(&key)
            .await
            .map_err(|e| CliError::kv(&format!("reading {key}"), e))?
        {
            return Ok(Some((layout, e)));
        }
    }
    Ok(None)
}

/// Describes the job's graph, `None` if it has none.
pub async fn graph_info(
    services: &HaServices,
    job: JobId,
) -> Result<Option<JobGraphInfo>, CliError> {
    let Some((layout, entry)) = graph_entry(services, job).await? else {
        return Ok(None);
    };
    let kv = services.backend().kv();
    let locks_dir = layout.job_graph_locks(&job);
    let locks_node = kv
        .get(&locks_dir)
        .await
        .map_err(|e| CliError::kv(&format!("reading {locks_dir}"), e))?;
    let locks = kv
        .list(&locks_dir)
        .await
        .map_err(|e| CliError::kv(&format!("listing {locks_dir}"), e))?
        .into_iter()
        .filter_map(|e| match layout.parse(&e.key) {
            Some(HaKey::ExecutionPlanLock(j, owner)) if j == job => Some(owner),
            _ => None,
        })
        .collect();
    Ok(Some(JobGraphInfo {
        job_id: job.to_string(),
        key: entry.key.clone(),
        origin: Origin::of(&entry.key, &entry.value),
        locks,
        marked_for_deletion: locks_node.is_none(),
    }))
}

/// Every stored job graph.
pub async fn list(services: &HaServices) -> Result<Vec<JobGraphInfo>, CliError> {
    let store = services.admin_stores().job_graphs();
    let ids = store
        .job_ids()
        .await
        .map_err(|e| CliError::store("listing job graphs", e))?;
    let mut out = Vec::new();
    for job in ids {
        if let Some(info) = graph_info(services, job).await? {
            out.push(info);
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct ListReport {
    jobs: Vec<JobGraphInfo>,
}

/// The job's result, as far as the job result store knows it.
#[derive(Debug, Clone, Serialize)]
struct ResultState {
    /// `dirty`, `clean` or `none`.
    state: &'static str,
    /// How the job ended.
    application_status: Option<String>,
    /// Why the result could not be read.
    #[serde(skip)]
    unreadable: Option<String>,
}

#[derive(Serialize)]
struct ShowReport {
    job_id: String,
    job_graph: Option<JobGraphInfo>,
    job_graph_fnv1a64: Option<String>,
    registry_status: Option<String>,
    checkpoints: Vec<CheckpointInfo>,
    counter: CounterInfo,
    result: ResultState,
    leader: Option<ComponentLeader>,
    /// What of the above is corrupt or unreadable, each naming its key.
    #[serde(skip)]
    problems: Vec<String>,
}

async fn show(conn: &Connection, job: JobId) -> Result<ShowReport, CliError> {
    let s = &conn.services;
    let mut graph = graph_info(s, job).await?;
    let graph_sum = match &mut graph {
        Some(g) if g.origin.origin == "tenure" => {
            let store = s.admin_stores().job_graphs();
            match store.get(job).await {
                Ok(Some(bytes)) => Some(format!("{:016x}", fnv1a64(&bytes))),
                Ok(None) => None,
                // A pointer to a missing or damaged blob: shown as corrupt, like checkpoints.
                Err(e @ StoreError::Corrupt { .. }) => {
                    g.origin.origin = "corrupt";
                    g.origin.detail = Some(e.to_string());
                    None
                }
                Err(e) => return Err(CliError::store(&format!("reading {}", g.key), e)),
            }
        }
        _ => None,
    };
    let mut problems = Vec::new();
    if let Some(g) = &graph {
        problems.extend(corrupt_entry(&g.key, &g.origin));
    }
    let registry_status = match s.admin_stores().running_jobs().status(job).await {
        Ok(st) => st.map(|st| st.to_string()),
        Err(e) => {
            problems.push(format!("running jobs registry entry of {job}: {e}"));
            Some(format!("unreadable: {e}"))
        }
    };
    let checkpoints = checkpoints::list(s, job).await?;
    let counter = checkpoints::counter(s, job).await?;
    problems.extend(checkpoints.iter().filter_map(CheckpointInfo::problem));
    problems.extend(counter.problem());
    let results = s.job_result_store();
    let ctx = |e| CliError::store("reading the job result store", e);
    let result = if results.has_dirty(job).await.map_err(ctx)? {
        find_result(s, job, true).await?
    } else if results.has_clean(job).await.map_err(ctx)? {
        find_result(s, job, false).await?
    } else {
        ResultState {
            state: "none",
            application_status: None,
            unreadable: None,
        }
    };
    if let Some(e) = &result.unreadable {
        problems.push(format!("{} job result of {job}: {e}", result.state));
    }
    let snap = LeaderSnapshot::read(s.backend().kv().as_ref(), s.layout()).await?;
    let leader = snap
        .components
        .into_iter()
        .find(|c| c.job_id.as_deref() == Some(job.to_string().as_str()));
    if graph.is_none()
        && checkpoints.is_empty()
        && !counter.exists
        && registry_status.is_none()
        && result.state == "none"
        && leader.is_none()
    {
        return Err(CliError::NotFound(format!(
            "job {job} not found: no job graph, checkpoints, counter, registry entry, result or leader"
        )));
    }
    Ok(ShowReport {
        job_id: job.to_string(),
        job_graph: graph,
        job_graph_fnv1a64: graph_sum,
        registry_status,
        checkpoints,
        counter,
        result,
        leader,
        problems,
    })
}

async fn find_result(s: &HaServices, job: JobId, dirty: bool) -> Result<ResultState, CliError> {
    let store = s.job_result_store();
    let all = if dirty {
        store.dirty_results().await
    } else {
        store.clean_results().await
    };
    let (status, unreadable) = match all {
        Ok(all) => (
            all.into_iter()
                .find(|r| r.job_id == job)
                .map(|r| r.application_status.to_string()),
            None,
        ),
        Err(e) => (Some(format!("unreadable: {e}")), Some(e.to_string())),
    };
    Ok(ResultState {
        state: if dirty { "dirty" } else { "clean" },
        application_status: status,
        unreadable,
    })
}

/// The names `jobs remove --all-data` reports removed data by, in order, with the
/// [`cleanup::data_kind`] of their keys.
const ALSO_REMOVED: [(&str, &str); 4] = [
    ("checkpoints", "checkpoint"),
    ("checkpoint_id_counter", "checkpoint id counter"),
    ("running_job_registry", "registry entry"),
    ("job_master_leader", "job master leader"),
];

/// What `jobs remove` did.
#[derive(Debug, Serialize)]
pub(crate) struct RemoveReport {
    /// The job id.
    pub job_id: String,
    /// The key of the removed graph.
    pub key: String,
    /// Whether the graph was removed.
    pub removed: bool,
    /// Owners whose locks were removed (with --force).
    pub locks_removed: Vec<String>,
    /// Other data of the job removed (with --all-data).
    pub also_removed: Vec<&'static str>,
}

pub(crate) async fn remove(conn: &Connection, args: &RemoveArgs) -> Result<RemoveReport, CliError> {
    let s = &conn.services;
    let job = args.job;
    let kv = s.backend().kv();
    let Some(info) = graph_info(s, job).await? else {
        return Err(CliError::NotFound(format!(
            "job graph of {job} not found (looked under execution-plans/ and jobgraphs/)"
        )));
    };
    if info.origin.is_flink() {
        return Err(CliError::Other(format!(
            "{} holds a job graph written by Flink ({}); tenure reads Flink's data but never \
             removes it piecemeal: stop the Flink cluster and use `tenure cleanup` for the whole cluster",
            info.key,
            info.origin.detail.as_deref().unwrap_or("Java-serialized")
        )));
    }
    let what = format!("removing the job graph {}", info.key);
    inspect::guard(kv.as_ref(), s.layout(), &what, args.force).await?;
    if !info.locks.is_empty() && !args.force {
        return Err(CliError::Refused(format!(
            "{what} refused: {} process(es) hold a lock on it ({}); a live job manager uses it. \
             Stop them first, or pass --force to remove their locks",
            info.locks.len(),
            info.locks.join(", ")
        )));
    }
    require_yes(args.yes, &format!("`tenure jobs remove {job}`"))?;
    let locks_dir = info.key.clone() + "/locks";
    let mut locks_removed = Vec::new();
    for owner in &info.locks {
        let key = format!("{locks_dir}/{owner}");
        match kv.delete(&key, DeleteOptions::default()).await {
            Ok(()) | Err(KvError::NotFound { .. }) => locks_removed.push(owner.clone()),
            Err(e) => return Err(CliError::kv(&format!("removing the lock {key}"), e)),
        }
    }
    let store = s.admin_stores().job_graphs();
    let removed = store
        .remove(job)
        .await
        .map_err(|e| CliError::store(&what, e))?;
    if !removed {
        return Err(CliError::Refused(format!(
            "{what}: another process took a lock on it meanwhile; the graph stays"
        )));
    }
    let mut also_removed = Vec::new();
    if args.all_data {
        // The same plan and deletion as `jobs cleanup` (tenure::job_cleanup), result untouched.
        let stores = s.admin_stores();
        let ctx = format!("removing the data of job {job}");
        let plan = stores
            .plan_job_cleanup(job)
            .await
            .map_err(|e| CliError::ha(&ctx, e))?;
        let done = plan
            .execute(&stores)
            .await
            .map_err(|e| CliError::ha(&ctx, e))?;
        also_removed = ALSO_REMOVED
            .iter()
            .filter(|(_, kind)| done.keys.iter().any(|k| cleanup::data_kind(k) == *kind))
            .map(|(name, _)| *name)
            .collect();
    }
    Ok(RemoveReport {
        job_id: job.to_string(),
        key: info.key,
        removed,
        locks_removed,
        also_removed,
    })
}

/// Runs `tenure jobs`: `list` and `show` exit 6 after printing when an entry shown is corrupt or
/// unreadable.
pub async fn run(cmd: JobsCmd, conn: &ConnArgs, format: OutputFormat) -> Result<u8, CliError> {
    // Removal discards the graph's blob; reading never opens Flink's files.
    let conn = match cmd {
        JobsCmd::Remove(_) | JobsCmd::Cleanup(_) => connect(conn, Storage::Required).await?,
        _ => connect_reading(conn).await?,
    };
    let mut corrupt = Vec::new();
    // A cleanup that found keys changed under it did not finish: exit 1 after printing.
    let mut incomplete = false;
    let result = match cmd {
        JobsCmd::List => {
            let jobs = list(&conn.services).await;
            if let Ok(jobs) = &jobs {
                corrupt.extend(jobs.iter().filter_map(|j| corrupt_entry(&j.key, &j.origin)));
            }
            match (jobs, format) {
                (Err(e), _) => Err(e),
                (Ok(jobs), OutputFormat::Json) => print_json(&ListReport { jobs }),
                (Ok(jobs), OutputFormat::Table) => print_graphs(&jobs),
            }
        }
        JobsCmd::Show { job } => match show(&conn, job).await {
            Err(e) => Err(e),
            Ok(r) if format == OutputFormat::Json => {
                corrupt.extend(r.problems.iter().cloned());
                print_json(&r)
            }
            Ok(r) => {
                corrupt.extend(r.problems.iter().cloned());
                print_show(&r)
            }
        },
        JobsCmd::Remove(args) => match remove(&conn, &args).await {
            Err(e) => Err(e),
            Ok(r) if format == OutputFormat::Json => print_json(&r),
            Ok(r) => print_removed(&r),
        },
        JobsCmd::Cleanup(args) => match cleanup::cleanup(&conn, &args).await {
            Err(e) => Err(e),
            Ok(r) => {
                if !r.changed_keys.is_empty() {
                    incomplete = true;
                }
                if format == OutputFormat::Json {
                    print_json(&r)
                } else {
                    cleanup::print(&r)
                }
            }
        },
    };
    conn.close().await;
    result.map(|()| {
        if incomplete {
            crate::exit::FAILED
        } else {
            CliError::corrupt_found(&corrupt)
        }
    })
}

fn print_show(r: &ShowReport) -> Result<(), CliError> {
    match &r.job_graph {
        Some(g) => print_graphs(std::slice::from_ref(g))?,
        None => print_line("no job graph")?,
    }
    print_line(&format!(
        "registry status: {}",
        or_dash(r.registry_status.as_ref())
    ))?;
    print_line(&format!(
        "result: {}{}",
        r.result.state,
        r.result
            .application_status
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default()
    ))?;
    print_line(&format!(
        "job master leader: {}",
        r.leader.as_ref().map_or("-".to_owned(), |l| {
            format!(
                "{} {}",
                or_dash(l.session_id.as_ref()),
                or_dash(l.address.as_ref())
            )
        })
    ))?;
    print_line(&format!(
        "checkpoints: {:?}; next checkpoint id: {}",
        r.checkpoints.iter().map(|c| c.id).collect::<Vec<_>>(),
        or_dash(r.counter.next_checkpoint_id)
    ))
}

fn print_removed(r: &RemoveReport) -> Result<(), CliError> {
    print_line(&format!("removed job graph {} ({})", r.job_id, r.key))?;
    if !r.locks_removed.is_empty() {
        print_line(&format!("removed locks of: {}", r.locks_removed.join(", ")))?;
    }
    if !r.also_removed.is_empty() {
        print_line(&format!("also removed: {}", r.also_removed.join(", ")))?;
    }
    Ok(())
}

fn print_graphs(jobs: &[JobGraphInfo]) -> Result<(), CliError> {
    if jobs.is_empty() {
        return print_line("no job graphs");
    }
    let mut t = Table::new(&["JOB", "ORIGIN", "SIZE", "LOCKS", "STORED IN"]);
    for j in jobs {
        t.row(vec![
            j.job_id.clone(),
            j.origin.origin.into(),
            or_dash(j.origin.size_bytes),
            if j.marked_for_deletion {
                "marked for deletion".into()
            } else {
                j.locks.len().to_string()
            },
            j.origin
                .file
                .clone()
                .or_else(|| j.origin.blob.clone())
                .or_else(|| j.origin.storage.map(str::to_owned))
                .unwrap_or_else(|| or_dash(j.origin.detail.as_ref())),
        ]);
    }
    t.print()
}
