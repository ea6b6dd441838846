//! `tenure`: the demo and operator tools of tenure's HA services.
//!
//! Every operator command reads the HA data of one cluster on any backend through the same
//! configuration (a Flink configuration file and/or flags), prints a table or stable JSON
//! (`--output json`, documented in the crate's README.md), and exits with a code that says what
//! happened (see [`exit`]).

mod cmd;
mod colour;
mod conn;
mod demo;
mod exit;
mod idle_stream;
mod inspect;
mod metrics;
mod metrics_args;
mod metrics_auth;
mod metrics_server;
mod metrics_tls;
mod output;
mod signals;
mod watchdog;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, ColorChoice, CommandFactory, FromArgMatches as _, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::cmd::checkpoints::CheckpointsCmd;
use crate::cmd::cleanup::CleanupArgs;
use crate::cmd::counter::CounterCmd;
use crate::cmd::jobs::JobsCmd;
use crate::cmd::leaders::LeadersArgs;
use crate::cmd::results::ResultsCmd;
use crate::cmd::run::RunArgs;
use crate::conn::ConnArgs;
use crate::exit::{CliError, USAGE};
use crate::output::OutputFormat;

const AFTER_HELP: &str = "Connection options (--config, --ha-type, --zookeeper-quorum, --cluster-id, --storage-dir,
--zookeeper-root, -D key=value, --timeout), --output and --color go before or after the command.
Without any of them (and without FLINK_CONF_DIR) operator commands exit 2: name the cluster to
read. Colours: --color auto (a terminal, unless NO_COLOR is set), always or never.

Exit codes: 0 ok, 1 failure, 2 bad arguments or configuration (or a destructive command without
--yes), 3 not found, 4 unreachable, 5 not leader / refused, 6 corrupt data, 7 not authorized.

Examples:
  tenure leaders --config /opt/flink/conf
  tenure jobs list --ha-type zookeeper --zookeeper-quorum zk1:2181 --storage-dir s3://ha --cluster-id /peer1
  tenure results list --dirty --output json --config /opt/flink/conf
  tenure cleanup --config /opt/flink/conf --cluster-id /old-cluster --dry-run
  tenure run --component dispatcher --config /opt/flink/conf -- ./serve.sh
  tenure completions bash > /etc/bash_completion.d/tenure

Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=tenure=debug) for more.";

/// High-availability services for distributed data systems (Flink-compatible): demo and tools.
#[derive(Debug, Parser)]
#[command(name = "tenure", version, about, long_about = None)]
#[command(after_help = AFTER_HELP)]
struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,

    /// When to colour help, errors and logs: `auto` colours a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    color: ColorChoice,

    #[command(flatten)]
    conn: ConnArgs,

    #[command(subcommand)]
    command: Command,
}

/// `tenure demo` with the options this binary adds.
#[derive(Debug, Args)]
struct DemoCommand {
    #[command(flatten)]
    args: demo::DemoArgs,
    /// The metrics endpoint, served while the demo runs.
    #[command(flatten)]
    metrics: metrics_args::MetricsArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulated job managers fail over while running jobs; checks the HA invariants.
    #[command(after_help = demo::EXAMPLES)]
    Demo(DemoCommand),
    /// Shows every component's leader (address, session id) and the latch contenders.
    #[command(after_help = cmd::leaders::EXAMPLES)]
    Leaders(LeadersArgs),
    /// Job graphs: list, show one, remove one.
    #[command(subcommand, after_help = cmd::jobs::EXAMPLES)]
    Jobs(JobsCmd),
    /// A job's retained completed checkpoints and checkpoint id counter.
    #[command(subcommand, after_help = cmd::checkpoints::EXAMPLES)]
    Checkpoints(CheckpointsCmd),
    /// The job result store: list results, mark a dirty one clean.
    #[command(subcommand, after_help = cmd::results::EXAMPLES)]
    Results(ResultsCmd),
    /// A job's checkpoint id counter: get or set the next id.
    #[command(subcommand, after_help = cmd::counter::EXAMPLES)]
    Counter(CounterCmd),
    /// The running jobs registry (PENDING / RUNNING / DONE per job).
    #[command(after_help = cmd::registry::EXAMPLES)]
    Registry,
    /// Removes all HA data of a cluster whose processes are gone.
    #[command(after_help = cmd::cleanup::EXAMPLES)]
    Cleanup(CleanupArgs),
    /// Runs a command only while this process leads a component or a service by name (like
    /// `etcdctl elect`).
    #[command(after_help = cmd::run::EXAMPLES)]
    Run(RunArgs),
    /// Prints a shell completion script.
    #[command(after_help = "Examples:
  tenure completions bash > /etc/bash_completion.d/tenure
  tenure completions zsh > \"${fpath[1]}/_tenure\"
  tenure completions fish > ~/.config/fish/completions/tenure.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Guards the process group of `tenure run`'s command (started by `tenure run` only).
    #[command(name = watchdog::SUBCOMMAND, hide = true)]
    Watchdog(watchdog::WatchdogArgs),
}

