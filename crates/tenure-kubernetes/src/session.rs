//! The process's session: a ConfigMap with a lease record, renewed every retry period, whose
//! expiry ends the session's ephemeral keys; and the reaper that removes the ephemeral keys of
//! every other session whose lease ran out (by [`crate::lease`]'s rules).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::ConfigMap;
use tenure_core::connection::ConnectionState;
use tenure_core::kv::KvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::api::ApiError;
use crate::codec::LeaderRecord;
use crate::lease::{self, Observation};
use crate::names::{CmKind, LABEL_TENURE_ROLE, SESSION_ANNOTATION};
use crate::{Shared, cm};

fn session_record(cm: &ConfigMap) -> Option<LeaderRecord> {
    cm.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SESSION_ANNOTATION))
        .and_then(|s| LeaderRecord::parse(s).ok())
}

fn set_session_record(cm: &mut ConfigMap, r: &LeaderRecord) {
    cm.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(SESSION_ANNOTATION.to_owned(), r.to_json());
}

/// Creates or renews this process's session ConfigMap once.
async fn renew(sh: &Shared) -> Result<(), ApiError> {
    let name = sh.names.session_cm(sh.session_id);
    let now = sh.now();
    let identity = format!("{:016x}", sh.session_id);
    match sh.api.get(&name).await? {
        None => {
            if sh.cleaned.load(Ordering::SeqCst) {
                return Ok(());
            }
            let mut c = cm::new_cm(&sh.names, &name);
            c.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(LABEL_TENURE_ROLE.to_owned(), "session".to_owned());
            let record = lease::acquired(None, &identity, sh.settings.lease_duration, now);
            set_session_record(&mut c, &record);
            sh.api.create(&c).await.map(|_| ())
        }
        Some(mut c) => {
            let record = match session_record(&c) {
                Some(r) if r.holder_identity == identity => lease::renewed(&r, now),
                _ => lease::acquired(None, &identity, sh.settings.lease_duration, now),
            };
            set_session_record(&mut c, &record);
            sh.api.replace(&name, &c).await.map(|_| ())
        }
    }
}

/// Creates the session ConfigMap (at connect), retrying conflicts and transient failures up to
/// `max_retries` times with the settings' backoff; on failure, how many attempts were made and
/// the last error.
pub(crate) async fn start(sh: &Shared) -> Result<(), (u32, ApiError)> {
    let mut backoff = sh.settings.retry_policy().backoff();
    loop {
        match renew(sh).await {
            Ok(()) => return Ok(()),
            Err(ApiError::Transient(_) | ApiError::Conflict | ApiError::AlreadyExists)
                if backoff.attempts() < sh.settings.max_retries =>
            {
                tokio::time::sleep(backoff.next_wait()).await;
            }
            Err(e) => return Err((backoff.attempts() + 1, e)),
        }
    }
}

/// Renews the session and reaps expired sessions every retry period until cancelled.
pub(crate) async fn run(sh: Arc<Shared>, cancel: CancellationToken) {
    let mut last_ok = sh.now();
    let mut reaper = Reaper::default();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(sh.settings.retry_period) => {}
        }
        let started = sh.now();
        match renew(&sh).await {
            Ok(()) => {
                last_ok = started;
                sh.connection.send_if_modified(|s| {
                    let changed = *s != ConnectionState::Connected;
                    *s = ConnectionState::Connected;
                    changed
                });
            }
            Err(e) => {
                debug!(error = %e, "session renewal failed");
                let state =
                    if sh.now().saturating_sub(last_ok) >= lease::ms(sh.settings.lease_duration) {
                        ConnectionState::Lost
                    } else {
                        ConnectionState::Suspended
                    };
                sh.connection.send_if_modified(|s| {
                    let changed = *s != state;
                    *s = state;
                    changed
                });
            }
        }
        if cancel.is_cancelled() {
            return;
        }
        reaper.reap(&sh).await;
    }
}

/// What the reaper remembers between rounds.
#[derive(Default)]
struct Reaper {
    observed: HashMap<u64, Observation>,
    missing_since: HashMap<u64, u64>,
}

