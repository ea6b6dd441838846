//! `tenure checkpoints list JOB | show JOB ID`: a job's retained completed checkpoints and its
//! checkpoint id counter; Flink's own checkpoints are listed as `flink` with the file they name.

use clap::Subcommand;
use serde::Serialize;
use tenure::HaServices;
use tenure::ids::{CheckpointId, JobId};
use tenure::layout::HaKey;
use tenure::store::{PayloadCodec, StoreError, decode_checkpoint, fnv1a64};

use super::Origin;
use crate::conn::{ConnArgs, connect_reading};
use crate::exit::CliError;
use crate::output::{OutputFormat, Table, or_dash, print_json, print_line};

/// Examples shown by `tenure checkpoints --help`.
pub const EXAMPLES: &str = "Examples:
  tenure checkpoints list 58c7b669261b7be65fa686cc039885b6 --config conf/config.yaml
  tenure checkpoints show 58c7b669261b7be65fa686cc039885b6 42 --output json";

/// `tenure checkpoints` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum CheckpointsCmd {
    /// Lists a job's retained checkpoints (oldest first) and its checkpoint id counter.
    #[command(after_help = EXAMPLES)]
    List {
        /// The job id (32 hexadecimal characters).
        job: JobId,
    },
    /// Shows one checkpoint.
    #[command(after_help = EXAMPLES)]
    Show {
        /// The job id (32 hexadecimal characters).
        job: JobId,
        /// The checkpoint id.
        id: CheckpointId,
    },
}

/// One checkpoint as `tenure checkpoints` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointInfo {
    /// The checkpoint id (from the key).
    pub id: u64,
    /// The key holding it.
    pub key: String,
    /// Where the value came from and where its payload is.
    #[serde(flatten)]
    pub origin: Origin,
    /// Completion time, ms since the Unix epoch (tenure checkpoints).
    pub timestamp_ms: Option<u64>,
    /// Size of the checkpoint metadata (tenure checkpoints).
    pub metadata_bytes: Option<u64>,
    /// FNV-1a 64 of the metadata, hex (tenure checkpoints).
    pub metadata_fnv1a64: Option<String>,
}

/// The checkpoint id counter of a job.
#[derive(Debug, Clone, Serialize)]
pub struct CounterInfo {
    /// The key holding the counter.
    pub key: String,
    /// Whether the counter exists.
    pub exists: bool,
    /// The next checkpoint id to be handed out (1 if the counter does not exist).
    pub next_checkpoint_id: Option<u64>,
    /// Why the counter could not be read.
    pub error: Option<String>,
}

impl CheckpointInfo {
    /// Why the checkpoint is corrupt (naming its key), `None` if it is not.
    pub fn problem(&self) -> Option<String> {
        corrupt_entry(&self.key, &self.origin)
    }
}

impl CounterInfo {
    /// Why the counter is unreadable (naming its key), `None` if it is readable or absent.
    pub fn problem(&self) -> Option<String> {
        self.error.as_ref().map(|e| {
            if e.contains(&self.key) {
                e.clone()
            } else {
                format!("{}: {e}", self.key)
            }
        })
    }
}

/// Why the value under `key` is corrupt (naming the key), `None` unless `origin` says corrupt.
pub fn corrupt_entry(key: &str, origin: &Origin) -> Option<String> {
    (origin.origin == "corrupt").then(|| match &origin.detail {
        Some(d) if d.contains(key) => d.clone(),
        Some(d) => format!("{key}: {d}"),
        None => format!("{key}: corrupt"),
    })
}

/// Reads every checkpoint of `job`, oldest first: Flink's are reported, not read; a tenure
/// checkpoint whose payload cannot be loaded is reported `corrupt` with the reason.
pub async fn list(services: &HaServices, job: JobId) -> Result<Vec<CheckpointInfo>, CliError> {
    let layout = services.layout();
    let dir = layout.checkpoints_dir(&job);
    let entries = services
        .backend()
        .kv()
        .list(&dir)
        .await
        .map_err(|e| CliError::kv(&format!("listing {dir}"), e))?;
    let codec = PayloadCodec::new(services.blob_store().clone());
    let mut out = Vec::new();
    for e in entries {
        let id = match layout.parse(&e.key) {
            Some(HaKey::Checkpoint(j, id)) if j == job => id,
            _ => continue,
        };
        let mut info = CheckpointInfo {
            id: id.0,
            key: e.key.clone(),
            origin: Origin::of(&e.key, &e.value),
            timestamp_ms: None,
            metadata_bytes: None,
            metadata_fnv1a64: None,
        };
        if info.origin.origin == "tenure" {
            match load(&codec, &e.key, &e.value).await {
                Ok(cp) => {
                    if cp.id != id || cp.job_id != job {
                        info.origin.origin = "corrupt";
                        info.origin.detail =
                            Some(format!("holds checkpoint {} of job {}", cp.id, cp.job_id));
                    } else {
                        info.timestamp_ms = Some(cp.timestamp_ms);
                        info.metadata_bytes = Some(cp.metadata.len() as u64);
                        info.metadata_fnv1a64 = Some(format!("{:016x}", fnv1a64(&cp.metadata)));
                    }
                }
                Err(err) => {
                    info.origin.origin = "corrupt";
                    info.origin.detail = Some(err.to_string());
                }
            }
        }
        out.push(info);
    }
    out.sort_by_key(|c| c.id);
    Ok(out)
}

