//! The invariants the demo checks, and the ledger of what was acknowledged.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;
use tenure::ids::{CheckpointId, JobId};

/// The verdict on one invariant.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The invariant.
    pub invariant: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// How it was checked, or what broke.
    pub detail: String,
}

/// What was acknowledged to the simulated clients, and what went wrong.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Acknowledged job graphs.
    pub graphs: BTreeMap<JobId, Bytes>,
    /// Acknowledged checkpoints per job, in order.
    pub checkpoints: BTreeMap<JobId, Vec<CheckpointId>>,
    terms: Vec<i64>,
    last_ack_epoch: Option<i64>,
    acks: usize,
    overlap_violations: Vec<String>,
    rounds_with_one_leader: usize,
    rounds: usize,
    zombie_attempts: usize,
    zombie_violations: Vec<String>,
    recoveries: usize,
    loss_violations: Vec<String>,
    retrievals: usize,
    retrieval_violations: Vec<String>,
    cleanups: usize,
    recovered_cleanups: usize,
    cleanup_violations: Vec<String>,
}

impl Ledger {
    /// A term with fencing epoch `epoch` was granted; `leaders` is how many job managers
    /// considered themselves leader once it was.
    pub fn granted(&mut self, epoch: i64, leaders: usize) {
        self.rounds += 1;
        if leaders == 1 {
            self.rounds_with_one_leader += 1;
        } else {
            self.overlap_violations
                .push(format!("{leaders} job managers led at once (term {epoch})"));
        }
        if let Some(last) = self.terms.last()
            && *last >= epoch
        {
            self.overlap_violations
                .push(format!("term {epoch} granted after term {last}"));
        }
        self.terms.push(epoch);
    }

    /// A write fenced with `epoch` was acknowledged.
    pub fn acknowledged(&mut self, epoch: i64, what: &str) {
        self.acks += 1;
        let newest = self.terms.last().copied().unwrap_or(epoch);
        if epoch < newest || self.last_ack_epoch.is_some_and(|l| epoch < l) {
            self.overlap_violations.push(format!(
                "{what} acknowledged for term {epoch} after term {newest} began"
            ));
        }
        self.last_ack_epoch = Some(epoch);
    }

    /// A deposed leader tried a write; `accepted` says whether the backend took it.
    pub fn zombie_write(&mut self, what: &str, accepted: bool) {
        self.zombie_attempts += 1;
        if accepted {
            self.zombie_violations
                .push(format!("deposed leader's {what} was accepted"));
        }
    }

    /// A recovery compared what it found with what was acknowledged; `problems` lists losses.
    pub fn recovered(&mut self, problems: Vec<String>) {
        self.recoveries += 1;
        self.loss_violations.extend(problems);
    }

    /// A retriever was checked against the new leader; `problem` says what it saw instead.
    pub fn retrieved(&mut self, problem: Option<String>) {
        self.retrievals += 1;
        self.retrieval_violations.extend(problem);
    }

    /// A finished job was cleaned up (`recovered`: by a new leader re-running its dirty
    /// result); `problems` lists what was left.
    pub fn cleaned(&mut self, recovered: bool, problems: Vec<String>) {
        self.cleanups += 1;
        if recovered {
            self.recovered_cleanups += 1;
        }
        self.cleanup_violations.extend(problems);
    }

    /// The verdicts.
    pub fn verdicts(&self) -> Vec<Verdict> {
        let verdict = |invariant, violations: &Vec<String>, ok_detail: String| Verdict {
            invariant,
            ok: violations.is_empty(),
            detail: if violations.is_empty() {
                ok_detail
            } else {
                violations.join("; ")
            },
        };
        vec![
            verdict(
                "one leader at a time",
                &self.overlap_violations,
                format!(
                    "{} terms, each with exactly one leader; {} fenced writes acknowledged in term order",
                    self.rounds_with_one_leader, self.acks
                ),
            ),
            verdict(
                "no accepted write from a deposed leader",
                &self.zombie_violations,
                format!(
                    "{} writes by deposed leaders, all rejected",
                    self.zombie_attempts
                ),
            ),
            verdict(
                "retrievers follow the leader",
                &self.retrieval_violations,
                format!(
                    "a task manager saw each of the {} leaders' confirmed address and session",
                    self.retrievals
                ),
            ),
            verdict(
                "nothing acknowledged lost",
                &self.loss_violations,
                format!(
                    "{} recoveries found every acknowledged job graph and the newest checkpoints",
                    self.recoveries
                ),
            ),
            verdict(
                "a finished job's HA data is removed",
                &self.cleanup_violations,
                format!(
                    "{} finished jobs: no key left, result marked clean ({} by a new leader \
                     re-running a dirty result)",
                    self.cleanups, self.recovered_cleanups
                ),
            ),
        ]
    }
}
