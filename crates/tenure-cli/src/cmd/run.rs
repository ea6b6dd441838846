//! `tenure run --component COMPONENT -- CMD ARGS…` / `tenure run --name NAME -- CMD ARGS…`: runs a
//! command only while this process leads one of Flink's components or any service by name,
//! like `etcdctl elect` / `consul lock`.
//!
//! `--name` elects any service (`ComponentId::Named`, a DNS label such as `my-cron`) on its own
//! latch `leader/<name>/latch`, through `HaServices::election`; its leader is published at
//! `leader/<name>/connection_info` and listed by `tenure leaders`.
//!
//! The process campaigns; once elected it publishes its address (confirms the term) and starts
//! CMD with the term in its environment. When leadership is lost (another contender was
//! preferred after a session loss, the backend became unreachable, the latch node was deleted),
//! CMD's process group gets SIGTERM, then SIGKILL after `--grace`. Without `--restart`, `tenure
//! run` then exits with CMD's status; with `--restart` it campaigns again and starts CMD anew in
//! the next term. SIGINT / SIGTERM to `tenure run` are passed on the same way, and leadership is
//! given up.
//!
//! CMD never outlives the leadership, even if `tenure` itself dies or stalls: before each run
//! of CMD, `tenure` starts a watchdog process ([`crate::watchdog`]) (`tenure __watchdog`, hidden)
//! in a new process group and starts CMD into that group. `tenure` sends it heartbeats from its
//! async runtime; the watchdog SIGKILLs the whole group at once when the pipe from `tenure`
//! closes (`tenure` was SIGKILLed or crashed), and when no heartbeat came for the stall limit, a
//! third of the ZooKeeper session timeout (see [`crate::watchdog::stall_limit`]), which is before
//! the backend can expire the session and grant a standby. If the watchdog cannot be started,
//! CMD is not started and `tenure run` fails. When a run of CMD ends, `tenure` closes the pipe,
//! and the watchdog kills whatever CMD left behind in its group.

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::Serialize;
use tenure::config::duration::parse_duration;
use tenure::election::{ElectionService, LeaderElection, LeaderTerm};
use tenure::ids::{ComponentId, ServiceName};
use tokio::process::{Child, Command};

use crate::conn::{ConnArgs, Storage, connect};
use crate::exit::CliError;
use crate::metrics::metrics;
use crate::output::{OutputFormat, unix_ms};
use crate::signals::{Stop, StopSignals};
use crate::watchdog::{self, Gone, Watchdog};

/// Examples and semantics shown by `tenure run --help`.
pub const EXAMPLES: &str = "Examples:
  tenure run --component dispatcher --address http://$(hostname):8081 -- ./serve.sh
  tenure run --component job-58c7b669261b7be65fa686cc039885b6 --grace 30s -- java -jar job.jar
  tenure run --component rest_server --scope cluster --restart -- ./rest-proxy
  tenure run --component dispatcher --campaign-timeout 5s -- ./once.sh   exit 5 if not elected in 5 s
  tenure run --name my-cron --restart -- ./cron.sh       any service, elected by name

Semantics (as `etcdctl elect` / `consul lock`):
  - campaigns for the component (--component: one of Flink's) or the service (--name: any
    service, a DNS label such as my-cron: 1-63 lower-case letters, digits and -, not one
    of Flink's component names nor latch); when elected, publishes --address as its leader
    address (read by `tenure leaders` and by retrievers), then runs CMD with
      TENURE_LEADER_SESSION_ID  the term's leader session id (a UUID)
      TENURE_COMPONENT          the component's or service's name
      TENURE_LEADER_ADDRESS     the address published
      TENURE_FENCING_TOKEN      the term's fencing token (<lock>#<epoch>)
  - on loss of leadership CMD's process group gets SIGTERM, then SIGKILL after --grace;
    without --restart tenure exits with CMD's status (128+N if killed by signal N);
    with --restart it campaigns again and starts CMD anew when elected.
  - CMD never outlives tenure: a watchdog process (tenure __watchdog, in CMD's process
    group) SIGKILLs the group at once if tenure dies (SIGKILL, crash), and if tenure stops
    sending heartbeats for the stall limit (SIGSTOP, a long pause): a third of the session
    timeout (high-availability.zookeeper.client.session-timeout; on Kubernetes half of
    lease-duration minus retry-period), before the session can expire and a standby be
    elected. When CMD ends, what it left in its group is killed. The grace period runs after
    leadership is lost: keep --grace well below the session timeout if CMD must be gone
    before a standby starts.
  - if CMD exits by itself, tenure gives up leadership and exits with CMD's status; with
    --restart it runs CMD again (after --restart-delay) while it still leads.
  - SIGINT/SIGTERM to tenure: CMD gets SIGTERM (then SIGKILL after --grace), leadership is
    given up, and tenure exits with CMD's status (130/143 if CMD was not running).
  - --scope component (default) campaigns on the component's own latch
    (leader/<component>/latch); --scope cluster joins the cluster's process-wide latch
    (leader/latch), the one Flink's JobManagers use, so it contends with them correctly.
    --name always campaigns on the service's own latch (leader/<name>/latch).
  - progress goes to stderr (one JSON object per line with --output json); CMD keeps stdout.";

/// Which election to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    /// The component's own latch (`leader/<component>/latch`).
    Component,
    /// The cluster's process-wide latch (`leader/latch`), shared with Flink's JobManagers.
    Cluster,
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| format!("{e} (expected e.g. 10s, 500ms, 1min)"))
}

