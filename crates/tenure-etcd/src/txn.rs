//! [`Txn`]s as one etcd transaction each.
//!
//! Every check of an operation becomes an etcd `Compare` on the state before the transaction,
//! every write a put or delete in its success branch. Operations see the effects of earlier
//! ones: a check of a key an earlier operation wrote is decided here, before anything is sent,
//! and several writes of one key collapse into the last effect (etcd refuses two writes of one
//! key in a transaction). A fence is the first compare: the leader key's create revision equals
//! the token's epoch.
//!
//! If a compare fails, the failure branch reads back, in the same atomic step, every key the
//! compares looked at; the first compare that does not hold on that state names the failed
//! operation and its cause.
//!
//! Versions are etcd's `mod_revision` (the revision of a key's last write): the version a write
//! reports is the transaction's revision, and a compare-and-set compares `mod_revision`.

use std::collections::HashMap;

use bytes::Bytes;
use etcd_client::{
    Compare, CompareOp, GetOptions, PutOptions, Txn as EtcdTxn, TxnOp as EtcdOp, TxnOpResponse,
};
use tenure_core::kv::{FencingToken, KvError, Txn, TxnOp, TxnResult, Version};

use crate::keys::{Keys, latch_lease};

/// What one compare checks, to explain its failure.
#[derive(Clone, Debug)]
enum Check {
    /// The fence: the lock key's create revision is the epoch, and the key is attached to the
    /// lease it is named by (the second field).
    Fence(FencingToken, i64),
    /// Operation `op`'s key is at `mod_revision` `version`.
    Version { op: usize, version: Version },
    /// Operation `op`'s key exists.
    Exists { op: usize },
    /// Operation `op`'s key does not exist.
    Absent { op: usize },
    /// Operation `op`'s key has no descendants.
    NoDescendants { op: usize },
}

/// A write of the success branch.
#[derive(Clone, Debug)]
enum Write {
    Put {
        value: Bytes,
        lease: Lease,
    },
    Delete,
    /// Delete the key range from the key to this end.
    DeleteRange(Vec<u8>),
}

/// The lease a put gives its key.
#[derive(Clone, Copy, Debug)]
enum Lease {
    /// None (a persistent key).
    None,
    /// This lease (an ephemeral key).
    Of(i64),
    /// The key's current one (a set of an existing key; etcd refuses it for a missing key).
    Keep,
}

/// A [`Txn`] compiled to etcd's form.
pub(crate) struct Plan {
    ops: Vec<TxnOp>,
    compares: Vec<(Compare, Check, EtcdOp)>,
    writes: Vec<(String, Write)>,
}

/// Whether a key was written earlier in the transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    Present,
    Absent,
}

/// The lock key of `token` and the lease it is named by: a latch participant's key of this
/// namespace, or nothing (no fence of this backend).
fn fence_key(keys: &Keys, token: &FencingToken) -> Option<(String, i64)> {
    keys.key_of(token.lock().as_bytes())
        .filter(|k| tenure_core::kv::validate_key(k).is_ok())?;
    let lease = token.lock().rsplit('/').next().and_then(latch_lease)?;
    Some((token.lock().to_owned(), lease))
}

