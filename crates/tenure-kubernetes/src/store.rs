//! The versioned KV over ConfigMap data keys: every write is a replace (or create, or delete)
//! of one ConfigMap conditioned on its `resourceVersion`, after the per-key version and fence
//! checks on the content that was read. A [`Txn`] is one such write of the one ConfigMap all its
//! keys live in (`store/txn.rs`).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use tenure_core::kv::{
    CreateOptions, DeleteOptions, Entry, FencingToken, KvError, KvWatch, Txn, TxnResult, Version,
    VersionedKv, is_below, validate_key, validate_prefix,
};

use crate::api::ApiError;
use crate::codec::{Claim, KeyMeta, KvMeta};
use crate::names::{CmKind, Scope};
use crate::{KubernetesBackend, Shared, cm};

#[path = "txn.rs"]
mod txn;

/// How many `409 Conflict`s one write absorbs before giving up.
const MAX_CONFLICTS: usize = 200;

/// What a write would change, decided on the ConfigMap as read.
pub(crate) enum Plan<T> {
    /// Nothing to write; the result.
    Keep(T),
    /// Replace (or create) the ConfigMap with `cm`.
    Write {
        cm: Box<ConfigMap>,
        create: bool,
        result: T,
        landed: Landed,
    },
    /// Delete the ConfigMap, conditioned on resource version `rv`.
    DeleteCm { rv: String, result: T },
}

/// How to tell, after a write whose answer was lost, whether it was carried out.
pub(crate) enum Landed {
    /// The data key has this version.
    Set { data_key: String, version: i64 },
    /// None of these data keys exist.
    Removed(Vec<String>),
    /// Nothing to tell by the content (a claim only): written again if in doubt.
    Claimed,
}

impl Landed {
    fn holds(&self, cm: Option<&ConfigMap>) -> bool {
        match self {
            Landed::Set { data_key, version } => cm
                .and_then(|c| cm::kv_meta(c).ok())
                .and_then(|m| m.get(data_key).copied())
                .is_some_and(|m| m.v == *version),
            Landed::Removed(keys) => cm.is_none_or(|c| {
                keys.iter().all(|k| {
                    !c.data.as_ref().is_some_and(|d| d.contains_key(k))
                        && !c.binary_data.as_ref().is_some_and(|d| d.contains_key(k))
                })
            }),
            Landed::Claimed => false,
        }
    }
}

fn backend_error(op: &str, name: &str, e: &ApiError) -> KvError {
    KvError::Client {
        key: name.to_owned(),
        context: format!("{op} ConfigMap {name}: {e}"),
        source: tenure_core::kv::ClientError::new(e.clone()),
    }
}

