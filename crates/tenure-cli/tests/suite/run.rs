//! `tenure run` as a binary on the embedded backend (`--ha-type none`; one process: always elected): the command's
//! environment, exit status, signals, --restart, and the metrics endpoint; `leaders --watch`
//! startup and shutdown. Losing leadership to another process is tested against ZooKeeper.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::{Running, dispatcher_serving_metrics, http_get, metrics_addr, run};

#[test]
fn the_command_runs_with_the_term_in_its_environment_and_its_status_is_passed_on() {
    let out = run(&[
        "--ha-type",
        "none",
        "run",
        "--component",
        "dispatcher",
        "--address",
        "http://host-a:8081",
        "--output",
        "json",
        "--",
        "sh",
        "-c",
        "echo \"$TENURE_COMPONENT|$TENURE_LEADER_SESSION_ID|$TENURE_LEADER_ADDRESS|$TENURE_FENCING_TOKEN\"; exit 7",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = stdout.trim().split('|').collect();
    assert_eq!(fields[0], "dispatcher");
    assert_eq!(fields[1].len(), 36, "a UUID: {stdout}");
    assert_eq!(fields[2], "http://host-a:8081");
    assert!(fields[3].contains("leader/dispatcher/latch"), "{stdout}");
    let events: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "campaigning",
            "elected",
            "confirmed",
            "started",
            "exited",
            "resigned"
        ],
        "{err}"
    );
    assert_eq!(events[1]["session_id"], fields[1]);
    assert_eq!(events[4]["exit_code"], 7);
    assert_eq!(events[4]["status"], 7);
    assert!(events.iter().all(|e| e["unix_ms"].is_u64()));
}

#[test]
fn cluster_scope_campaigns_on_the_process_wide_latch() {
    let out = run(&[
        "--ha-type",
        "none",
        "run",
        "--component",
        "rest_server",
        "--scope",
        "cluster",
        "--",
        "sh",
        "-c",
        "echo $TENURE_FENCING_TOKEN",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout);
    assert!(token.starts_with("leader/latch"), "{token}");
}

#[test]
fn sigterm_is_passed_on_and_the_childs_status_returned() {
    let mut t = Running::spawn(&[
        "--ha-type",
        "none",
        "run",
        "--component",
        "rest_server",
        "--output",
        "json",
        "--",
        "sleep",
        "60",
    ]);
    t.stderr.wait_event("started");
    t.signal("-TERM");
    assert_eq!(t.wait(), Some(143));
    t.stderr.wait_event("stopping");
    let exited = t.stderr.wait_event("exited");
    assert_eq!(exited["signal"], 15);
    t.stderr.wait_event("resigned");
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_the_grace_period() {
    let mut t = Running::spawn(&[
        "--ha-type",
        "none",
        "run",
        "--component",
        "dispatcher",
        "--grace",
        "300ms",
        "--output",
        "json",
        "--",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 1; done",
    ]);
    t.stdout.wait_for("ready", |l| l == "ready");
    t.signal("-INT");
    assert_eq!(t.wait(), Some(137));
    let term = t.stderr.wait_event("signal");
    assert_eq!(term["signal"], "SIGTERM");
    let kill = t.stderr.wait_event("signal");
    assert_eq!(kill["signal"], "SIGKILL");
}

#[test]
fn restart_runs_the_command_again_while_leading() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran-once");
    let script = format!(
        "if [ -e {m} ]; then echo second; exec sleep 60; else touch {m}; echo first; exit 3; fi",
        m = marker.display()
    );
    let mut t = Running::spawn(&[
        "--ha-type",
        "none",
        "run",
        "--component",
        "dispatcher",
        "--restart",
        "--restart-delay",
        "10ms",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    t.stdout.wait_for("first", |l| l == "first");
    t.stdout.wait_for("second", |l| l == "second");
    t.signal("-TERM");
    assert_eq!(t.wait(), Some(143));
}

#[test]
fn a_command_that_cannot_start_is_an_error() {
    let out = run(&[
        "--ha-type",
        "none",
        "run",
        "--component",
        "dispatcher",
        "--",
        "/nonexistent/cmd",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run /nonexistent/cmd"));
}

#[test]
fn run_serves_leadership_metrics() {
    let (mut t, addr) = dispatcher_serving_metrics();
    let (status, body) = http_get(&addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    for needle in [
        "tenure_leadership{component=\"dispatcher\"} 1",
        "tenure_terms_granted_total{component=\"dispatcher\"} 1",
        "tenure_confirm_latency_seconds_count 1",
        "tenure_connection_state{state=\"connected\"} 1",
        "# EOF",
    ] {
        assert!(body.contains(needle), "{needle} not in:\n{body}");
    }
    let (status, _) = http_get(&addr, "/other");
    assert!(status.contains("404"), "{status}");
    t.signal("-TERM");
    assert_eq!(t.wait(), Some(143));
}

#[test]
fn leaders_watch_prints_a_snapshot_and_stops_on_sigterm() {
    let mut t = Running::spawn(&[
        "--ha-type",
        "none",
        "leaders",
        "--watch",
        "--output",
        "json",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let addr = metrics_addr(&mut t.stderr);
    let snap = t.stdout.wait_event("snapshot");
    assert_eq!(snap["components"].as_array().unwrap().len(), 3);
    assert!(snap["unix_ms"].is_u64());
    let (_, body) = http_get(&addr, "/metrics");
    assert!(
        body.contains("tenure_published_leader{component=\"dispatcher\"} 0"),
        "{body}"
    );
    t.signal("-TERM");
    assert_eq!(t.wait(), Some(0));
}

#[test]
fn demo_accepts_a_metrics_address() {
    let out = run(&[
        "demo",
        "--failovers",
        "1",
        "--metrics-addr",
        "127.0.0.1:0",
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("metrics on http://127.0.0.1:"));
}
