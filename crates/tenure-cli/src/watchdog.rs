//! The watchdog of `tenure run`: a small process that kills the command's process group when
//! `tenure` dies or stalls, so the command never outlives the leadership it was started under.
//!
//! # Why a process
//!
//! A command started by `tenure run` must stop when leadership ends. While `tenure` lives it
//! sends SIGTERM (then SIGKILL) itself. When `tenure` is SIGKILLed or crashes, nothing in it
//! runs any more; Linux's `PR_SET_PDEATHSIG` would need code between fork and exec (`pre_exec`,
//! which is `unsafe` and forbidden here). So `tenure run` starts this binary again as the hidden
//! subcommand `tenure __watchdog`, once per run of the command, before the command.
//!
//! # The process group
//!
//! The watchdog makes its own process group (its pid is the group id, pgid `W`), and the command
//! is started *into that group* (`setpgid(cmd, W)` before exec). So:
//!
//! - there is no window in which the command runs unguarded: the group's guard exists before
//!   the command does, and a command cannot join a group whose leader is gone and reaped;
//! - a group id is never reused while the group has a member (POSIX), and `W` always has one
//!   while anybody signals it: the watchdog signals its own group while it is alive, and
//!   `tenure` signals `W` only while the command (its child) is not yet reaped. No message has to
//!   tell the watchdog which group to guard, and no "disarm" is needed before reaping;
//! - SIGTERM/SIGINT/SIGHUP sent to the group (`tenure`'s orderly stop, or the command's own
//!   `kill 0`) are for the command: the watchdog ignores them and keeps guarding during the grace
//!   period. SIGKILL of the group ends the watchdog with everything else;
//! - the group is not `tenure`'s, so a terminal's Ctrl-C or Ctrl-Z reaches `tenure` (which stops
//!   the command in order), not the watchdog.
//!
//! # Protocol
//!
//! `tenure` holds the write end of the watchdog's stdin and the read end of its stdout.
//!
//! - watchdog → tenure: `ready <pgid>` once its signal handlers are installed. `tenure` starts
//!   the command only after this line (if the watchdog cannot be started or does not say
//!   `ready`, the command is not started and `tenure run` fails with an error).
//! - tenure → watchdog: `beat` every [`heartbeat_interval`], written by a task of `tenure`'s
//!   async runtime, the runtime that also handles revocations: a beat proves that runtime runs.
//! - end of file on stdin (`tenure` died, or ended the run and closed the pipe): the watchdog
//!   SIGKILLs its group at once, which ends the watchdog too. After a normal end of the command,
//!   this kills what the command left behind in its group.
//! - nothing heard for the stall limit: the watchdog writes `stalled <ms>` on stdout (read by
//!   `tenure` if it resumes) and SIGKILLs its group.
//!
//! # The stall limit
//!
//! A stalled `tenure` (SIGSTOP, a long pause, swapping) no longer renews its session, and the
//! backend grants a standby once the session expires. The watchdog must kill the group before
//! that, so the limit is a safe fraction of the earliest expiry after a stall begins
//! ([`stall_limit`]):
//!
//! - **ZooKeeper**: the server expires a session `T` (the session timeout) after it last heard
//!   from the client. A healthy client sends something at least every `T/3` (Curator and the Java
//!   client ping after `T/3` idle; the Rust client tenure uses within `3T/10`), so when
//!   `tenure` stalls at `s` the server last heard from it at `s - T/3` or later, and the session
//!   expires no earlier than `s + 2T/3`. The last beat the watchdog heard came at `s` or before,
//!   so it fires by `s + L`. With `L = T/3` the group is dead by `s + T/3`, leaving `T/3` for the
//!   kill to take effect and for scheduling delays of the watchdog itself.
//! - **Kubernetes**: a standby takes the lease `D` (lease duration) after it saw the last renewal,
//!   and the leader renews every retry period `P`, so a standby can take over no earlier than
//!   `s + D - P`. `L = (D - P) / 2` (at least `D / 6`; `D/3` with the defaults 15 s and 5 s).
//! - **etcd**: the lease TTL plays the session timeout's part: `L = TTL/3`.
//! - **embedded**: no other process can be granted; `L` is 20 s (a third of ZooKeeper's default
//!   session timeout), only to bound how long a frozen `tenure` leaves its command running.
//!
//! Heartbeats go every `L/4`, so a delay of up to three quarters of the limit in `tenure`'s
//! runtime or in the pipe is tolerated without killing the command.
//!
//! # What remains
//!
//! - Timing is not a proof: if the watchdog itself is starved of CPU for longer than the margin
//!   (`T/3` on ZooKeeper), or the server caps the session timeout below the configured one
//!   (`maxSessionTimeout`), the standby can start before the group is dead. The backend's fencing
//!   still rejects the old leader's writes.
//! - Processes the command moves out of its group (`setsid`, daemonizing) are not tracked.
//! - The watchdog can be killed on its own (say by the OOM killer). `tenure` sees that at once
//!   (its stdout closes) and stops the command as on loss of leadership.

