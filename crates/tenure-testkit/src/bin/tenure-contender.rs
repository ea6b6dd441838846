//! `tenure-contender`: one contender process for fault tests.
//!
//! Reads a Flink configuration, connects the HA services it selects, campaigns for the
//! dispatcher, and while it leads writes a fenced checkpoint every interval (an id from the job's
//! fenced checkpoint id counter, then a fenced add to the job's completed checkpoint store). Every
//! grant, revocation, write outcome and the exit are logged as JSON lines (the format of
//! `tenure_testkit::history`) to stdout and, if given, appended to the history file, flushed line
//! by line. It keeps campaigning after losing leadership and exits cleanly on SIGTERM or SIGINT.
//!
//! Exit codes: 0 after SIGTERM/SIGINT, 2 for bad arguments or configuration, 1 otherwise.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use tenure::election::{LeaderElection, LeaderTerm};
use tenure::ids::{CheckpointId, JobId};
use tenure::services::HaServices;
use tenure::store::{CheckpointIdCounter, CompletedCheckpoint, CompletedCheckpointStore};
use tenure::{Configuration, HaConfig, HaError};
use tenure_testkit::history::{Event, EventKind};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// How long an in-flight write may finish after SIGTERM before it is logged as interrupted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long stopping the election and closing the services may take at exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A contender for fault tests: campaigns for the dispatcher, writes fenced checkpoints while
/// leading, logs its history as JSON lines.
#[derive(Debug, Parser)]
#[command(name = "tenure-contender", version)]
struct Args {
    /// Flink configuration file (flink-conf.yaml or config.yaml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// This process's name in the history.
    #[arg(long)]
    name: String,
    /// The job whose checkpoints are written (32 hex characters).
    #[arg(long, value_name = "JOBID")]
    job: String,
    /// Checkpoints retained by the completed checkpoint store.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    retain: u32,
    /// Milliseconds between writes while leading.
    #[arg(long, default_value_t = 50)]
    interval_ms: u64,
    /// The address confirmed as leader (default: `contender://<name>`).
    #[arg(long, value_name = "ADDR")]
    address: Option<String>,
    /// Append the history to this file (it is also printed to stdout).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

/// An error that ends the process.
enum Failure {
    /// Bad arguments or configuration (exit 2).
    Usage(String),
    /// Anything else (exit 1).
    Other(String),
}

impl Failure {
    fn report(&self) -> ExitCode {
        let (code, msg) = match self {
            Failure::Usage(m) => (2, m),
            Failure::Other(m) => (1, m),
        };
        eprintln!("tenure-contender: error: {}", msg.replace('\n', " "));
        ExitCode::from(code)
    }
}

fn ha_failure(what: &str, e: HaError) -> Failure {
    match e {
        HaError::Config(_) | HaError::Unsupported(_) => Failure::Usage(format!("{what}: {e}")),
        other => Failure::Other(format!("{what}: {other}")),
    }
}

/// Writes history lines to stdout and the history file.
struct HistoryLog {
    name: String,
    file: Option<Mutex<File>>,
}

impl HistoryLog {
    fn event(&self, kind: EventKind) -> Event {
        Event::new(now_ms(), self.name.clone(), kind)
    }

    fn term_event(&self, kind: EventKind, term: &LeaderTerm) -> Event {
        let mut e = self.event(kind);
        e.session = Some(*term.session_id.as_uuid());
        e.epoch = Some(term.fencing_token.epoch());
        e
    }

    /// Logs one line. The file gets the whole line in one write, so a killed process leaves only
    /// whole lines behind.
    fn log(&self, event: &Event) {
        let line = event.to_json_line();
        if let Some(file) = &self.file {
            let mut f = tenure_core::sync::lock(file);
            if let Err(e) = f.write_all(line.as_bytes()).and_then(|()| f.flush()) {
                eprintln!("tenure-contender: cannot write the history: {e}");
            }
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn main() -> ExitCode {
    let args = Args::parse(); // clap exits with 2 on bad arguments
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the runtime: {e}")))
        .and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let job = JobId::parse(&args.job).map_err(|e| Failure::Usage(format!("--job: {e}")))?;
    if args.name.trim().is_empty() {
        return Err(Failure::Usage("--name must not be empty".into()));
    }
    let conf = Configuration::from_file(&args.config).map_err(|e| Failure::Usage(e.to_string()))?;
    let config = HaConfig::from_configuration(&conf)
        .map_err(|e| Failure::Usage(format!("{}: {e}", args.config.display())))?;
    let file = match &args.history {
        None => None,
        Some(path) => Some(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Failure::Usage(format!("cannot open {}: {e}", path.display())))?,
        )),
    };
    let log = HistoryLog {
        name: args.name.clone(),
        file,
    };
    let address = args
        .address
        .clone()
        .unwrap_or_else(|| format!("contender://{}", args.name));

    // SIGTERM / SIGINT flip `shutdown`; everything that waits also watches it.
    let (shutdown_tx, shutdown) = watch::channel(false);
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| Failure::Other(format!("cannot handle SIGTERM: {e}")))?;
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| Failure::Other(format!("cannot handle SIGINT: {e}")))?;
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
        let _ = shutdown_tx.send(true);
    });

    let services = tenure::connect(&config)
        .await
        .map_err(|e| ha_failure("cannot connect the HA services", e))?;
    let mut election = services
        .dispatcher_leader_election()
        .await
        .map_err(|e| Failure::Other(format!("cannot campaign for the dispatcher: {e}")))?;

    let contender = Contender {
        log: &log,
        services: &services,
        job,
        retain: args.retain as usize,
        interval: Duration::from_millis(args.interval_ms),
        address,
        shutdown,
    };
    let result = contender.campaign(&mut election).await;

    // Leave cleanly whether or not the campaign failed.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, election.stop()).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, services.close()).await;
    if result.is_ok() {
        log.log(&log.event(EventKind::Exit));
    }
    result
}

