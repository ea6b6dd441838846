//! [`Txn`] as ONE ZooKeeper `multi`.
//!
//! The fence check `check(<latch node>, 0)` goes first, then each operation:
//!
//! | operation       | `multi` operations                                   |
//! |-----------------|------------------------------------------------------|
//! | `CheckVersion`  | `check(path, version)`                               |
//! | `CheckExists`   | `check(path, -1)` (any version)                      |
//! | `CheckAbsent`   | `create(path)` then `delete(path)`                   |
//! | `Create`        | `create(path, value, persistent or ephemeral)`       |
//! | `Set`           | `setData(path, value, expected or -1)`               |
//! | `Delete`        | `delete(path, expected or -1)`                       |
//!
//! ZooKeeper has no "absent" check, so `CheckAbsent` creates and deletes the key within the same
//! `multi`: it holds exactly when the create succeeds, writes nothing in the end, and watchers of
//! the key see it appear and vanish. The failed `multi` operation (ZooKeeper reports the first
//! failure) is mapped back to the index of the [`TxnOp`] it belongs to. A create (or absence
//! check) whose parent znode is missing makes the parents (persistent, empty, as
//! [`VersionedKv::create`] does) and the `multi` is sent again; nothing of the transaction is
//! written in between.

use tenure_core::kv::{KvError, Txn, TxnOp, TxnResult, Version};
use zookeeper_client as zk;

use super::{MultiFailure, PARENT_RACE_ATTEMPTS, check_size, commit, zk_version};
use crate::ZooKeeperBackend;
use crate::error::{Op, is_definite, map};

/// A version that no znode can have (outside `i32`), for the error of a check that cannot hold.
fn impossible(op: &TxnOp) -> Option<Version> {
    match op {
        TxnOp::CheckVersion { version, .. } => Some(*version),
        TxnOp::Set {
            expected: Some(v), ..
        }
        | TxnOp::Delete {
            expected: Some(v), ..
        } => Some(*v),
        _ => None,
    }
    .filter(|v| zk_version(*v).is_none())
}

/// The expected version of an operation as ZooKeeper takes it (-1: any).
fn expected(op: &TxnOp) -> i32 {
    match op {
        TxnOp::CheckVersion { version, .. } => zk_version(*version).unwrap_or(-1),
        TxnOp::Set { expected, .. } | TxnOp::Delete { expected, .. } => {
            expected.and_then(zk_version).unwrap_or(-1)
        }
        _ => -1,
    }
}

