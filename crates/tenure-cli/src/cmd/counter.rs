//! `tenure counter get JOB | set JOB N`: a job's checkpoint id counter (the next id to hand out).

use clap::{Args, Subcommand};
use serde::Serialize;
use tenure::HaServices;
use tenure::ids::{CheckpointId, JobId};

use super::checkpoints::{self, CounterInfo};
use super::require_yes;
use crate::conn::{ConnArgs, Storage, connect, connect_reading};
use crate::exit::CliError;
use crate::inspect;
use crate::output::{OutputFormat, or_dash, print_json, print_line};

/// Examples shown by `tenure counter --help`.
pub const EXAMPLES: &str = "Examples:
  tenure counter get 58c7b669261b7be65fa686cc039885b6
  tenure counter set 58c7b669261b7be65fa686cc039885b6 43 --yes    next checkpoint gets id 43";

/// `tenure counter` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum CounterCmd {
    /// Shows the next checkpoint id the job's counter hands out.
    #[command(after_help = EXAMPLES)]
    Get {
        /// The job id (32 hexadecimal characters).
        job: JobId,
    },
    /// Sets the next checkpoint id (as Flink does on restore: restored id + 1).
    #[command(after_help = EXAMPLES)]
    Set(SetArgs),
}

/// Options of `tenure counter set`.
#[derive(Debug, Clone, Args)]
pub struct SetArgs {
    /// The job id (32 hexadecimal characters).
    pub job: JobId,
    /// The next checkpoint id to hand out (1 ..= 2147483647).
    #[arg(value_parser = clap::value_parser!(u64).range(1..=i32::MAX as u64))]
    pub next: u64,
    /// Do it (without --yes nothing is changed).
    #[arg(long)]
    pub yes: bool,
    /// Go ahead although the cluster looks live, or the value would reuse a retained
    /// checkpoint's id.
    #[arg(long)]
    pub force: bool,
}

#[derive(Serialize)]
struct GetReport {
    job_id: String,
    #[serde(flatten)]
    counter: CounterInfo,
}

#[derive(Serialize)]
struct SetReport {
    job_id: String,
    key: String,
    previous: Option<u64>,
    next_checkpoint_id: u64,
}

async fn set(s: &HaServices, args: &SetArgs) -> Result<SetReport, CliError> {
    let job = args.job;
    let before = checkpoints::counter(s, job).await?;
    let newest = checkpoints::list(s, job).await?.last().map(|c| c.id);
    if let Some(newest) = newest
        && args.next <= newest
        && !args.force
    {
        return Err(CliError::Usage(format!(
            "setting the counter of job {job} to {} would hand out checkpoint ids up to the \
             retained checkpoint {newest} again; use at least {}, or pass --force",
            args.next,
            newest + 1
        )));
    }
    let what = format!("setting the checkpoint id counter of job {job}");
    inspect::guard(s.backend().kv().as_ref(), s.layout(), &what, args.force).await?;
    require_yes(
        args.yes,
        &format!("`tenure counter set {job} {}`", args.next),
    )?;
    s.admin_stores()
        .checkpoint_recovery_factory()
        .create_checkpoint_id_counter(job)
        .set(CheckpointId(args.next))
        .await
        .map_err(|e| CliError::store(&what, e))?;
    Ok(SetReport {
        job_id: job.to_string(),
        key: before.key,
        previous: before.exists.then_some(before.next_checkpoint_id).flatten(),
        next_checkpoint_id: args.next,
    })
}

/// Runs `tenure counter`; `get` exits 6 after printing when the counter is unreadable.
pub async fn run(cmd: CounterCmd, conn: &ConnArgs, format: OutputFormat) -> Result<u8, CliError> {
    let conn = match cmd {
        CounterCmd::Get { .. } => connect_reading(conn).await?,
        CounterCmd::Set(_) => connect(conn, Storage::Optional).await?,
    };
    let s = &conn.services;
    let mut corrupt = Vec::new();
    let result = match cmd {
        CounterCmd::Get { job } => match checkpoints::counter(s, job).await {
            Err(e) => Err(e),
            Ok(c) if !c.exists => Err(CliError::NotFound(format!(
                "job {job} has no checkpoint id counter ({} does not exist)",
                c.key
            ))),
            Ok(c) if format == OutputFormat::Json => {
                corrupt.extend(c.problem());
                print_json(&GetReport {
                    job_id: job.to_string(),
                    counter: c,
                })
            }
            Ok(c) => {
                corrupt.extend(c.problem());
                match &c.error {
                    Some(e) => print_line(&format!("{}: unreadable: {e}", c.key)),
                    None => print_line(&format!(
                        "next checkpoint id: {}",
                        or_dash(c.next_checkpoint_id)
                    )),
                }
            }
        },
        CounterCmd::Set(args) => match set(s, &args).await {
            Err(e) => Err(e),
            Ok(r) if format == OutputFormat::Json => print_json(&r),
            Ok(r) => print_line(&format!(
                "next checkpoint id of job {}: {} (was {})",
                r.job_id,
                r.next_checkpoint_id,
                or_dash(r.previous)
            )),
        },
    };
    conn.close().await;
    result.map(|()| CliError::corrupt_found(&corrupt))
}
