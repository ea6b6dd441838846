//! `tenure-bench`: measures tenure's ZooKeeper backend against what users would pick instead —
//! the same ZooKeeper operations made directly with the raw client (the floor), Apache
//! Curator's `LeaderLatch` (Java) and kazoo (Python) — in one run, against ZooKeeper servers it
//! starts on loopback, and writes `results/*.json`, `results/report.md` and SVG plots.
//!
//! ```text
//! scripts/bench-setup                                # peers: Curator, kazoo (optional)
//! cargo run --release -p tenure-bench -- all         # default sizes, < 15 min on 2 cores
//! cargo run --release -p tenure-bench -- --quick all # < 2 min
//! cargo run --release -p tenure-bench -- election    # one scenario; `report` rebuilds the report
//! cargo run --release -p tenure-bench -- etcd all    # the etcd section alone (results/etcd/)
//! ```
//!
//! `all` runs the ZooKeeper scenarios, then the etcd section (when Debian's `etcd` is
//! installed): tenure's etcd backend against the raw etcd-client making the same requests and
//! `etcdctl elect`, written to `results/etcd/*.json` and `results/etcd/report.md`.

mod alloc;
mod bench;
mod child;
mod clock;
mod peers;
mod progress;
mod report;
mod report_etcd;
mod results;
mod scenarios;
mod stats;
mod svg;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::bench::{Ctx, Mode, Sizes};
use crate::peers::Peers;
use crate::progress::Progress;
use crate::results::{Load, Machine, read_json, write_json};

/// Benchmarks tenure against the raw ZooKeeper client, Apache Curator and kazoo, and on etcd
/// against the raw etcd-client and `etcdctl elect`.
#[derive(Debug, Parser)]
#[command(name = "tenure-bench", version)]
struct Cli {
    /// Small sizes: the whole run in under two minutes.
    #[arg(long, global = true, conflicts_with = "smoke")]
    quick: bool,
    /// Tiny sizes, only to check that the harness works (CI); the figures mean nothing.
    #[arg(long, global = true)]
    smoke: bool,
    /// Directory of the results (JSON, report.md, plots/).
    #[arg(long, global = true, default_value = "results", value_name = "DIR")]
    out: PathBuf,
    /// Which peers to run: those installed (`auto`), or none.
    #[arg(long, global = true, value_enum, default_value_t = PeerChoice::Auto)]
    peers: PeerChoice,
    /// Tokio worker threads of the measuring process (0: a current-thread runtime).
    #[arg(long, global = true, default_value_t = 2)]
    workers: usize,
    /// The workspace root (holding bench/ and target/bench/).
    #[arg(long, global = true, hide = true, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// Which peers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PeerChoice {
    /// Every peer that is installed; missing ones are noted in the report.
    Auto,
    /// No peer.
    None,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every ZooKeeper scenario, then the etcd section (when etcd is installed), then the
    /// reports.
    All,
    /// Loopback round trip of each client.
    Rtt,
    /// 1. Uncontended election.
    Election,
    /// 2. Graceful handover.
    Handover,
    /// 3. Crash failover (SIGKILL of the leader process) for each session timeout.
    Failover,
    /// 4. Confirm-to-retrieval across processes.
    Retrieval,
    /// 5. Store throughput and latency.
    Store,
    /// 6. Scale: many elections on one session; job masters under one process-wide election.
    Scale,
    /// The etcd section: tenure on etcd against the raw etcd-client and `etcdctl elect`.
    Etcd {
        /// Which etcd scenario.
        #[command(subcommand)]
        command: EtcdCommand,
    },
    /// Rebuilds report.md (and etcd/report.md) and the plots from the JSON results.
    Report,
    /// A child process of a scenario (internal).
    #[command(hide = true)]
    Child(child::ChildArgs),
    /// The leader process of the etcd crash failover (internal).
    #[command(hide = true)]
    EtcdChild(scenarios::etcd::child::EtcdChildArgs),
}

/// The scenarios of the etcd section.
#[derive(Debug, Subcommand)]
enum EtcdCommand {
    /// Every etcd scenario, then etcd/report.md.
    All,
    /// E1. Uncontended election.
    Election,
    /// E2. Graceful handover.
    Handover,
    /// E3. Crash failover (SIGKILL of the leader process) for each lease TTL.
    Failover,
    /// E4. Fenced checkpoint add throughput.
    Store,
    /// E5. Per-job elections on one lease (up to 1,000).
    Scale,
    /// Rebuilds etcd/report.md from the JSON results.
    Report,
}

