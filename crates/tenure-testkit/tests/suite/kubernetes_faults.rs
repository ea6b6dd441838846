//! Fault tests of the Kubernetes backend with separate `tenure-contender` processes (the
//! `tenure-contender` of the other fault suites, connecting as the facade's `KUBERNETES` arm
//! does) against the fake API server: SIGKILL of the leader, SIGSTOP of the leader past its lease (the zombie),
//! and API server errors, delays and dropped watches. Every history passes the same checker as
//! the ZooKeeper fault suite; failover times are printed.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tenure_core::config::{Configuration, HaConfig};
use tenure_core::ids::JobId;
use tenure_core::services::{HaServices, HaServicesOptions};
use tenure_testkit::history::{EventKind, History, check};
use tenure_testkit::kube_fake::{KubernetesFactory, ProcessSetup, Resource};
use tenure_testkit::wait_until;

const CONTENDER: &str = env!("CARGO_BIN_EXE_tenure-contender");
const JOB: &str = "0000000000000000000000000000cafe";
const DEADLINE: Duration = Duration::from_secs(30);

struct Contender {
    name: String,
    child: Child,
    history: PathBuf,
}

impl Contender {
    fn spawn(setup: &ProcessSetup, name: &str) -> Self {
        let history = setup.dir().join(format!("{name}.jsonl"));
        let child = setup
            .command(CONTENDER)
            .arg("--config")
            .arg(&setup.config)
            .args(["--name", name, "--job", JOB, "--interval-ms", "20"])
            .arg("--history")
            .arg(&history)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            name: name.to_owned(),
            child,
            history,
        }
    }

    fn history(&self) -> History {
        read(&self.history)
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {}", self.name);
    }

    async fn terminate(&mut self) {
        self.signal("TERM");
        let mut done = false;
        wait_until(&format!("{} to exit", self.name), DEADLINE, || {
            done = self.child.try_wait().unwrap().is_some();
            std::future::ready(done)
        })
        .await;
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> History {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| History::parse(&t).ok())
        .unwrap_or_default()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn wait_history(c: &Contender, what: &str, pred: impl Fn(&History) -> bool) -> History {
    wait_until(&format!("{}: {what}", c.name), DEADLINE, || {
        std::future::ready(pred(&c.history()))
    })
    .await;
    c.history()
}

fn grants_after(h: &History, t: u64) -> Option<u64> {
    h.of_kind(EventKind::Granted)
        .map(|e| e.t_ms)
        .find(|g| *g >= t)
}

fn acks_after(h: &History, t: u64) -> usize {
    h.of_kind(EventKind::Write).filter(|e| e.t_ms >= t).count()
}

fn sessions(f: &KubernetesFactory) -> usize {
    f.server()
        .objects(Resource::ConfigMaps, &f.settings().namespace)
        .iter()
        .filter(|o| {
            o.pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| n.contains("-tenure-session-"))
        })
        .count()
}

/// The checkpoint ids the store retains at the end, read by a fresh process.
async fn recovered(f: &KubernetesFactory, setup: &ProcessSetup) -> Vec<u64> {
    let conf = Configuration::from_file(&setup.config).unwrap();
    let config = HaConfig::from_configuration(&conf).unwrap();
    let backend = Arc::new(f.connect_k8s().await);
    let services = HaServices::new(backend, HaServicesOptions::from_config(&config).unwrap());
    let job = JobId::parse(JOB).unwrap();
    let ids = services
        .admin_stores()
        .checkpoint_recovery_factory()
        .create_completed_checkpoint_store(job, 3)
        .unwrap()
        .recover()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id.0)
        .collect();
    services.close().await.unwrap();
    ids
}

async fn start() -> (KubernetesFactory, ProcessSetup) {
    let f = KubernetesFactory::start().await;
    let setup = ProcessSetup::new(f.server(), &f.settings(), "");
    (f, setup)
}