use std::io::{BufRead as _, Write as _};
use std::process::Stdio;
use std::time::Duration;

use clap::Args;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpgrp, getpid};
use tenure::HaConfig;
use tenure::config::HaMode;
use tenure::config::duration::parse_duration;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::exit::CliError;

/// The hidden subcommand that runs the watchdog.
pub const SUBCOMMAND: &str = "__watchdog";

/// How long `tenure run` waits for a starting watchdog to say `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The stall limit of the embedded backend (no other process can be granted).
const EMBEDDED_STALL_LIMIT: Duration = Duration::from_secs(20);

/// The least stall limit used, whatever the configuration: shorter pauses of a process are
/// common on a loaded machine and no backend can expire a session that fast.
const MIN_STALL_LIMIT: Duration = Duration::from_millis(100);

/// Options of the hidden `tenure __watchdog` subcommand (started by `tenure run` only).
#[derive(Debug, Clone, Args)]
pub struct WatchdogArgs {
    /// Kill the process group when nothing was heard on stdin for this long.
    #[arg(long, value_parser = parse_limit, value_name = "DURATION")]
    pub stall_limit: Duration,
}

fn parse_limit(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// How long the watchdog waits for a heartbeat before it kills the group, for the backend of
/// `config`: half the time from the start of a stall to the earliest moment a standby can be
/// granted (see the module documentation for the arithmetic).
pub fn stall_limit(config: &HaConfig) -> Duration {
    let limit = match &config.mode {
        HaMode::ZooKeeper => config.zookeeper.session_timeout / 3,
        HaMode::Kubernetes => {
            let d = config.kubernetes.lease_duration;
            let p = config.kubernetes.retry_period;
            (d.saturating_sub(p) / 2).max(d / 6)
        }
        HaMode::Etcd => config.etcd.lease_ttl / 3,
        HaMode::None | HaMode::Custom(_) => EMBEDDED_STALL_LIMIT,
    };
    limit.max(MIN_STALL_LIMIT)
}

/// How often `tenure` sends a heartbeat: a quarter of the stall limit.
pub fn heartbeat_interval(stall_limit: Duration) -> Duration {
    stall_limit / 4
}

/// What the watchdog heard on its stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// A line (`beat`; any line is a sign of life).
    Line,
    /// End of file: `tenure` is gone or has ended the run.
    Eof,
    /// Nothing until the deadline.
    Nothing,
}

/// Why the watchdog kills its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Keep waiting, until this deadline.
    Wait(Instant),
    /// The pipe closed: kill at once.
    Closed,
    /// `tenure` was silent for longer than the limit.
    Stalled,
}

/// The watchdog's decisions, free of IO: when it must hear from `tenure` next, and what to do
/// with what it heard.
#[derive(Debug)]
struct Watch {
    limit: Duration,
    last_heard: Instant,
}

impl Watch {
    fn new(limit: Duration, now: Instant) -> Self {
        Self {
            limit,
            last_heard: now,
        }
    }

    fn deadline(&self) -> Instant {
        self.last_heard + self.limit
    }

    fn on(&mut self, heard: Heard, now: Instant) -> Verdict {
        match heard {
            Heard::Eof => Verdict::Closed,
            Heard::Line => {
                self.last_heard = now;
                Verdict::Wait(self.deadline())
            }
            // A timer that fires early (or a spurious wake-up) is not a stall.
            Heard::Nothing if now < self.deadline() => Verdict::Wait(self.deadline()),
            Heard::Nothing => Verdict::Stalled,
        }
    }
}