impl ZooKeeperBackend {
    /// Commits `txn` as one `multi` (see the module docs).
    pub(crate) async fn commit_txn(&self, txn: Txn) -> Result<Vec<TxnResult>, KvError> {
        txn.validate()?;
        for (index, op) in txn.ops.iter().enumerate() {
            if let TxnOp::Create { key, value, .. } | TxnOp::Set { key, value, .. } = op {
                check_size(key, value).map_err(|e| KvError::txn_failed(index, op, e))?;
            }
        }
        let client = self.client()?;
        for (index, op) in txn.ops.iter().enumerate() {
            if let Some(v) = impossible(op) {
                let cause = self.conflict(&client, op.key(), v).await;
                return Err(KvError::txn_failed(index, op, cause));
            }
        }
        if txn.ops.is_empty() && txn.fence.is_none() {
            return Ok(Vec::new());
        }
        let paths: Vec<String> = txn.ops.iter().map(|op| self.path(op.key())).collect();
        // The transaction operation each `multi` operation (fence check excluded) belongs to.
        let owners: Vec<usize> = txn
            .ops
            .iter()
            .enumerate()
            .flat_map(|(i, op)| {
                let n = if matches!(op, TxnOp::CheckAbsent { .. }) {
                    2
                } else {
                    1
                };
                std::iter::repeat_n(i, n)
            })
            .collect();
        let acls = self.shared.acls();
        let persistent = zk::CreateMode::Persistent.with_acls(acls);
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(acls);
        for _ in 0..PARENT_RACE_ATTEMPTS {
            let result = commit(&client, self.shared.paths(), txn.fence.as_ref(), |w| {
                for (op, path) in txn.ops.iter().zip(&paths) {
                    match op {
                        TxnOp::CheckVersion { .. } | TxnOp::CheckExists { .. } => {
                            w.add_check_version(path, expected(op))?;
                        }
                        TxnOp::CheckAbsent { .. } => {
                            w.add_create(path, &[], &persistent)?;
                            w.add_delete(path, None)?;
                        }
                        TxnOp::Create {
                            value,
                            ephemeral: e,
                            ..
                        } => {
                            let mode = if *e { &ephemeral } else { &persistent };
                            w.add_create(path, value, mode)?;
                        }
                        TxnOp::Set { value, .. } => {
                            w.add_set_data(path, value, Some(expected(op)))?;
                        }
                        TxnOp::Delete { .. } => w.add_delete(path, Some(expected(op)))?,
                    }
                }
                Ok(())
            })
            .await;
            let (index, error) = match result {
                Ok(results) => return Ok(self.results(&txn, &owners, results)),
                Err(MultiFailure::NotLeader(token)) => return Err(KvError::NotLeader { token }),
                Err(MultiFailure::Request(e)) => return Err(request_error(&txn, e)),
                Err(MultiFailure::Op { index, error }) => (index, error),
            };
            let Some(&i) = owners.get(index) else {
                return Err(KvError::Backend(format!(
                    "ZooKeeper reported operation {index} of a multi of {} as failed: {error}",
                    owners.len()
                )));
            };
            let op = &txn.ops[i];
            let key = op.key();
            let cause = match (op, error) {
                (TxnOp::Create { .. } | TxnOp::CheckAbsent { .. }, zk::Error::NoNode) => {
                    self.make_parents(&client, key, &paths[i])
                        .await
                        .map_err(|e| KvError::txn_failed(i, op, e))?;
                    continue;
                }
                (_, zk::Error::BadVersion) => {
                    let expected = Version(i64::from(expected(op)));
                    self.conflict(&client, key, expected).await
                }
                (_, e) => map(e, key, Op::Write),
            };
            return Err(KvError::txn_failed(i, op, cause));
        }
        Err(KvError::Backend(format!(
            "transaction on {:?}: parent znodes kept disappearing while committing it",
            txn.ops.first().map(TxnOp::key).unwrap_or_default()
        )))
    }

    /// The results of a committed `multi`, one per transaction operation.
    fn results(
        &self,
        txn: &Txn,
        owners: &[usize],
        results: Vec<zk::MultiWriteResult>,
    ) -> Vec<TxnResult> {
        let mut out = Vec::with_capacity(txn.ops.len());
        let mut last = None;
        for (&owner, result) in owners.iter().zip(results) {
            if last == Some(owner) {
                continue;
            }
            last = Some(owner);
            out.push(match (&txn.ops[owner], result) {
                (TxnOp::Create { .. }, _) => TxnResult::Created(Version(0)),
                (TxnOp::Set { .. }, zk::MultiWriteResult::SetData { stat }) => {
                    TxnResult::Set(Version(i64::from(stat.version)))
                }
                (TxnOp::Set { expected, .. }, _) => {
                    // Not expected from the server; the version after one write at `expected`.
                    TxnResult::Set(Version(expected.map_or(0, |v| v.0 + 1)))
                }
                (TxnOp::Delete { .. }, _) => TxnResult::Deleted,
                _ => TxnResult::Checked,
            });
        }
        out
    }
}

/// The error of a `multi` that failed as a whole: nothing was written if ZooKeeper answered,
/// the outcome is unknown if the answer was lost.
fn request_error(txn: &Txn, e: zk::Error) -> KvError {
    let key = txn
        .ops
        .iter()
        .find(|op| op.is_write())
        .or(txn.ops.first())
        .map(|op| op.key().to_owned())
        .unwrap_or_default();
    if is_definite(&e) {
        map(e, &key, Op::Write)
    } else {
        KvError::OutcomeUnknown {
            key,
            reason: format!("the connection was lost before the transaction's result: {e}"),
        }
    }
}
