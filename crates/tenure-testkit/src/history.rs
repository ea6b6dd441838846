//! Histories of contender processes in fault tests, and the checker of HA invariants over them.
//!
//! Each contender process (see the `tenure-contender` binary) appends one JSON object per line:
//!
//! ```text
//! {"t_ms":1700000000123,"proc":"a","event":"granted","session":"<uuid>","epoch":7}
//! {"t_ms":1700000000180,"proc":"a","event":"write","session":"<uuid>","epoch":7,"id":12,"start_ms":1700000000171}
//! {"t_ms":1700000000230,"proc":"a","event":"write_rejected","epoch":7,"id":13,"error":"..."}
//! {"t_ms":1700000000240,"proc":"a","event":"revoked","session":"<uuid>","epoch":7}
//! ```
//!
//! - `t_ms`: wall clock, milliseconds since the Unix epoch, when the event was observed (for
//!   writes: when the outcome was known);
//! - `proc`: the process name; `event`: one of [`EventKind`];
//! - `session` (UUID), `epoch` (the fencing token's epoch), `id` (checkpoint id), `error` (text),
//!   `start_ms` (for writes: when the write was issued) as the event has them.
//!
//! `write` is an acknowledged fenced checkpoint add, `write_rejected` a refusal because the term
//! was over (`NotLeader`: nothing was written), `write_failed` any other error, including an
//! outcome that is unknown (the write may or may not have taken effect).
//!
//! [`History::parse`] reads one file, [`History::merge`] orders the files of all processes into
//! one history, and [`check`] asserts the invariants of the design's fault tests:
//! never two leaders whose writes were both accepted in the same period, no acknowledged write
//! lost, a unique session id per term, a unique checkpoint id per acknowledged write.
//!
//! ```
//! use tenure_testkit::history::{History, check};
//!
//! let a = History::parse(concat!(
//!     r#"{"t_ms":1,"proc":"a","event":"granted","session":"67e55044-10b1-426f-9247-bb680e5fe0c8","epoch":1}"#, "\n",
//!     r#"{"t_ms":2,"proc":"a","event":"write","epoch":1,"id":1}"#, "\n",
//! ))?;
//! let report = check(&History::merge(vec![a]), &[1]);
//! assert!(report.ok, "{report}");
//! # Ok::<(), tenure_testkit::history::HistoryError>(())
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to a contender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Leadership was granted (needs `session` and `epoch`).
    Granted,
    /// The term ended: revoked, lost or stopped.
    Revoked,
    /// A fenced checkpoint add was acknowledged (needs `epoch` and `id`).
    Write,
    /// A fenced write was refused because the term was over (`NotLeader`); nothing was written
    /// (needs `epoch`).
    WriteRejected,
    /// A write failed otherwise, possibly with an unknown outcome (needs `epoch`).
    WriteFailed,
    /// The process exits cleanly.
    Exit,
}

