//! Removing a cluster's HA data: a plan computed first, then exactly the plan deleted.
//!
//! `close_and_cleanup_all_data` and `tenure cleanup` remove only what they can prove belongs to
//! the cluster:
//!
//! - keys of the cluster's namespace that match the HA layout (tenure's or Flink's names, see
//!   [`is_layout_key`]), and only those with nothing foreign below them;
//! - blobs under `<storageDir>/<cluster-id>` named as tenure's and Flink's stores name them
//!   ([`is_ha_blob`]: `completedCheckpoint<id>`, `submittedExecutionPlan<id>`,
//!   `submittedJobGraph<id>`, Flink's `blob/job_<job-id>/blob_…`);
//! - job result files named as Flink names them (`<job-id>.json`, `<job-id>_DIRTY.json`) in the
//!   cluster's own result directory; from a shared one (`job-result-store.storage-path` set
//!   explicitly) only those of jobs the cluster's keys name;
//! - finally the namespace's own container if it is then empty
//!   ([`VersionedKv::remove_empty_namespace`]).
//!
//! Anything else (a foreign key, a namespace node holding data, unknown files, what looks like
//! another cluster's data below this one) is left alone and listed in the plan. Forcing adds the
//! foreign keys and blobs inside the cluster's namespace and blob directory — never another
//! cluster's data, never unattributable files of a shared result directory. Every key is deleted
//! at the version that was planned, so data written after planning is kept and reported.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::blob::BlobStore;
use crate::ids::JobId;
use crate::kv::{DeleteOptions, Entry, FencingToken, KvError, Version, VersionedKv};
use crate::layout::{Layout, is_layout_key};
use crate::services::HaError;
use crate::store::{
    CHECKPOINT_BLOB_PREFIX, EXECUTION_PLAN_BLOB_PREFIX, FileJobResultStore, JOB_GRAPH_BLOB_PREFIX,
};

/// One key the plan deletes, at the version it was read with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedKey {
    /// The key, relative to the cluster namespace.
    pub key: String,
    /// The version read while planning; the delete is conditioned on it.
    #[serde(skip)]
    pub version: Version,
    /// Whether a (live or expired) session owns it.
    pub ephemeral: bool,
    /// Whether it is foreign and only planned because of `force`.
    pub forced: bool,
}

/// Something the plan leaves alone, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeftAlone {
    /// The key, blob or file name.
    pub name: String,
    /// Why it stays.
    pub reason: String,
}

/// What a cleanup deletes and what it leaves alone; computed before anything is deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CleanupPlan {
    /// Keys to delete, in deletion order (deepest first).
    pub keys: Vec<PlannedKey>,
    /// Keys left alone.
    pub kept_keys: Vec<LeftAlone>,
    /// Where the blobs are.
    pub blob_location: String,
    /// Blobs to delete (names relative to the blob location).
    pub blobs: Vec<String>,
    /// Blobs to delete only because of `force` (also in `blobs`).
    pub forced_blobs: Vec<String>,
    /// Blobs left alone.
    pub kept_blobs: Vec<LeftAlone>,
    /// Where the job result files are, if results are kept as files.
    pub job_result_location: Option<String>,
    /// Job result files to delete.
    pub job_result_files: Vec<String>,
    /// Files of the job result directory left alone.
    pub kept_job_result_files: Vec<LeftAlone>,
    /// Whether `force` was given.
    pub forced: bool,
}

/// What a cleanup actually removed, and what it skipped because it changed after planning.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CleanupOutcome {
    /// Keys deleted.
    pub keys: Vec<String>,
    /// Planned keys not deleted (changed, gained children or vanished since planning).
    pub skipped_keys: Vec<LeftAlone>,
    /// Containers of the namespace removed once empty (znode paths, ConfigMap names).
    pub namespace: Vec<String>,
    /// Blobs deleted.
    pub blobs: Vec<String>,
    /// Job result files deleted.
    pub job_result_files: Vec<String>,
}

/// Where the job result files of the cluster live, for planning.
#[derive(Clone, Debug)]
pub struct JobResultFiles {
    /// The directory.
    pub dir: BlobStore,
    /// Whether other clusters may keep results there too.
    pub shared: bool,
}

/// Whether `name` (relative to `<storageDir>/<cluster-id>`) is a blob tenure's or Flink's HA
/// stores write: `completedCheckpoint<id>`, `submittedExecutionPlan<id>`,
/// `submittedJobGraph<id>` (an id of letters and digits), or Flink's HA blob server files
/// `blob/job_<job-id>/blob_…`.
pub fn is_ha_blob(name: &str) -> bool {
    let segs: Vec<&str> = name.split('/').collect();
    match segs.as_slice() {
        [file] => [
            CHECKPOINT_BLOB_PREFIX,
            EXECUTION_PLAN_BLOB_PREFIX,
            JOB_GRAPH_BLOB_PREFIX,
        ]
        .iter()
        .any(|p| {
            file.strip_prefix(p).is_some_and(|id| {
                !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
            })
        }),
        ["blob", dir, file] => {
            dir.strip_prefix("job_")
                .is_some_and(|j| JobId::parse(j).is_ok())
                && file.starts_with("blob_")
                && file.len() > "blob_".len()
        }
        _ => false,
    }
}

