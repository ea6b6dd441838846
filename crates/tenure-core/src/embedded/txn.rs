//! Transactions of the embedded backend: decided on a staged view of the touched keys, then
//! applied, all under the cluster's one lock, so they are atomic as a ZooKeeper `multi` is.

use std::collections::BTreeMap;

use crate::kv::{KvError, KvEvent, Txn, TxnOp, TxnResult, Version, is_below};

use super::state::{Node, State};

/// The staged state of one key: `Some(version)` if it exists, `None` if it does not.
type Staged = BTreeMap<String, Option<i64>>;

impl State {
    /// Commits `txn` for `session`: checks the fence and every operation against the state as
    /// the earlier operations leave it, then applies every write, or nothing.
    pub(crate) fn txn(&mut self, session: u64, txn: &Txn) -> Result<Vec<TxnResult>, KvError> {
        self.check_fence(txn.fence.as_ref())?;
        self.decide(txn)?;
        let mut results = Vec::with_capacity(txn.ops.len());
        let mut events = Vec::new();
        for op in &txn.ops {
            results.push(match op {
                TxnOp::CheckVersion { .. }
                | TxnOp::CheckExists { .. }
                | TxnOp::CheckAbsent { .. } => TxnResult::Checked,
                TxnOp::Create {
                    key,
                    value,
                    ephemeral,
                } => {
                    let version = self.next_revision();
                    let node = Node {
                        value: value.clone(),
                        version,
                        ephemeral_owner: ephemeral.then_some(session),
                    };
                    events.push(KvEvent::Put(State::entry(key, &node)));
                    self.nodes.insert(key.clone(), node);
                    TxnResult::Created(Version(version))
                }
                TxnOp::Set { key, value, .. } => {
                    let version = self.next_revision();
                    // `decide` proved the key exists at this point.
                    if let Some(node) = self.nodes.get_mut(key) {
                        node.value = value.clone();
                        node.version = version;
                        events.push(KvEvent::Put(State::entry(key, node)));
                    }
                    TxnResult::Set(Version(version))
                }
                TxnOp::Delete { key, .. } => {
                    if self.nodes.remove(key).is_some() {
                        events.push(KvEvent::Deleted { key: key.clone() });
                    }
                    TxnResult::Deleted
                }
            });
        }
        for event in &events {
            self.notify(event);
        }
        Ok(results)
    }

    /// Checks every operation in order against the state the earlier ones leave, predicting
    /// the versions the writes will get; the first that fails is the transaction's error.
    fn decide(&self, txn: &Txn) -> Result<(), KvError> {
        let mut staged = Staged::new();
        let mut revision = self.revision;
        for (index, op) in txn.ops.iter().enumerate() {
            let key = op.key();
            let current = match staged.get(key) {
                Some(s) => *s,
                None => self.nodes.get(key).map(|n| n.version),
            };
            let fail = |cause| Err(KvError::txn_failed(index, op, cause));
            let not_found = || KvError::NotFound {
                key: key.to_owned(),
            };
            let conflict = |expected: Version| KvError::VersionConflict {
                key: key.to_owned(),
                expected,
                actual: current.map(Version),
            };
            match (op, current) {
                (TxnOp::CheckVersion { .. } | TxnOp::CheckExists { .. }, None)
                | (TxnOp::Set { .. } | TxnOp::Delete { .. }, None) => return fail(not_found()),
                (TxnOp::CheckVersion { version, .. }, Some(v)) if v != version.0 => {
                    return fail(conflict(*version));
                }
                (
                    TxnOp::Set {
                        expected: Some(e), ..
                    }
                    | TxnOp::Delete {
                        expected: Some(e), ..
                    },
                    Some(v),
                ) if v != e.0 => return fail(conflict(*e)),
                (TxnOp::CheckAbsent { .. } | TxnOp::Create { .. }, Some(_)) => {
                    return fail(KvError::AlreadyExists {
                        key: key.to_owned(),
                    });
                }
                (TxnOp::Delete { .. }, Some(_)) if self.has_descendants(&staged, key) => {
                    return fail(KvError::NotEmpty {
                        key: key.to_owned(),
                    });
                }
                _ => {}
            }
            match op {
                TxnOp::Create { .. } | TxnOp::Set { .. } => {
                    revision += 1;
                    staged.insert(key.to_owned(), Some(revision));
                }
                TxnOp::Delete { .. } => {
                    staged.insert(key.to_owned(), None);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether `key` has descendants once the staged changes are applied.
    fn has_descendants(&self, staged: &Staged, key: &str) -> bool {
        self.keys_below(key)
            .iter()
            .any(|k| !matches!(staged.get(k), Some(None)))
            || staged.iter().any(|(k, s)| s.is_some() && is_below(key, k))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::kv::Entry;

    fn entries(state: &State) -> Vec<Entry> {
        state
            .nodes
            .iter()
            .map(|(k, n)| State::entry(k, n))
            .collect()
    }

    fn create(key: &str) -> TxnOp {
        TxnOp::Create {
            key: key.into(),
            value: Bytes::from_static(b"v"),
            ephemeral: false,
        }
    }

    #[test]
    fn later_operations_see_earlier_ones() {
        let mut st = State::default();
        let txn = Txn::new(None)
            .op(create("a"))
            .op(TxnOp::CheckVersion {
                key: "a".into(),
                version: Version(1),
            })
            .op(TxnOp::Set {
                key: "a".into(),
                value: Bytes::from_static(b"w"),
                expected: Some(Version(1)),
            })
            .op(create("a/b"))
            .op(TxnOp::Delete {
                key: "a/b".into(),
                expected: Some(Version(3)),
            })
            .op(TxnOp::Delete {
                key: "a".into(),
                expected: None,
            })
            .op(TxnOp::CheckAbsent { key: "a".into() });
        let results = st.txn(1, &txn).unwrap();
        assert_eq!(results[0], TxnResult::Created(Version(1)));
        assert_eq!(results[2], TxnResult::Set(Version(2)));
        assert!(entries(&st).is_empty());
    }

    #[test]
    fn a_staged_child_keeps_its_parent() {
        let mut st = State::default();
        let txn = Txn::new(None)
            .op(create("p"))
            .op(create("p/c"))
            .op(TxnOp::Delete {
                key: "p".into(),
                expected: None,
            });
        let err = st.txn(1, &txn).unwrap_err();
        assert_eq!(err.failed_op().map(|(i, _)| i), Some(2), "{err}");
        assert!(entries(&st).is_empty(), "nothing written");
    }
}
