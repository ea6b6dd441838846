//! Smoke test of the harness (not of speed): `tenure-bench --smoke all` runs every scenario with
//! tiny sizes against a real ZooKeeper (the Debian package `zookeeper`, installed by
//! `scripts/test`), runs the peers that are installed and notes the missing ones, and writes
//! the JSON results, the report and the plots; with Debian's etcd installed, the etcd section
//! too (tests/smoke_etcd.rs checks it in detail).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole smoke run must end within this (it takes well under a minute).
const DEADLINE: Duration = Duration::from_secs(240);

#[test]
fn smoke_run_writes_every_scenario_and_the_report() {
    let out = tempfile::tempdir().expect("temporary directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure-bench"))
        .arg("--smoke")
        .arg("--out")
        .arg(out.path())
        .arg("all")
        .stdin(Stdio::null())
        .spawn()
        .expect("start tenure-bench");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for tenure-bench") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            // Our own child, by its handle (never by name).
            let _ = child.kill();
            let _ = child.wait();
            panic!("tenure-bench --smoke all ran longer than {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "tenure-bench --smoke all failed: {status}"
    );

    for scenario in [
        "rtt",
        "election",
        "handover",
        "failover",
        "retrieval",
        "store",
        "scale",
        "machine",
    ] {
        let path = out.path().join(format!("{scenario}.json"));
        let text = std::fs::read_to_string(&path).expect("a results file per scenario");
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert!(json.is_object(), "{}", path.display());
    }
    let report = std::fs::read_to_string(out.path().join("report.md")).expect("report.md");
    for section in [
        "1. Uncontended election",
        "2. Graceful handover",
        "3. Crash failover",
        "4. Confirm-to-retrieval",
        "5. Store throughput and latency",
        "6. Scale",
        "nproc",
        "load average",
    ] {
        assert!(report.contains(section), "report.md lacks {section:?}");
    }
    // Every tenure row has samples.
    let election: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("election.json")).expect("election.json"),
    )
    .expect("JSON");
    let tenure = &election["groups"][0]["rows"][0];
    assert_eq!(tenure["implementation"], "tenure");
    assert!(tenure["summary"]["n"].as_u64().unwrap_or(0) > 0);
    // Missing peers are said to be missing, present ones have rows.
    let curator = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/bench/curator/CuratorBench.class")
        .is_file();
    if !curator {
        assert!(
            report.contains("Peers skipped") && report.contains("Curator"),
            "the report must say that Curator was skipped"
        );
    }
    assert!(out.path().join("plots/election.svg").is_file());
    assert!(out.path().join("plots/scale-time.svg").is_file());
    // `all` runs the etcd section after the ZooKeeper scenarios when etcd is installed.
    if Path::new("/usr/bin/etcd").is_file() {
        assert!(out.path().join("etcd/report.md").is_file());
        assert!(
            report.contains("etcd/report.md"),
            "report.md must point to the etcd section"
        );
    }
}
