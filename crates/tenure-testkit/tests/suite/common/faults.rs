//! The fault tests' harness: `tenure-contender` processes against a real ZooKeeper, waiting on
//! their history files, and the final check of the merged histories against the checkpoints a
//! fresh connection recovers.
//!
//! A [`Scenario`] owns a temporary directory, a unique cluster id, a job id and the settings of
//! its contenders. [`Scenario::spawn`] starts one contender process with its own
//! `flink-conf.yaml` (so each can reach ZooKeeper through its own quorum string, e.g. its own
//! fault proxy), writing its history to its own file. Tests wait on those files with a deadline
//! ([`wait_histories`]); nothing sleeps to synchronise. [`Scenario::finish`] stops every
//! contender with SIGTERM, reads the histories, recovers the retained checkpoint ids through a
//! fresh `tenure::connect`, runs the checker and asserts its report.
//!
//! Processes are only ever signalled by the process id of a child this harness started.

#![allow(dead_code, clippy::unwrap_used)] // each fault test file uses a part of the harness

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tenure::ids::JobId;
use tenure::{Configuration, HaConfig};
use tenure_testkit::history::{self, Event, EventKind, History, Report};
use tenure_testkit::proxy::FaultProxy;
use tenure_zookeeper::zk;

/// The contender binary of this crate.
pub const CONTENDER: &str = env!("CARGO_BIN_EXE_tenure-contender");

/// How long an expected event may take before the test fails. Generous: the machine is shared
/// (two cores, several JVMs); failover times get their own, tighter bounds.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(45);

/// Acknowledged writes awaited as the proof that a leader works (the contender writes every
/// [`Settings::interval_ms`]).
pub const PROOF_WRITES: usize = 5;

/// Wall clock in ms since the Unix epoch: the clock of the histories.
pub fn now_ms() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(d.as_millis()).unwrap()
}

/// Reports a measured figure: printed, and appended to the file named by
/// `TENURE_FAULT_FIGURES` if set (to collect figures over repeated runs).
pub fn figure(name: &str, ms: u64) {
    let line = format!("FIGURE {name} {ms} ms");
    println!("{line}");
    if let Some(path) = std::env::var_os("TENURE_FAULT_FIGURES") {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).unwrap();
    }
}

/// The contenders' HA settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `high-availability.zookeeper.client.session-timeout`.
    pub session_timeout: Duration,
    /// `high-availability.zookeeper.client.tolerate-suspended-connections`.
    pub tolerate_suspended: bool,
    /// Checkpoints retained by the completed checkpoint store (`--retain`). A large value keeps
    /// every checkpoint, so the checker sees whether any acknowledged one was lost.
    pub retain: usize,
    /// Milliseconds between a leader's writes (`--interval-ms`).
    pub interval_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            session_timeout: Duration::from_secs(2),
            tolerate_suspended: false,
            retain: 3,
            interval_ms: 50,
        }
    }
}

/// One fault test's cluster: a temporary directory, a unique cluster id, a job, the settings.
pub struct Scenario {
    dir: tempfile::TempDir,
    /// The cluster id (`high-availability.cluster-id`), unique per test.
    pub cluster_id: String,
    /// The job whose checkpoints the contenders write.
    pub job: JobId,
    /// The contenders' settings.
    pub settings: Settings,
}

