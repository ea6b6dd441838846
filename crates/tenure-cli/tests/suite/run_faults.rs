//! `tenure run` under process faults, against a real ZooKeeper server and a real etcd server
//! (the same cases on each; etcd's lease TTL plays the session timeout): several contenders run
//! a command under leadership of one component; the leading `tenure` (not its command) is
//! SIGKILLed, or SIGSTOPped past the session timeout and resumed. A monitor records when each
//! command started (its own clock reading) and when it was first seen dead, and the history
//! check asserts that no two commands ever ran at the same time, and that a killed `tenure`'s
//! command group is gone entirely (the watchdog's work). The watchdog's protocol (pipe closed,
//! silence for the stall limit, signals for the command ignored) is also tested on its own.

#![cfg(all(feature = "zookeeper", feature = "etcd"))]
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{DEADLINE, Running};
use tenure_testkit::etcd::EtcdServer;
use tenure_testkit::zookeeper::ZooKeeperServer;

/// The ZooKeeper session timeout (etcd: lease TTL) of the contenders: the watchdog's stall
/// limit is a third of it.
const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

/// How often the monitor looks at the record file and at the commands' processes.
const POLL: Duration = Duration::from_millis(5);

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// What `/proc/<pid>/stat` says about a process: state, process group, start time (ticks).
fn stat(pid: u32) -> Option<(char, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.first()?.chars().next()?,
        f.get(2)?.parse().ok()?,
        f.get(19)?.parse().ok()?,
    ))
}

/// The live (not zombie) processes of group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((state, group, _)) = stat(pid)
            && group == pgid
            && state != 'Z'
            && state != 'X'
        {
            live.push(pid);
        }
    }
    live
}

/// One run of the command, as the monitor saw it.
#[derive(Debug, Clone)]
struct Cmd {
    /// The shell's pid.
    pid: u32,
    /// The `tenure` that started it (the shell's parent).
    tenure: u32,
    /// Its process group (the watchdog's pid), when it was still there to be read.
    pgid: Option<u32>,
    /// Its start time in ticks since boot, to tell it from a later process with the same pid.
    ticks: Option<u64>,
    /// Wall clock (ns) when it started, read by the command itself.
    start_ns: u128,
    /// Wall clock (ns) when the monitor first saw it dead (or gone).
    gone_ns: Option<u128>,
}

/// Records the commands' lifetimes in the background: new `start` lines of the record file,
/// and for each command still alive, whether it still is.
struct Monitor {
    cmds: Arc<Mutex<Vec<Cmd>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    fn start(file: PathBuf) -> Self {
        let cmds = Arc::new(Mutex::new(Vec::<Cmd>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (cmds, stop) = (cmds.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut lines_seen = 0;
                while !stop.load(Ordering::Relaxed) {
                    let text = std::fs::read_to_string(&file).unwrap_or_default();
                    let complete: Vec<&str> = text.split_inclusive('\n').collect();
                    let mut cmds = cmds.lock().unwrap();
                    for line in complete.iter().skip(lines_seen) {
                        if !line.ends_with('\n') {
                            break;
                        }
                        lines_seen += 1;
                        let f: Vec<&str> = line.split_whitespace().collect();
                        assert_eq!(f.len(), 4, "bad record line {line:?}");
                        let pid = f[1].parse().unwrap();
                        let st = stat(pid);
                        cmds.push(Cmd {
                            pid,
                            tenure: f[2].parse().unwrap(),
                            pgid: st.map(|s| s.1),
                            ticks: st.map(|s| s.2),
                            start_ns: f[3].parse().unwrap(),
                            gone_ns: None,
                        });
                    }
                    for c in cmds.iter_mut().filter(|c| c.gone_ns.is_none()) {
                        let alive = matches!(
                            stat(c.pid),
                            Some((state, _, ticks)) if state != 'Z' && state != 'X'
                                && Some(ticks) == c.ticks
                        );
                        if !alive {
                            c.gone_ns = Some(now_ns());
                        }
                    }
                    drop(cmds);
                    std::thread::park_timeout(POLL);
                }
            })
        };
        Self {
            cmds,
            stop,
            thread: Some(thread),
        }
    }

