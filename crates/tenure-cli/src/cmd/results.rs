//! `tenure results list [--dirty] | mark-clean JOB`: the job result store (Flink's
//! `JobResultStore`: dirty entries are jobs whose cleanup has not finished).

use clap::{Args, Subcommand};
use serde::Serialize;
use tenure::HaServices;
use tenure::ids::JobId;
use tenure::services::JobResultStorage;
use tenure::store::JobResultEntry;

use super::require_yes;
use crate::conn::{ConnArgs, Storage, connect, connect_client};
use crate::exit::{CliError, OK};
use crate::inspect;
use crate::output::{OutputFormat, Table, or_dash, print_json, print_line};

/// Examples shown by `tenure results --help`.
pub const EXAMPLES: &str = "Examples:
  tenure results list --config conf/config.yaml
  tenure results list --dirty --output json      jobs whose cleanup did not finish
  tenure results mark-clean 58c7b669261b7be65fa686cc039885b6 --yes";

/// `tenure results` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ResultsCmd {
    /// Lists job results, dirty and clean (clean ones only where they are kept).
    #[command(after_help = EXAMPLES)]
    List {
        /// Only dirty results (jobs whose HA data cleanup has not finished).
        #[arg(long)]
        dirty: bool,
    },
    /// Marks a job's dirty result clean (after cleaning up its HA data by hand).
    #[command(after_help = EXAMPLES)]
    MarkClean(MarkCleanArgs),
}

/// Options of `tenure results mark-clean`.
#[derive(Debug, Clone, Args)]
pub struct MarkCleanArgs {
    /// The job id (32 hexadecimal characters).
    pub job: JobId,
    /// Do it (without --yes nothing is changed).
    #[arg(long)]
    pub yes: bool,
    /// Go ahead although the cluster looks live.
    #[arg(long)]
    pub force: bool,
}

/// One job result as `tenure results` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ResultInfo {
    /// The job id.
    pub job_id: String,
    /// `dirty` or `clean`.
    pub state: &'static str,
    /// How the job ended (`SUCCEEDED`, `FAILED`, `CANCELED`, `UNKNOWN`).
    pub application_status: String,
    /// The job's run time in milliseconds.
    pub net_runtime_ms: i64,
    /// The job's name (Flink 2.x).
    pub name: Option<String>,
    /// Start time, ms since the Unix epoch (Flink 2.x).
    pub start_time: Option<i64>,
    /// End time, ms since the Unix epoch (Flink 2.x).
    pub end_time: Option<i64>,
    /// The exception class, if the job failed.
    pub failure_class: Option<String>,
}

impl ResultInfo {
    fn new(e: JobResultEntry, dirty: bool) -> Self {
        Self {
            job_id: e.job_id.to_string(),
            state: if dirty { "dirty" } else { "clean" },
            application_status: e.application_status.to_string(),
            net_runtime_ms: e.net_runtime_ms,
            name: e.name,
            start_time: e.start_time,
            end_time: e.end_time,
            failure_class: e.failure_cause.map(|f| f.class),
        }
    }
}

/// Where job results are kept: `kv` (`job-results/` of the backend) or the directory of Flink's
/// JSON files.
pub fn location(services: &HaServices) -> String {
    match &services.options().job_results {
        JobResultStorage::Kv => "kv:job-results/".into(),
        JobResultStorage::Files { dir, .. } => dir.location().trim_end_matches('/').to_owned(),
    }
}

/// The job results, dirty first.
pub async fn list(services: &HaServices, dirty_only: bool) -> Result<Vec<ResultInfo>, CliError> {
    let store = services.job_result_store();
    let at = location(services);
    let mut out: Vec<ResultInfo> = store
        .dirty_results()
        .await
        .map_err(|e| CliError::store(&format!("reading dirty job results in {at}"), e))?
        .into_iter()
        .map(|e| ResultInfo::new(e, true))
        .collect();
    if !dirty_only {
        out.extend(
            store
                .clean_results()
                .await
                .map_err(|e| CliError::store(&format!("reading clean job results in {at}"), e))?
                .into_iter()
                .map(|e| ResultInfo::new(e, false)),
        );
    }
    out.sort_by(|a, b| b.state.cmp(a.state).then(a.job_id.cmp(&b.job_id)));
    Ok(out)
}

#[derive(Serialize)]
struct ListReport {
    location: String,
    results: Vec<ResultInfo>,
}

#[derive(Serialize)]
struct MarkCleanReport {
    job_id: String,
    location: String,
    was: &'static str,
    marked_clean: bool,
}

/// Runs `tenure results`.
pub async fn run(cmd: ResultsCmd, conn: &ConnArgs, format: OutputFormat) -> Result<u8, CliError> {
    // Listing only reads: a client-only session; marking clean writes.
    let conn = match cmd {
        ResultsCmd::List { .. } => connect_client(conn, Storage::Required).await?,
        _ => connect(conn, Storage::Required).await?,
    };
    let s = &conn.services;
    let result = match cmd {
        ResultsCmd::List { dirty } => match list(s, dirty).await {
            Err(e) => Err(e),
            Ok(results) if format == OutputFormat::Json => print_json(&ListReport {
                location: location(s),
                results,
            }),
            Ok(results) => {
                if results.is_empty() {
                    print_line(&format!("no job results in {}", location(s)))
                } else {
                    let mut t = Table::new(&["JOB", "STATE", "STATUS", "RUNTIME_MS", "NAME"]);
                    for r in &results {
                        t.row(vec![
                            r.job_id.clone(),
                            r.state.into(),
                            r.application_status.clone(),
                            r.net_runtime_ms.to_string(),
                            or_dash(r.name.as_ref()),
                        ]);
                    }
                    t.print()
                }
            }
        },
        ResultsCmd::MarkClean(args) => match mark_clean(s, &args).await {
            Err(e) => Err(e),
            Ok(r) if format == OutputFormat::Json => print_json(&r),
            Ok(r) if r.was == "clean" => {
                print_line(&format!("the result of job {} was clean already", r.job_id))
            }
            Ok(r) => print_line(&format!("marked the result of job {} clean", r.job_id)),
        },
    };
    conn.close().await;
    result.map(|()| OK)
}

async fn mark_clean(s: &HaServices, args: &MarkCleanArgs) -> Result<MarkCleanReport, CliError> {
    let job = args.job;
    let store = s.job_result_store();
    let at = location(s);
    let ctx = |e| CliError::store(&format!("reading the job result store in {at}"), e);
    let was = if store.has_dirty(job).await.map_err(ctx)? {
        "dirty"
    } else if store.has_clean(job).await.map_err(ctx)? {
        "clean"
    } else {
        return Err(CliError::NotFound(format!(
            "no result of job {job} in {at}"
        )));
    };
    if was == "dirty" {
        let what = format!("marking the result of job {job} clean");
        inspect::guard(s.backend().kv().as_ref(), s.layout(), &what, args.force).await?;
        require_yes(args.yes, &format!("`tenure results mark-clean {job}`"))?;
        store
            .mark_clean(job)
            .await
            .map_err(|e| CliError::store(&what, e))?;
    }
    Ok(MarkCleanReport {
        job_id: job.to_string(),
        location: at,
        was,
        marked_clean: true,
    })
}