impl EventKind {
    /// The name used in the JSON lines.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Granted => "granted",
            EventKind::Revoked => "revoked",
            EventKind::Write => "write",
            EventKind::WriteRejected => "write_rejected",
            EventKind::WriteFailed => "write_failed",
            EventKind::Exit => "exit",
        }
    }

    /// Whether this is the outcome of a write attempt.
    pub fn is_write_outcome(&self) -> bool {
        matches!(
            self,
            EventKind::Write | EventKind::WriteRejected | EventKind::WriteFailed
        )
    }
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Wall clock, milliseconds since the Unix epoch, when the event was observed.
    pub t_ms: u64,
    /// The process name.
    #[serde(rename = "proc")]
    pub process: String,
    /// What happened.
    pub event: EventKind,
    /// The leader session id of the term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Uuid>,
    /// The epoch of the term's fencing token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// The checkpoint id written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// For writes: wall clock ms when the write was issued (the write took effect, if at all,
    /// between `start_ms` and `t_ms`). Absent means `t_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// The error of a failed or rejected write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    /// An event of `process` at `t_ms` with no optional fields.
    pub fn new(t_ms: u64, process: impl Into<String>, event: EventKind) -> Self {
        Self {
            t_ms,
            process: process.into(),
            event,
            session: None,
            epoch: None,
            id: None,
            start_ms: None,
            error: None,
        }
    }

    /// The event as one JSON line, newline included.
    pub fn to_json_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("an event always serializes");
        line.push('\n');
        line
    }

    /// When the write was issued (`start_ms`, else `t_ms`).
    pub fn start(&self) -> u64 {
        self.start_ms.unwrap_or(self.t_ms).min(self.t_ms)
    }

    /// Checks that the fields this kind of event needs are there.
    fn validate(&self) -> Result<(), String> {
        if self.process.trim().is_empty() {
            return Err("\"proc\" is empty".into());
        }
        let need = |present: bool, field: &str| {
            if present {
                Ok(())
            } else {
                Err(format!("a {:?} event needs {field:?}", self.event.as_str()))
            }
        };
        match self.event {
            EventKind::Granted => {
                need(self.session.is_some(), "session")?;
                need(self.epoch.is_some(), "epoch")
            }
            EventKind::Write => {
                need(self.epoch.is_some(), "epoch")?;
                need(self.id.is_some(), "id")
            }
            EventKind::WriteRejected | EventKind::WriteFailed => {
                need(self.epoch.is_some(), "epoch")
            }
            EventKind::Revoked | EventKind::Exit => Ok(()),
        }
    }

    fn describe(&self) -> String {
        let mut s = format!("{} {} at {}", self.process, self.event.as_str(), self.t_ms);
        if let Some(id) = self.id {
            s.push_str(&format!(" id {id}"));
        }
        if let Some(epoch) = self.epoch {
            s.push_str(&format!(" epoch {epoch}"));
        }
        s
    }
}

/// A history that could not be read; names the line (1-based) for bad content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A line is not a valid event.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
}

/// The events of one process (as parsed) or of all processes (as merged), in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    events: Vec<Event>,
}

impl History {
    /// A history of these events, in this order.
    pub fn from_events(events: Vec<Event>) -> Self {
        Self { events }
    }

    /// Parses JSON lines; blank lines are skipped, unknown fields ignored. Any other bad line
    /// is an error naming its line number. Never panics.
    pub fn parse(text: &str) -> Result<Self, HistoryError> {
        let mut events = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let event: Event = serde_json::from_str(line).map_err(|e| HistoryError::Line {
                line: line_no,
                message: format!("not a history event: {e}"),
            })?;
            event.validate().map_err(|message| HistoryError::Line {
                line: line_no,
                message,
            })?;
            events.push(event);
        }
        Ok(Self { events })
    }

    /// Reads and parses a history file.
    pub fn read(path: &Path) -> Result<Self, HistoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| HistoryError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text)
    }

    /// Merges histories into one, ordered by `t_ms`; ties keep the order of `histories`, and
    /// each process's own events always keep their order (a process whose clock stepped back is
    /// ordered by the latest time it had shown).
    pub fn merge(histories: Vec<History>) -> History {
        let mut keyed = Vec::new();
        for (h, history) in histories.into_iter().enumerate() {
            let mut latest: HashMap<String, u64> = HashMap::new();
            for (i, event) in history.events.into_iter().enumerate() {
                let t = latest.entry(event.process.clone()).or_insert(0);
                *t = (*t).max(event.t_ms);
                keyed.push(((*t, h, i), event));
            }
        }
        keyed.sort_by_key(|(key, _)| *key);
        History {
            events: keyed.into_iter().map(|(_, e)| e).collect(),
        }
    }

    /// The events in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The ids of acknowledged writes, in order.
    pub fn acknowledged_ids(&self) -> Vec<u64> {
        self.of_kind(EventKind::Write)
            .filter_map(|e| e.id)
            .collect()
    }

    /// The events of one kind, in order.
    pub fn of_kind(&self, kind: EventKind) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.event == kind)
    }
}

/// Options of [`check_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// How far the processes' clocks may disagree, in ms: two writes are ordered in time only
    /// if one was acknowledged more than this before the other was issued. 0 (the default) for
    /// processes on one machine.
    pub clock_skew_ms: u64,
}

/// The result of [`check`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Whether no invariant was violated.
    pub ok: bool,
    /// One line per violation.
    pub violations: Vec<String>,
    /// Leadership terms granted.
    pub terms: usize,
    /// Acknowledged writes.
    pub acknowledged: usize,
    /// Writes rejected as `NotLeader`.
    pub rejected: usize,
    /// Writes failed otherwise.
    pub failed: usize,
}

