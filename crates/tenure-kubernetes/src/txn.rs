//! [`Txn`] as ONE ConfigMap write.
//!
//! Every key of a transaction must live in the same ConfigMap (see [`crate::names`]: the
//! cluster's ConfigMap, or one job's); the operations are decided in order on that ConfigMap as
//! read, and the result is written with one replace (or create, or delete of a per-job ConfigMap
//! left without data) conditioned on the `resourceVersion` read. A conflict re-reads and decides
//! again; a fence is verified on every attempt, as for single-key writes. Every write of one
//! transaction gets the same new version, greater than any resource version seen.

use k8s_openapi::api::core::v1::ConfigMap;
use tenure_core::kv::{KvError, Txn, TxnOp, TxnResult, is_below};

use super::{Landed, Plan, too_large};
use crate::names::{CmKind, Location, Scope};
use crate::{Shared, cm};

impl Shared {
    /// Commits `txn` as one write of its ConfigMap (see the module docs).
    pub(crate) async fn commit_txn(&self, txn: Txn) -> Result<Vec<TxnResult>, KvError> {
        txn.validate()?;
        self.check_open()?;
        let mut locs: Vec<Location> = Vec::with_capacity(txn.ops.len());
        let mut raws = Vec::with_capacity(txn.ops.len());
        for (i, op) in txn.ops.iter().enumerate() {
            let fail = |e| KvError::txn_failed(i, op, e);
            let key = op.key();
            let loc = self.names.locate(key).map_err(fail)?;
            if let Some(first) = locs.first()
                && first.cm != loc.cm
            {
                return Err(fail(KvError::InvalidKey {
                    key: key.to_owned(),
                    reason: format!(
                        "it lives in ConfigMap {}, but the transaction's first key {:?} lives in \
                         ConfigMap {}: a transaction on Kubernetes spans one ConfigMap",
                        loc.cm,
                        txn.ops[0].key(),
                        first.cm
                    ),
                }));
            }
            if matches!(op, TxnOp::Delete { .. }) && matches!(self.names.scope(key), Scope::All) {
                return Err(fail(KvError::InvalidKey {
                    key: key.to_owned(),
                    reason: "its descendants live in other ConfigMaps; delete it on its own".into(),
                }));
            }
            raws.push(match op {
                TxnOp::Create { value, .. } | TxnOp::Set { value, .. } => {
                    Some(cm::encode(&loc, key, value).map_err(fail)?)
                }
                _ => None,
            });
            locs.push(loc);
        }
        let Some(first) = locs.first() else {
            if let Some(token) = &txn.fence {
                self.verify_term(token, "", None).await?;
            }
            return Ok(Vec::new());
        };
        let name = first.cm.clone();
        let is_job = matches!(self.names.classify(&name), CmKind::Job(_));
        let session = self.session_id;
        self.update(&name, txn.ops[0].key(), txn.fence.as_ref(), |cur| {
            let create = cur.is_none();
            let mut c = cur.unwrap_or_else(|| cm::new_cm(&self.names, &name));
            let mut meta = cm::kv_meta(&c)?;
            let v = self.next_version(cm::rv_num(&c));
            let mut results = Vec::with_capacity(txn.ops.len());
            let mut written = false;
            for (i, ((op, loc), raw)) in txn.ops.iter().zip(&locs).zip(&raws).enumerate() {
                let fail = |e| KvError::txn_failed(i, op, e);
                let key = op.key();
                let current = cm::entry(&c, &meta, key, loc).map_err(fail)?;
                let not_found = || {
                    fail(KvError::NotFound {
                        key: key.to_owned(),
                    })
                };
                let expected = match op {
                    TxnOp::CheckVersion { version, .. } => Some(*version),
                    TxnOp::Set { expected, .. } | TxnOp::Delete { expected, .. } => *expected,
                    _ => None,
                };
                let must_exist = matches!(
                    op,
                    TxnOp::CheckVersion { .. }
                        | TxnOp::CheckExists { .. }
                        | TxnOp::Set { .. }
                        | TxnOp::Delete { .. }
                );
                let current = match current {
                    None if must_exist => return Err(not_found()),
                    Some(_) if matches!(op, TxnOp::Create { .. } | TxnOp::CheckAbsent { .. }) => {
                        return Err(fail(KvError::AlreadyExists {
                            key: key.to_owned(),
                        }));
                    }
                    current => current,
                };
                if let (Some(expected), Some(cur)) = (expected, &current)
                    && cur.version != expected
                {
                    return Err(fail(KvError::VersionConflict {
                        key: key.to_owned(),
                        expected,
                        actual: Some(cur.version),
                    }));
                }
                results.push(match (op, raw) {
                    (TxnOp::Create { ephemeral, .. }, Some(raw)) => {
                        set(
                            &mut c,
                            &mut meta,
                            loc,
                            raw,
                            key,
                            v,
                            ephemeral.then_some(session),
                        )
                        .map_err(fail)?;
                        written = true;
                        TxnResult::Created(tenure_core::kv::Version(v))
                    }
                    (TxnOp::Set { .. }, Some(raw)) => {
                        let owner = current.and_then(|e| e.ephemeral_owner);
                        set(&mut c, &mut meta, loc, raw, key, v, owner).map_err(fail)?;
                        written = true;
                        TxnResult::Set(tenure_core::kv::Version(v))
                    }
                    (TxnOp::Delete { .. }, _) => {
                        let below = cm::keys(&self.names, &c)
                            .into_iter()
                            .any(|(k, _)| is_below(key, &k));
                        if below {
                            return Err(fail(KvError::NotEmpty {
                                key: key.to_owned(),
                            }));
                        }
                        cm::remove(&mut c, &mut meta, &loc.data_key);
                        written = true;
                        TxnResult::Deleted
                    }
                    _ => TxnResult::Checked,
                });
            }
            if !written {
                return Ok(Plan::Keep(results));
            }
            cm::store_kv_meta(&mut c, &meta);
            let landed = landed(&txn, &locs, &c, v);
            if is_job && cm::has_no_data(&c) {
                if create {
                    return Ok(Plan::Keep(results));
                }
                let rv = cm::rv(&c).unwrap_or("").to_owned();
                return Ok(Plan::DeleteCm {
                    rv,
                    result: results,
                });
            }
            Ok(Plan::Write {
                cm: Box::new(c),
                create,
                result: results,
                landed,
            })
        })
        .await
    }
}