impl Reaper {
    async fn reap(&mut self, sh: &Shared) {
        let now = sh.now();
        let snapshot = sh.watcher.snapshot();
        let mut sessions: HashMap<u64, (LeaderRecord, String)> = HashMap::new();
        for c in &snapshot {
            let name = c.metadata.name.clone().unwrap_or_default();
            if let CmKind::Session(id) = sh.names.classify(&name)
                && let Some(r) = session_record(c)
            {
                sessions.insert(id, (r, cm::rv(c).unwrap_or("").to_owned()));
            }
        }
        self.observed.retain(|id, _| sessions.contains_key(id));
        let mut expired: BTreeSet<u64> = BTreeSet::new();
        for (id, (record, _)) in &sessions {
            if *id == sh.session_id {
                continue;
            }
            let obs = Observation::observe(self.observed.remove(id), record, now);
            if lease::is_free(
                record,
                &obs,
                now,
                sh.settings.lease_duration,
                sh.settings.skew_allowance,
            ) {
                expired.insert(*id);
            }
            self.observed.insert(*id, obs);
        }
        // Owners of ephemeral keys with no session ConfigMap at all: expired a lease after they
        // were first noticed missing.
        let mut owners_seen = BTreeSet::new();
        let mut by_cm: Vec<(String, BTreeSet<u64>)> = Vec::new();
        for c in &snapshot {
            let name = c.metadata.name.clone().unwrap_or_default();
            if !matches!(sh.names.classify(&name), CmKind::Cluster | CmKind::Job(_)) {
                continue;
            }
            let Ok(meta) = cm::kv_meta(c) else { continue };
            let owners: BTreeSet<u64> = meta.values().filter_map(|m| m.o).collect();
            for o in &owners {
                owners_seen.insert(*o);
                if *o != sh.session_id && !sessions.contains_key(o) {
                    let since = *self.missing_since.entry(*o).or_insert(now);
                    if now.saturating_sub(since) >= lease::ms(sh.settings.lease_duration) {
                        expired.insert(*o);
                    }
                }
            }
            if !owners.is_empty() {
                by_cm.push((name, owners));
            }
        }
        self.missing_since
            .retain(|o, _| owners_seen.contains(o) && !sessions.contains_key(o));
        if expired.is_empty() {
            return;
        }
        for (name, owners) in by_cm {
            if owners.is_disjoint(&expired) {
                continue;
            }
            let result = remove_owned(sh, &name, &expired).await;
            if let Err(e) = result {
                debug!(cm = %name, error = %e, "removing expired ephemeral keys failed");
            }
        }
        for id in &expired {
            if let Some((_, rv)) = sessions.get(id) {
                let name = sh.names.session_cm(*id);
                info!(session = %format_args!("{id:016x}"), "session expired; removed its ephemeral keys");
                match sh.api.delete(&name, Some(rv)).await {
                    Ok(()) | Err(ApiError::NotFound | ApiError::Conflict) => {}
                    Err(e) => debug!(cm = %name, error = %e, "deleting expired session failed"),
                }
            }
            self.observed.remove(id);
        }
    }
}

/// Removes from ConfigMap `name` every key owned by one of `owners`.
async fn remove_owned(sh: &Shared, name: &str, owners: &BTreeSet<u64>) -> Result<(), KvError> {
    sh.remove_keys(name, name, None, |c| {
        cm::kv_meta(c)
            .map(|meta| {
                meta.iter()
                    .filter(|(_, m)| m.o.is_some_and(|o| owners.contains(&o)))
                    .map(|(dk, _)| dk.clone())
                    .collect()
            })
            .unwrap_or_default()
    })
    .await
}

/// Ends the session gracefully: its ephemeral keys and its session ConfigMap are deleted.
pub(crate) async fn end(sh: &Shared) -> Result<(), KvError> {
    let mine = BTreeSet::from([sh.session_id]);
    let mut first_error = None;
    let cms = match sh.list_all().await {
        Ok(c) => c,
        Err(e) => return Err(e),
    };
    for c in cms {
        let name = c.metadata.name.clone().unwrap_or_default();
        if !matches!(sh.names.classify(&name), CmKind::Cluster | CmKind::Job(_)) {
            continue;
        }
        let owned = cm::kv_meta(&c)
            .map(|m| m.values().any(|m| m.o == Some(sh.session_id)))
            .unwrap_or(false);
        if owned && let Err(e) = remove_owned(sh, &name, &mine).await {
            first_error.get_or_insert(e);
        }
    }
    match sh
        .api
        .delete(&sh.names.session_cm(sh.session_id), None)
        .await
    {
        Ok(()) | Err(ApiError::NotFound) => {}
        Err(e) => {
            first_error.get_or_insert(KvError::Backend(format!("deleting the session: {e}")));
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