impl Report {
    /// Panics listing the violations unless the report is ok.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.ok, "HA invariants violated: {self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} terms, {} acknowledged, {} rejected, {} failed writes: ",
            self.terms, self.acknowledged, self.rejected, self.failed
        )?;
        if self.ok {
            write!(f, "ok")
        } else {
            write!(f, "{} violations", self.violations.len())?;
            for v in &self.violations {
                write!(f, "\n  - {v}")?;
            }
            Ok(())
        }
    }
}

/// [`check_with`] with default options (no clock skew).
pub fn check(merged: &History, final_recovered_ids: &[u64]) -> Report {
    check_with(merged, final_recovered_ids, &CheckOptions::default())
}

/// Checks a merged history against the checkpoint ids recovered at the end of the test (the
/// retained checkpoints, as `CompletedCheckpointStore::recover` lists them). Violations:
///
/// 1. *Two leaders accepted in the same period*: an acknowledged write with a lower epoch than
///    an acknowledged write that was acknowledged before it was issued (beyond the clock skew);
///    a process's own acknowledged writes going back in epoch; one epoch acknowledged for two
///    processes.
/// 2. *Acknowledged write lost*: the newest recovered id is older than the newest acknowledged
///    one; an acknowledged id at least as new as the oldest recovered one is missing (the store
///    retains the newest ids); if the last leader's last write was acknowledged and it then left
///    its term (`revoked` / `exit`, so nothing was in flight), the newest recovered id is not
///    exactly the newest acknowledged one.
/// 3. *Rejected write took effect*: an id whose write was rejected as `NotLeader` is recovered.
/// 4. *Session reused*: two `granted` events with one session id.
/// 5. *Id handed out twice*: two acknowledged writes with one checkpoint id.
/// 6. *Write outside a term*: an acknowledged write naming a session its process was never
///    granted.
pub fn check_with(merged: &History, final_recovered_ids: &[u64], opts: &CheckOptions) -> Report {
    let events = merged.events();
    let mut v = Vec::new();
    let acked: Vec<&Event> = merged.of_kind(EventKind::Write).collect();
    let terms = merged.of_kind(EventKind::Granted).count();

    check_epochs(&acked, opts, &mut v);
    check_lost_writes(events, &acked, final_recovered_ids, &mut v);

    // 3. A NotLeader write took effect.
    let recovered: BTreeSet<u64> = final_recovered_ids.iter().copied().collect();
    for e in merged.of_kind(EventKind::WriteRejected) {
        if let Some(id) = e.id
            && recovered.contains(&id)
        {
            v.push(format!(
                "rejected write took effect: {} was refused as not leader, yet checkpoint {id} \
                 is recovered",
                e.describe()
            ));
        }
    }

    // 4. Unique session per term.
    let mut sessions: HashMap<Uuid, &Event> = HashMap::new();
    for e in merged.of_kind(EventKind::Granted) {
        if let Some(s) = e.session
            && let Some(first) = sessions.insert(s, e)
        {
            v.push(format!(
                "session {s} granted twice: {} and {}",
                first.describe(),
                e.describe()
            ));
        }
    }

    // 5. Unique id per acknowledged write.
    let mut ids: HashMap<u64, &Event> = HashMap::new();
    for e in &acked {
        if let Some(id) = e.id
            && let Some(first) = ids.insert(id, e)
        {
            v.push(format!(
                "checkpoint id {id} acknowledged twice: {} and {}",
                first.describe(),
                e.describe()
            ));
        }
    }

    // 6. Acknowledged writes belong to a granted term of their process.
    let granted: BTreeSet<(&str, Uuid)> = merged
        .of_kind(EventKind::Granted)
        .filter_map(|e| Some((e.process.as_str(), e.session?)))
        .collect();
    for e in &acked {
        if let Some(s) = e.session
            && !granted.contains(&(e.process.as_str(), s))
        {
            v.push(format!(
                "{} names session {s}, which {} was never granted",
                e.describe(),
                e.process
            ));
        }
    }

    Report {
        ok: v.is_empty(),
        violations: v,
        terms,
        acknowledged: acked.len(),
        rejected: merged.of_kind(EventKind::WriteRejected).count(),
        failed: merged.of_kind(EventKind::WriteFailed).count(),
    }
}