/// Sets `loc` to `raw` at version `v`, refusing a ConfigMap that would exceed the size limit.
fn set(
    c: &mut ConfigMap,
    meta: &mut crate::codec::KvMeta,
    loc: &Location,
    raw: &cm::Raw,
    key: &str,
    v: i64,
    owner: Option<u64>,
) -> Result<(), KvError> {
    let total = cm::size_with(c, loc, raw);
    if total > cm::MAX_PAYLOAD {
        let len = match raw {
            cm::Raw::Text(s) => s.len(),
            cm::Raw::Binary(b) => b.len(),
        };
        return Err(too_large(key, c, len, total));
    }
    cm::set(
        c,
        meta,
        loc,
        raw.clone(),
        crate::codec::KeyMeta { v, o: owner },
    );
    Ok(())
}

/// How to tell whether the written ConfigMap `c` landed: a data key it sets (at `v`), else the
/// data keys it removed.
fn landed(txn: &Txn, locs: &[Location], c: &ConfigMap, v: i64) -> Landed {
    let present = |dk: &str| {
        c.data.as_ref().is_some_and(|d| d.contains_key(dk))
            || c.binary_data.as_ref().is_some_and(|d| d.contains_key(dk))
    };
    let set = txn.ops.iter().zip(locs).find(|(op, loc)| {
        matches!(op, TxnOp::Create { .. } | TxnOp::Set { .. }) && present(&loc.data_key)
    });
    match set {
        Some((_, loc)) => Landed::Set {
            data_key: loc.data_key.clone(),
            version: v,
        },
        None => Landed::Removed(
            txn.ops
                .iter()
                .zip(locs)
                .filter(|(op, _)| matches!(op, TxnOp::Delete { .. }))
                .map(|(_, loc)| loc.data_key.clone())
                .collect(),
        ),
    }
}
