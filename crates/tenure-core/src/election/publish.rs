//! Publishing and removing leader information in the KV, fenced by the leader's term.

use bytes::Bytes;

use crate::codec::encode_leader_info;
use crate::ids::ComponentId;
use crate::kv::{
    CreateOptions, DeleteOptions, FencingToken, KvError, Txn, TxnOp, Version, VersionedKv, is_below,
};
use crate::layout::Layout;
use crate::leader_info::LeaderInformation;

const ATTEMPTS: usize = 8;

/// Writes `info` to the component's leader-information key as an ephemeral key owned by this
/// session and returns the version written. `known` is the version this session wrote last in
/// the same term, if any: the update is then one compare-and-set. `latch` is the latch the term
/// was won on (see [`unpublish_leader_info`]). A key owned by another session (a deposed
/// leader's) is replaced, never updated in place, so the information dies with *this* leader's
/// session. Every write is fenced.
pub async fn publish_leader_info(
    kv: &dyn VersionedKv,
    layout: &Layout,
    component: &ComponentId,
    info: &LeaderInformation,
    token: &FencingToken,
    known: Option<Version>,
    latch: &str,
) -> Result<Version, KvError> {
    let key = layout.leader_info(component);
    let data = Bytes::from(encode_leader_info(info));
    if let Some(version) = known
        && let Ok(v) = kv
            .compare_and_set(&key, data.clone(), version, Some(token.clone()))
            .await
    {
        return Ok(v);
    }
    // A process-wide election's component usually has no leader directory yet (a graceful stop
    // removes it): where directories are keys, create it and the information in one fenced
    // transaction. A per-component election's latch lives in that directory, so it exists.
    let dir = layout.leader_dir(component);
    if known.is_none() && kv.parents_are_keys() && !is_below(&dir, latch) {
        let both = Txn::new(Some(token.clone()))
            .op(TxnOp::Create {
                key: dir,
                value: Bytes::new(),
                ephemeral: false,
            })
            .op(TxnOp::Create {
                key: key.clone(),
                value: data.clone(),
                ephemeral: true,
            });
        match kv.txn(both).await {
            Ok(results) => {
                if let Some(v) = results.get(1).and_then(|r| r.version()) {
                    return Ok(v);
                }
            }
            // The directory (or the information) exists: as below.
            Err(KvError::TxnFailed { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let create = CreateOptions {
        ephemeral: true,
        fence: Some(token.clone()),
    };
    let mut last = None;
    for _ in 0..ATTEMPTS {
        // The common case (a new term's first publication) is one create.
        let existing = match kv.create(&key, data.clone(), create.clone()).await {
            Ok(v) => return Ok(v),
            Err(KvError::AlreadyExists { .. }) => kv.get(&key).await?,
            Err(e) => return Err(e),
        };
        let result = match existing {
            // Ours already (a new confirmation in this session): update in place.
            Some(e) if e.ephemeral_owner == Some(kv.session_id()) => {
                match kv
                    .compare_and_set(&key, data.clone(), e.version, Some(token.clone()))
                    .await
                {
                    Ok(v) => return Ok(v),
                    Err(e) => Err(e),
                }
            }
            // Owned by another session (a deposed leader's): delete it, create ours next round,
            // so the information dies with this leader's session.
            Some(e) => {
                kv.delete(
                    &key,
                    DeleteOptions {
                        expected: Some(e.version),
                        fence: Some(token.clone()),
                        recursive: false,
                    },
                )
                .await
            }
            None => Ok(()),
        };
        match result {
            Ok(()) => {}
            Err(
                e @ (KvError::NotFound { .. }
                | KvError::AlreadyExists { .. }
                | KvError::VersionConflict { .. }),
            ) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(KvError::Backend(format!(
        "could not publish leader information at {key:?}"
    ))))
}

/// Removes the component's leader information (and its leader directory if nothing else is in
/// it), fenced by the term. Missing keys are fine. `latch` is the latch the term was won on: when
/// it lies outside the leader directory (Flink's process-wide election), the information and the
/// directory go in one transaction (one round trip); when it lies inside (a per-component
/// election, whose latch keeps the directory), only the information is deleted.
pub async fn unpublish_leader_info(
    kv: &dyn VersionedKv,
    layout: &Layout,
    component: &ComponentId,
    token: &FencingToken,
    latch: &str,
) -> Result<(), KvError> {
    let info = layout.leader_info(component);
    let dir = layout.leader_dir(component);
    let fenced = DeleteOptions {
        fence: Some(token.clone()),
        ..Default::default()
    };
    if is_below(&dir, latch) {
        return match kv.delete(&info, fenced).await {
            Ok(()) | Err(KvError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        };
    }
    let both = Txn::new(Some(token.clone()))
        .op(TxnOp::Delete {
            key: info.clone(),
            expected: None,
        })
        .op(TxnOp::Delete {
            key: dir.clone(),
            expected: None,
        });
    match kv.txn(both).await {
        Ok(_) => return Ok(()),
        // Something else is there (nothing published, another key in the directory): one by
        // one below.
        Err(KvError::TxnFailed { .. }) => {}
        Err(e) => return Err(e),
    }
    for key in [info, dir] {
        match kv.delete(&key, fenced.clone()).await {
            Ok(()) | Err(KvError::NotFound { .. }) | Err(KvError::NotEmpty { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
