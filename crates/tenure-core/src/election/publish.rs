//! Publishing and removing leader information in the KV, fenced by the leader's term.

use bytes::Bytes;

use crate::codec::encode_leader_info;
use crate::ids::ComponentId;
use crate::kv::{CreateOptions, DeleteOptions, FencingToken, KvError, Version, VersionedKv};
use crate::layout::Layout;
use crate::leader_info::LeaderInformation;

const ATTEMPTS: usize = 8;

/// Writes `info` to the component's leader-information key as an ephemeral key owned by this
/// session and returns the version written. `known` is the version this session wrote last in
/// the same term, if any: the update is then one compare-and-set. A key owned by another session (a deposed leader's) is replaced, never updated in
/// place, so the information dies with *this* leader's session. Every write is fenced.
pub async fn publish_leader_info(
    kv: &dyn VersionedKv,
    layout: &Layout,
    component: &ComponentId,
    info: &LeaderInformation,
    token: &FencingToken,
    known: Option<Version>,
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
/// it), fenced by the term. Missing keys are fine.
pub async fn unpublish_leader_info(
    kv: &dyn VersionedKv,
    layout: &Layout,
    component: &ComponentId,
    token: &FencingToken,
) -> Result<(), KvError> {
    let fenced = DeleteOptions {
        fence: Some(token.clone()),
        ..Default::default()
    };
    for key in [layout.leader_info(component), layout.leader_dir(component)] {
        match kv.delete(&key, fenced.clone()).await {
            Ok(()) | Err(KvError::NotFound { .. }) | Err(KvError::NotEmpty { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
