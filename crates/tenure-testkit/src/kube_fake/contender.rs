//! `tenure-kube-contender`: the `tenure-contender` of the fault tests, for the Kubernetes
//! backend.
//!
//! It behaves as `tenure-contender` does (campaigns for the dispatcher; while leading writes a
//! fenced checkpoint every interval: an id from the job's fenced counter, then a fenced add;
//! logs every grant, revocation, write outcome and the exit as history lines; exits 0 on
//! SIGTERM / SIGINT), but connects the Kubernetes backend itself, exactly as the facade's
//! `KUBERNETES` arm does (`KubernetesBackend::from_config`: the Flink configuration's
//! `kubernetes.*` keys, the client configuration from `$KUBECONFIG`). It exists because the
//! facade's `kubernetes` feature cannot be switched on for `tenure-contender` in the testkit
//! without switching it on for every package of a workspace build.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use tenure_core::config::{Configuration, HaConfig};
use tenure_core::election::{LeaderElection, LeaderTerm};
use tenure_core::ids::{CheckpointId, JobId};
use tenure_core::services::{HaServices, HaServicesOptions};
use tenure_core::store::{CheckpointIdCounter, CompletedCheckpoint, CompletedCheckpointStore};
use tenure_kubernetes::KubernetesBackend;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::history::{Event, EventKind};

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "tenure-kube-contender")]
pub struct Args {
    /// Flink configuration file selecting Kubernetes HA.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// This process's name in the history.
    #[arg(long)]
    pub name: String,
    /// The job whose checkpoints are written (32 hex characters).
    #[arg(long, value_name = "JOBID")]
    pub job: String,
    /// Checkpoints retained by the completed checkpoint store.
    #[arg(long, default_value_t = 3)]
    pub retain: usize,
    /// Milliseconds between writes while leading.
    #[arg(long, default_value_t = 50)]
    pub interval_ms: u64,
    /// The address confirmed as leader [default: contender://<name>].
    #[arg(long, value_name = "ADDR")]
    pub address: Option<String>,
    /// Append the history to this file.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Log {
    name: String,
    file: Option<Mutex<File>>,
}

impl Log {
    fn event(&self, kind: EventKind) -> Event {
        Event::new(now_ms(), self.name.clone(), kind)
    }

    fn term_event(&self, kind: EventKind, term: &LeaderTerm) -> Event {
        let mut e = self.event(kind);
        e.session = Some(*term.session_id.as_uuid());
        e.epoch = Some(term.fencing_token.epoch);
        e
    }

    fn log(&self, event: &Event) {
        let line = event.to_json_line();
        if let Some(file) = &self.file {
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            let _ = f.write_all(line.as_bytes()).and_then(|()| f.flush());
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}

/// Runs the contender; the process's exit code.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenure-kube-contender: error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs the contender until SIGTERM / SIGINT.
pub async fn run(args: Args) -> Result<(), String> {
    let job = JobId::parse(&args.job).map_err(|e| format!("--job: {e}"))?;
    let conf = Configuration::from_file(&args.config).map_err(|e| e.to_string())?;
    let config = HaConfig::from_configuration(&conf).map_err(|e| e.to_string())?;
    let file = match &args.history {
        None => None,
        Some(p) => Some(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("{}: {e}", p.display()))?,
        )),
    };
    let log = Log {
        name: args.name.clone(),
        file,
    };
    let (shutdown_tx, shutdown) = watch::channel(false);
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = shutdown_tx.send(true);
    });
    let backend = KubernetesBackend::from_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    let options = HaServicesOptions::from_config(&config).map_err(|e| e.to_string())?;
    let services = HaServices::new(Arc::new(backend), options);
    let mut election = services
        .dispatcher_leader_election()
        .await
        .map_err(|e| e.to_string())?;
    let c = Contender {
        log: &log,
        services: &services,
        job,
        retain: args.retain.max(1),
        interval: Duration::from_millis(args.interval_ms),
        address: args
            .address
            .clone()
            .unwrap_or_else(|| format!("contender://{}", args.name)),
        shutdown,
    };
    c.campaign(&mut election).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), election.stop()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), services.close()).await;
    log.log(&log.event(EventKind::Exit));
    Ok(())
}

struct Contender<'a> {
    log: &'a Log,
    services: &'a HaServices,
    job: JobId,
    retain: usize,
    interval: Duration,
    address: String,
    shutdown: watch::Receiver<bool>,
}

enum Outcome {
    Acknowledged,
    Rejected(String),
    Failed(String),
}

impl Contender<'_> {
    async fn campaign(&self, election: &mut LeaderElection) {
        loop {
            let mut shutdown = self.shutdown.clone();
            let term = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return,
                granted = election.wait_for_leadership() => match granted {
                    Ok(term) => term,
                    Err(tenure_core::election::ElectionError::Closed) => return,
                    Err(_) => continue,
                },
            };
            self.log
                .log(&self.log.term_event(EventKind::Granted, &term));
            let stop = self.lead(election, &term).await;
            self.log
                .log(&self.log.term_event(EventKind::Revoked, &term));
            if stop {
                return;
            }
            term.over().await;
        }
    }

    async fn lead(&self, election: &LeaderElection, term: &LeaderTerm) -> bool {
        let mut shutdown = self.shutdown.clone();
        let _ = election
            .confirm(term.session_id, self.address.clone())
            .await;
        let fence = Some(term.fencing_token.clone());
        let factory = self.services.checkpoint_recovery_factory();
        let counter = factory.create_checkpoint_id_counter(self.job, fence.clone());
        let Ok(store) = factory.create_completed_checkpoint_store(self.job, self.retain, fence)
        else {
            return false;
        };
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return true,
                _ = term.over() => return false,
                _ = tokio::time::sleep(self.interval) => {}
            }
            // A term that ended while the process was stopped is not checked here on purpose:
            // the write goes out with the old token and must be refused by the backend.
            let start_ms = now_ms();
            let mut id = None;
            let attempt = self.write(&counter, &store, &mut id);
            let grace = async {
                let mut s = self.shutdown.clone();
                let _ = s.wait_for(|s| *s).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            };
            let outcome = tokio::select! {
                o = attempt => o,
                _ = grace => Outcome::Failed("outcome unknown: interrupted by shutdown".into()),
            };
            let kind = match outcome {
                Outcome::Acknowledged => EventKind::Write,
                Outcome::Rejected(_) => EventKind::WriteRejected,
                Outcome::Failed(_) => EventKind::WriteFailed,
            };
            let mut event = self.log.term_event(kind, term);
            event.id = id;
            event.start_ms = Some(start_ms);
            if let Outcome::Rejected(e) | Outcome::Failed(e) = outcome {
                event.error = Some(e);
            }
            self.log.log(&event);
        }
    }

    async fn write(
        &self,
        counter: &CheckpointIdCounter,
        store: &CompletedCheckpointStore,
        id: &mut Option<u64>,
    ) -> Outcome {
        let classify = |e: tenure_core::store::StoreError| {
            if e.is_not_leader() {
                Outcome::Rejected(e.to_string())
            } else {
                Outcome::Failed(e.to_string())
            }
        };
        let cp: CheckpointId = match counter.get_and_increment().await {
            Ok(i) => i,
            Err(e) => return classify(e),
        };
        *id = Some(cp.0);
        let checkpoint = CompletedCheckpoint {
            job_id: self.job,
            id: cp,
            timestamp_ms: now_ms(),
            metadata: Bytes::from(self.log.name.clone().into_bytes()),
        };
        match store.add(checkpoint).await {
            Ok(_) => Outcome::Acknowledged,
            Err(e) => classify(e),
        }
    }
}