/// Where another cluster's HA data seems to start below this one: for a name whose tail is
/// owned (`<other>/leader/latch`, `<other>/completedCheckpoint…`), the part before that tail.
fn nested_root(name: &str, owned: impl Fn(&str) -> bool) -> Option<&str> {
    let mut at = 0;
    while let Some(i) = name[at..].find('/') {
        let split = at + i;
        if owned(&name[split + 1..]) {
            return Some(&name[..split]);
        }
        at = split + 1;
    }
    None
}

/// The roots of what looks like other clusters' data among `names` (see [`nested_root`]).
fn nested_roots<'a>(
    names: impl Iterator<Item = &'a str>,
    owned: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut roots: Vec<String> = names
        .filter(|n| !owned(n))
        .filter_map(|n| nested_root(n, &owned).map(str::to_owned))
        .collect();
    roots.sort();
    roots.dedup();
    roots
}

/// Whether `name` is one of `roots` or lies below one.
fn in_nested(name: &str, roots: &[String]) -> bool {
    roots
        .iter()
        .any(|r| name == r || crate::kv::is_below(r, name))
}

/// The job ids named anywhere in `keys` (job graphs, per-job data, results, leaders).
fn referenced_jobs<'a>(keys: impl Iterator<Item = &'a str>) -> BTreeSet<JobId> {
    keys.filter_map(|key| Layout::parse_any_era(key)?.1.job())
        .collect()
}

/// How many `/`-separated segments `key` has.
fn depth(key: &str) -> usize {
    key.matches('/').count() + 1
}

/// A key that keeps a cleanup off itself and every key above it, and why.
#[derive(Clone, Debug)]
pub(crate) struct Blocker<'a> {
    /// The key.
    pub key: &'a str,
    /// Why it stays (shown for the key itself).
    pub reason: String,
}

/// Splits `entries` into the keys to delete (deepest first, each at the version read) and the
/// keys left alone: a blocker itself, and every key with a blocker below it.
pub(crate) fn plan_keys<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    blockers: &[Blocker<'_>],
) -> (Vec<PlannedKey>, Vec<LeftAlone>) {
    let (mut keys, mut kept) = (Vec::new(), Vec::new());
    for e in entries {
        let key = e.key.as_str();
        let below = blockers
            .iter()
            .find(|b| crate::kv::is_below(key, b.key) || b.key == key);
        match below {
            Some(b) if b.key == key => kept.push(LeftAlone {
                name: key.to_owned(),
                reason: b.reason.clone(),
            }),
            Some(b) => kept.push(LeftAlone {
                name: key.to_owned(),
                reason: format!("data that is not ours lies below it ({})", b.key),
            }),
            None => keys.push(PlannedKey {
                key: key.to_owned(),
                version: e.version,
                ephemeral: e.ephemeral_owner.is_some(),
                forced: !is_layout_key(key),
            }),
        }
    }
    keys.sort_by(|a, b| depth(&b.key).cmp(&depth(&a.key)).then(b.key.cmp(&a.key)));
    kept.sort_by(|a, b| a.name.cmp(&b.name));
    (keys, kept)
}

/// What became of one planned key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyDeletion {
    /// Deleted at its planned version.
    Deleted,
    /// Gone already (someone else deleted it).
    Gone,
    /// Not deleted because it changed since planning; why.
    Changed(&'static str),
}

/// Deletes `key` at its planned version, fenced by `fence` if given. A key that changed since
/// planning is reported, never deleted; a refused fence ([`KvError::NotLeader`]) and backend
/// failures are errors.
pub(crate) async fn delete_planned_key(
    kv: &dyn VersionedKv,
    key: &PlannedKey,
    fence: Option<&FencingToken>,
) -> Result<KeyDeletion, KvError> {
    let opts = DeleteOptions {
        expected: Some(key.version),
        fence: fence.cloned(),
        recursive: false,
    };
    match kv.delete(&key.key, opts).await {
        Ok(()) => Ok(KeyDeletion::Deleted),
        Err(KvError::NotFound { .. }) => Ok(KeyDeletion::Gone),
        Err(KvError::VersionConflict { .. }) => {
            Ok(KeyDeletion::Changed("written since it was planned"))
        }
        Err(KvError::NotEmpty { .. }) => {
            Ok(KeyDeletion::Changed("gained children since it was planned"))
        }
        Err(e) => Err(e),
    }
}

