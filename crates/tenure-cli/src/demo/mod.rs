//! `tenure demo`: simulated job managers contend, the leader runs jobs and completes
//! checkpoints, leaders are killed or step down, standbys take over and recover, and the demo
//! checks the HA invariants over the whole run.

mod checks;
mod cleanup;
mod jobmanager;
mod jobs;
mod run;
mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use tenure::HaConfig;

use crate::exit::{CliError, FAILED, OK};
use crate::output::{OutputFormat, print_json, print_line};
use checks::Verdict;
use timeline::{Event, Timeline};

/// Examples shown by `tenure demo --help`.
pub const EXAMPLES: &str = "Examples:
  tenure demo                                  3 job managers, 2 jobs, 2 failovers, embedded backend
  tenure demo --job-managers 5 --failovers 6   more failovers (alternating crash and step-down)
  tenure demo --config conf/config.yaml        HA mode and settings from a Flink config file;
                                               runs as a fresh cluster id <cluster-id>-demo-<random>
                                               and removes only that cluster's data at the end
  tenure demo --zookeeper-quorum zk1:2181 --storage-dir file:///tmp/ha
                                               the same on ZooKeeper, chosen by the flags
  tenure demo --output json | jq .verdicts     the timeline and verdicts as JSON";

/// Options of `tenure demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of simulated job managers (one leads, the others stand by).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=64))]
    pub job_managers: u32,
    /// Number of jobs the leader runs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub jobs: u32,
    /// Number of failovers; they alternate between a crash (SIGKILL-like session loss) and a
    /// step-down after which the deposed leader tries to write.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub failovers: u32,
    /// Checkpoints each job completes per leadership term.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub checkpoints: u32,
    /// A Flink configuration file (`config.yaml` or legacy `flink-conf.yaml`) or conf directory
    /// selecting the HA mode and its settings, like the connection flags (--ha-type,
    /// --zookeeper-quorum, --storage-dir, --cluster-id, --zookeeper-root, -D, --timeout), which
    /// win over it; checked before anything starts. FLINK_CONF_DIR is not read.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    backend: &'a str,
    cluster_id: &'a str,
    job_managers: u32,
    jobs: u32,
    failovers: u32,
    events: &'a [Event],
    verdicts: &'a [Verdict],
}

/// The configured backend and storage with a fresh cluster id of the demo's own
/// (`<cluster-id>-demo-<suffix>`, on Kubernetes `kubernetes.cluster-id` too), and job results
/// in that cluster's own directory rather than a possibly shared `job-result-store.storage-path`:
/// the demo creates, and at the end removes, only data of a cluster nobody else uses.
fn own_cluster(mut config: HaConfig, suffix: &str) -> Result<HaConfig, CliError> {
    let base = config.cluster_id.trim_end_matches('/').to_owned();
    config.cluster_id = format!("{base}-demo-{suffix}");
    if let Some(k8s) = &config.kubernetes.cluster_id {
        config.kubernetes.cluster_id = Some(format!("{k8s}-demo-{suffix}"));
    }
    config.job_result_store_path = None;
    config
        .cluster_segments()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(config)
}

/// Runs the demo; the exit code says whether every invariant held.
/// `configured` is the configuration from `--config`, the connection flags and `-D` pairs
/// ([`crate::conn::ConnArgs::demo_config`]); without it the demo runs on the embedded backend.
pub async fn run(
    args: DemoArgs,
    configured: Option<HaConfig>,
    format: OutputFormat,
) -> Result<ExitCode, CliError> {
    let config = match configured {
        Some(configured) => {
            let own = own_cluster(configured, &uuid::Uuid::new_v4().simple().to_string()[..8])?;
            eprintln!(
                "tenure demo: running as cluster {} of its own; the configured cluster's data \
                 is not touched, and only the demo's data is removed at the end",
                own.cluster_id
            );
            own
        }
        None => {
            let mut embedded = HaConfig::embedded();
            // Retain a few checkpoints so subsumption shows on the timeline.
            embedded.num_retained_checkpoints = 3;
            embedded
        }
    };
    let cluster_id = config.cluster_id.clone();
    let mut timeline = Timeline::new(format);
    let outcome = run::Demo::new(&args, config)?.run(&mut timeline).await;
    let (backend, verdicts) = match outcome {
        Ok(r) => r,
        Err(e) => {
            timeline.push("-", "aborted", e.to_string());
            return Err(e);
        }
    };
    let ok = verdicts.iter().all(|v| v.ok);
    match format {
        OutputFormat::Json => {
            let report = Report {
                ok,
                backend: &backend,
                cluster_id: &cluster_id,
                job_managers: args.job_managers,
                jobs: args.jobs,
                failovers: args.failovers,
                events: timeline.events(),
                verdicts: &verdicts,
            };
            print_json(&report)?;
        }
        OutputFormat::Table => {
            print_line("")?;
            for v in &verdicts {
                let mark = if v.ok { "ok  " } else { "FAIL" };
                print_line(&format!("[{mark}] {}: {}", v.invariant, v.detail))?;
            }
            print_line(if ok {
                "verdict: every invariant held"
            } else {
                "verdict: AN INVARIANT BROKE"
            })?;
        }
    }
    Ok(ExitCode::from(if ok { OK } else { FAILED }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_demo_runs_under_a_fresh_cluster_id_of_its_own() {
        let mut configured = HaConfig::embedded();
        configured.cluster_id = "/prod/".into();
        configured.job_result_store_path = Some("/shared/results".into());
        configured.kubernetes.cluster_id = Some("prod".into());
        let own = own_cluster(configured, "1a2b3c4d").expect("valid");
        assert_eq!(own.cluster_id, "/prod-demo-1a2b3c4d");
        assert_eq!(
            own.kubernetes.cluster_id.as_deref(),
            Some("prod-demo-1a2b3c4d")
        );
        assert_eq!(own.job_result_store_path, None);
    }
}
