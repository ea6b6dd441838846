//! `tenure jobs cleanup JOB --yes [--dry-run] [--force]`: removes everything a finished job left
//! (Flink's global cleanup of one job, `tenure::job_cleanup`) and marks its job result clean.

use clap::Args;
use serde::Serialize;
use tenure::cleanup::LeftAlone;
use tenure::ids::JobId;
use tenure::job_cleanup::{JobCleanupPlan, JobCleanupReport, ResultMark};
use tenure::layout::{HaKey, Layout};

use super::super::require_yes;
use crate::conn::Connection;
use crate::exit::CliError;
use crate::inspect;
use crate::output::{Table, print_line};

/// Options of `tenure jobs cleanup`.
#[derive(Debug, Clone, Args)]
pub struct CleanupJobArgs {
    /// The job id (32 hexadecimal characters).
    pub job: JobId,
    /// Do it (without --yes nothing is changed).
    #[arg(long)]
    pub yes: bool,
    /// Only print what would be removed and what is left alone. Writes nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Go ahead although the cluster looks live or a live session holds keys of the job.
    #[arg(long)]
    pub force: bool,
}

/// What `jobs cleanup` removed (or, in a dry run, would remove).
#[derive(Debug, Serialize)]
pub struct CleanupJobReport {
    /// The job id.
    pub job_id: String,
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
    /// Keys removed (planned, in a dry run), deepest first.
    pub keys: Vec<String>,
    /// Blobs removed (planned, in a dry run).
    pub blobs: Vec<String>,
    /// Keys of the job left alone, with the reason.
    pub kept_keys: Vec<LeftAlone>,
    /// Planned keys not removed because they changed meanwhile (run it again).
    pub changed_keys: Vec<LeftAlone>,
    /// What happened to the job result: `marked-clean`, `clean-already`, `no-result`,
    /// `left-dirty`; none in a dry run.
    pub result: Option<ResultMark>,
}

impl CleanupJobReport {
    fn of_plan(plan: &JobCleanupPlan) -> Self {
        Self {
            job_id: plan.job_id.to_string(),
            dry_run: true,
            keys: plan.keys.iter().map(|k| k.key.clone()).collect(),
            blobs: plan
                .key_blobs
                .values()
                .chain(&plan.job_blobs)
                .cloned()
                .collect(),
            kept_keys: plan.kept_keys.clone(),
            changed_keys: Vec::new(),
            result: None,
        }
    }

    fn of_report(r: JobCleanupReport) -> Self {
        Self {
            job_id: r.job_id.to_string(),
            dry_run: false,
            keys: r.keys,
            blobs: r.blobs,
            kept_keys: r.kept_keys,
            changed_keys: r.changed_keys,
            result: Some(r.result),
        }
    }
}

/// What kind of job data `key` is, in words: `job graph`, `checkpoint`, `leader`, ….
pub fn data_kind(key: &str) -> &'static str {
    match Layout::parse_any_era(key).map(|(_, k)| k) {
        Some(HaKey::ExecutionPlan(_)) => "job graph",
        Some(HaKey::ExecutionPlanLocks(_) | HaKey::ExecutionPlanLock(..)) => "job graph lock",
        Some(HaKey::Checkpoint(..) | HaKey::LegacyCheckpoint(..)) => "checkpoint",
        Some(HaKey::CheckpointCounter(_) | HaKey::LegacyCheckpointCounter(_)) => {
            "checkpoint id counter"
        }
        Some(HaKey::RunningJob(_)) => "registry entry",
        Some(
            HaKey::LeaderDir(_)
            | HaKey::LeaderInfo(_)
            | HaKey::LeaderLatch(_)
            | HaKey::LeaderLatchNode(..)
            | HaKey::LegacyJobLeaderDir(_)
            | HaKey::LegacyJobLeaderInfo(_)
            | HaKey::LegacyJobLeaderLatch(_)
            | HaKey::LegacyJobLeaderLatchNode(..),
        ) => "job master leader",
        _ => "directory",
    }
}

/// Plans, checks the guards, and (unless a dry run) removes the job's data and marks its result
/// clean. Refused (exit 5) while the cluster looks live or a live session owns keys of the job,
/// unless `--force`; a job of which nothing is stored is not found (exit 3).
pub async fn cleanup(
    conn: &Connection,
    args: &CleanupJobArgs,
) -> Result<CleanupJobReport, CliError> {
    let s = &conn.services;
    let job = args.job;
    let stores = s.admin_stores();
    let ctx = format!("planning the cleanup of job {job}");
    let plan = stores
        .plan_job_cleanup(job)
        .await
        .map_err(|e| CliError::ha(&ctx, e))?;
    let results = s.job_result_store();
    let has_result = results
        .has_entry(job)
        .await
        .map_err(|e| CliError::store("reading the job result store", e))?;
    if plan.is_empty() && plan.kept_keys.is_empty() && !has_result {
        return Err(CliError::NotFound(format!(
            "job {job} not found: no job graph, checkpoints, counter, registry entry, leader \
             data or result"
        )));
    }
    if args.dry_run {
        return Ok(CleanupJobReport::of_plan(&plan));
    }
    let what = format!("cleaning up job {job}");
    inspect::guard(s.backend().kv().as_ref(), s.layout(), &what, args.force).await?;
    let live: Vec<&str> = plan
        .keys
        .iter()
        .filter(|k| k.ephemeral)
        .map(|k| k.key.as_str())
        .collect();
    if !live.is_empty() && !args.force {
        return Err(CliError::Refused(format!(
            "{what} refused: live sessions own keys of the job ({}); a live job manager uses \
             it. Stop it first, or pass --force",
            live.join(", ")
        )));
    }
    require_yes(args.yes, &format!("`tenure jobs cleanup {job}`"))?;
    let report = stores
        .cleanup_job(job)
        .await
        .map_err(|e| CliError::ha(&what, e))?;
    Ok(CleanupJobReport::of_report(report))
}

/// Prints the report as a table: one row per key and blob, then what was left alone.
pub fn print(r: &CleanupJobReport) -> Result<(), CliError> {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    print_line(&format!(
        "job {}: {verb} {} key(s) and {} blob(s){}",
        r.job_id,
        r.keys.len(),
        r.blobs.len(),
        r.result
            .map(|m| format!("; job result: {}", m.as_str()))
            .unwrap_or_default()
    ))?;
    let mut t = Table::new(&["WHAT", "NAME", "STATUS"]);
    let status = if r.dry_run { "planned" } else { "removed" };
    for k in &r.keys {
        t.row(vec![data_kind(k).into(), k.clone(), status.into()]);
    }
    for b in &r.blobs {
        t.row(vec!["blob".into(), b.clone(), status.into()]);
    }
    for k in &r.changed_keys {
        t.row(vec![
            data_kind(&k.name).into(),
            k.name.clone(),
            format!("skipped: {}", k.reason),
        ]);
    }
    for k in &r.kept_keys {
        t.row(vec![
            "kept".into(),
            k.name.clone(),
            format!("left alone: {}", k.reason),
        ]);
    }
    if !r.keys.is_empty() || !r.blobs.is_empty() || !r.kept_keys.is_empty() {
        t.print()?;
    }
    if !r.changed_keys.is_empty() {
        print_line("some keys changed while the job was cleaned up; run it again")?;
    }
    Ok(())
}