impl Plan {
    /// Compiles `txn`; fails (nothing sent) if an operation fails on the effects of earlier ones
    /// or the fence is not a key of this namespace.
    pub fn new(keys: &Keys, txn: Txn, lease: i64) -> Result<Self, KvError> {
        txn.validate()?;
        let mut compares = Vec::new();
        if let Some(token) = &txn.fence {
            let Some((lock, lease)) = fence_key(keys, token) else {
                return Err(KvError::NotLeader {
                    token: token.clone(),
                });
            };
            // The create revision alone would pass a key someone put again without its lease:
            // that key is no participant any more, and another contender may lead.
            compares.push((
                Compare::create_revision(lock.clone(), CompareOp::Equal, token.epoch()),
                Check::Fence(token.clone(), lease),
                EtcdOp::get(lock.clone(), None),
            ));
            compares.push((
                Compare::lease(lock.clone(), CompareOp::Equal, lease),
                Check::Fence(token.clone(), lease),
                EtcdOp::get(lock, None),
            ));
        }
        let mut known: HashMap<&str, Known> = HashMap::new();
        let mut writes: Vec<(String, Write)> = Vec::new();
        let failed = |i: usize, cause: KvError| KvError::txn_failed(i, &txn.ops[i], cause);
        for (i, op) in txn.ops.iter().enumerate() {
            let key = op.key();
            let ek = keys.etcd_key(key);
            let state = known.get(key).copied();
            let mut compare = |c: Compare, check: Check| {
                compares.push((c, check, EtcdOp::get(ek.clone(), None)));
            };
            let not_found = || KvError::NotFound {
                key: key.to_owned(),
            };
            let exists = || KvError::AlreadyExists {
                key: key.to_owned(),
            };
            let conflict = |v: Version| KvError::VersionConflict {
                key: key.to_owned(),
                expected: v,
                actual: None,
            };
            // The check of the key's state before this operation.
            let need_present = |v: Option<Version>,
                                compare: &mut dyn FnMut(Compare, Check)|
             -> Result<(), KvError> {
                match (state, v) {
                    (Some(Known::Absent), _) => Err(failed(i, not_found())),
                    // Its version after an earlier write is not known before the commit.
                    (Some(Known::Present), Some(v)) => Err(failed(i, conflict(v))),
                    (Some(Known::Present), None) => Ok(()),
                    (None, Some(version)) => {
                        // A missing key's mod_revision is 0: check it exists too.
                        compare(
                            Compare::create_revision(ek.clone(), CompareOp::Greater, 0),
                            Check::Exists { op: i },
                        );
                        compare(
                            Compare::mod_revision(ek.clone(), CompareOp::Equal, version.0),
                            Check::Version { op: i, version },
                        );
                        Ok(())
                    }
                    (None, None) => {
                        compare(
                            Compare::create_revision(ek.clone(), CompareOp::Greater, 0),
                            Check::Exists { op: i },
                        );
                        Ok(())
                    }
                }
            };
            let need_absent = |compare: &mut dyn FnMut(Compare, Check)| -> Result<(), KvError> {
                match state {
                    Some(Known::Present) => Err(failed(i, exists())),
                    Some(Known::Absent) => Ok(()),
                    None => {
                        compare(
                            Compare::create_revision(ek.clone(), CompareOp::Equal, 0),
                            Check::Absent { op: i },
                        );
                        Ok(())
                    }
                }
            };
            match op {
                TxnOp::CheckVersion { version, .. } => need_present(Some(*version), &mut compare)?,
                TxnOp::CheckExists { .. } => need_present(None, &mut compare)?,
                TxnOp::CheckAbsent { .. } => need_absent(&mut compare)?,
                TxnOp::Create {
                    value, ephemeral, ..
                } => {
                    need_absent(&mut compare)?;
                    let lease = if *ephemeral {
                        Lease::Of(lease)
                    } else {
                        Lease::None
                    };
                    write(
                        &mut writes,
                        ek.clone(),
                        Write::Put {
                            value: value.clone(),
                            lease,
                        },
                    );
                    known.insert(key, Known::Present);
                }
                TxnOp::Set {
                    value, expected, ..
                } => {
                    need_present(*expected, &mut compare)?;
                    // An ephemeral key stays ephemeral: a set keeps the key's lease, or the
                    // lease of a create earlier in this transaction.
                    let lease = match writes.iter().find(|(k, _)| *k == ek) {
                        Some((_, Write::Put { lease, .. })) => *lease,
                        _ => Lease::Keep,
                    };
                    write(
                        &mut writes,
                        ek.clone(),
                        Write::Put {
                            value: value.clone(),
                            lease,
                        },
                    );
                    known.insert(key, Known::Present);
                }
                TxnOp::Delete { expected, .. } => {
                    need_present(*expected, &mut compare)?;
                    let (start, end) = keys.range_below(key);
                    compares.push((
                        Compare::create_revision(start.clone(), CompareOp::Equal, 0)
                            .with_range(end.clone()),
                        Check::NoDescendants { op: i },
                        EtcdOp::get(
                            start,
                            Some(
                                GetOptions::new()
                                    .with_range(end)
                                    .with_keys_only()
                                    .with_limit(1),
                            ),
                        ),
                    ));
                    write(&mut writes, ek.clone(), Write::Delete);
                    known.insert(key, Known::Absent);
                }
            }
        }
        Ok(Self {
            ops: txn.ops,
            compares,
            writes,
        })
    }