impl CleanupPlan {
    /// Computes the plan from what the backend, the blob store and the job result directory
    /// hold now. Reads only.
    pub async fn compute(
        kv: &dyn VersionedKv,
        blobs: &BlobStore,
        job_results: Option<&JobResultFiles>,
        force: bool,
    ) -> Result<Self, HaError> {
        let entries = kv.list("").await?;
        let foreign: Vec<&str> = entries
            .iter()
            .map(|e| e.key.as_str())
            .filter(|k| !is_layout_key(k))
            .collect();
        let roots = nested_roots(entries.iter().map(|e| e.key.as_str()), is_layout_key);
        let nested: Vec<&str> = foreign
            .iter()
            .copied()
            .filter(|k| in_nested(k, &roots))
            .collect();
        let blocking: Vec<&str> = if force { nested.clone() } else { foreign };
        let mut plan = CleanupPlan {
            forced: force,
            blob_location: blobs.location().to_owned(),
            ..Default::default()
        };
        let blockers: Vec<Blocker<'_>> = blocking
            .iter()
            .map(|&key| Blocker {
                key,
                reason: if nested.contains(&key) {
                    "looks like another cluster's HA data below this namespace"
                } else {
                    "not a key of the HA layout (--force adds it)"
                }
                .into(),
            })
            .collect();
        (plan.keys, plan.kept_keys) = plan_keys(entries.iter(), &blockers);

        let names = blobs.list("").await?;
        let blob_roots = nested_roots(names.iter().map(String::as_str), is_ha_blob);
        for name in names {
            if is_ha_blob(&name) {
                plan.blobs.push(name);
            } else if in_nested(&name, &blob_roots) {
                plan.kept_blobs.push(LeftAlone {
                    name,
                    reason: "looks like another cluster's blob below this directory".into(),
                });
            } else if force {
                plan.forced_blobs.push(name.clone());
                plan.blobs.push(name);
            } else {
                plan.kept_blobs.push(LeftAlone {
                    name,
                    reason: "not named like an HA blob (--force adds it)".into(),
                });
            }
        }

        if let Some(files) = job_results {
            plan.job_result_location = Some(files.dir.location().to_owned());
            // Only the cluster's own keys count: a foreign key naming a job proves nothing.
            let jobs = referenced_jobs(
                entries
                    .iter()
                    .map(|e| e.key.as_str())
                    .filter(|k| is_layout_key(k)),
            );
            for name in files.dir.list("").await? {
                let reason = match FileJobResultStore::parse_name(&name) {
                    None => "not a job result file (<job-id>.json or <job-id>_DIRTY.json)",
                    Some((job, _)) if files.shared && !jobs.contains(&job) => {
                        "in a shared job result directory, of a job this cluster does not name"
                    }
                    Some(_) => {
                        plan.job_result_files.push(name);
                        continue;
                    }
                };
                plan.kept_job_result_files.push(LeftAlone {
                    name,
                    reason: reason.into(),
                });
            }
        }
        Ok(plan)
    }

    /// Whether the plan deletes nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.blobs.is_empty() && self.job_result_files.is_empty()
    }

    /// Deletes exactly the plan: every key at its planned version (deepest first), then the
    /// namespace's container if it is empty, the blobs and the job result files. A key that
    /// changed since planning is skipped and reported, never deleted.
    pub async fn execute(
        &self,
        kv: &dyn VersionedKv,
        blobs: &BlobStore,
        job_results: Option<&JobResultFiles>,
    ) -> Result<CleanupOutcome, HaError> {
        let mut out = CleanupOutcome::default();
        for k in &self.keys {
            match delete_planned_key(kv, k, None).await? {
                KeyDeletion::Deleted => out.keys.push(k.key.clone()),
                KeyDeletion::Gone => out.skipped_keys.push(LeftAlone {
                    name: k.key.clone(),
                    reason: "gone already".into(),
                }),
                KeyDeletion::Changed(reason) => out.skipped_keys.push(LeftAlone {
                    name: k.key.clone(),
                    reason: reason.into(),
                }),
            }
        }
        out.namespace = kv.remove_empty_namespace().await?;
        for name in &self.blobs {
            blobs.delete(name).await?;
            out.blobs.push(name.clone());
        }
        if let Some(files) = job_results {
            for name in &self.job_result_files {
                files.dir.delete(name).await?;
                out.job_result_files.push(name.clone());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "58c7b669261b7be65fa686cc039885b6";

    #[test]
    fn ha_blobs_are_recognised_by_name() {
        assert!(is_ha_blob("completedCheckpoint2e1519c07c46"));
        assert!(is_ha_blob("submittedExecutionPlan0123456789ab"));
        assert!(is_ha_blob(&format!("blob/job_{JOB}/blob_p-1-2")));
        for name in [
            "completedCheckpoint",
            "notes.txt",
            "other/completedCheckpoint2e1519c07c46",
            "completedCheckpoint../x",
            "job-result-store/x/y.json",
        ] {
            assert!(!is_ha_blob(name), "{name}");
        }
        assert_eq!(
            nested_root("other/completedCheckpoint2e1519c07c46", is_ha_blob),
            Some("other")
        );
        assert_eq!(nested_root("x/b/leader/latch", is_layout_key), Some("x/b"));
        assert_eq!(nested_root("notes.txt", is_ha_blob), None);
        let roots = nested_roots(
            ["b/leader/latch", "b/notes", "notes"].into_iter(),
            is_layout_key,
        );
        assert_eq!(roots, ["b"]);
        assert!(in_nested("b/notes", &roots) && in_nested("b", &roots));
        assert!(!in_nested("notes", &roots) && !in_nested("bb/x", &roots));
    }
}
