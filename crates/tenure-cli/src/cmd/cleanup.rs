//! `tenure cleanup --cluster-id ID --yes [--dry-run]`: removes every piece of HA data of a
//! cluster whose processes are gone (`close_and_cleanup_all_data`): all keys of its namespace,
//! all blobs under `<storageDir>/<cluster-id>`, and its job result files.

use clap::Args;
use serde::Serialize;
use tenure::services::JobResultStorage;

use super::require_yes;
use crate::conn::{ConnArgs, Connection, Storage, connect};
use crate::exit::{CliError, OK};
use crate::inspect::LeaderSnapshot;
use crate::output::{OutputFormat, outln, print_json};

/// Examples shown by `tenure cleanup --help`.
pub const EXAMPLES: &str = "Examples:
  tenure cleanup --config conf/config.yaml --cluster-id /peer1 --dry-run     what would go
  tenure cleanup --config conf/config.yaml --cluster-id /peer1 --yes

The cluster id must be given with --cluster-id, even when the configuration file sets it.
A cluster with live latch contenders, published leaders or other ephemeral data (a live
process's session) is refused with exit code 5 unless --force is given.";

/// Options of `tenure cleanup`.
#[derive(Debug, Clone, Args)]
pub struct CleanupArgs {
    /// Only list the keys, blobs and job result files that would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Do it (without --yes nothing is changed).
    #[arg(long)]
    pub yes: bool,
    /// Go ahead although live processes seem to use the cluster.
    #[arg(long)]
    pub force: bool,
}

/// What cleanup removes (or would remove).
#[derive(Debug, Serialize)]
pub struct CleanupReport {
    /// The cluster id.
    pub cluster_id: String,
    /// The backend.
    pub backend: String,
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
    /// Whether the data was removed.
    pub removed: bool,
    /// Keys of the cluster's namespace.
    pub keys: Vec<String>,
    /// Ephemeral keys among them (owned by live sessions).
    pub ephemeral_keys: Vec<String>,
    /// Where the blobs are.
    pub blob_location: String,
    /// Blobs below `<storageDir>/<cluster-id>`.
    pub blobs: Vec<String>,
    /// Where the job result files are, if results are kept as files.
    pub job_result_location: Option<String>,
    /// Job result files.
    pub job_result_files: Vec<String>,
}

async fn inventory(conn: &Connection, dry_run: bool) -> Result<CleanupReport, CliError> {
    let s = &conn.services;
    let entries = s
        .backend()
        .kv()
        .list("")
        .await
        .map_err(|e| CliError::kv("listing the cluster's keys", e))?;
    let ephemeral_keys = entries
        .iter()
        .filter(|e| e.ephemeral_owner.is_some())
        .map(|e| e.key.clone())
        .collect();
    let blobs = s
        .blob_store()
        .list("")
        .await
        .map_err(|e| CliError::blob("listing the cluster's blobs", e))?;
    let (job_result_location, job_result_files) = match &s.options().job_results {
        JobResultStorage::Kv => (None, Vec::new()),
        JobResultStorage::Files { dir, .. } => (
            Some(dir.location().to_owned()),
            dir.list("")
                .await
                .map_err(|e| CliError::blob("listing the job result files", e))?,
        ),
    };
    Ok(CleanupReport {
        cluster_id: conn.config.cluster_id.clone(),
        backend: conn.backend(),
        dry_run,
        removed: false,
        keys: entries.into_iter().map(|e| e.key).collect(),
        ephemeral_keys,
        blob_location: s.blob_store().location().to_owned(),
        blobs,
        job_result_location,
        job_result_files,
    })
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
    let mut report = match inventory(&conn, args.dry_run).await {
        Ok(r) => r,
        Err(e) => {
            conn.close().await;
            return Err(e);
        }
    };
    if !args.dry_run {
        let snap = LeaderSnapshot::read(
            conn.services.backend().kv().as_ref(),
            conn.services.layout(),
        )
        .await;
        let refusal = match snap {
            Err(e) => Some(e),
            Ok(snap) => {
                let what = format!("removing all HA data of cluster {}", report.cluster_id);
                match snap.guard(&what, args.force) {
                    Err(e) => Some(e),
                    Ok(()) if !report.ephemeral_keys.is_empty() && !args.force => {
                        Some(CliError::Refused(format!(
                            "{what} refused: live sessions own ephemeral keys ({}); stop the \
                             cluster's processes first, or pass --force",
                            report.ephemeral_keys.join(", ")
                        )))
                    }
                    Ok(()) => require_yes(
                        args.yes,
                        &format!("`tenure cleanup --cluster-id {}`", report.cluster_id),
                    )
                    .err(),
                }
            }
        };
        if let Some(e) = refusal {
            conn.close().await;
            return Err(e);
        }
        conn.services
            .close_and_cleanup_all_data()
            .await
            .map_err(|e| CliError::ha("removing the cluster's HA data", e))?;
        report.removed = true;
    } else {
        conn.close().await;
    }
    match format {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Table => {
            let verb = if report.removed {
                "removed"
            } else {
                "would remove"
            };
            outln!(
                "{verb} {} keys of cluster {} ({} backend)",
                report.keys.len(),
                report.cluster_id,
                report.backend
            )?;
            for k in &report.keys {
                let eph = if report.ephemeral_keys.contains(k) {
                    "  (ephemeral)"
                } else {
                    ""
                };
                outln!("  {k}{eph}")?;
            }
            outln!(
                "{verb} {} blobs in {}",
                report.blobs.len(),
                report.blob_location
            )?;
            for b in &report.blobs {
                outln!("  {b}")?;
            }
            if let Some(loc) = &report.job_result_location {
                outln!(
                    "{verb} {} job result files in {loc}",
                    report.job_result_files.len()
                )?;
                for f in &report.job_result_files {
                    outln!("  {f}")?;
                }
            }
        }
    }
    Ok(OK)
}