    /// Adds a delete of every key below `key` (a recursive delete's descendants), dropping the
    /// check that there are none.
    pub fn delete_below(&mut self, keys: &Keys, key: &str) {
        self.compares
            .retain(|(_, c, _)| !matches!(c, Check::NoDescendants { .. }));
        let (start, end) = keys.range_below(key);
        self.writes.push((
            String::from_utf8_lossy(&start).into_owned(),
            Write::DeleteRange(end),
        ));
    }

    /// The etcd transaction.
    pub fn etcd_txn(&self) -> EtcdTxn {
        let compares: Vec<Compare> = self.compares.iter().map(|(c, _, _)| c.clone()).collect();
        let reads: Vec<EtcdOp> = self.compares.iter().map(|(_, _, r)| r.clone()).collect();
        let writes: Vec<EtcdOp> = self
            .writes
            .iter()
            .map(|(k, w)| match w {
                Write::Put { value, lease } => {
                    let opts = match lease {
                        Lease::None => PutOptions::new(),
                        Lease::Of(l) => PutOptions::new().with_lease(*l),
                        Lease::Keep => PutOptions::new().with_ignore_lease(),
                    };
                    EtcdOp::put(k.clone(), value.to_vec(), Some(opts))
                }
                Write::Delete => EtcdOp::delete(k.clone(), None),
                Write::DeleteRange(end) => EtcdOp::delete(
                    k.clone(),
                    Some(etcd_client::DeleteOptions::new().with_range(end.clone())),
                ),
            })
            .collect();
        EtcdTxn::new()
            .when(compares)
            .and_then(writes)
            .or_else(reads)
    }

    /// The results of a committed transaction at `revision`.
    pub fn results(&self, revision: i64) -> Vec<TxnResult> {
        self.ops
            .iter()
            .map(|op| match op {
                TxnOp::CheckVersion { .. }
                | TxnOp::CheckExists { .. }
                | TxnOp::CheckAbsent { .. } => TxnResult::Checked,
                TxnOp::Create { .. } => TxnResult::Created(Version(revision)),
                TxnOp::Set { .. } => TxnResult::Set(Version(revision)),
                TxnOp::Delete { .. } => TxnResult::Deleted,
            })
            .collect()
    }

    /// Why the transaction failed, from the failure branch's reads (one per compare, in order).
    pub fn failure(&self, reads: &[TxnOpResponse]) -> KvError {
        for ((_, check, _), read) in self.compares.iter().zip(reads) {
            let TxnOpResponse::Get(get) = read else {
                continue;
            };
            let kv = get.kvs().first();
            let cause = match check {
                Check::Fence(token, lease) => match kv {
                    Some(kv) if kv.create_revision() == token.epoch() && kv.lease() == *lease => {
                        None
                    }
                    _ => {
                        return KvError::NotLeader {
                            token: token.clone(),
                        };
                    }
                },
                Check::Version { op, version } => match kv {
                    None => Some((
                        *op,
                        KvError::NotFound {
                            key: self.ops[*op].key().to_owned(),
                        },
                    )),
                    Some(kv) if kv.mod_revision() != version.0 => Some((
                        *op,
                        KvError::VersionConflict {
                            key: self.ops[*op].key().to_owned(),
                            expected: *version,
                            actual: Some(Version(kv.mod_revision())),
                        },
                    )),
                    Some(_) => None,
                },
                Check::Exists { op } => kv.is_none().then(|| {
                    (
                        *op,
                        KvError::NotFound {
                            key: self.ops[*op].key().to_owned(),
                        },
                    )
                }),
                Check::Absent { op } => kv.is_some().then(|| {
                    (
                        *op,
                        KvError::AlreadyExists {
                            key: self.ops[*op].key().to_owned(),
                        },
                    )
                }),
                Check::NoDescendants { op } => kv.is_some().then(|| {
                    (
                        *op,
                        KvError::NotEmpty {
                            key: self.ops[*op].key().to_owned(),
                        },
                    )
                }),
            };
            if let Some((i, cause)) = cause {
                return KvError::txn_failed(i, &self.ops[i], cause);
            }
        }
        KvError::Backend(
            "etcd reported a failed transaction although every check held when read back".into(),
        )
    }
}

/// Records `w` as the effect on `key`, replacing an earlier write of that key.
fn write(writes: &mut Vec<(String, Write)>, key: String, w: Write) {
    match writes.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = w,
        None => writes.push((key, w)),
    }
}