struct Contender<'a> {
    log: &'a HistoryLog,
    services: &'a HaServices,
    job: JobId,
    retain: usize,
    interval: Duration,
    address: String,
    shutdown: watch::Receiver<bool>,
}

/// How a write attempt ended.
enum Outcome {
    Acknowledged,
    Rejected(String),
    Failed(String),
}

/// How a term ended for [`Contender::lead`].
struct LeadEnd {
    /// Shutdown was requested.
    stop: bool,
    /// `revoked` was logged already (the term ended during a write).
    revoked_logged: bool,
}

impl Contender<'_> {
    /// Campaigns until shutdown: every term is logged and written in.
    async fn campaign(&self, election: &mut LeaderElection) -> Result<(), Failure> {
        loop {
            let mut shutdown = self.shutdown.clone();
            let term = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
                granted = election.wait_for_leadership() => match granted {
                    Ok(term) => term,
                    Err(tenure::election::ElectionError::Closed) => {
                        return Err(Failure::Other("the election service closed".into()));
                    }
                    Err(e) => {
                        eprintln!("tenure-contender: election error: {e}");
                        continue;
                    }
                },
            };
            self.log
                .log(&self.log.term_event(EventKind::Granted, &term));
            let end = self.lead(election, &term).await;
            if !end.revoked_logged {
                self.log
                    .log(&self.log.term_event(EventKind::Revoked, &term));
            }
            if end.stop {
                return Ok(());
            }
            // Do not report the same term again: wait until it is over (it is, unless shutdown).
            term.over().await;
        }
    }

    /// Leads for one term: confirms, then writes every interval until the term is over.
    async fn lead(&self, election: &LeaderElection, term: &LeaderTerm) -> LeadEnd {
        let end = |stop| LeadEnd {
            stop,
            revoked_logged: false,
        };
        let mut shutdown = self.shutdown.clone();
        match election
            .confirm(term.session_id, self.address.clone())
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::info!("term {} ended before it was confirmed", term.session_id),
            Err(e) => eprintln!("tenure-contender: confirm failed: {e}"),
        }
        let factory = self
            .services
            .leader_stores(term)
            .checkpoint_recovery_factory();
        let counter = factory.create_checkpoint_id_counter(self.job);
        let store = match factory.create_completed_checkpoint_store(self.job, self.retain) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tenure-contender: cannot open the checkpoint store: {e}");
                tokio::select! {
                    _ = term.over() => return end(false),
                    _ = shutdown.wait_for(|s| *s) => return end(true),
                }
            }
        };
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return end(true),
                _ = term.over() => return end(false),
                _ = tokio::time::sleep(self.interval) => {}
            }
            // A term that ended while this process was stopped is not checked here on purpose:
            // the write goes out with the old token and must be rejected by the backend.
            let start_ms = now_ms();
            let mut id = None;
            let mut revoked_logged = false;
            let outcome = {
                let attempt = self.write(&counter, &store, &mut id);
                let grace = async {
                    let mut s = self.shutdown.clone();
                    let _ = s.wait_for(|s| *s).await;
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                };
                tokio::pin!(attempt, grace);
                // The end of the term is logged when it happens, even while a write is in flight
                // (a write held by a disconnected client can take longer than the session).
                loop {
                    tokio::select! {
                        outcome = &mut attempt => break outcome,
                        _ = &mut grace => {
                            break Outcome::Failed("outcome unknown: interrupted by shutdown".into());
                        }
                        _ = term.over(), if !revoked_logged => {
                            self.log.log(&self.log.term_event(EventKind::Revoked, term));
                            revoked_logged = true;
                        }
                    }
                }
            };
            let mut event = self.log.term_event(
                match outcome {
                    Outcome::Acknowledged => EventKind::Write,
                    Outcome::Rejected(_) => EventKind::WriteRejected,
                    Outcome::Failed(_) => EventKind::WriteFailed,
                },
                term,
            );
            event.id = id;
            event.start_ms = Some(start_ms);
            if let Outcome::Rejected(e) | Outcome::Failed(e) = outcome {
                event.error = Some(e);
            }
            self.log.log(&event);
            if revoked_logged {
                return LeadEnd {
                    stop: false,
                    revoked_logged,
                };
            }
        }
    }

    /// Takes an id from the fenced counter (stored in `id`) and adds a checkpoint with it.
    async fn write(
        &self,
        counter: &CheckpointIdCounter,
        store: &CompletedCheckpointStore,
        id: &mut Option<u64>,
    ) -> Outcome {
        let classify = |e: tenure::store::StoreError| {
            if e.is_not_leader() {
                Outcome::Rejected(e.to_string())
            } else {
                Outcome::Failed(e.to_string())
            }
        };
        let cp_id: CheckpointId = match counter.get_and_increment().await {
            Ok(i) => i,
            Err(e) => return classify(e),
        };
        *id = Some(cp_id.0);
        let checkpoint = CompletedCheckpoint {
            job_id: self.job,
            id: cp_id,
            timestamp_ms: now_ms(),
            metadata: Bytes::from(self.log.name.clone().into_bytes()),
        };
        match store.add(checkpoint).await {
            Ok(_) => Outcome::Acknowledged,
            Err(e) => classify(e),
        }
    }
}