/// Runs `tenure __watchdog`: guards its own process group until stdin closes or stays silent
/// for the stall limit, then SIGKILLs the group (itself included). Returns only on an error.
pub async fn run(args: WatchdogArgs) -> Result<u8, CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let pgid = getpgrp();
    if pgid != getpid() {
        return Err(CliError::Usage(format!(
            "{SUBCOMMAND} is started by `tenure run` only, as the leader of its own process group"
        )));
    }
    // Signals for the command's group are not for the watchdog. A registered handler replaces
    // the default action (termination) for the rest of the process's life.
    let mut ignored = Vec::new();
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ] {
        ignored.push(
            signal(kind).map_err(|e| CliError::Other(format!("cannot handle signals: {e}")))?,
        );
    }
    let mut out = std::io::stdout();
    writeln!(out, "ready {pgid}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Other(format!("cannot report to tenure: {e}")))?;

    // A thread reads stdin (blocking) and hands each line over; its end is the pipe's end.
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() || tx.send(()).is_err() {
                return;
            }
        }
    });
    let mut watch = Watch::new(args.stall_limit, Instant::now());
    let mut deadline = watch.deadline();
    let verdict = loop {
        let heard = match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(())) => Heard::Line,
            Ok(None) => Heard::Eof,
            Err(_) => Heard::Nothing,
        };
        match watch.on(heard, Instant::now()) {
            Verdict::Wait(next) => deadline = next,
            v => break v,
        }
    };
    if verdict == Verdict::Stalled {
        // For `tenure`, should it resume; a pipe's write does not block on a few bytes.
        let _ =
            writeln!(out, "stalled {}", args.stall_limit.as_millis()).and_then(|()| out.flush());
    }
    // Ends this process too. Nothing is written to the terminal first: a write from a background
    // group may stop the writer (SIGTTOU) before the kill.
    killpg(pgid, Signal::SIGKILL)
        .map_err(|e| CliError::Other(format!("cannot kill process group {pgid}: {e}")))?;
    drop(ignored);
    Err(CliError::Other(format!(
        "process group {pgid} was killed but the watchdog lives on"
    )))
}

/// What became of a watchdog, as `tenure` learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    /// It killed the group because it heard nothing from `tenure` for this long.
    Stalled(Duration),
    /// It ended without saying why (killed on its own, or with the group).
    Ended,
}

/// `tenure`'s side of one watchdog: its process, the heartbeat task, and its reports.
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
    pgid: Pid,
    beats: JoinHandle<()>,
    reports: tokio::io::Lines<BufReader<ChildStdout>>,
    gone: Option<Gone>,
}

impl Watchdog {
    /// Starts `tenure __watchdog` (this same executable) in a new process group, waits for its
    /// `ready`, and starts the heartbeats. An error means no command may be started.
    pub async fn start(stall_limit: Duration) -> Result<Self, CliError> {
        let fail = |what: String| {
            CliError::Other(format!(
                "cannot start the watchdog of the command ({what}); the command was not started"
            ))
        };
        let exe = std::env::current_exe().map_err(|e| fail(format!("no executable: {e}")))?;
        let mut child = Command::new(&exe)
            .arg(SUBCOMMAND)
            .arg("--stall-limit")
            .arg(format!("{}ms", stall_limit.as_millis()))
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", exe.display())))?;
        let (Some(stdin), Some(stdout), Some(pid)) =
            (child.stdin.take(), child.stdout.take(), child.id())
        else {
            let _ = child.start_kill();
            return Err(fail("no pipes to it".into()));
        };
        let pgid = Pid::from_raw(i32::try_from(pid).map_err(|_| fail(format!("pid {pid}")))?);
        let mut reports = BufReader::new(stdout).lines();
        let expected = format!("ready {pgid}");
        match tokio::time::timeout(READY_TIMEOUT, reports.next_line()).await {
            Ok(Ok(Some(line))) if line == expected => {}
            other => {
                // Still our unreaped child: its pid cannot have been reused.
                let _ = child.start_kill();
                let _ = child.wait().await;
                let why = match other {
                    Ok(Ok(Some(line))) => format!("it said {line:?}"),
                    Ok(Ok(None)) => "it exited".into(),
                    Ok(Err(e)) => format!("reading from it: {e}"),
                    Err(_) => format!("no answer within {READY_TIMEOUT:?}"),
                };
                return Err(fail(why));
            }
        }
        let beats = tokio::spawn(heartbeats(stdin, heartbeat_interval(stall_limit)));
        Ok(Self {
            child,
            pgid,
            beats,
            reports,
            gone: None,
        })
    }