/// Invariant 1: acknowledged writes never go back in epoch.
fn check_epochs(acked: &[&Event], opts: &CheckOptions, v: &mut Vec<String>) {
    let epoch = |e: &Event| e.epoch.unwrap_or(i64::MIN);

    // Per process, in the process's own order.
    let mut last: HashMap<&str, &Event> = HashMap::new();
    for e in acked {
        if let Some(prev) = last.insert(e.process.as_str(), e)
            && epoch(prev) > epoch(e)
        {
            v.push(format!(
                "epoch went back within one process: {} after {}",
                e.describe(),
                prev.describe()
            ));
        }
    }

    // Across processes: sweep writes by issue time, tracking the highest epoch among writes
    // acknowledged (more than the skew) before it.
    let mut by_end: Vec<&Event> = acked.to_vec();
    by_end.sort_by_key(|e| e.t_ms);
    let mut by_start: Vec<&Event> = acked.to_vec();
    by_start.sort_by_key(|e| e.start());
    let mut next = 0;
    let mut highest: Option<&Event> = None;
    for e in by_start {
        while next < by_end.len()
            && by_end[next].t_ms.saturating_add(opts.clock_skew_ms) < e.start()
        {
            let w = by_end[next];
            if highest.is_none_or(|h| epoch(w) > epoch(h)) {
                highest = Some(w);
            }
            next += 1;
        }
        if let Some(h) = highest
            && epoch(h) > epoch(e)
            && h.process != e.process
        {
            v.push(format!(
                "two leaders accepted: {} was acknowledged after {} had been (a deposed leader's \
                 write was accepted)",
                e.describe(),
                h.describe()
            ));
        }
    }

    // One epoch is one term of one process.
    let mut owner: HashMap<i64, &Event> = HashMap::new();
    for e in acked {
        let first = *owner.entry(epoch(e)).or_insert(e);
        if first.process != e.process {
            v.push(format!(
                "epoch {} acknowledged for two processes: {} and {}",
                epoch(e),
                first.describe(),
                e.describe()
            ));
        }
    }
}

/// Invariant 2: no acknowledged write lost.
fn check_lost_writes(events: &[Event], acked: &[&Event], recovered: &[u64], v: &mut Vec<String>) {
    let Some(max_acked) = acked.iter().filter_map(|e| e.id).max() else {
        return;
    };
    let (Some(&min_rec), Some(&max_rec)) = (recovered.iter().min(), recovered.iter().max()) else {
        v.push(format!(
            "acknowledged writes lost: checkpoint {max_acked} was acknowledged but no checkpoint \
             is recovered"
        ));
        return;
    };
    if max_rec < max_acked {
        v.push(format!(
            "acknowledged write lost: checkpoint {max_acked} was acknowledged but the newest \
             recovered is {max_rec}"
        ));
    }
    let rec: BTreeSet<u64> = recovered.iter().copied().collect();
    for e in acked {
        if let Some(id) = e.id
            && id >= min_rec
            && !rec.contains(&id)
        {
            v.push(format!(
                "acknowledged write lost: {} is not among the recovered checkpoints {:?}, though \
                 newer than the oldest of them",
                e.describe(),
                rec
            ));
        }
    }

    // The strong rule: the last leader's last write was acknowledged and nothing was in flight.
    let Some(last_grant) = events.iter().rposition(|e| e.event == EventKind::Granted) else {
        return;
    };
    let leader = events[last_grant].process.as_str();
    let Some(last_write) = events
        .iter()
        .rposition(|e| e.event.is_write_outcome() && e.event != EventKind::WriteRejected)
    else {
        return;
    };
    let w = &events[last_write];
    let left_term = events[last_write + 1..]
        .iter()
        .any(|e| e.process == leader && matches!(e.event, EventKind::Revoked | EventKind::Exit));
    if w.event == EventKind::Write
        && w.process == leader
        && last_write > last_grant
        && left_term
        && max_rec != max_acked
    {
        v.push(format!(
            "the last leader's last write {} was acknowledged, so the newest recovered \
             checkpoint must be {max_acked}, not {max_rec}",
            w.describe()
        ));
    }
}
