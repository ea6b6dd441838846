//! The history format, the checker on synthetic histories (one per violation kind), and the
//! `tenure-contender` process checked end to end on the embedded backend.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use proptest::prelude::*;
use tenure_testkit::history::{
    CheckOptions, Event, EventKind, History, HistoryError, check, check_with,
};
use tenure_testkit::wait_until;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Synthetic events

fn session(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn granted(t: u64, p: &str, s: u128, epoch: i64) -> Event {
    let mut e = Event::new(t, p, EventKind::Granted);
    e.session = Some(session(s));
    e.epoch = Some(epoch);
    e
}

fn revoked(t: u64, p: &str) -> Event {
    Event::new(t, p, EventKind::Revoked)
}

fn exit(t: u64, p: &str) -> Event {
    Event::new(t, p, EventKind::Exit)
}

/// An acknowledged write issued and acknowledged at `t`.
fn write(t: u64, p: &str, epoch: i64, id: u64) -> Event {
    write_span(t, t, p, epoch, id)
}

/// An acknowledged write issued at `start`, acknowledged at `end`.
fn write_span(start: u64, end: u64, p: &str, epoch: i64, id: u64) -> Event {
    let mut e = Event::new(end, p, EventKind::Write);
    e.epoch = Some(epoch);
    e.id = Some(id);
    e.start_ms = Some(start);
    e
}

fn rejected(t: u64, p: &str, epoch: i64, id: Option<u64>) -> Event {
    let mut e = Event::new(t, p, EventKind::WriteRejected);
    e.epoch = Some(epoch);
    e.id = id;
    e.error = Some("not leader".into());
    e
}

fn failed(t: u64, p: &str, epoch: i64, id: u64) -> Event {
    let mut e = Event::new(t, p, EventKind::WriteFailed);
    e.epoch = Some(epoch);
    e.id = Some(id);
    e.error = Some("outcome unknown".into());
    e
}

fn history(events: Vec<Event>) -> History {
    History::from_events(events)
}

/// Asserts exactly one violation, containing `needle`.
fn assert_violation(report: &tenure_testkit::history::Report, needle: &str) {
    assert!(!report.ok, "expected a violation: {report}");
    assert!(
        report.violations.iter().any(|v| v.contains(needle)),
        "no violation mentioning {needle:?}: {report}"
    );
}

/// A clean failover: a leads (epoch 1), b takes over (epoch 3), a's late write is rejected.
fn failover() -> Vec<Event> {
    vec![
        granted(10, "a", 1, 1),
        write(20, "a", 1, 1),
        write(30, "a", 1, 2),
        write(40, "a", 1, 3),
        granted(50, "b", 2, 3),
        write(60, "b", 3, 4),
        rejected(65, "a", 1, None),
        revoked(66, "a"),
        write(70, "b", 3, 5),
    ]
}

// ---------------------------------------------------------------------------------------------
// Format

#[test]
fn events_round_trip_through_json_lines() {
    let events = failover();
    let text: String = events.iter().map(Event::to_json_line).collect();
    assert!(text.contains(r#""proc":"a","event":"granted""#), "{text}");
    assert!(text.contains(r#""event":"write_rejected""#), "{text}");
    assert!(!text.contains("null"), "absent fields are left out: {text}");
    let parsed = History::parse(&text).unwrap();
    assert_eq!(parsed.events(), &events[..]);
}

#[test]
fn parse_accepts_the_documented_format() {
    let text = concat!(
        r#"{"t_ms": 1700000000123, "proc": "a", "event": "granted", "session": "67e55044-10b1-426f-9247-bb680e5fe0c8", "epoch": 7}"#,
        "\n\n",
        r#"{"t_ms": 1700000000180, "proc": "a", "event": "write", "epoch": 7, "id": 12, "future_field": [1]}"#,
        "\n",
        r#"{"t_ms": 1700000000190, "proc": "a", "event": "write_failed", "epoch": 7, "error": "connection loss"}"#,
        "\n",
        r#"{"t_ms": 1700000000200, "proc": "a", "event": "exit"}"#,
    );
    let h = History::parse(text).unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(h.acknowledged_ids(), vec![12]);
    assert_eq!(
        h.events()[0].session,
        Some("67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap())
    );
    assert!(History::parse("").unwrap().is_empty());
}

#[test]
fn parse_errors_name_the_line() {
    let good = granted(1, "a", 1, 1).to_json_line();
    let cases = [
        ("{not json", "not a history event"),
        (r#"{"t_ms":1,"proc":"a","event":"elected"}"#, "elected"),
        (
            r#"{"t_ms":-1,"proc":"a","event":"exit"}"#,
            "not a history event",
        ),
        (r#"{"proc":"a","event":"exit"}"#, "t_ms"),
        (
            r#"{"t_ms":1,"proc":"","event":"exit"}"#,
            "\"proc\" is empty",
        ),
        (
            r#"{"t_ms":1,"proc":"a","event":"granted","epoch":1}"#,
            "session",
        ),
        (
            r#"{"t_ms":1,"proc":"a","event":"granted","session":"nope","epoch":1}"#,
            "not a history event",
        ),
        (
            r#"{"t_ms":1,"proc":"a","event":"write","epoch":1}"#,
            "\"id\"",
        ),
        (
            r#"{"t_ms":1,"proc":"a","event":"write","id":1}"#,
            "\"epoch\"",
        ),
        (
            r#"{"t_ms":1,"proc":"a","event":"write_rejected"}"#,
            "\"epoch\"",
        ),
        ("[1, 2]", "not a history event"),
    ];
    for (bad, needle) in cases {
        let text = format!("{good}\n{bad}\n{good}");
        let err = History::parse(&text).unwrap_err();
        match &err {
            HistoryError::Line { line, message } => {
                assert_eq!(*line, 3, "{bad}: {err}");
                assert!(message.contains(needle), "{bad}: {err}");
            }
            other => panic!("{bad}: {other}"),
        }
        assert!(err.to_string().starts_with("line 3: "), "{err}");
    }
    let missing = History::read(Path::new("/nonexistent/history.jsonl")).unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/history.jsonl"),
        "{missing}"
    );
}

#[test]
fn merge_orders_by_time_then_process_order() {
    let a = history(vec![
        granted(10, "a", 1, 1),
        write(30, "a", 1, 1),
        exit(30, "a"),
    ]);
    let b = history(vec![granted(20, "b", 2, 2), write(30, "b", 2, 2)]);
    // c's clock steps back: its own order is kept.
    let c = history(vec![revoked(50, "c"), exit(40, "c")]);
    let merged = History::merge(vec![a, b, c]);
    let order: Vec<(String, EventKind, u64)> = merged
        .events()
        .iter()
        .map(|e| (e.process.clone(), e.event, e.t_ms))
        .collect();
    let expected = [
        ("a", EventKind::Granted, 10),
        ("b", EventKind::Granted, 20),
        ("a", EventKind::Write, 30),
        ("a", EventKind::Exit, 30),
        ("b", EventKind::Write, 30),
        ("c", EventKind::Revoked, 50),
        ("c", EventKind::Exit, 40),
    ];
    let expected: Vec<(String, EventKind, u64)> = expected
        .iter()
        .map(|(p, k, t)| (p.to_string(), *k, *t))
        .collect();
    assert_eq!(order, expected);
}

// ---------------------------------------------------------------------------------------------
// Checker

#[test]
fn a_clean_failover_passes() {
    let report = check(&History::merge(vec![history(failover())]), &[3, 4, 5]);
    report.assert_ok();
    assert_eq!(
        (
            report.terms,
            report.acknowledged,
            report.rejected,
            report.failed
        ),
        (2, 5, 1, 0)
    );
    assert!(report.to_string().ends_with("ok"), "{report}");
}

#[test]
fn a_deposed_leaders_accepted_write_is_flagged() {
    let mut events = failover();
    // a's write issued after b's epoch-3 write was acknowledged, yet accepted.
    events.push(write_span(72, 75, "a", 1, 6));
    let report = check(&History::merge(vec![history(events)]), &[4, 5, 6]);
    assert_violation(&report, "two leaders accepted");
    assert!(
        report.to_string().contains("a write at 75 id 6 epoch 1"),
        "{report}"
    );
}

#[test]
fn a_write_overlapping_the_handover_is_not_flagged() {
    // a was stopped mid-write: issued at 45 (before b's writes), acknowledged at 80.
    let mut events = failover();
    events.push(write_span(45, 80, "a", 1, 6));
    events.sort_by_key(|e| e.t_ms);
    let report = check(&history(events), &[4, 5, 6]);
    assert!(
        !report.violations.iter().any(|v| v.contains("two leaders")),
        "{report}"
    );
}

#[test]
fn clock_skew_tolerance_is_honoured() {
    let events = history(vec![
        granted(0, "a", 1, 1),
        granted(15, "b", 2, 2),
        write(20, "b", 2, 2),
        write_span(22, 23, "a", 1, 1),
    ]);
    assert_violation(&check(&events, &[1, 2]), "two leaders accepted");
    let tolerant = check_with(&events, &[1, 2], &CheckOptions { clock_skew_ms: 5 });
    assert!(
        !tolerant
            .violations
            .iter()
            .any(|v| v.contains("two leaders")),
        "{tolerant}"
    );
}

#[test]
fn an_epoch_going_back_within_a_process_is_flagged() {
    let events = history(vec![
        granted(0, "a", 1, 5),
        write(1, "a", 5, 1),
        granted(2, "a", 2, 4),
        write(3, "a", 4, 2),
    ]);
    assert_violation(
        &check(&events, &[1, 2]),
        "epoch went back within one process",
    );
}

#[test]
fn one_epoch_for_two_processes_is_flagged() {
    let events = history(vec![
        granted(0, "a", 1, 5),
        granted(0, "b", 2, 5),
        write(1, "a", 5, 1),
        write(2, "b", 5, 2),
    ]);
    assert_violation(
        &check(&events, &[1, 2]),
        "epoch 5 acknowledged for two processes",
    );
}

#[test]
fn lost_acknowledged_writes_are_flagged() {
    let h = History::merge(vec![history(failover())]);
    // The newest acknowledged checkpoint is missing.
    assert_violation(
        &check(&h, &[2, 3, 4]),
        "checkpoint 5 was acknowledged but the newest",
    );
    // One in the middle of the retained range is missing.
    assert_violation(
        &check(&h, &[3, 5]),
        "b write at 60 id 4 epoch 3 is not among",
    );
    // Nothing recovered at all.
    assert_violation(&check(&h, &[]), "no checkpoint is recovered");
    // Older acknowledged ones were subsumed: fine.
    check(&h, &[5]).assert_ok();
}

#[test]
fn the_last_leaders_last_acknowledged_write_must_be_the_newest() {
    // b acknowledged 5 and exited: nothing was in flight, so 6 cannot have been written.
    let mut events = failover();
    events.push(exit(80, "b"));
    let h = history(events.clone());
    check(&h, &[3, 4, 5]).assert_ok();
    assert_violation(
        &check(&h, &[4, 5, 6]),
        "newest recovered checkpoint must be 5, not 6",
    );

    // Killed instead (no exit): a write may have been in flight, so a newer id is fine.
    check(&history(failover()), &[4, 5, 6]).assert_ok();
    // An outcome-unknown write after the last acknowledged one: fine too.
    events.insert(events.len() - 1, failed(75, "b", 3, 6));
    check(&history(events), &[4, 5, 6]).assert_ok();
}

#[test]
fn a_rejected_write_that_took_effect_is_flagged() {
    let mut events = failover();
    events.push(rejected(71, "a", 1, Some(6)));
    assert_violation(
        &check(&history(events), &[4, 5, 6]),
        "rejected write took effect",
    );
}

#[test]
fn a_reused_session_is_flagged() {
    let events = history(vec![
        granted(0, "a", 7, 1),
        revoked(1, "a"),
        granted(2, "b", 7, 2),
    ]);
    let report = check(&events, &[]);
    assert_violation(&report, &format!("session {} granted twice", session(7)));
    assert_eq!(report.terms, 2);
}

#[test]
fn an_id_acknowledged_twice_is_flagged() {
    let events = history(vec![
        granted(0, "a", 1, 1),
        write(1, "a", 1, 1),
        write(2, "a", 1, 1),
    ]);
    assert_violation(&check(&events, &[1]), "checkpoint id 1 acknowledged twice");
}

#[test]
fn a_write_in_a_session_never_granted_is_flagged() {
    let mut w = write(1, "a", 1, 1);
    w.session = Some(session(99));
    let events = history(vec![granted(0, "a", 1, 1), w]);
    assert_violation(&check(&events, &[1]), "which a was never granted");
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(text in ".{0,300}") {
        let _ = History::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_near_events(
        lines in proptest::collection::vec(
            r#"\{("t_ms":-?[0-9]{0,21},|"proc":"[a-z]{0,2}",|"event":"(granted|revoked|write|write_rejected|write_failed|exit|x)",|"session":"[0-9a-f-]{0,36}",|"epoch":-?[0-9]{0,20},|"id":[0-9.e-]{0,21},|"start_ms":[0-9]{0,3},|"error":null,)*"x":0\}"#,
            0..6,
        )
    ) {
        let _ = History::parse(&lines.join("\n"));
    }

    #[test]
    fn check_never_panics_and_serialised_events_parse_back(
        raw in proptest::collection::vec(
            (0u64..50, 0usize..3, 0usize..6, 0u128..4, -2i64..4, proptest::option::of(0u64..8), proptest::option::of(0u64..60)),
            0..30,
        ),
        recovered in proptest::collection::vec(0u64..8, 0..4),
    ) {
        let kinds = [
            EventKind::Granted,
            EventKind::Revoked,
            EventKind::Write,
            EventKind::WriteRejected,
            EventKind::WriteFailed,
            EventKind::Exit,
        ];
        let events: Vec<Event> = raw
            .into_iter()
            .map(|(t, p, k, s, epoch, id, start)| {
                let mut e = Event::new(t, ["a", "b", "c"][p], kinds[k]);
                e.session = Some(session(s));
                e.epoch = Some(epoch);
                e.id = Some(id.unwrap_or(0));
                e.start_ms = start;
                e
            })
            .collect();
        let text: String = events.iter().map(Event::to_json_line).collect();
        let parsed = History::parse(&text).unwrap();
        prop_assert_eq!(parsed.events(), &events[..]);
        let report = check(&History::merge(vec![parsed]), &recovered);
        prop_assert_eq!(report.ok, report.violations.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// The contender process

const CONTENDER: &str = env!("CARGO_BIN_EXE_tenure-contender");
const JOB: &str = "00000000000000000000000000000abc";
/// Generous: the contender usually writes twice within ~100 ms.
const PROCESS_DEADLINE: Duration = Duration::from_secs(20);

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    history: PathBuf,
}

fn setup(config_text: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flink-conf.yaml");
    std::fs::write(&config, config_text).unwrap();
    let history = dir.path().join("history.jsonl");
    Setup {
        _dir: dir,
        config,
        history,
    }
}

fn spawn_contender(s: &Setup, name: &str, stdout: Stdio) -> Child {
    Command::new(CONTENDER)
        .arg("--config")
        .arg(&s.config)
        .args(["--name", name, "--job", JOB, "--interval-ms", "10"])
        .arg("--history")
        .arg(&s.history)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits until the history file (written by the other process) satisfies `pred`.
async fn wait_history(path: &Path, what: &str, pred: impl Fn(&History) -> bool) -> History {
    wait_until(what, PROCESS_DEADLINE, || async {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| History::parse(&t).ok())
            .is_some_and(|h| pred(&h))
    })
    .await;
    History::read(path).unwrap()
}

/// Waits for the child to exit (polling: the process is not ours to await).
async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let mut status = None;
    wait_until("the contender to exit", PROCESS_DEADLINE, || {
        let s = child.try_wait().unwrap();
        status = s;
        std::future::ready(s.is_some())
    })
    .await;
    status.unwrap()
}

#[tokio::test]
async fn contender_history_passes_the_checker() {
    let s = setup("high-availability.type: NONE\n");
    let mut child = spawn_contender(&s, "solo", Stdio::null());
    wait_history(&s.history, "two acknowledged writes", |h| {
        h.acknowledged_ids().len() >= 2
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let h = History::merge(vec![History::read(&s.history).unwrap()]);
    let first = &h.events()[0];
    assert_eq!(first.event, EventKind::Granted, "{first:?}");
    assert_eq!(first.process, "solo");
    assert!(first.session.is_some() && first.epoch.is_some());
    let acked = h.acknowledged_ids();
    assert_eq!(&acked[..2], &[1, 2], "ids come from a fresh counter");
    for w in h.of_kind(EventKind::Write) {
        assert_eq!(w.session, first.session);
        assert_eq!(w.epoch, first.epoch);
        assert!(w.start_ms.is_some_and(|s| s <= w.t_ms));
    }
    // The embedded cluster died with the process; the store retains the 3 newest ids written,
    // which are the newest acknowledged ones (a write in flight at the kill was never logged).
    let retained: Vec<u64> = acked.iter().rev().take(3).copied().collect();
    let report = check(&h, &retained);
    report.assert_ok();
    assert_eq!(report.terms, 1);
    assert_eq!(report.rejected, 0);
}

#[tokio::test]
async fn contender_exits_cleanly_on_sigterm() {
    let s = setup("high-availability.type: NONE\n");
    let mut child = spawn_contender(&s, "polite", Stdio::piped());
    // Drain stdout as it comes, so a full pipe never blocks the contender.
    let mut pipe = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut pipe, &mut text).unwrap();
        text
    });
    wait_history(&s.history, "an acknowledged write", |h| {
        !h.acknowledged_ids().is_empty()
    })
    .await;
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_exit(&mut child).await;
    assert_eq!(status.code(), Some(0), "{status}");

    let h = History::read(&s.history).unwrap();
    let kinds: Vec<EventKind> = h.events().iter().map(|e| e.event).collect();
    assert_eq!(kinds.last(), Some(&EventKind::Exit), "{kinds:?}");
    assert_eq!(kinds[kinds.len() - 2], EventKind::Revoked, "{kinds:?}");
    // stdout carries the same lines.
    assert_eq!(History::parse(&stdout.join().unwrap()).unwrap(), h);
    // Nothing was in flight at the exit, so the newest retained id is the newest acknowledged.
    let acked = h.acknowledged_ids();
    let retained: Vec<u64> = acked.iter().rev().take(3).copied().collect();
    check(&History::merge(vec![h]), &retained).assert_ok();
}

#[tokio::test]
async fn contender_rejects_bad_arguments_and_configuration() {
    let good = setup("high-availability.type: NONE\n");
    let run = |args: &[&str], config: &Path| {
        Command::new(CONTENDER)
            .arg("--config")
            .arg(config)
            .args(args)
            .output()
            .unwrap()
    };
    let bad_conf = setup("execution.checkpointing.num-retained: 0\n");
    let unknown_mode = setup("high-availability.type: bogus\n");
    let cases: [(&[&str], &Path, &str); 6] = [
        (
            &["--name", "x", "--job", "not-a-job"],
            &good.config,
            "--job",
        ),
        (&["--name", "x"], &good.config, "--job"),
        (
            &["--name", "x", "--job", JOB, "--retain", "0"],
            &good.config,
            "--retain",
        ),
        (
            &["--name", "x", "--job", JOB],
            Path::new("/nonexistent/flink-conf.yaml"),
            "/nonexistent",
        ),
        (
            &["--name", "x", "--job", JOB],
            &bad_conf.config,
            "execution.checkpointing.num-retained",
        ),
        (
            &["--name", "x", "--job", JOB],
            &unknown_mode.config,
            "bogus",
        ),
    ];
    for (args, config, needle) in cases {
        let out = run(args, config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Our own errors are one line.
    let out = run(&["--name", "x", "--job", JOB], &bad_conf.config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("tenure-contender: error: "), "{stderr}");
}