impl Shared {
    /// Reads a ConfigMap, retrying server and connection errors up to `max_retries` times.
    pub(crate) async fn read_cm(&self, name: &str) -> Result<Option<ConfigMap>, ApiError> {
        let mut attempt = 0;
        loop {
            match self.api.get(name).await {
                Ok(c) => {
                    if let Some(c) = &c {
                        self.note_rv(cm::rv_num(c));
                    }
                    return Ok(c);
                }
                Err(ApiError::Transient(m)) if attempt < self.settings.max_retries => {
                    attempt += 1;
                    tracing::debug!(%name, error = %m, attempt, "read failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Checks `token` exactly for a write to ConfigMap `target` (read as `current`): this
    /// process holds the term (lock and epoch) it names, the lock's leader record shows this
    /// holder at that epoch, and `target` carries no claim of a later term of the same lock.
    /// Returns the claim to write.
    async fn verify_term(
        &self,
        token: &FencingToken,
        target: &str,
        current: Option<&ConfigMap>,
    ) -> Result<Claim, KvError> {
        let not_leader = || KvError::NotLeader {
            token: token.clone(),
        };
        let info = self.term(token)?;
        if let Some(claim) = current.and_then(cm::claim)
            && claim.lock == token.lock()
            && claim.term > token.epoch()
        {
            return Err(not_leader());
        }
        let lock_cm = if token.lock() == target {
            current.cloned()
        } else {
            self.read_cm(token.lock())
                .await
                .map_err(|e| backend_error("reading lock", token.lock(), &e))?
        };
        let record = lock_cm
            .as_ref()
            .and_then(|c| cm::leader_record(c).ok().flatten())
            .ok_or_else(not_leader)?;
        if record.holder_identity != info.identity || record.leader_transitions != token.epoch() {
            return Err(not_leader());
        }
        Ok(Claim {
            lock: token.lock().to_string(),
            holder_identity: info.identity,
            term: token.epoch(),
        })
    }

    /// Reads ConfigMap `name`, lets `plan` decide on its content, and carries the decision out
    /// conditioned on the resource version read; conflicts are re-read and re-decided. With a
    /// `fence`, the term is verified on every attempt and a per-job ConfigMap gets the claim.
    pub(crate) async fn update<T>(
        &self,
        name: &str,
        key: &str,
        fence: Option<&FencingToken>,
        mut plan: impl FnMut(Option<ConfigMap>) -> Result<Plan<T>, KvError>,
    ) -> Result<T, KvError> {
        let mut pending: Option<(Landed, T)> = None;
        let mut transient = 0u32;
        let mut conflicts = 0usize;
        let unknown = |reason: String| KvError::OutcomeUnknown {
            key: key.to_owned(),
            reason,
        };
        loop {
            let current = match self.read_cm(name).await {
                Ok(c) => c,
                Err(e) if pending.is_some() => {
                    return Err(unknown(format!("reading ConfigMap {name} back: {e}")));
                }
                Err(e) => return Err(backend_error("reading", name, &e)),
            };
            if let Some((landed, result)) = pending.take()
                && landed.holds(current.as_ref())
            {
                return Ok(result);
            }
            let claim = match fence {
                Some(t) => Some(self.verify_term(t, name, current.as_ref()).await?),
                None => None,
            };
            let (outcome, result, landed) = match plan(current)? {
                Plan::Keep(r) => return Ok(r),
                Plan::Write {
                    mut cm,
                    create,
                    result,
                    landed,
                } => {
                    if let Some(c) = &claim
                        && matches!(self.names.classify(name), CmKind::Job(_))
                    {
                        cm::set_claim(&mut cm, c);
                    }
                    let cm = *cm;
                    let r = if create {
                        self.api.create(&cm).await
                    } else {
                        self.api.replace(name, &cm).await
                    };
                    (r.map(|c| self.note_rv(cm::rv_num(&c))), result, landed)
                }
                Plan::DeleteCm { rv, result } => {
                    let r = match self.api.delete(name, Some(&rv)).await {
                        // Deleted meanwhile: what was to be removed is gone.
                        Err(ApiError::NotFound) => Ok(()),
                        other => other,
                    };
                    (r, result, Landed::Removed(Vec::new()))
                }
            };
            match outcome {
                Ok(()) => return Ok(result),
                Err(ApiError::Conflict | ApiError::AlreadyExists | ApiError::NotFound) => {
                    conflicts += 1;
                    if conflicts > MAX_CONFLICTS {
                        return Err(KvError::Backend(format!(
                            "gave up writing {key:?} after {MAX_CONFLICTS} conflicting updates of ConfigMap {name}"
                        )));
                    }
                    if conflicts > 3 {
                        tokio::time::sleep(jitter(conflicts)).await;
                    }
                }
                Err(ApiError::Invalid(m)) => {
                    return Err(KvError::Backend(format!(
                        "the API server refused ConfigMap {name} (writing {key:?}): {m}"
                    )));
                }
                Err(ApiError::Transient(m)) => {
                    transient += 1;
                    if transient > self.settings.max_retries {
                        return Err(unknown(m));
                    }
                    tracing::debug!(%name, %key, error = %m, "write failed; reading back");
                    pending = Some((landed, result));
                    tokio::time::sleep(backoff(transient)).await;
                }
                Err(e @ (ApiError::Refused(_) | ApiError::Gone)) => {
                    return Err(backend_error("writing", name, &e));
                }
            }
        }
    }

    /// The entries of every ConfigMap in `scope`.
    async fn scope_entries(&self, scope: &Scope) -> Result<Vec<Entry>, KvError> {
        let cms = match scope {
            Scope::One(name) => self
                .read_cm(name)
                .await
                .map_err(|e| backend_error("reading", name, &e))?
                .into_iter()
                .collect(),
            Scope::All => self.list_all().await?,
        };
        let mut out = Vec::new();
        for c in &cms {
            out.extend(cm::entries(&self.names, c)?);
        }
        Ok(out)
    }

    /// Every HA ConfigMap of the cluster.
    pub(crate) async fn list_all(&self) -> Result<Vec<ConfigMap>, KvError> {
        let selector = self.names.label_selector();
        let mut attempt = 0;
        loop {
            match self.api.list(&selector).await {
                Ok((items, _)) => return Ok(items),
                Err(ApiError::Transient(m)) if attempt < self.settings.max_retries => {
                    attempt += 1;
                    tracing::debug!(error = %m, "list failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => {
                    return Err(KvError::Backend(format!("listing ConfigMaps: {e}")));
                }
            }
        }
    }

    /// Removes `data_keys` from ConfigMap `name` (a per-job ConfigMap left without data is
    /// deleted); unfenced unless `fence`.
    pub(crate) async fn remove_keys(
        &self,
        name: &str,
        key: &str,
        fence: Option<&FencingToken>,
        mut select: impl FnMut(&ConfigMap) -> Vec<String>,
    ) -> Result<(), KvError> {
        let is_job = matches!(self.names.classify(name), CmKind::Job(_));
        self.update(name, key, fence, |cur| {
            let Some(c) = cur else {
                return Ok(Plan::Keep(()));
            };
            let doomed = select(&c);
            if doomed.is_empty() {
                return Ok(Plan::Keep(()));
            }
            let mut meta = cm::kv_meta(&c)?;
            Ok(removal(c, &mut meta, doomed, is_job))
        })
        .await
    }
}

/// The plan that removes the data keys `doomed` from `c`: a replace, or the deletion of a
/// per-job ConfigMap left without data.
fn removal(mut c: ConfigMap, meta: &mut KvMeta, doomed: Vec<String>, is_job: bool) -> Plan<()> {
    for dk in &doomed {
        cm::remove(&mut c, meta, dk);
    }
    cm::store_kv_meta(&mut c, meta);
    if is_job && cm::has_no_data(&c) {
        let rv = cm::rv(&c).unwrap_or("").to_owned();
        return Plan::DeleteCm { rv, result: () };
    }
    Plan::Write {
        cm: Box::new(c),
        create: false,
        result: (),
        landed: Landed::Removed(doomed),
    }
}

fn backoff(attempt: u32) -> Duration {
    tenure_core::retry::RetryPolicy::new(Duration::from_millis(50), Duration::from_millis(1600))
        .wait(attempt)
}

fn jitter(n: usize) -> Duration {
    let r = uuid::Uuid::new_v4().as_bytes()[0] as u64;
    Duration::from_millis(r % (5 * n.min(10) as u64 + 1))
}

fn too_large(key: &str, c: &ConfigMap, value_len: usize, total: usize) -> KvError {
    let others = total.saturating_sub(value_len);
    tracing::debug!(cm = %cm::object_name(c), total, "ConfigMap would exceed 1 MiB");
    KvError::TooLarge {
        key: key.to_owned(),
        size: value_len,
        limit: cm::MAX_PAYLOAD.saturating_sub(others),
    }
}

#[async_trait]
impl VersionedKv for KubernetesBackend {
    async fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        validate_key(key)?;
        let sh = &self.shared;
        sh.check_open()?;
        let loc = sh.names.locate(key)?;
        let Some(c) = sh
            .read_cm(&loc.cm)
            .await
            .map_err(|e| backend_error("reading", &loc.cm, &e))?
        else {
            return Ok(None);
        };
        let meta = cm::kv_meta(&c)?;
        cm::entry(&c, &meta, key, &loc)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, KvError> {
        validate_prefix(prefix)?;
        let sh = &self.shared;
        sh.check_open()?;
        let mut out: Vec<Entry> = sh
            .scope_entries(&sh.names.scope(prefix))
            .await?
            .into_iter()
            .filter(|e| is_below(prefix, &e.key))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn watch(&self, prefix: &str) -> Result<KvWatch, KvError> {
        validate_prefix(prefix)?;
        let sh = &self.shared;
        sh.check_open()?;
        let selection = sh.selection(&sh.names.scope(prefix));
        let name = match &selection {
            crate::api::Selection::Name { name, .. } => Some(name.clone()),
            crate::api::Selection::Labels(_) => None,
        };
        let w = sh.watcher.subscribe(prefix);
        sh.ensure_watch(selection);
        tokio::select! {
            _ = sh.watcher.wait_synced(name.as_deref()) => Ok(w),
            _ = tokio::time::sleep(sh.settings.request_timeout * 3) => Err(KvError::Backend(
                "the ConfigMap watch could not be started (no list from the API server)".into(),
            )),
        }
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        opts: CreateOptions,
    ) -> Result<Version, KvError> {
        validate_key(key)?;
        let sh = &self.shared;
        sh.check_open()?;
        sh.check_writable("create", key)?;
        let loc = sh.names.locate(key)?;
        let raw = cm::encode(&loc, key, &value)?;
        let owner = opts.ephemeral.then_some(sh.session_id);
        sh.update(&loc.cm, key, opts.fence.as_ref(), |cur| {
            let create = cur.is_none();
            let mut c = cur.unwrap_or_else(|| cm::new_cm(&sh.names, &loc.cm));
            let mut meta = cm::kv_meta(&c)?;
            if cm::keys(&sh.names, &c).iter().any(|(k, _)| k == key) {
                return Err(KvError::AlreadyExists {
                    key: key.to_owned(),
                });
            }
            let total = cm::size_with(&c, &loc, &raw);
            if total > cm::MAX_PAYLOAD {
                return Err(too_large(key, &c, value.len(), total));
            }
            let v = sh.next_version(cm::rv_num(&c));
            cm::set(
                &mut c,
                &mut meta,
                &loc,
                raw.clone(),
                KeyMeta { v, o: owner },
            );
            cm::store_kv_meta(&mut c, &meta);
            Ok(Plan::Write {
                cm: Box::new(c),
                create,
                result: Version(v),
                landed: Landed::Set {
                    data_key: loc.data_key.clone(),
                    version: v,
                },
            })
        })
        .await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        value: Bytes,
        expected: Version,
        fence: Option<FencingToken>,
    ) -> Result<Version, KvError> {
        validate_key(key)?;
        let sh = &self.shared;
        sh.check_open()?;
        sh.check_writable("compare-and-set", key)?;
        let loc = sh.names.locate(key)?;
        let raw = cm::encode(&loc, key, &value)?;
        let not_found = || KvError::NotFound {
            key: key.to_owned(),
        };
        sh.update(&loc.cm, key, fence.as_ref(), |cur| {
            let mut c = cur.ok_or_else(not_found)?;
            let mut meta = cm::kv_meta(&c)?;
            let current = cm::entry(&c, &meta, key, &loc)?.ok_or_else(not_found)?;
            if current.version != expected {
                return Err(KvError::VersionConflict {
                    key: key.to_owned(),
                    expected,
                    actual: Some(current.version),
                });
            }
            let total = cm::size_with(&c, &loc, &raw);
            if total > cm::MAX_PAYLOAD {
                return Err(too_large(key, &c, value.len(), total));
            }
            let v = sh.next_version(cm::rv_num(&c));
            let owner = current.ephemeral_owner;
            cm::set(
                &mut c,
                &mut meta,
                &loc,
                raw.clone(),
                KeyMeta { v, o: owner },
            );
            cm::store_kv_meta(&mut c, &meta);
            Ok(Plan::Write {
                cm: Box::new(c),
                create: false,
                result: Version(v),
                landed: Landed::Set {
                    data_key: loc.data_key.clone(),
                    version: v,
                },
            })
        })
        .await
    }

    async fn delete(&self, key: &str, opts: DeleteOptions) -> Result<(), KvError> {
        validate_key(key)?;
        let sh = &self.shared;
        sh.check_open()?;
        sh.check_writable("delete", key)?;
        let loc = sh.names.locate(key)?;
        let not_found = || KvError::NotFound {
            key: key.to_owned(),
        };
        // Descendants kept in other ConfigMaps (only below `jobs`): checked and removed first.
        if let Scope::All = sh.names.scope(key) {
            let others: Vec<Entry> = sh
                .scope_entries(&Scope::All)
                .await?
                .into_iter()
                .filter(|e| {
                    is_below(key, &e.key) && sh.names.locate(&e.key).is_ok_and(|l| l.cm != loc.cm)
                })
                .collect();
            if !others.is_empty() {
                if self.get(key).await?.is_none() {
                    return Err(not_found());
                }
                if !opts.recursive {
                    return Err(KvError::NotEmpty {
                        key: key.to_owned(),
                    });
                }
                for e in others {
                    let l = sh.names.locate(&e.key)?;
                    let dk = l.data_key.clone();
                    sh.remove_keys(&l.cm, &e.key, opts.fence.as_ref(), |_| vec![dk.clone()])
                        .await?;
                }
            }
        }
        let is_job = matches!(sh.names.classify(&loc.cm), CmKind::Job(_));
        sh.update(&loc.cm, key, opts.fence.as_ref(), |cur| {
            let c = cur.ok_or_else(not_found)?;
            let mut meta = cm::kv_meta(&c)?;
            let current = cm::entry(&c, &meta, key, &loc)?.ok_or_else(not_found)?;
            if let Some(expected) = opts.expected
                && current.version != expected
            {
                return Err(KvError::VersionConflict {
                    key: key.to_owned(),
                    expected,
                    actual: Some(current.version),
                });
            }
            let below: Vec<String> = cm::keys(&sh.names, &c)
                .into_iter()
                .filter(|(k, _)| is_below(key, k))
                .map(|(_, l)| l.data_key)
                .collect();
            if !below.is_empty() && !opts.recursive {
                return Err(KvError::NotEmpty {
                    key: key.to_owned(),
                });
            }
            let mut doomed = below;
            doomed.push(loc.data_key.clone());
            Ok(removal(c, &mut meta, doomed, is_job))
        })
        .await
    }

    async fn txn(&self, txn: Txn) -> Result<Vec<TxnResult>, KvError> {
        let first = txn.ops.first().map(|op| op.key().to_owned());
        self.shared
            .check_writable("a transaction", first.as_deref().unwrap_or(""))?;
        self.shared.commit_txn(txn).await
    }

    async fn remove_empty_namespace(&self) -> Result<Vec<String>, KvError> {
        let sh = &self.shared;
        sh.check_open()?;
        sh.check_writable("removing the empty namespace", "")?;
        // This process's session ConfigMap goes too, and is not created again.
        sh.cleaned.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut removed = Vec::new();
        for c in sh.list_all().await? {
            let Some(name) = c.metadata.name.clone() else {
                continue;
            };
            let holds_data = c.data.as_ref().is_some_and(|d| !d.is_empty())
                || c.binary_data.as_ref().is_some_and(|d| !d.is_empty());
            if holds_data {
                continue;
            }
            // Conditioned on the version read: a ConfigMap written since is kept.
            let rv = c.metadata.resource_version.clone();
            let mut attempt = 0;
            loop {
                match sh.api.delete(&name, rv.as_deref()).await {
                    Ok(()) => {
                        removed.push(name.clone());
                        break;
                    }
                    Err(ApiError::NotFound | ApiError::Conflict) => break,
                    Err(ApiError::Transient(m)) if attempt < sh.settings.max_retries => {
                        attempt += 1;
                        tracing::debug!(%name, error = %m, "delete failed; retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    Err(e) => return Err(backend_error("deleting", &name, &e)),
                }
            }
        }
        Ok(removed)
    }

    fn session_id(&self) -> u64 {
        self.shared.session_id
    }
}