fn parse_component_arg(s: &str) -> Result<ComponentId, String> {
    ComponentId::parse_flink(s).map_err(|e| format!("{e} (use --name to elect any other service)"))
}

fn parse_name_arg(s: &str) -> Result<ServiceName, String> {
    ServiceName::new(s).map_err(|e| e.to_string())
}

/// Options of `tenure run`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("elected").required(true).args(["component", "name"])))]
pub struct RunArgs {
    /// The Flink component to lead: `resource_manager`, `dispatcher`, `rest_server` or `job-<job id>`.
    #[arg(
        long,
        value_name = "COMPONENT",
        value_parser = parse_component_arg
    )]
    pub component: Option<ComponentId>,
    /// Any service to lead, by name (a DNS label such as my-cron), on its own latch
    /// leader/<NAME>/latch.
    #[arg(long, value_name = "NAME", value_parser = parse_name_arg)]
    pub name: Option<ServiceName>,
    /// The address published while leading (default `tenure-run://<host>/<pid>`).
    #[arg(long, value_name = "ADDR")]
    pub address: Option<String>,
    /// Which election to join.
    #[arg(long, value_enum, default_value_t = Scope::Component)]
    pub scope: Scope,
    /// Time between SIGTERM and SIGKILL when leadership is lost.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg, value_name = "DURATION")]
    pub grace: Duration,
    /// Keep campaigning after leadership is lost, and run CMD again in every new term.
    #[arg(long)]
    pub restart: bool,
    /// With --restart: wait this long before running CMD again after it exited by itself.
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg, value_name = "DURATION")]
    pub restart_delay: Duration,
    /// Give up (exit 5) if not elected within this time.
    #[arg(long, value_parser = parse_duration_arg, value_name = "DURATION")]
    pub campaign_timeout: Option<Duration>,
    /// The metrics endpoint.
    #[command(flatten)]
    pub metrics: crate::metrics_args::MetricsArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// One step of `tenure run`, printed on stderr.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Step {
    Campaigning {
        component: String,
        latch: String,
    },
    Elected {
        session_id: String,
        fencing_token: String,
    },
    Confirmed {
        address: String,
    },
    NotConfirmed {
        session_id: String,
    },
    Started {
        pid: Option<u32>,
        process_group: i32,
        stall_limit_ms: u64,
        command: String,
    },
    WatchdogFired {
        reason: &'static str,
        stall_limit_ms: u64,
    },
    LeadershipLost {
        session_id: String,
    },
    Signal {
        signal: &'static str,
        pid: Option<u32>,
    },
    Exited {
        exit_code: Option<i32>,
        signal: Option<i32>,
        status: u8,
    },
    Stopping {
        signal: &'static str,
    },
    Resigned,
}

struct Reporter {
    format: OutputFormat,
    component: String,
}