    /// The process group the command must join (the watchdog's pid).
    pub fn pgid(&self) -> Pid {
        self.pgid
    }

    /// Completes when the watchdog has ended (its stdout closed), with what it said. Cancel-safe.
    pub async fn gone(&mut self) -> Gone {
        if let Some(g) = &self.gone {
            return g.clone();
        }
        let mut said = Gone::Ended;
        while let Ok(Some(line)) = self.reports.next_line().await {
            if let Some(ms) = line
                .strip_prefix("stalled ")
                .and_then(|ms| ms.parse::<u64>().ok())
            {
                said = Gone::Stalled(Duration::from_millis(ms));
            }
        }
        self.gone = Some(said.clone());
        said
    }

    /// Ends the run: stops the heartbeats and closes the pipe, so the watchdog SIGKILLs what is
    /// left of the group (the command's leftovers) and itself; reaps it. Returns what it said.
    /// Call it only after the command was reaped.
    pub async fn close(mut self) -> Gone {
        self.beats.abort();
        let _ = (&mut self.beats).await;
        let gone = match tokio::time::timeout(READY_TIMEOUT, self.gone()).await {
            Ok(g) => g,
            Err(_) => {
                // It does not end: kill it (its group) ourselves. Unreaped, so no reuse.
                let _ = killpg(self.pgid, Signal::SIGKILL);
                Gone::Ended
            }
        };
        let _ = self.child.wait().await;
        gone
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing the pipe is enough: the watchdog kills the group when its stdin closes.
        self.beats.abort();
    }
}

/// Writes `beat` lines to the watchdog until the pipe fails or the task is aborted.
async fn heartbeats(mut stdin: tokio::process::ChildStdin, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if stdin.write_all(b"beat\n").await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: HaMode) -> HaConfig {
        HaConfig {
            mode,
            ..HaConfig::default()
        }
    }

    #[test]
    fn the_stall_limit_is_a_safe_fraction_of_the_backends_expiry() {
        let mut zk = config(HaMode::ZooKeeper);
        zk.zookeeper.session_timeout = Duration::from_secs(60);
        assert_eq!(stall_limit(&zk), Duration::from_secs(20));
        zk.zookeeper.session_timeout = Duration::from_secs(3);
        let limit = stall_limit(&zk);
        assert_eq!(limit, Duration::from_secs(1));
        // Killed by the limit, well before the earliest expiry (2/3 of the timeout after the
        // stall begins), even if the stall began just after a beat.
        assert!(limit * 2 <= zk.zookeeper.session_timeout * 2 / 3);
        assert_eq!(heartbeat_interval(limit), Duration::from_millis(250));

        let mut k8s = config(HaMode::Kubernetes);
        assert_eq!(
            stall_limit(&k8s),
            Duration::from_secs(5),
            "defaults 15 s / 5 s"
        );
        k8s.kubernetes.retry_period = Duration::from_secs(15);
        assert_eq!(
            stall_limit(&k8s),
            Duration::from_millis(2500),
            "at least D/6"
        );

        let etcd = config(HaMode::Etcd);
        assert_eq!(stall_limit(&etcd), etcd.etcd.lease_ttl / 3);
        assert_eq!(stall_limit(&config(HaMode::None)), EMBEDDED_STALL_LIMIT);

        zk.zookeeper.session_timeout = Duration::from_millis(30);
        assert_eq!(stall_limit(&zk), MIN_STALL_LIMIT);
    }

    #[test]
    fn heartbeats_keep_the_watch_waiting_and_silence_or_eof_kill() {
        let limit = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut w = Watch::new(limit, t0);
        assert_eq!(w.deadline(), t0 + limit);
        // A beat moves the deadline.
        let t1 = t0 + Duration::from_millis(900);
        assert_eq!(w.on(Heard::Line, t1), Verdict::Wait(t1 + limit));
        // A wake-up before the deadline is not a stall.
        let early = t0 + Duration::from_millis(1500);
        assert_eq!(w.on(Heard::Nothing, early), Verdict::Wait(t1 + limit));
        // Silence until the deadline is.
        assert_eq!(w.on(Heard::Nothing, t1 + limit), Verdict::Stalled);
        // The pipe closing kills at once, whatever the time.
        let mut w = Watch::new(limit, t0);
        assert_eq!(w.on(Heard::Eof, t0), Verdict::Closed);
    }
}