async fn load(
    codec: &PayloadCodec,
    key: &str,
    value: &[u8],
) -> Result<tenure::store::CompletedCheckpoint, StoreError> {
    let data = codec.load(key, value).await?;
    decode_checkpoint(key, &data)
}

/// Reads the checkpoint id counter of `job`.
pub async fn counter(services: &HaServices, job: JobId) -> Result<CounterInfo, CliError> {
    let factory = services.admin_stores().checkpoint_recovery_factory();
    let c = factory.create_checkpoint_id_counter(job);
    let key = c.key().to_owned();
    let exists = services
        .backend()
        .kv()
        .get(&key)
        .await
        .map_err(|e| CliError::kv(&format!("reading {key}"), e))?
        .is_some();
    let (next, error) = match c.get().await {
        Ok(v) => (Some(v.0), None),
        Err(e @ (StoreError::Corrupt { .. } | StoreError::Foreign { .. })) => {
            (None, Some(e.to_string()))
        }
        Err(e) => return Err(CliError::store(&format!("reading {key}"), e)),
    };
    Ok(CounterInfo {
        key,
        exists,
        next_checkpoint_id: next,
        error,
    })
}

#[derive(Serialize)]
struct ListReport {
    job_id: String,
    checkpoints: Vec<CheckpointInfo>,
    counter: CounterInfo,
}

/// Runs `tenure checkpoints`: after printing, exit 6 if a checkpoint shown (or, for `list`, the
/// counter) is corrupt or unreadable.
pub async fn run(
    cmd: CheckpointsCmd,
    conn: &ConnArgs,
    format: OutputFormat,
) -> Result<u8, CliError> {
    let conn = connect_reading(conn).await?;
    let mut corrupt = Vec::new();
    let result = match cmd {
        CheckpointsCmd::List { job } => {
            let checkpoints = list(&conn.services, job).await?;
            let counter = counter(&conn.services, job).await?;
            corrupt.extend(checkpoints.iter().filter_map(CheckpointInfo::problem));
            corrupt.extend(counter.problem());
            match format {
                OutputFormat::Json => print_json(&ListReport {
                    job_id: job.to_string(),
                    checkpoints,
                    counter,
                }),
                OutputFormat::Table => print_table(&checkpoints).and_then(|()| {
                    print_line(&format!(
                        "checkpoint id counter: {}",
                        match (&counter.next_checkpoint_id, &counter.error) {
                            (_, Some(e)) => format!("unreadable: {e}"),
                            (Some(n), None) if counter.exists => format!("next id {n}"),
                            _ => "not created (next id 1)".to_owned(),
                        }
                    ))
                }),
            }
        }
        CheckpointsCmd::Show { job, id } => {
            let all = list(&conn.services, job).await?;
            let Some(cp) = all.into_iter().find(|c| c.id == id.0) else {
                return Err(CliError::NotFound(format!(
                    "checkpoint {id} of job {job} not found under {}",
                    conn.services.layout().checkpoints_dir(&job)
                )));
            };
            corrupt.extend(cp.problem());
            match format {
                OutputFormat::Json => print_json(&cp),
                OutputFormat::Table => {
                    print_table(std::slice::from_ref(&cp)).and_then(|()| match &cp.origin.detail {
                        Some(d) => print_line(&format!("detail: {d}")),
                        None => Ok(()),
                    })
                }
            }
        }
    };
    conn.close().await;
    result.map(|()| CliError::corrupt_found(&corrupt))
}

fn print_table(cps: &[CheckpointInfo]) -> Result<(), CliError> {
    if cps.is_empty() {
        return print_line("no checkpoints");
    }
    let mut t = Table::new(&["ID", "ORIGIN", "TIMESTAMP_MS", "SIZE", "STORED IN"]);
    for c in cps {
        t.row(vec![
            c.id.to_string(),
            c.origin.origin.into(),
            or_dash(c.timestamp_ms),
            or_dash(c.metadata_bytes.or(c.origin.size_bytes)),
            c.origin
                .file
                .clone()
                .or_else(|| c.origin.blob.clone())
                .or_else(|| c.origin.storage.map(str::to_owned))
                .unwrap_or_else(|| or_dash(c.origin.detail.as_ref())),
        ]);
    }
    t.print()
}
