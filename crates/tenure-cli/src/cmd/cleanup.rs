//! `tenure cleanup --cluster-id ID --yes [--dry-run] [--force]`: removes the HA data of a cluster
//! whose processes are gone. It plans first (`tenure::cleanup`: the keys of the HA layout in the
//! cluster's namespace, HA blobs under `<storageDir>/<cluster-id>`, Flink-named job result
//! files), prints the plan with everything it leaves alone and why, and deletes exactly the
//! plan; `--dry-run` prints the same plan and writes nothing.

use clap::Args;
use serde::Serialize;
use tenure::cleanup::{CleanupPlan, LeftAlone};

use super::require_yes;
use crate::conn::{ConnArgs, Connection, Storage, connect};
use crate::exit::{CliError, OK};
use crate::inspect::LeaderSnapshot;
use crate::output::{OutputFormat, print_json, print_line};

/// Examples shown by `tenure cleanup --help`.
pub const EXAMPLES: &str = "Examples:
  tenure cleanup --config conf/config.yaml --cluster-id /peer1 --dry-run     what would go
  tenure cleanup --config conf/config.yaml --cluster-id /peer1 --yes

The cluster id must be given with --cluster-id, even when the configuration file sets it.
Only data that provably belongs to the cluster is removed: keys of the HA layout (tenure's or
Flink's names) in its namespace, blobs named like HA blobs in <storageDir>/<cluster-id>, and job
result files named <job-id>.json / <job-id>_DIRTY.json (from a shared job-result-store.storage-path
only those of jobs the cluster names). Anything else is left alone and listed with the reason.
A cluster with live latch contenders, published leaders or other ephemeral data (a live
process's session) is refused with exit code 5 unless --force is given. --force also adds the
foreign keys and blobs inside the cluster's own namespace and blob directory (listed as forced);
it never adds another cluster's data or unattributable files of a shared result directory.";

/// Options of `tenure cleanup`.
#[derive(Debug, Clone, Args)]
pub struct CleanupArgs {
    /// Only print the plan: what would be removed and what is left alone. Writes nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do it (without --yes nothing is changed).
    #[arg(long)]
    pub yes: bool,
    /// Go ahead although live processes seem to use the cluster, and also remove foreign keys
    /// and blobs inside the cluster's own namespace and blob directory.
    #[arg(long)]
    pub force: bool,
}

/// What cleanup removed (or, in a dry run, would remove), and what it left alone.
#[derive(Debug, Serialize)]
pub struct CleanupReport {
    /// The cluster id.
    pub cluster_id: String,
    /// The backend.
    pub backend: String,
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
    /// Whether the plan was carried out.
    pub removed: bool,
    /// Keys of the cluster's namespace removed (planned, in a dry run), deepest first.
    pub keys: Vec<String>,
    /// Foreign keys among them, planned only because of --force.
    pub forced_keys: Vec<String>,
    /// Ephemeral keys among them (owned by sessions).
    pub ephemeral_keys: Vec<String>,
    /// Keys left alone, with the reason.
    pub kept_keys: Vec<LeftAlone>,
    /// Planned keys that were not removed because they changed after planning.
    pub skipped_keys: Vec<LeftAlone>,
    /// Containers of the namespace removed once empty (znode path, ConfigMap names).
    pub namespace_removed: Vec<String>,
    /// Where the blobs are.
    pub blob_location: String,
    /// Blobs removed (planned, in a dry run).
    pub blobs: Vec<String>,
    /// Foreign blobs among them, planned only because of --force.
    pub forced_blobs: Vec<String>,
    /// Blobs left alone, with the reason.
    pub kept_blobs: Vec<LeftAlone>,
    /// Where the job result files are, if results are kept as files.
    pub job_result_location: Option<String>,
    /// Job result files removed (planned, in a dry run).
    pub job_result_files: Vec<String>,
    /// Files of the job result directory left alone, with the reason.
    pub kept_job_result_files: Vec<LeftAlone>,
}

impl CleanupReport {
    fn of_plan(conn: &Connection, plan: &CleanupPlan, dry_run: bool) -> Self {
        CleanupReport {
            cluster_id: conn.config.cluster_id.clone(),
            backend: conn.backend(),
            dry_run,
            removed: false,
            keys: plan.keys.iter().map(|k| k.key.clone()).collect(),
            forced_keys: plan
                .keys
                .iter()
                .filter(|k| k.forced)
                .map(|k| k.key.clone())
                .collect(),
            ephemeral_keys: plan
                .keys
                .iter()
                .filter(|k| k.ephemeral)
                .map(|k| k.key.clone())
                .collect(),
            kept_keys: plan.kept_keys.clone(),
            skipped_keys: Vec::new(),
            namespace_removed: Vec::new(),
            blob_location: plan.blob_location.clone(),
            blobs: plan.blobs.clone(),
            forced_blobs: plan.forced_blobs.clone(),
            kept_blobs: plan.kept_blobs.clone(),
            job_result_location: plan.job_result_location.clone(),
            job_result_files: plan.job_result_files.clone(),
            kept_job_result_files: plan.kept_job_result_files.clone(),
        }
    }
}

/// Refuses a cleanup a live process would race (exit 5), unless `--force`; then requires `--yes`.
async fn check_allowed(
    conn: &Connection,
    report: &CleanupReport,
    args: &CleanupArgs,
) -> Result<(), CliError> {
    let snap = LeaderSnapshot::read(
        conn.services.backend().kv().as_ref(),
        conn.services.layout(),
    )
    .await?;
    let what = format!("removing the HA data of cluster {}", report.cluster_id);
    snap.guard(&what, args.force)?;
    if !report.ephemeral_keys.is_empty() && !args.force {
        return Err(CliError::Refused(format!(
            "{what} refused: live sessions own ephemeral keys ({}); stop the cluster's \
             processes first, or pass --force",
            report.ephemeral_keys.join(", ")
        )));
    }
    require_yes(
        args.yes,
        &format!("`tenure cleanup --cluster-id {}`", report.cluster_id),
    )
}

/// Runs `tenure cleanup`.
pub async fn run(
    args: CleanupArgs,
    conn_args: &ConnArgs,
    format: OutputFormat,
) -> Result<u8, CliError> {
    if conn_args.cluster_id.is_none() {
        return Err(CliError::Usage(
            "cleanup removes all HA data of one cluster: name it with --cluster-id \
             (it is never taken from the configuration file)"
                .into(),
        ));
    }
    let conn = connect(conn_args, Storage::Required).await?;
    let result = plan_and_execute(&conn, &args).await;
    conn.close().await;
    let report = result?;
    match format {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Table => print_table(&report)?,
    }
    Ok(OK)
}

async fn plan_and_execute(
    conn: &Connection,
    args: &CleanupArgs,
) -> Result<CleanupReport, CliError> {
    let plan = conn
        .services
        .cleanup_plan(args.force)
        .await
        .map_err(|e| CliError::ha("planning the cleanup", e))?;
    let mut report = CleanupReport::of_plan(conn, &plan, args.dry_run);
    if args.dry_run {
        return Ok(report);
    }
    check_allowed(conn, &report, args).await?;
    let outcome = conn
        .services
        .execute_cleanup(&plan)
        .await
        .map_err(|e| CliError::ha("removing the cluster's HA data", e))?;
    report.removed = true;
    report.keys = outcome.keys;
    report.skipped_keys = outcome.skipped_keys;
    report.namespace_removed = outcome.namespace;
    report.blobs = outcome.blobs;
    report.job_result_files = outcome.job_result_files;
    Ok(report)
}

fn print_table(report: &CleanupReport) -> Result<(), CliError> {
    let verb = if report.removed {
        "removed"
    } else {
        "would remove"
    };
    let mut out = Vec::new();
    out.push(format!(
        "{verb} {} keys of cluster {} ({} backend)",
        report.keys.len(),
        report.cluster_id,
        report.backend
    ));
    for k in &report.keys {
        let mut notes = Vec::new();
        if report.ephemeral_keys.contains(k) {
            notes.push("ephemeral");
        }
        if report.forced_keys.contains(k) {
            notes.push("foreign, --force");
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join(", "))
        };
        out.push(format!("  {}{notes}", k));
    }
    for n in &report.namespace_removed {
        out.push(format!("removed the emptied namespace {}", n));
    }
    out.push(format!(
        "{verb} {} blobs in {}",
        report.blobs.len(),
        report.blob_location
    ));
    for b in &report.blobs {
        let forced = if report.forced_blobs.contains(b) {
            "  (foreign, --force)"
        } else {
            ""
        };
        out.push(format!("  {}{forced}", b));
    }
    if let Some(loc) = &report.job_result_location {
        out.push(format!(
            "{verb} {} job result files in {}",
            report.job_result_files.len(),
            loc
        ));
        for f in &report.job_result_files {
            out.push(format!("  {}", f));
        }
    }
    let kept: Vec<&LeftAlone> = report
        .kept_keys
        .iter()
        .chain(&report.skipped_keys)
        .chain(&report.kept_blobs)
        .chain(&report.kept_job_result_files)
        .collect();
    if !kept.is_empty() {
        out.push(format!("left alone: {}", kept.len()));
        for k in kept {
            out.push(format!("  {}: {}", k.name, k.reason));
        }
    }
    // Every line is escaped on its way out (`print_line`): backend names cannot forge lines.
    for line in out {
        print_line(&line)?;
    }
    Ok(())
}
