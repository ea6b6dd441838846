//! `tenure registry`: the running jobs registry (Flink's pre-1.15 `RunningJobsRegistry`).

use serde::Serialize;

use crate::conn::{ConnArgs, connect_reading};
use crate::exit::{CliError, OK};
use crate::output::{OutputFormat, Table, print_json, print_line};

/// Examples shown by `tenure registry --help`.
pub const EXAMPLES: &str = "Examples:
  tenure registry --config conf/config.yaml
  tenure registry --output json | jq '.jobs[] | select(.status == \"RUNNING\")'";

/// One registry entry.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryEntry {
    /// The job id.
    pub job_id: String,
    /// `PENDING`, `RUNNING` or `DONE`.
    pub status: String,
}

#[derive(Serialize)]
struct Report {
    jobs: Vec<RegistryEntry>,
}

/// Runs `tenure registry`.
pub async fn run(conn: &ConnArgs, format: OutputFormat) -> Result<u8, CliError> {
    let conn = connect_reading(conn).await?;
    let all = conn.services.admin_stores().running_jobs().all().await;
    conn.close().await;
    let jobs: Vec<RegistryEntry> = all
        .map_err(|e| CliError::store("reading the running jobs registry", e))?
        .into_iter()
        .map(|(job, status)| RegistryEntry {
            job_id: job.to_string(),
            status: status.to_string(),
        })
        .collect();
    match format {
        OutputFormat::Json => print_json(&Report { jobs })?,
        OutputFormat::Table if jobs.is_empty() => print_line("no running jobs registry entries")?,
        OutputFormat::Table => {
            let mut t = Table::new(&["JOB", "STATUS"]);
            for j in jobs {
                t.row(vec![j.job_id, j.status]);
            }
            t.print()?;
        }
    }
    Ok(OK)
}