impl EtcdCommand {
    /// The scenarios the command runs (none for `report`).
    fn scenarios(&self) -> Vec<&'static str> {
        match self {
            EtcdCommand::All => scenarios::etcd::ALL.to_vec(),
            EtcdCommand::Election => vec!["election"],
            EtcdCommand::Handover => vec!["handover"],
            EtcdCommand::Failover => vec!["failover"],
            EtcdCommand::Store => vec!["store"],
            EtcdCommand::Scale => vec!["scale"],
            EtcdCommand::Report => Vec::new(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Opt-in logs of tenure itself (for profiling a slow figure): TENURE_BENCH_LOG=debug.
    if let Ok(filter) = std::env::var("TENURE_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let child: Option<std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>>>>> =
        match &cli.command {
            Command::Child(args) => Some(Box::pin(child::run(args.clone()))),
            Command::EtcdChild(args) => Some(Box::pin(scenarios::etcd::child::run(args.clone()))),
            _ => None,
        };
    if let Some(child) = child {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("tenure-bench child: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match rt.block_on(child) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tenure-bench child: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let built = if cli.workers == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.workers)
            .enable_all()
            .build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tenure-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tenure-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; `Ok(false)` when a scenario failed (the report is written anyway).
async fn run(cli: Cli) -> anyhow::Result<bool> {
    std::fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;
    let etcd_dir = scenarios::etcd::dir(&cli.out);
    let scenarios: Vec<&str> = match &cli.command {
        Command::Report => {
            if etcd_dir.is_dir() {
                report_etcd::write(&etcd_dir)?;
                eprintln!("wrote {}", etcd_dir.join("report.md").display());
            }
            report::write(&cli.out)?;
            eprintln!("wrote {}", cli.out.join("report.md").display());
            return Ok(true);
        }
        Command::Etcd {
            command: EtcdCommand::Report,
        } => {
            report_etcd::write(&etcd_dir)?;
            eprintln!("wrote {}", etcd_dir.join("report.md").display());
            return Ok(true);
        }
        Command::Etcd { .. } => Vec::new(),
        Command::All => scenarios::ALL.to_vec(),
        Command::Rtt => vec!["rtt"],
        Command::Election => vec!["election"],
        Command::Handover => vec!["handover"],
        Command::Failover => vec!["failover"],
        Command::Retrieval => vec!["retrieval"],
        Command::Store => vec!["store"],
        Command::Scale => vec!["scale"],
        Command::Child(_) | Command::EtcdChild(_) => unreachable!("handled in main"),
    };
    let etcd_scenarios: Vec<&str> = match &cli.command {
        Command::Etcd { command } => command.scenarios(),
        Command::All if scenarios::etcd::installed() => scenarios::etcd::ALL.to_vec(),
        _ => Vec::new(),
    };
    let mode = if cli.smoke {
        Mode::Smoke
    } else if cli.quick {
        Mode::Quick
    } else {
        Mode::Default
    };
    let mut machine = Machine::probe(mode.name());
    let started = Instant::now();
    // The ZooKeeper peers only matter to the ZooKeeper scenarios.
    let peers = match cli.peers {
        PeerChoice::Auto if !scenarios.is_empty() => Peers::detect(&cli.root).await,
        _ => Peers::none(),
    };
    let ctx = Ctx {
        mode,
        sizes: Sizes::of(mode),
        peers,
        progress: Progress::new(0),
        blob_dir: tempfile::Builder::new()
            .prefix("tenure-bench-blobs-")
            .tempdir()?,
        versions: Mutex::new(BTreeMap::new()),
    };
    ctx.version(
        "measuring process",
        if cli.workers == 0 {
            "tokio current-thread runtime".to_owned()
        } else {
            format!("tokio multi-thread runtime, {} worker threads", cli.workers)
        },
    );
    for s in &scenarios {
        ctx.progress.add_steps(scenarios::steps(&ctx, s));
    }
    if !scenarios.is_empty() {
        for missing in &ctx.peers.missing {
            ctx.progress.println(&format!("note: {missing}"));
        }
    }
    let mut ok = true;
    for s in &scenarios {
        match scenarios::run(&ctx, s).await {
            Ok(result) => {
                write_json(&cli.out.join(format!("{s}.json")), &result)?;
            }
            Err(e) => {
                ok = false;
                ctx.progress
                    .println(&format!("error: scenario {s} failed: {e:#}"));
            }
        }
    }
    if matches!(cli.command, Command::All) && etcd_scenarios.is_empty() {
        ctx.progress.println(&format!(
            "note: the etcd section is skipped: {} is missing (Debian package `etcd-server`)",
            tenure_testkit::etcd::ETCD_BIN
        ));
    }
    if !etcd_scenarios.is_empty() {
        let whole = matches!(
            cli.command,
            Command::All
                | Command::Etcd {
                    command: EtcdCommand::All
                }
        );
        ok &= scenarios::etcd::run_section(
            &ctx,
            &cli.out,
            &etcd_scenarios,
            cli.peers == PeerChoice::Auto,
            whole,
        )
        .await?;
        eprintln!("wrote {}", etcd_dir.join("report.md").display());
    }
    ctx.progress.finish();
    if scenarios.is_empty() {
        return Ok(ok);
    }
    machine.load_after = Load::now();
    machine.seconds = started.elapsed().as_secs_f64();
    machine.scenarios = scenarios.iter().map(|s| (*s).to_owned()).collect();
    machine
        .versions
        .extend(tenure_core::sync::lock(&ctx.versions).clone());
    let machine_path = cli.out.join("machine.json");
    // A single scenario keeps the machine record of the last full run, if there is one.
    if matches!(cli.command, Command::All) || read_json::<Machine>(&machine_path).is_err() {
        write_json(&machine_path, &machine)?;
    }
    report::write(&cli.out)?;
    eprintln!(
        "wrote {} ({:.0} s)",
        cli.out.join("report.md").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ok)
}