    fn snapshot(&self) -> Vec<Cmd> {
        self.cmds.lock().unwrap().clone()
    }

    /// Waits (up to [`DEADLINE`]) until `pred` holds for the commands seen; returns them.
    fn wait_until(&self, what: &str, pred: impl Fn(&[Cmd]) -> bool) -> Vec<Cmd> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let cmds = self.snapshot();
            if pred(&cmds) {
                return cmds;
            }
            assert!(
                Instant::now() < deadline,
                "not within {DEADLINE:?}: {what}; commands: {cmds:#?}"
            );
            std::thread::park_timeout(POLL);
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The history check: no two commands' [start, gone] intervals overlap (a command still
/// running counts until now). Returns the gaps between one command's end and the next start.
fn assert_no_overlap(cmds: &[Cmd]) -> Vec<Duration> {
    check_no_overlap(cmds).unwrap_or_else(|e| panic!("{e}"))
}

fn check_no_overlap(cmds: &[Cmd]) -> Result<Vec<Duration>, String> {
    let mut runs: Vec<(u128, u128, u32)> = cmds
        .iter()
        .map(|c| (c.start_ns, c.gone_ns.unwrap_or(u128::MAX), c.pid))
        .collect();
    runs.sort();
    let mut gaps = Vec::new();
    for w in runs.windows(2) {
        let ((_, end, a), (start, _, b)) = (w[0], w[1]);
        if end >= start {
            return Err(format!(
                "commands {a} and {b} ran at the same time: {a} was still alive when {b} \
                 started; history: {cmds:#?}"
            ));
        }
        gaps.push(Duration::from_nanos(
            u64::try_from(start - end).unwrap_or(u64::MAX),
        ));
    }
    Ok(gaps)
}

/// The server the contenders use.
enum Server {
    ZooKeeper(ZooKeeperServer),
    Etcd(EtcdServer),
}

impl Server {
    /// The options selecting the server, with a session timeout (lease TTL) of
    /// [`SESSION_TIMEOUT`].
    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Server::ZooKeeper(zk) => vec![
                "--ha-type".into(),
                "zookeeper".into(),
                "--zookeeper-quorum".into(),
                zk.connect_string(),
                "-D".into(),
                format!(
                    "high-availability.zookeeper.client.session-timeout={}ms",
                    SESSION_TIMEOUT.as_millis()
                ),
                "-D".into(),
                "high-availability.zookeeper.client.connection-timeout=5s".into(),
            ],
            Server::Etcd(etcd) => vec![
                "--ha-type".into(),
                "etcd".into(),
                "-D".into(),
                format!("high-availability.etcd.endpoints={}", etcd.endpoint()),
                "-D".into(),
                format!(
                    "high-availability.etcd.lease-ttl={}s",
                    SESSION_TIMEOUT.as_secs()
                ),
            ],
        };
        args.extend([
            "-D".into(),
            "high-availability.zookeeper.client.retry-wait=100ms".into(),
        ]);
        args
    }
}

/// A server, a cluster, the record file, its monitor and the contenders. Dropped (also when a
/// test fails), it kills the contenders and what is left of their commands' groups, by pid.
struct Fixture {
    contenders: Vec<Running>,
    monitor: Monitor,
    server: Server,
    cluster_id: String,
    storage: tempfile::TempDir,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn start(etcd: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = if etcd {
            Server::Etcd(EtcdServer::start().await)
        } else {
            Server::ZooKeeper(ZooKeeperServer::start().await)
        };
        Self {
            contenders: Vec::new(),
            monitor: Monitor::start(dir.path().join("record")),
            server,
            cluster_id: format!("/faults-{}", uuid::Uuid::new_v4().simple()),
            storage: tempfile::tempdir().unwrap(),
            dir,
        }
    }