impl Scenario {
    /// A new scenario with its own directory and cluster id.
    pub fn new(settings: Settings) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tenure-faults-")
            .tempdir()
            .unwrap();
        fs::create_dir_all(dir.path().join("ha")).unwrap();
        Self {
            dir,
            cluster_id: format!("faults-{}", uuid::Uuid::new_v4().simple()),
            job: JobId::new_random(),
            settings,
        }
    }

    /// The Flink configuration of a process reaching ZooKeeper at `quorum`, or etcd if
    /// `quorum` is an endpoint URL (`http://...`; the lease TTL is the session timeout).
    pub fn flink_conf(&self, quorum: &str) -> String {
        let s = &self.settings;
        if quorum.starts_with("http://") {
            return format!(
                "high-availability.type: etcd\n\
                 high-availability.etcd.endpoints: {quorum}\n\
                 high-availability.etcd.lease-ttl: {ttl} ms\n\
                 high-availability.cluster-id: /{cluster}\n\
                 high-availability.storageDir: file://{storage}\n\
                 high-availability.zookeeper.client.tolerate-suspended-connections: {tolerate}\n",
                cluster = self.cluster_id,
                storage = self.dir.path().join("ha").display(),
                ttl = s.session_timeout.as_millis(),
                tolerate = s.tolerate_suspended,
            );
        }
        format!(
            "high-availability.type: zookeeper\n\
             high-availability.zookeeper.quorum: {quorum}\n\
             high-availability.cluster-id: /{cluster}\n\
             high-availability.storageDir: file://{storage}\n\
             high-availability.zookeeper.client.session-timeout: {session} ms\n\
             high-availability.zookeeper.client.connection-timeout: 5 s\n\
             high-availability.zookeeper.client.retry-wait: 100 ms\n\
             high-availability.zookeeper.client.max-retry-attempts: 10\n\
             high-availability.zookeeper.client.tolerate-suspended-connections: {tolerate}\n",
            cluster = self.cluster_id,
            storage = self.dir.path().join("ha").display(),
            session = s.session_timeout.as_millis(),
            tolerate = s.tolerate_suspended,
        )
    }

    /// The latch directory every contender campaigns on (Flink's process-wide `leader/latch`).
    pub fn latch_dir(&self) -> String {
        format!("/flink/{}/leader/latch", self.cluster_id)
    }

    /// Starts contender `name` reaching ZooKeeper at `quorum`, in its own directory (its
    /// `flink-conf.yaml`, `history.jsonl` and `stderr.log`).
    pub fn spawn(&self, name: &str, quorum: &str) -> Contender {
        let dir = self.dir.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        let config = dir.join("flink-conf.yaml");
        fs::write(&config, self.flink_conf(quorum)).unwrap();
        let history = dir.join("history.jsonl");
        let stderr = dir.join("stderr.log");
        let child = Command::new(CONTENDER)
            .arg("--config")
            .arg(&config)
            .args(["--name", name, "--job", &self.job.to_string()])
            .args(["--retain", &self.settings.retain.to_string()])
            .args(["--interval-ms", &self.settings.interval_ms.to_string()])
            .arg("--history")
            .arg(&history)
            // Its backend's connection and latch changes, as plain text.
            .env(
                "RUST_LOG",
                "warn,tenure_zookeeper=info,tenure_etcd=info,tenure_core=info,zookeeper_client=warn",
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Contender {
            name: name.to_owned(),
            child: Mutex::new(child),
            history,
            stderr,
            stopped: false,
            ended: false,
        }
    }

    /// Waits until `n` processes have a node in the latch (so a standby is in line before the
    /// leader is harmed), asking the server at `quorum` directly.
    pub async fn wait_latch_participants(&self, quorum: &str, n: usize) {
        if quorum.starts_with("http://") {
            return self.wait_etcd_latch_participants(quorum, n).await;
        }
        let client = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(quorum)
            .await
            .unwrap();
        let dir = self.latch_dir();
        let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
        loop {
            let children = client.list_children(&dir).await.unwrap_or_default();
            if children.len() >= n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waiting for {n} latch participants: {children:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// [`Self::wait_latch_participants`] on etcd: keys below the latch directory.
    async fn wait_etcd_latch_participants(&self, endpoint: &str, n: usize) {
        let mut client = tenure_etcd::etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        let prefix = format!("{}/", self.latch_dir());
        let options = tenure_etcd::etcd_client::GetOptions::new()
            .with_prefix()
            .with_count_only();
        let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
        loop {
            let count = client
                .get(prefix.as_str(), Some(options.clone()))
                .await
                .map_or(0, |r| r.count());
            if count >= n as i64 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waiting for {n} etcd latch participants: {count}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The ids of the checkpoints retained now, read through a fresh `tenure::connect` to
    /// `quorum` (the way a recovering job manager reads them).
    pub async fn recover_ids(&self, quorum: &str) -> Vec<u64> {
        let conf = Configuration::parse_legacy(&self.flink_conf(quorum)).unwrap();
        let ha = HaConfig::from_configuration(&conf).unwrap();
        let services = tenure::connect(&ha).await.unwrap();
        let store = services
            .admin_stores()
            .checkpoint_recovery_factory()
            .create_completed_checkpoint_store(self.job, self.settings.retain)
            .unwrap();
        let ids = store
            .recover()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id.0)
            .collect();
        drop(store);
        services.close().await.unwrap();
        ids
    }

    /// Ends the scenario: resumes stopped contenders, stops every running one with SIGTERM
    /// (each must exit cleanly; those that do not lead first, so the end grants no term),
    /// merges the histories, recovers the retained checkpoint ids through a fresh connection to
    /// `quorum` and checks the HA invariants; panics with the report and the histories unless
    /// they hold.
    pub async fn finish(&self, contenders: &mut [&mut Contender], quorum: &str) -> Finished {
        for c in contenders.iter_mut() {
            if c.stopped {
                c.sigcont();
            }
        }
        // Standbys first, then whoever leads: a leader leaving while a standby still runs
        // would grant it a term the test did not make (how often depends only on which
        // process handles its SIGTERM first).
        let (standbys, leaders): (Vec<usize>, Vec<usize>) = (0..contenders.len())
            .filter(|&i| !contenders[i].ended)
            .partition(|&i| !contenders[i].history().leads());
        let mut unclean = Vec::new();
        for phase in [standbys, leaders] {
            for &i in &phase {
                contenders[i].signal("-TERM");
            }
            for &i in &phase {
                let status = contenders[i].wait_exit().await;
                if status.code() != Some(0) {
                    unclean.push(format!("{} exited with {status}", contenders[i].name));
                }
            }
        }
        let views: Vec<&Contender> = contenders.iter().map(|c| &**c).collect();
        let histories = Histories::read(&views);
        assert!(
            unclean.is_empty(),
            "contenders did not exit cleanly on SIGTERM: {unclean:?}\n{}",
            dump(&views, &histories)
        );
        let merged = History::merge(histories.all.iter().map(|(_, h)| h.clone()).collect());
        let recovered = self.recover_ids(quorum).await;
        let report = history::check(&merged, &recovered);
        println!("history check: {report}");
        println!(
            "recovered checkpoints: {} (newest {:?}); per process: {}",
            recovered.len(),
            recovered.last(),
            histories.summary()
        );
        assert!(
            report.ok,
            "HA invariants violated: {report}\nrecovered {recovered:?}\n{}",
            dump(&views, &histories)
        );
        Finished {
            histories,
            merged,
            recovered,
            report,
        }
    }
}

/// What [`Scenario::finish`] found.
pub struct Finished {
    /// Each contender's history.
    pub histories: Histories,
    /// All of them merged.
    pub merged: History,
    /// The checkpoint ids recovered at the end.
    pub recovered: Vec<u64>,
    /// The checker's report (ok).
    pub report: Report,
}

/// One `tenure-contender` process. Dropping it kills the process (SIGKILL by id).
pub struct Contender {
    /// Its name in the histories.
    pub name: String,
    child: Mutex<Child>,
    history: PathBuf,
    stderr: PathBuf,
    stopped: bool,
    ended: bool,
}

impl Contender {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// Its history so far (whole lines only: the file is being appended to).
    pub fn history(&self) -> History {
        read_history(&self.history)
    }

    /// The exit status, if the process has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap().try_wait().unwrap()
    }

    /// The end of its stderr (its warnings and the backend's logs).
    pub fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// How many lines of its stderr contain `needle` (its backend logs connection changes at
    /// info level: "ZooKeeper connection suspended", "ZooKeeper session lost", ...).
    pub fn stderr_count(&self, needle: &str) -> usize {
        fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until more than `before` lines of its stderr contain `needle`.
    pub async fn wait_stderr(&self, needle: &str, before: usize) {
        let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
        while self.stderr_count(needle) <= before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waiting for {:?} in the stderr of {}:\n{}",
                needle,
                self.name,
                self.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A short partition: cuts the contender off through `proxy` until it logs `suspended`
    /// once more, then heals at once. Records the pause as figure `name` and asserts it stayed
    /// shorter than `bound` (`what` names it). Returns when the cut began, ms since the epoch.
    pub async fn cut_until_suspended(
        &self,
        proxy: &FaultProxy,
        suspended: &str,
        name: &str,
        bound: Duration,
        what: &str,
    ) -> u64 {
        let before = self.stderr_count(suspended);
        let cut = now_ms();
        proxy.black_hole();
        self.wait_stderr(suspended, before).await;
        proxy.heal();
        let pause = now_ms() - cut;
        figure(name, pause);
        assert!(
            pause < bound.as_millis() as u64,
            "the partition ({pause} ms) was meant to be shorter than {what}"
        );
        cut
    }

    fn signal(&self, signal: &str) {
        // By process id, never by name.
        let pid = self.pid().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid} failed: {status}");
    }

    /// SIGKILL: the process dies at once and its ZooKeeper session lives on until it expires.
    pub fn kill(&mut self) {
        let mut child = self.child.lock().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.ended = true;
        self.stopped = false;
    }

    /// SIGSTOP: the process freezes, its connections stay open but nothing is answered.
    pub fn sigstop(&mut self) {
        self.signal("-STOP");
        self.stopped = true;
    }

    /// SIGCONT after [`Self::sigstop`].
    pub fn sigcont(&mut self) {
        self.signal("-CONT");
        self.stopped = false;
    }

    /// SIGTERM, then waits until the process has exited; it must exit cleanly (code 0, its
    /// term left and its session closed).
    pub async fn terminate(&mut self) {
        self.signal("-TERM");
        let status = self.wait_exit().await;
        assert_eq!(
            status.code(),
            Some(0),
            "{} exited with {status} on SIGTERM; stderr:\n{}",
            self.name,
            self.stderr_tail()
        );
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        // The contender closes within ~12 s at worst (its own close timeouts).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.exit_status() {
                self.ended = true;
                return status;
            }
            if tokio::time::Instant::now() >= deadline {
                let name = self.name.clone();
                self.kill();
                panic!(
                    "{name} did not exit within 30 s of SIGTERM; stderr:\n{}",
                    self.stderr_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let mut child = tenure_core::sync::lock(&self.child);
        // SIGKILL ends a stopped process too.
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn read_history(path: &Path) -> History {
    let text = fs::read_to_string(path).unwrap_or_default();
    // A line being appended right now is not whole yet: leave it for the next read.
    let whole = text.rfind('\n').map_or("", |i| &text[..=i]);
    History::parse(whole).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every contender's history at one moment, in the order the contenders were given.
pub struct Histories {
    /// `(name, history)` per contender.
    pub all: Vec<(String, History)>,
}

impl Histories {
    /// Reads the history file of each contender.
    pub fn read(contenders: &[&Contender]) -> Self {
        Self {
            all: contenders
                .iter()
                .map(|c| (c.name.clone(), c.history()))
                .collect(),
        }
    }

    /// The history of contender `name`.
    pub fn of(&self, name: &str) -> &History {
        &self
            .all
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no contender named {name}"))
            .1
    }

    /// `granted` events of every contender observed at or after `t_ms`, in time order.
    pub fn granted_since(&self, t_ms: u64) -> Vec<&Event> {
        let mut out: Vec<&Event> = self
            .all
            .iter()
            .flat_map(|(_, h)| h.since(EventKind::Granted, t_ms))
            .collect();
        out.sort_by_key(|e| e.t_ms);
        out
    }

    /// One line per contender: terms, acknowledged / rejected / failed writes.
    pub fn summary(&self) -> String {
        self.all
            .iter()
            .map(|(n, h)| {
                let count = |k| h.of_kind(k).count();
                format!(
                    "{n}: {} terms, {} acked, {} rejected, {} failed",
                    count(EventKind::Granted),
                    count(EventKind::Write),
                    count(EventKind::WriteRejected),
                    count(EventKind::WriteFailed)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Queries on one contender's history.
pub trait HistoryExt {
    /// Events of `kind` observed at or after `t_ms`.
    fn since(&self, kind: EventKind, t_ms: u64) -> Vec<&Event>;
    /// Acknowledged writes issued at or after `t_ms`.
    fn acked_since(&self, t_ms: u64) -> Vec<&Event>;
    /// Acknowledged writes of the term with `epoch`, issued at or after `t_ms`.
    fn acked_in_term_since(&self, epoch: i64, t_ms: u64) -> usize;
    /// The latest `granted` event.
    fn last_grant(&self) -> Option<&Event>;
    /// Whether the latest term is still held (granted, not revoked since).
    fn leads(&self) -> bool;
}

impl HistoryExt for History {
    fn since(&self, kind: EventKind, t_ms: u64) -> Vec<&Event> {
        self.of_kind(kind).filter(|e| e.t_ms >= t_ms).collect()
    }

    fn acked_since(&self, t_ms: u64) -> Vec<&Event> {
        self.of_kind(EventKind::Write)
            .filter(|e| e.start() >= t_ms)
            .collect()
    }

    fn acked_in_term_since(&self, epoch: i64, t_ms: u64) -> usize {
        self.acked_since(t_ms)
            .iter()
            .filter(|e| e.epoch == Some(epoch))
            .count()
    }

    fn last_grant(&self) -> Option<&Event> {
        self.of_kind(EventKind::Granted).last()
    }

    fn leads(&self) -> bool {
        self.events()
            .iter()
            .rev()
            .find(|e| matches!(e.event, EventKind::Granted | EventKind::Revoked))
            .is_some_and(|e| e.event == EventKind::Granted)
    }
}

/// Each contender's status and last events, and its stderr, for failure messages.
pub fn dump(contenders: &[&Contender], histories: &Histories) -> String {
    let mut out = String::new();
    for (c, (name, h)) in contenders.iter().zip(&histories.all) {
        let status = c
            .exit_status()
            .map_or_else(|| "running".to_owned(), |s| s.to_string());
        let _ = writeln!(out, "--- {name} (pid {}, {status}) ---", c.pid());
        let events = h.events();
        for e in &events[events.len().saturating_sub(15)..] {
            let _ = write!(out, "{}", e.to_json_line());
        }
        let _ = writeln!(out, "stderr:\n{}", c.stderr_tail());
    }
    out
}

/// Waits until the contenders' histories satisfy `pred` (polling the files, which other
/// processes write, with a short backoff); panics naming `what`, with the histories, after
/// [`EVENT_DEADLINE`] or as soon as a contender has exited unexpectedly.
pub async fn wait_histories(
    contenders: &[&Contender],
    what: &str,
    pred: impl Fn(&Histories) -> bool,
) -> Histories {
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    let mut backoff = Duration::from_millis(5);
    loop {
        let h = Histories::read(contenders);
        if pred(&h) {
            return h;
        }
        let died = contenders
            .iter()
            .any(|c| !c.ended && c.exit_status().is_some());
        if died || tokio::time::Instant::now() >= deadline {
            let why = if died {
                "a contender exited"
            } else {
                "deadline passed"
            };
            panic!(
                "waiting for {what}: {why} ({EVENT_DEADLINE:?})\n{}",
                dump(contenders, &h)
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(50));
    }
}

/// Waits until contender `name` is granted at or after `t_ms` and has acknowledged
/// [`PROOF_WRITES`] writes in that term; returns the grant.
pub async fn wait_leading(contenders: &[&Contender], name: &str, t_ms: u64) -> Event {
    let what = format!("{name} to lead (granted after {t_ms}) and write");
    let h = wait_histories(contenders, &what, |h| {
        let own = h.of(name);
        own.since(EventKind::Granted, t_ms)
            .last()
            .is_some_and(|g| own.acked_in_term_since(g.epoch.unwrap(), g.t_ms) >= PROOF_WRITES)
    })
    .await;
    h.of(name)
        .since(EventKind::Granted, t_ms)
        .last()
        .copied()
        .cloned()
        .unwrap()
}

/// Waits until any contender is granted at or after `t_ms` and has acknowledged
/// [`PROOF_WRITES`] writes in that term; returns the first such grant.
pub async fn wait_any_leading(contenders: &[&Contender], t_ms: u64) -> Event {
    let leading = |h: &Histories| -> Option<Event> {
        h.granted_since(t_ms).into_iter().find_map(|g| {
            let own = h.of(&g.process);
            (own.acked_in_term_since(g.epoch.unwrap(), g.t_ms) >= PROOF_WRITES).then(|| g.clone())
        })
    };
    let what = format!("a contender to lead (granted after {t_ms}) and write");
    let h = wait_histories(contenders, &what, |h| leading(h).is_some()).await;
    leading(&h).unwrap()
}

/// Waits until the leader of term `grant` has acknowledged a write of that term issued at least
/// `span` after `since` (so the window covers, e.g., a whole session timeout), then asserts that
/// during the window nobody was granted and the leader was not revoked: no leadership change.
pub async fn assert_term_holds(
    contenders: &[&Contender],
    grant: &Event,
    since: u64,
    span: Duration,
) {
    let epoch = grant.epoch.unwrap();
    let end = since + u64::try_from(span.as_millis()).unwrap();
    let name = grant.process.as_str();
    let what = format!("{name} to write in its term {span:?} after {since}");
    let h = wait_histories(contenders, &what, |h| {
        h.of(name)
            .of_kind(EventKind::Write)
            .any(|e| e.epoch == Some(epoch) && e.start() >= end)
    })
    .await;
    let granted = h.granted_since(since);
    assert!(
        granted.is_empty(),
        "leadership changed: {granted:?}\n{}",
        dump(contenders, &h)
    );
    let own = h.of(name);
    let revoked = own.since(EventKind::Revoked, since);
    assert!(
        revoked.is_empty() && own.leads(),
        "{name} was revoked: {revoked:?}\n{}",
        dump(contenders, &h)
    );
    println!(
        "{name} held its term over {span:?}: {} writes acknowledged",
        own.acked_in_term_since(epoch, since)
    );
}

/// The remote ports of the established TCP connections of process `pid` (from `/proc`): which
/// ZooKeeper server a contender is connected to.
pub fn connected_remote_ports(pid: u32) -> Vec<u16> {
    let mut inodes = Vec::new();
    if let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(link) = fs::read_link(fd.path())
                && let Some(inode) = link
                    .to_str()
                    .and_then(|l| l.strip_prefix("socket:["))
                    .and_then(|l| l.strip_suffix(']'))
            {
                inodes.push(inode.to_owned());
            }
        }
    }
    let table = fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let mut ports = Vec::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st ... inode (field 9); st 01 = ESTABLISHED.
        if f.len() > 9
            && f[3] == "01"
            && inodes.iter().any(|i| i == f[9])
            && let Some((_, port)) = f[2].split_once(':')
            && let Ok(port) = u16::from_str_radix(port, 16)
        {
            ports.push(port);
        }
    }
    ports
}

impl Contender {
    /// The numbers (from 0) of the lines of its stderr that contain `needle`, in order: to check
    /// the order in which its backend logged changes.
    pub fn stderr_lines_with(&self, needle: &str) -> Vec<usize> {
        fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .map(|(i, _)| i)
            .collect()
    }
}

/// Asserts that no two terms overlap in time (all contenders log on this machine's clock): every
/// term, from its `granted` to the `revoked` of the same session (or the end of the history if it
/// is still held), ends before the next one, of any process, is granted.
pub fn assert_terms_disjoint(contenders: &[&Contender], h: &Histories) {
    let mut terms: Vec<(u64, u64, &str)> = Vec::new();
    for (name, history) in &h.all {
        for g in history.of_kind(EventKind::Granted) {
            let end = history
                .of_kind(EventKind::Revoked)
                .find(|r| r.session == g.session && r.t_ms >= g.t_ms)
                .map_or(u64::MAX, |r| r.t_ms);
            terms.push((g.t_ms, end, name.as_str()));
        }
    }
    terms.sort_unstable();
    for w in terms.windows(2) {
        let ((_, end, before), (start, _, after)) = (w[0], w[1]);
        assert!(
            end <= start,
            "overlapping terms: {before}'s ends at {end}, {after}'s starts at {start}\n{}",
            dump(contenders, h)
        );
    }
}

/// Waits until `n` acknowledged writes (of any contender) were issued at or after `t_ms`;
/// returns every acknowledged write issued since then, in the order they were acknowledged.
pub async fn wait_acked_since(contenders: &[&Contender], t_ms: u64, n: usize) -> Vec<Event> {
    let acked = |h: &Histories| -> Vec<Event> {
        let mut all: Vec<Event> = h
            .all
            .iter()
            .flat_map(|(_, h)| h.acked_since(t_ms))
            .cloned()
            .collect();
        all.sort_by_key(|e| e.t_ms);
        all
    };
    let what = format!("{n} acknowledged writes issued after {t_ms}");
    let h = wait_histories(contenders, &what, |h| acked(h).len() >= n).await;
    acked(&h)
}

/// One participant of an etcd latch: its key, the lease it lives under, its create revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdLatchKey {
    /// The etcd key (`<latch dir>/<lease id in hex>`).
    pub key: String,
    /// The lease the key is bound to (its owner process's lease).
    pub lease: i64,
    /// The key's create revision (the fencing epoch of its owner's terms).
    pub create_revision: i64,
}

impl Scenario {
    /// The participants of the latch on etcd at `endpoint`, in line order (lowest create
    /// revision first: the first one leads).
    pub async fn etcd_latch(&self, endpoint: &str) -> Vec<EtcdLatchKey> {
        use tenure_etcd::etcd_client::{Client, GetOptions};
        let mut client = Client::connect([endpoint], None).await.unwrap();
        let prefix = format!("{}/", self.latch_dir());
        let resp = client
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        let mut line: Vec<EtcdLatchKey> = resp
            .kvs()
            .iter()
            .map(|kv| EtcdLatchKey {
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                lease: kv.lease(),
                create_revision: kv.create_revision(),
            })
            .collect();
        line.sort_by_key(|k| k.create_revision);
        line
    }

    /// Waits until the latch on etcd at `endpoint` satisfies `pred`; returns it. Panics naming
    /// `what` after [`EVENT_DEADLINE`].
    pub async fn wait_etcd_latch(
        &self,
        endpoint: &str,
        what: &str,
        pred: impl Fn(&[EtcdLatchKey]) -> bool,
    ) -> Vec<EtcdLatchKey> {
        let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
        loop {
            let line = self.etcd_latch(endpoint).await;
            if pred(&line) {
                return line;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waiting for the etcd latch: {what}; it is {line:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next id the job's checkpoint id counter hands out, read through a fresh
    /// `tenure::connect` to `quorum` (a re-read of what the leaders wrote).
    pub async fn read_counter(&self, quorum: &str) -> u64 {
        let conf = Configuration::parse_legacy(&self.flink_conf(quorum)).unwrap();
        let ha = HaConfig::from_configuration(&conf).unwrap();
        let services = tenure::connect(&ha).await.unwrap();
        let next = services
            .admin_stores()
            .checkpoint_recovery_factory()
            .create_checkpoint_id_counter(self.job)
            .get()
            .await
            .unwrap();
        services.close().await.unwrap();
        next.0
    }
}

/// The seconds left of etcd lease `lease` as the server at `endpoint` reports them (-1: the
/// lease does not exist, it expired or was revoked).
pub async fn etcd_lease_ttl(endpoint: &str, lease: i64) -> i64 {
    let mut client = tenure_etcd::etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    client
        .lease_time_to_live(lease, None)
        .await
        .map_or(-1, |r| r.ttl())
}
