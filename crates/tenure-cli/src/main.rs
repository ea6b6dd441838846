//! `tenure`: the demo and operator tools of tenure's HA services.

mod demo;
mod exit;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::exit::CliError;
use crate::output::OutputFormat;

/// High-availability services for distributed data systems (Flink-compatible): demo and tools.
#[derive(Debug, Parser)]
#[command(name = "tenure", version, about, long_about = None)]
#[command(after_help = "Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=tenure=debug) for more.")]
struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulated job managers fail over while running jobs; checks the HA invariants.
    #[command(after_help = demo::EXAMPLES)]
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return CliError::Other(format!("cannot start the runtime: {e}")).report(),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args, cli.output).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}