    fn record(&self) -> PathBuf {
        self.dir.path().join("record")
    }

    /// SIGKILLs the contenders still running; their watchdogs then kill their commands.
    fn kill_contenders(&mut self) {
        for t in &mut self.contenders {
            if t.child.try_wait().ok().flatten().is_none() {
                let _ = t.child.kill();
                let _ = t.child.wait();
            }
        }
    }

    /// The live processes of every command's group.
    fn leftovers(&self) -> Vec<u32> {
        let groups: HashSet<u32> = self
            .monitor
            .snapshot()
            .iter()
            .filter_map(|c| c.pgid)
            .collect();
        groups.iter().flat_map(|g| group_members(*g)).collect()
    }

    /// Starts a contender for `dispatcher` whose command appends `start <pid> <tenure pid>
    /// <ns>` to the record file and then waits on a child, `sleep 1000`, in its group.
    fn spawn(&mut self) {
        let script = format!(
            "sleep 1000 & echo \"start $$ $PPID $(date +%s%N)\" >> {}; wait",
            self.record().display()
        );
        let mut args = self.server.args();
        args.extend(
            [
                "--storage-dir",
                self.storage.path().to_str().unwrap(),
                "--cluster-id",
                &self.cluster_id,
            ]
            .map(String::from),
        );
        let cmd = [
            "run",
            "--component",
            "dispatcher",
            "--grace",
            "500ms",
            "--output",
            "json",
            "--",
            "sh",
            "-c",
            &script,
        ];
        args.extend(cmd.map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut t = Running::spawn(&args);
        t.stderr.wait_event("campaigning");
        self.contenders.push(t);
    }

    /// The contender whose `tenure` has pid `pid`.
    fn contender(&mut self, pid: u32) -> &mut Running {
        self.contenders
            .iter_mut()
            .find(|t| t.child.id() == pid)
            .unwrap_or_else(|| panic!("no contender with pid {pid}"))
    }

    /// SIGKILLs every contender still running and asserts that no process of any command's
    /// group outlives them (the drop kills any that does).
    fn finish(&mut self) {
        self.kill_contenders();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "processes of the commands' groups outlived their tenure: {left:?}"
            );
            std::thread::park_timeout(POLL);
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.kill_contenders();
        for pid in self.leftovers() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Waits until no process of `pgid` is alive; returns how long that took.
fn wait_group_gone(pgid: u32) -> Duration {
    let t0 = Instant::now();
    loop {
        let live = group_members(pgid);
        if live.is_empty() {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < DEADLINE,
            "group {pgid} still has {live:?} after {DEADLINE:?}"
        );
        std::thread::park_timeout(POLL);
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_leaders_command_dies_with_it_before_a_standby_starts() {
    sigkilled_leader(Fixture::start(false).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_etcd_a_sigkilled_leaders_command_dies_with_it_before_a_standby_starts() {
    sigkilled_leader(Fixture::start(true).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leaders_command_is_killed_before_its_session_expires() {
    stopped_leader(Fixture::start(false).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_etcd_a_stopped_leaders_command_is_killed_before_its_lease_expires() {
    stopped_leader(Fixture::start(true).await);
}

/// Contenders in turn: the leading `tenure` is SIGKILLed; its command dies at once and the
/// next command starts only after it is gone.
fn sigkilled_leader(mut f: Fixture) {
    const CONTENDERS: usize = 4;
    tokio::task::block_in_place(|| {
        for _ in 0..CONTENDERS {
            f.spawn();
        }
        for round in 1..CONTENDERS {
            let cmds = f
                .monitor
                .wait_until(&format!("command {round} started"), |c| c.len() >= round);
            let leader = cmds[round - 1].clone();
            let pgid = leader.pgid.expect("the command's group was read");
            assert!(
                !group_members(pgid).is_empty(),
                "its group lives: {leader:?}"
            );
            // SIGKILL the leading tenure, not its command.
            let t = f.contender(leader.tenure);
            let killed_ns = now_ns();
            t.child.kill().unwrap();
            t.child.wait().unwrap();
            // The standby is granted once the session expires: its command must start only
            // after the killed tenure's command is gone.
            let cmds = f
                .monitor
                .wait_until(&format!("command {} started", round + 1), |c| {
                    c.len() > round
                });
            let gaps = assert_no_overlap(&cmds);
            let gone_ns = cmds[round - 1].gone_ns.unwrap();
            eprintln!(
                "round {round}: tenure {} SIGKILLed; its command was seen dead {} ms later, \
                 {} ms before the next command started",
                leader.tenure,
                (gone_ns - killed_ns) / 1_000_000,
                ms(gaps[round - 1])
            );
            assert!(
                gone_ns - killed_ns < (SESSION_TIMEOUT / 3).as_nanos(),
                "the command should die at once with its tenure"
            );
            // Everything in its group, not only the shell.
            wait_group_gone(pgid);
        }
        let cmds = f.monitor.snapshot();
        eprintln!(
            "{} commands, none overlapping; gaps between one's death and the next start: {:?} ms",
            cmds.len(),
            assert_no_overlap(&cmds)
                .iter()
                .map(|g| ms(*g))
                .collect::<Vec<_>>()
        );
        let tenures: HashSet<u32> = cmds.iter().map(|c| c.tenure).collect();
        assert_eq!(
            tenures.len(),
            CONTENDERS,
            "each command from another tenure"
        );
        f.finish();
    });
}

/// The leading `tenure` is frozen past its session timeout: the watchdog kills its command by
/// the stall limit, before the standby's command starts; resumed, it exits with 137.
fn stopped_leader(mut f: Fixture) {
    tokio::task::block_in_place(|| {
        f.spawn();
        f.spawn();
        let cmds = f
            .monitor
            .wait_until("the first command started", |c| !c.is_empty());
        let leader = cmds[0].clone();
        let pgid = leader.pgid.expect("the command's group was read");
        // Freeze the leading tenure past its session timeout (the zombie leader).
        let stopped_at = Instant::now();
        let stopped_ns = now_ns();
        f.contender(leader.tenure).signal("-STOP");
        let cmds = f
            .monitor
            .wait_until("the standby's command started", |c| c.len() == 2);
        let standby_after = stopped_at.elapsed();
        let gaps = assert_no_overlap(&cmds);
        let gone =
            Duration::from_nanos(u64::try_from(cmds[0].gone_ns.unwrap() - stopped_ns).unwrap());
        eprintln!(
            "tenure {} SIGSTOPped; its command was seen dead {} ms later (stall limit {} ms); \
             the standby's command started {} ms after the stop, {} ms after the old one died",
            leader.tenure,
            ms(gone),
            ms(SESSION_TIMEOUT / 3),
            ms(standby_after),
            ms(gaps[0])
        );
        wait_group_gone(pgid);
        assert!(
            gone < SESSION_TIMEOUT * 2 / 3,
            "killed by the stall limit ({:?}), well before the earliest expiry; took {gone:?}",
            SESSION_TIMEOUT / 3
        );
        assert_ne!(cmds[1].tenure, leader.tenure);
        // Resumed, the old tenure learns what happened and exits with the command's status.
        f.contender(leader.tenure).signal("-CONT");
        let old = f.contender(leader.tenure);
        assert_eq!(old.wait(), Some(137), "{:?}", old.stderr.seen);
        let fired = old.stderr.wait_event("watchdog_fired");
        assert_eq!(fired["reason"], "stalled");
        assert_eq!(
            fired["stall_limit_ms"],
            u64::try_from(ms(SESSION_TIMEOUT / 3)).unwrap()
        );
        let exited = old.stderr.wait_event("exited");
        assert_eq!(exited["signal"], 9);
        // The new leader's command still runs, alone.
        assert_no_overlap(&f.monitor.snapshot());
        f.finish();
    });
}

#[test]
fn the_overlap_check_has_teeth() {
    let cmd = |pid, start_ns, gone_ns| Cmd {
        pid,
        tenure: 1,
        pgid: None,
        ticks: None,
        start_ns,
        gone_ns,
    };
    let fine = [cmd(1, 10, Some(20)), cmd(2, 30, None)];
    assert_eq!(check_no_overlap(&fine), Ok(vec![Duration::from_nanos(10)]));
    let overlapping = [cmd(1, 10, Some(35)), cmd(2, 30, None)];
    assert!(check_no_overlap(&overlapping).is_err());
    let never_stopped = [cmd(1, 10, None), cmd(2, 30, Some(40))];
    assert!(check_no_overlap(&never_stopped).is_err());
}

/// A watchdog started as `tenure run` starts it: in a new process group, with piped stdin and
/// stdout; waits for its `ready <pgid>`. Nothing leaks if a test fails: when the test process
/// drops the pipe (or exits), the watchdog kills its group, itself included.
fn start_watchdog(stall_limit: &str) -> (std::process::Child, common::Lines, u32) {
    use std::os::unix::process::CommandExt as _;
    use std::process::Stdio;
    let mut w = common::tenure()
        .args(["__watchdog", "--stall-limit", stall_limit])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut out = common::Lines::new(w.stdout.take().unwrap());
    let pgid = w.id();
    out.wait_for("ready", |l| l == format!("ready {pgid}"));
    (w, out, pgid)
}

/// A process in group `pgid`, as `tenure run` starts the command.
fn member(pgid: u32) -> std::process::Child {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new("sleep")
        .arg("1000")
        .process_group(i32::try_from(pgid).unwrap())
        .spawn()
        .unwrap()
}

/// Waits (up to [`DEADLINE`]) until `child` has exited; returns how it ended.
fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "still running after {DEADLINE:?}"
        );
        std::thread::park_timeout(POLL);
    }
}

#[test]
fn the_watchdog_kills_its_group_when_its_pipe_closes() {
    use std::io::Write as _;
    use std::os::unix::process::ExitStatusExt as _;
    let (mut w, _out, pgid) = start_watchdog("1h");
    let mut cmd = member(pgid);
    // SIGTERM to the group (by its id) is for the command: the watchdog ignores it (had it
    // died of it, its status below would say signal 15, not 9).
    let term = std::process::Command::new("kill")
        .args(["-TERM", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(term.success());
    assert_eq!(wait_exit(&mut cmd).signal(), Some(15));
    let mut cmd = member(pgid);
    let mut stdin = w.stdin.take().unwrap();
    stdin.write_all(b"beat\n").unwrap();
    assert!(w.try_wait().unwrap().is_none(), "a beat keeps it");
    // tenure is gone: the group is killed at once, the watchdog with it.
    drop(stdin);
    assert_eq!(wait_exit(&mut cmd).signal(), Some(9));
    assert_eq!(wait_exit(&mut w).signal(), Some(9));
}

#[test]
fn the_watchdog_kills_its_group_when_tenure_is_silent_for_the_stall_limit() {
    use std::os::unix::process::ExitStatusExt as _;
    let started = Instant::now();
    let (mut w, mut out, pgid) = start_watchdog("300ms");
    let mut cmd = member(pgid);
    // No beats: it reports the stall on stdout and kills the group.
    out.wait_for("stalled", |l| l == "stalled 300");
    assert_eq!(wait_exit(&mut cmd).signal(), Some(9));
    assert_eq!(wait_exit(&mut w).signal(), Some(9));
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn the_watchdog_refuses_to_run_outside_its_own_group() {
    let out = common::run(&["__watchdog", "--stall-limit", "1s"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("started by `tenure run` only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