async fn check_all(f: &KubernetesFactory, setup: &ProcessSetup, procs: &[&Contender]) {
    let merged = History::merge(procs.iter().map(|c| c.history()).collect());
    let ids = recovered(f, setup).await;
    let report = check(&merged, &ids);
    println!("checker: {report}");
    report.assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_fails_over_within_lease_and_retry_period() {
    let (f, setup) = start().await;
    let s = f.settings();
    let mut a = Contender::spawn(&setup, "a");
    wait_history(&a, "two acknowledged writes", |h| {
        h.acknowledged_ids().len() >= 2
    })
    .await;
    let mut b = Contender::spawn(&setup, "b");
    wait_until("b's session", DEADLINE, || {
        std::future::ready(sessions(&f) >= 2)
    })
    .await;
    // Let b observe a's lease for a while.
    tokio::time::sleep(s.retry_period * 3).await;
    let killed = now_ms();
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    let h = wait_history(&b, "granted after the kill", |h| {
        grants_after(h, killed).is_some()
    })
    .await;
    let failover = grants_after(&h, killed).unwrap() - killed;
    println!(
        "failover after SIGKILL: {failover} ms (lease {:?}, retry period {:?})",
        s.lease_duration, s.retry_period
    );
    let bound = s.lease_duration + s.retry_period + Duration::from_secs(2);
    assert!(
        failover <= bound.as_millis() as u64,
        "failover took {failover} ms, more than lease + retry period (+2 s slack)"
    );
    wait_history(&b, "writes as the new leader", |h| {
        acks_after(h, killed) >= 2
    })
    .await;
    b.terminate().await;
    check_all(&f, &setup, &[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_past_its_lease_is_fenced_and_steps_down() {
    let (f, setup) = start().await;
    let mut a = Contender::spawn(&setup, "a");
    wait_history(&a, "two acknowledged writes", |h| {
        h.acknowledged_ids().len() >= 2
    })
    .await;
    let mut b = Contender::spawn(&setup, "b");
    wait_until("b's session", DEADLINE, || {
        std::future::ready(sessions(&f) >= 2)
    })
    .await;
    tokio::time::sleep(f.settings().retry_period * 3).await;
    let stopped = now_ms();
    a.signal("STOP");
    let h = wait_history(&b, "granted while a is stopped", |h| {
        grants_after(h, stopped).is_some()
    })
    .await;
    println!(
        "failover after SIGSTOP: {} ms",
        grants_after(&h, stopped).unwrap() - stopped
    );
    wait_history(&b, "writes as the new leader", |h| {
        acks_after(h, stopped) >= 2
    })
    .await;
    let resumed = now_ms();
    a.signal("CONT");
    // The zombie learns it lost leadership; none of its writes after resuming is accepted.
    let ha = wait_history(&a, "revoked after resuming", |h| {
        h.of_kind(EventKind::Revoked).any(|e| e.t_ms >= resumed)
    })
    .await;
    let late_acks: Vec<_> = ha
        .of_kind(EventKind::Write)
        .filter(|e| e.start_ms.unwrap_or(e.t_ms) >= resumed)
        .collect();
    assert!(
        late_acks.is_empty(),
        "writes issued after SIGCONT accepted: {late_acks:?}"
    );
    wait_history(&b, "still writing", |h| acks_after(h, resumed) >= 2).await;
    a.terminate().await;
    b.terminate().await;
    check_all(&f, &setup, &[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_delays_and_dropped_watches_never_give_two_leaders() {
    let (f, setup) = start().await;
    let mut a = Contender::spawn(&setup, "a");
    wait_history(&a, "two acknowledged writes", |h| {
        h.acknowledged_ids().len() >= 2
    })
    .await;
    let mut b = Contender::spawn(&setup, "b");
    wait_until("b's session", DEADLINE, || {
        std::future::ready(sessions(&f) >= 2)
    })
    .await;
    let server = f.server();
    for round in 0..12u32 {
        match round % 4 {
            0 => server.fail_next(4, 503),
            1 => server.drop_watches(),
            2 => server.set_delay(Duration::from_millis(150)),
            _ => {
                server.set_delay(Duration::ZERO);
                server.fail_next(2, 500);
            }
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    server.set_delay(Duration::ZERO);
    // After the faults the cluster settles on one leader that writes again.
    let calm = now_ms();
    wait_until("a leader writing after the faults", DEADLINE, || {
        std::future::ready(acks_after(&a.history(), calm) + acks_after(&b.history(), calm) >= 2)
    })
    .await;
    a.terminate().await;
    b.terminate().await;
    check_all(&f, &setup, &[&a, &b]).await;
}