impl Reporter {
    fn emit(&self, step: Step) {
        match self.format {
            OutputFormat::Json => {
                #[derive(Serialize)]
                struct Line<'a> {
                    unix_ms: u64,
                    #[serde(flatten)]
                    step: &'a Step,
                }
                if let Ok(text) = serde_json::to_string(&Line {
                    unix_ms: unix_ms(),
                    step: &step,
                }) {
                    eprintln!("{text}");
                }
            }
            OutputFormat::Table => {
                let text = match &step {
                    Step::Campaigning { component, latch } => {
                        format!("campaigning for {component} on {latch}")
                    }
                    Step::Elected {
                        session_id,
                        fencing_token,
                    } => format!("elected: session {session_id} (fencing token {fencing_token})"),
                    Step::Confirmed { address } => format!("confirmed leadership at {address}"),
                    Step::NotConfirmed { session_id } => {
                        format!("term {session_id} ended before it was confirmed")
                    }
                    Step::Started {
                        pid,
                        process_group,
                        command,
                        ..
                    } => format!(
                        "started {command} (pid {}, process group {process_group})",
                        pid.unwrap_or(0)
                    ),
                    Step::WatchdogFired { stall_limit_ms, .. } => format!(
                        "tenure was unresponsive for {stall_limit_ms} ms: the watchdog killed \
                         the command's process group"
                    ),
                    Step::LeadershipLost { session_id } => {
                        format!("leadership lost (session {session_id})")
                    }
                    Step::Signal { signal, pid } => {
                        format!("sent {signal} to pid {}", pid.unwrap_or(0))
                    }
                    Step::Exited {
                        exit_code, signal, ..
                    } => match (exit_code, signal) {
                        (Some(c), _) => format!("command exited with status {c}"),
                        (_, Some(s)) => format!("command killed by signal {s}"),
                        _ => "command ended".into(),
                    },
                    Step::Stopping { signal } => format!("{signal} received: stopping"),
                    Step::Resigned => "left the election".into(),
                };
                eprintln!("tenure run [{}]: {text}", self.component);
            }
        }
    }
}

/// The exit status to pass on for `status`: its code, or 128 + the signal that ended it.
fn status_code(status: &ExitStatus) -> (Option<i32>, Option<i32>, u8) {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => (Some(c), None, (c & 0xff) as u8),
        (None, Some(s)) => (None, Some(s), (128 + s).clamp(0, 255) as u8),
        (None, None) => (None, None, 1),
    }
}

fn default_address() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("tenure-run://{host}/{}", std::process::id())
}

fn spawn(
    args: &RunArgs,
    term: &LeaderTerm,
    address: &str,
    component: &str,
    group: Pid,
) -> Result<Child, CliError> {
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::Usage("no command given after --".into()))?;
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .env("TENURE_LEADER_SESSION_ID", term.session_id.to_string())
        .env("TENURE_COMPONENT", component)
        .env("TENURE_LEADER_ADDRESS", address)
        .env("TENURE_FENCING_TOKEN", term.fencing_token.to_string())
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        // The watchdog's process group, so signals reach everything it starts, and the watchdog
        // kills it all should tenure die or stall.
        .process_group(group.as_raw())
        .kill_on_drop(true);
    cmd.spawn()
        .map_err(|e| CliError::Other(format!("cannot run {}: {e}", program.to_string_lossy())))
}

/// Signals the command's process group. Called only while the command (a member) is not yet
/// reaped, so the group id cannot have been reused.
fn signal_group(group: Pid, pid: Option<u32>, signal: Signal) {
    if killpg(group, signal).is_err()
        && let Some(pid) = pid.and_then(|p| i32::try_from(p).ok())
    {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// SIGTERM to the child's group, SIGKILL after `grace`; returns its status.
async fn terminate(
    child: &mut Child,
    group: Pid,
    grace: Duration,
    report: &Reporter,
) -> Result<ExitStatus, CliError> {
    let pid = child.id();
    signal_group(group, pid, Signal::SIGTERM);
    report.emit(Step::Signal {
        signal: "SIGTERM",
        pid,
    });
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(group, pid, Signal::SIGKILL);
            report.emit(Step::Signal {
                signal: "SIGKILL",
                pid,
            });
            child.wait().await
        }
    };
    status.map_err(|e| CliError::Other(format!("waiting for the command: {e}")))
}

fn stop_name(stop: Stop) -> &'static str {
    match stop {
        Stop::Interrupt => "SIGINT",
        Stop::Terminate => "SIGTERM",
    }
}

