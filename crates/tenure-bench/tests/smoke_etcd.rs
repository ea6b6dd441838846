//! Smoke test of the etcd section (not of speed): `tenure-bench --smoke etcd all` runs every
//! etcd scenario with tiny sizes against real etcd servers (Debian's `etcd-server`, installed
//! by `scripts/test`), `etcdctl elect` when Debian's `etcd-client` is there, and writes the JSON
//! results, etcd/report.md and its plots, within a minute.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd section's smoke run must end within this.
const DEADLINE: Duration = Duration::from_secs(60);

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("a results file {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is JSON: {e}", path.display()))
}

/// The first row of `group` (by key) of a scenario's results that `implementation` made.
fn row<'a>(
    result: &'a serde_json::Value,
    group: &str,
    implementation: &str,
) -> &'a serde_json::Value {
    let groups = result["groups"].as_array().expect("groups");
    let g = groups
        .iter()
        .find(|g| g["key"] == group)
        .unwrap_or_else(|| panic!("no group {group}"));
    g["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["implementation"] == implementation)
        .unwrap_or_else(|| panic!("no {implementation} row in {group}"))
}

#[test]
fn etcd_smoke_run_writes_every_scenario_and_its_report_within_a_minute() {
    if !Path::new("/usr/bin/etcd").is_file() {
        panic!(
            "a real etcd server is needed: /usr/bin/etcd is missing; install the Debian package \
             `etcd-server` (scripts/test does)"
        );
    }
    let out = tempfile::tempdir().expect("temporary directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure-bench"))
        .arg("--smoke")
        .arg("--out")
        .arg(out.path())
        .args(["etcd", "all"])
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
            panic!("tenure-bench --smoke etcd all ran longer than {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "tenure-bench --smoke etcd all failed: {status}"
    );

    let dir = out.path().join("etcd");
    for scenario in [
        "election", "handover", "failover", "store", "scale", "machine",
    ] {
        assert!(json(&dir.join(format!("{scenario}.json"))).is_object());
    }
    // The ZooKeeper scenarios did not run.
    assert!(!out.path().join("election.json").exists());

    // tenure and the floor make the same requests for an election, counted by the server.
    let election = json(&dir.join("election.json"));
    for who in ["tenure", "floor"] {
        let r = row(&election, "etcd-election", who);
        assert!(
            r["summary"]["n"].as_u64().unwrap_or(0) > 0,
            "{who} has samples"
        );
        assert_eq!(r["extra"]["rpc Txn"].as_f64(), Some(1.0), "{who}: one Txn");
        assert_eq!(
            r["extra"]["rpc Range"].as_f64(),
            Some(1.0),
            "{who}: one Range"
        );
    }
    // A crash failover's excess and reaction are both measured.
    let failover = json(&dir.join("failover.json"));
    let excess = row(&failover, "etcd-failover-4s", "tenure");
    assert!(excess["extra"]["server_share_median_ms"].is_number());
    let reaction = row(&failover, "etcd-failover-4s-reaction", "tenure");
    assert!(reaction["summary"]["n"].as_u64().unwrap_or(0) > 0);
    let store = json(&dir.join("store.json"));
    assert!(row(&store, "etcd-checkpoint-c16", "floor")["extra"]["throughput_ops_s"].is_number());

    let report = std::fs::read_to_string(dir.join("report.md")).expect("etcd/report.md");
    for section in [
        "## Targets (issue 14, item 10)",
        "uncontended election ≤ 1.1× the floor",
        "fenced checkpoint add throughput ≥ 80 % of the floor",
        "E1. Uncontended election (etcd)",
        "E2. Graceful handover (etcd)",
        "E3. Crash failover (etcd)",
        "E4. Fenced checkpoint add throughput (etcd)",
        "E5. Per-job elections on one lease (etcd)",
        "Requests of one operation, by gRPC method",
    ] {
        assert!(report.contains(section), "etcd/report.md lacks {section:?}");
    }
    if Path::new("/usr/bin/etcdctl").is_file() {
        assert!(report.contains("etcdctl elect"), "etcdctl rows are missing");
    }
    assert!(dir.join("plots/etcd-election.svg").is_file());
}