/// Parses `args` (the program name first) with clap's colours set by `--color` and NO_COLOR.
fn try_parse(args: &[OsString]) -> Result<Cli, clap::Error> {
    let mut command = Cli::command().color(colour::requested(args));
    let mut matches = command.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut command))
}

/// Parses the command line; errors are reported on one line with exit code 2.
fn parse() -> Result<Cli, ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    match try_parse(&args) {
        Ok(cli) => Ok(cli),
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                Err(ExitCode::SUCCESS)
            }
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                Err(ExitCode::from(USAGE))
            }
            _ => Err(CliError::Usage(usage_line(&e.render().to_string())).report()),
        },
    }
}

/// clap's rendered error as one line: the error itself (its first paragraph) and every `tip:`
/// clap gave (a similar subcommand or value, `--` before a value that looks like a flag),
/// without the usage and `--help` lines.
fn usage_line(rendered: &str) -> String {
    let mut lines = rendered.lines().map(str::trim);
    let mut parts: Vec<String> = lines
        .by_ref()
        .take_while(|l| !l.is_empty())
        .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_owned())
        .collect();
    let tips: Vec<&str> = lines.filter(|l| l.starts_with("tip: ")).collect();
    if !tips.is_empty() {
        let last = parts.pop().unwrap_or_default();
        parts.push(format!("{last}; {}", tips.join("; ")));
    }
    format!("{} (see --help)", parts.join(" "))
}

fn init_tracing(color: ColorChoice) {
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour::on_stderr(color))
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error")));
    tracing_subscriber::registry().with(fmt).init();
}

async fn dispatch(cli: Cli) -> Result<u8, CliError> {
    let format = cli.output;
    let conn = cli.conn;
    match cli.command {
        Command::Demo(d) => {
            // The demo's own --config shadows the global one; either names the file.
            let conn = ConnArgs {
                config: d.args.config.clone().or(conn.config),
                ..conn
            };
            let config = conn.demo_config()?;
            d.metrics.serve().await?;
            let code = demo::run(d.args, config, format).await?;
            Ok(if code == ExitCode::SUCCESS {
                exit::OK
            } else {
                exit::FAILED
            })
        }
        Command::Leaders(args) => cmd::leaders::run(args, &conn, format).await,
        Command::Jobs(c) => cmd::jobs::run(c, &conn, format).await,
        Command::Checkpoints(c) => cmd::checkpoints::run(c, &conn, format).await,
        Command::Results(c) => cmd::results::run(c, &conn, format).await,
        Command::Counter(c) => cmd::counter::run(c, &conn, format).await,
        Command::Registry => cmd::registry::run(&conn, format).await,
        Command::Cleanup(args) => cmd::cleanup::run(args, &conn, format).await,
        Command::Run(args) => cmd::run::run(args, &conn, format).await,
        Command::Watchdog(args) => watchdog::run(args).await,
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics when a write to stdout fails.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tenure", &mut script);
            output::write_stdout(&script)?;
            Ok(exit::OK)
        }
    }
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_tracing(cli.color);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return CliError::Other(format!("cannot start the runtime: {e}")).report(),
    };
    let result = runtime.block_on(dispatch(cli));
    // Background tasks (watches, the metrics server) must not keep the process alive.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader of stdout went away (`tenure … | head -1`): a quiet exit, status 0.
        Err(_) if output::stdout_closed() => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_mistyped_subcommand_keeps_clap_s_tip() {
        let e = try_parse(&["tenure".into(), "leader".into()]).expect_err("not a command");
        assert_eq!(
            usage_line(&e.render().to_string()),
            "unrecognized subcommand 'leader'; tip: a similar subcommand exists: 'leaders' \
             (see --help)"
        );
        let e = try_parse(&["tenure".into(), "leaders".into(), "--wacth".into()])
            .expect_err("not a flag");
        let line = usage_line(&e.render().to_string());
        assert!(
            line.contains("tip: a similar argument exists: '--watch'"),
            "{line}"
        );
        assert!(!line.contains("Usage") && !line.contains('\n'), "{line}");
    }
}