async fn resign(election: LeaderElection, report: &Reporter) {
    if let Err(e) = election.stop().await {
        tracing::debug!(error = ?e, "leaving the election failed");
    }
    report.emit(Step::Resigned);
}

fn exited(status: &ExitStatus, report: &Reporter) -> u8 {
    let (exit_code, signal, code) = status_code(status);
    report.emit(Step::Exited {
        exit_code,
        signal,
        status: code,
    });
    code
}

/// What `tenure run` elects: `--component` or `--name` (clap makes one of them required and
/// refuses both); a named service is elected on its own latch only.
fn elected(args: &RunArgs) -> Result<ComponentId, CliError> {
    match (args.component.clone(), args.name.clone()) {
        (_, Some(name)) if args.scope == Scope::Cluster => Err(CliError::Usage(format!(
            "--scope cluster cannot elect --name {name}: a service elected by name campaigns on \
             its own latch (leader/{name}/latch)"
        ))),
        (_, Some(name)) => Ok(ComponentId::Named(name)),
        (Some(component), None) => Ok(component),
        (None, None) => Err(CliError::Usage(
            "give the component (--component) or the service's name (--name) to elect".into(),
        )),
    }
}

/// Runs `tenure run`.
pub async fn run(
    args: RunArgs,
    conn_args: &ConnArgs,
    format: OutputFormat,
) -> Result<u8, CliError> {
    let component = elected(&args)?;
    let endpoint = args.metrics.endpoint()?;
    let conn = connect(conn_args, Storage::Optional).await?;
    if let Some(endpoint) = endpoint {
        crate::metrics::serve(endpoint).await?;
        crate::metrics::observe(&conn.services);
    }
    let backend = conn.services.backend().clone();
    let mut conn_rx = backend.connection_state();
    metrics().connection(*conn_rx.borrow_and_update());
    tokio::spawn(async move {
        while conn_rx.changed().await.is_ok() {
            metrics().connection(*conn_rx.borrow_and_update());
        }
    });
    let layout = conn.services.layout();
    let name = layout.component_name(&component);
    let report = Reporter {
        format,
        component: name.clone(),
    };
    let (latch, election) = match (&component, args.scope) {
        (ComponentId::Named(service), _) => (
            layout.component_latch(&component),
            conn.services.election(service.as_str()).await,
        ),
        (_, Scope::Component) => {
            let latch = layout.component_latch(&component);
            let service = ElectionService::new(backend.clone(), layout, latch.clone())
                .with_observer(conn.services.observer().clone());
            (latch, service.register(component).await)
        }
        (_, Scope::Cluster) => (
            layout.cluster_latch(),
            conn.services.leader_election(component).await,
        ),
    };
    let mut election = election.map_err(|e| CliError::election("joining the election", e))?;
    crate::metrics::contender(&election);
    let address = args.address.clone().unwrap_or_else(default_address);
    let mut signals = StopSignals::new();
    let code = campaign(
        &args,
        &mut election,
        &mut signals,
        &report,
        (&latch, &address),
        watchdog::stall_limit(&conn.config),
    )
    .await;
    resign(election, &report).await;
    conn.close().await;
    code
}

async fn campaign(
    args: &RunArgs,
    election: &mut LeaderElection,
    signals: &mut StopSignals,
    report: &Reporter,
    (latch, address): (&str, &str),
    stall_limit: Duration,
) -> Result<u8, CliError> {
    let name = report.component.clone();
    let mut first = true;
    loop {
        report.emit(Step::Campaigning {
            component: name.clone(),
            latch: latch.to_owned(),
        });
        let deadline = async {
            match args.campaign_timeout {
                Some(t) if first => tokio::time::sleep(t).await,
                _ => std::future::pending::<()>().await,
            }
        };
        let term = tokio::select! {
            t = election.wait_for_leadership() => {
                t.map_err(|e| CliError::election("campaigning", e))?
            }
            stop = signals.recv() => {
                report.emit(Step::Stopping { signal: stop_name(stop) });
                return Ok(stop.exit_code());
            }
            () = deadline => {
                return Err(CliError::Refused(format!(
                    "not elected leader of {name} within {:?}: another contender leads on {latch}",
                    args.campaign_timeout.unwrap_or_default()
                )));
            }
        };
        first = false;
        report.emit(Step::Elected {
            session_id: term.session_id.to_string(),
            fencing_token: term.fencing_token.to_string(),
        });
        let confirmed = match election.confirm(term.session_id, address).await {
            Ok(c) => c,
            Err(e) => {
                // A backend hiccup: retry while the term lasts, a second apart.
                tracing::warn!(error = ?e, "confirming leadership failed; retrying");
                report.emit(Step::NotConfirmed {
                    session_id: term.session_id.to_string(),
                });
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = term.over() => {}
                    stop = signals.recv() => {
                        report.emit(Step::Stopping { signal: stop_name(stop) });
                        return Ok(stop.exit_code());
                    }
                }
                continue;
            }
        };
        if !confirmed {
            report.emit(Step::NotConfirmed {
                session_id: term.session_id.to_string(),
            });
            continue;
        }
        report.emit(Step::Confirmed {
            address: address.to_owned(),
        });
        let mut guard = Watchdog::start(stall_limit).await?;
        let group = guard.pgid();
        let mut child = spawn(args, &term, address, &name, group)?;
        report.emit(Step::Started {
            pid: child.id(),
            process_group: group.as_raw(),
            stall_limit_ms: millis(stall_limit),
            command: args
                .command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
        });
        let wait_err = |e: std::io::Error| CliError::Other(format!("waiting for the command: {e}"));
        // Every branch reaps the command before the watchdog is closed.
        let ended = tokio::select! {
            biased;
            status = child.wait() => Ended::Exited(status.map_err(wait_err)?),
            () = term.over() => {
                report.emit(Step::LeadershipLost { session_id: term.session_id.to_string() });
                Ended::Lost(terminate(&mut child, group, args.grace, report).await?)
            }
            stop = signals.recv() => {
                report.emit(Step::Stopping { signal: stop_name(stop) });
                Ended::Stopped(terminate(&mut child, group, args.grace, report).await?)
            }
            gone = guard.gone() => match gone {
                // It killed the group: the command is dead or about to be.
                Gone::Stalled(_) => Ended::Exited(child.wait().await.map_err(wait_err)?),
                Gone::Ended => {
                    Ended::Unguarded(terminate(&mut child, group, args.grace, report).await?)
                }
            },
        };
        if let Gone::Stalled(limit) = guard.close().await {
            report.emit(Step::WatchdogFired {
                reason: "stalled",
                stall_limit_ms: millis(limit),
            });
        }
        match ended {
            Ended::Exited(status) => {
                let code = exited(&status, report);
                if !args.restart {
                    return Ok(code);
                }
                // Still leading: run it again after the delay, unless the term ends first.
                tokio::select! {
                    () = tokio::time::sleep(args.restart_delay) => {}
                    () = term.over() => {
                        report.emit(Step::LeadershipLost { session_id: term.session_id.to_string() });
                    }
                    stop = signals.recv() => {
                        report.emit(Step::Stopping { signal: stop_name(stop) });
                        return Ok(code);
                    }
                }
            }
            Ended::Lost(status) => {
                let code = exited(&status, report);
                if !args.restart {
                    return Ok(code);
                }
            }
            Ended::Stopped(status) => return Ok(exited(&status, report)),
            Ended::Unguarded(status) => {
                exited(&status, report);
                return Err(CliError::Other(
                    "the watchdog of the command ended unexpectedly, so the command was stopped \
                     (it must not run unguarded)"
                        .into(),
                ));
            }
        }
    }
}

/// How a run of the command ended (the command is reaped in every case).
enum Ended {
    /// It exited by itself (or the watchdog killed it because tenure stalled).
    Exited(ExitStatus),
    /// Leadership was lost and it was terminated.
    Lost(ExitStatus),
    /// tenure was asked to stop and terminated it.
    Stopped(ExitStatus),
    /// The watchdog died on its own and the command was terminated.
    Unguarded(ExitStatus),
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_exit_codes() {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(
            status_code(&ExitStatus::from_raw(3 << 8)),
            (Some(3), None, 3)
        );
        assert_eq!(
            status_code(&ExitStatus::from_raw(15)),
            (None, Some(15), 143)
        );
        assert_eq!(status_code(&ExitStatus::from_raw(9)), (None, Some(9), 137));
        assert!(default_address().starts_with("tenure-run://"));
        assert!(parse_duration_arg("10s").is_ok());
        assert!(parse_duration_arg("soon").is_err());
    }
}
