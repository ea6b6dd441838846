//! Flink's file-based job result store (`FileSystemJobResultStore`) on the blob store, in Flink's
//! own layout so either can read what the other wrote:
//!
//! ```text
//! <storageDir>/job-result-store/<cluster-id>/<job-id>_DIRTY.json   dirty (created, never overwritten)
//! <storageDir>/job-result-store/<cluster-id>/<job-id>.json         clean (only without delete-on-commit)
//! ```

use super::StoreError;
use super::job_result::JobResultEntry;
use crate::blob::{BlobError, BlobStore};
use crate::ids::JobId;

const DIRTY_SUFFIX: &str = "_DIRTY.json";
const CLEAN_SUFFIX: &str = ".json";
/// The directory below the storage directory holding every cluster's job results.
pub const JOB_RESULT_STORE_DIR: &str = "job-result-store";

/// Job results as JSON files (Flink's `FileSystemJobResultStore`).
#[derive(Clone, Debug)]
pub struct FileJobResultStore {
    blobs: BlobStore,
    delete_on_commit: bool,
}

impl FileJobResultStore {
    /// The store whose files live directly in `base` (`job-result-store.storage-path`).
    /// With `delete_on_commit` (Flink's default) a clean result's file is deleted; without it
    /// the file is renamed to `<job-id>.json` and kept.
    pub fn new(base: BlobStore, delete_on_commit: bool) -> Self {
        Self {
            blobs: base,
            delete_on_commit,
        }
    }

    /// The store at Flink's default location, `<storageDir>/job-result-store/<cluster-id>`, where
    /// `storage_dir` is the blob store of `high-availability.storageDir` itself.
    pub fn in_storage_dir(
        storage_dir: &BlobStore,
        cluster_id: &str,
        delete_on_commit: bool,
    ) -> Self {
        let base = storage_dir
            .child(JOB_RESULT_STORE_DIR)
            .child(cluster_id.trim_matches('/'));
        Self::new(base, delete_on_commit)
    }

    /// Where the files live, for messages.
    pub fn location(&self) -> &str {
        self.blobs.location()
    }

    fn file_name(job: JobId, dirty: bool) -> String {
        format!("{job}{}", if dirty { DIRTY_SUFFIX } else { CLEAN_SUFFIX })
    }

    /// `(job, dirty)` of a result file name named as Flink names them (`<job-id>.json`,
    /// `<job-id>_DIRTY.json`, no sub-directories), else `None`.
    pub fn parse_name(name: &str) -> Option<(JobId, bool)> {
        let job = JobId::parse(name.get(..32)?).ok()?;
        [true, false]
            .into_iter()
            .find(|dirty| Self::file_name(job, *dirty) == name)
            .map(|dirty| (job, dirty))
    }

    fn path_for_messages(&self, name: &str) -> String {
        format!("{}/{name}", self.location().trim_end_matches('/'))
    }

    async fn results(&self, dirty: bool) -> Result<Vec<JobResultEntry>, StoreError> {
        let mut out = Vec::new();
        for name in self.blobs.list("").await? {
            let Some((job, is_dirty)) = Self::parse_name(&name) else {
                continue;
            };
            if is_dirty != dirty {
                continue;
            }
            let data = match self.blobs.get(&name).await {
                Ok(data) => data,
                // Marked clean between listing and reading.
                Err(BlobError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            out.push(JobResultEntry::from_json_of(
                &self.path_for_messages(&name),
                &data,
                job,
            )?);
        }
        Ok(out)
    }
}

/// The operations behind [`JobResultStore`].
impl FileJobResultStore {
    pub(crate) async fn create_dirty(&self, entry: &JobResultEntry) -> Result<(), StoreError> {
        let job = entry.job_id;
        if self.has_entry(job).await? {
            return Err(StoreError::AlreadyExists(format!("job result of {job}")));
        }
        let name = Self::file_name(job, true);
        match self.blobs.put_new(&name, entry.to_json()).await {
            Ok(()) => Ok(()),
            Err(BlobError::AlreadyExists(_)) => Err(StoreError::AlreadyExists(format!(
                "job result {}",
                self.path_for_messages(&name)
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn mark_clean(&self, job: JobId) -> Result<(), StoreError> {
        let dirty = Self::file_name(job, true);
        if !self.blobs.exists(&dirty).await? {
            if self.has_clean(job).await? {
                return Ok(());
            }
            return Err(StoreError::NotFound(format!(
                "dirty job result {}",
                self.path_for_messages(&dirty)
            )));
        }
        if self.delete_on_commit {
            self.blobs.delete(&dirty).await?;
        } else {
            self.blobs
                .rename(&dirty, &Self::file_name(job, false))
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn has_dirty(&self, job: JobId) -> Result<bool, StoreError> {
        Ok(self.blobs.exists(&Self::file_name(job, true)).await?)
    }

    pub(crate) async fn has_clean(&self, job: JobId) -> Result<bool, StoreError> {
        Ok(self.blobs.exists(&Self::file_name(job, false)).await?)
    }

    pub(crate) async fn dirty_results(&self) -> Result<Vec<JobResultEntry>, StoreError> {
        self.results(true).await
    }

    pub(crate) async fn clean_results(&self) -> Result<Vec<JobResultEntry>, StoreError> {
        self.results(false).await
    }

    pub(crate) async fn remove(&self, job: JobId) -> Result<(), StoreError> {
        for dirty in [true, false] {
            self.blobs.delete(&Self::file_name(job, dirty)).await?;
        }
        Ok(())
    }

    /// Whether the job has any entry.
    pub(crate) async fn has_entry(&self, job: JobId) -> Result<bool, StoreError> {
        Ok(self.has_dirty(job).await? || self.has_clean(job).await?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::job_result::ApplicationStatus;
    use crate::store::job_result::tests::{FLINK_JSON, exercise, flink_job};

    fn open(dir: &tempfile::TempDir) -> BlobStore {
        BlobStore::open(dir.path().to_str().unwrap(), "").unwrap()
    }

    #[tokio::test]
    async fn behaves_in_memory_and_on_disk_with_and_without_delete_on_commit() {
        exercise(FileJobResultStore::new(BlobStore::in_memory(), true), false).await;
        exercise(FileJobResultStore::new(BlobStore::in_memory(), false), true).await;
        let dir = tempfile::tempdir().unwrap();
        exercise(FileJobResultStore::new(open(&dir), true), false).await;
        exercise(FileJobResultStore::new(open(&dir), false), true).await;
    }

    #[tokio::test]
    async fn reads_what_flink_wrote_and_writes_flink_files() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("job-result-store/peer1");
        std::fs::create_dir_all(&base).unwrap();
        let job = flink_job();
        std::fs::write(base.join(format!("{job}_DIRTY.json")), FLINK_JSON).unwrap();
        std::fs::write(base.join("README.txt"), "not a result").unwrap();
        let store = FileJobResultStore::in_storage_dir(&open(&dir), "/peer1", false);
        assert!(store.has_dirty(job).await.unwrap());
        let dirty = store.dirty_results().await.unwrap();
        assert_eq!(
            dirty,
            vec![JobResultEntry::new(job, ApplicationStatus::Succeeded, 1961)]
        );
        store.mark_clean(job).await.unwrap();
        assert!(!base.join(format!("{job}_DIRTY.json")).exists());
        assert_eq!(
            std::fs::read_to_string(base.join(format!("{job}.json"))).unwrap(),
            FLINK_JSON
        );
        assert!(store.has_clean(job).await.unwrap());

        // What tenure writes is byte for byte what Flink wrote.
        let deleting = FileJobResultStore::in_storage_dir(&open(&dir), "peer2", true);
        deleting.create_dirty(&dirty[0]).await.unwrap();
        let written = dir
            .path()
            .join(format!("job-result-store/peer2/{job}_DIRTY.json"));
        assert_eq!(std::fs::read_to_string(&written).unwrap(), FLINK_JSON);
        deleting.mark_clean(job).await.unwrap();
        assert!(!written.exists());
        assert!(!deleting.has_entry(job).await.unwrap());
    }

    #[tokio::test]
    async fn a_corrupt_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let job = JobId::new_random();
        std::fs::write(
            dir.path().join(format!("{job}_DIRTY.json")),
            b"{\"result\":",
        )
        .unwrap();
        let store = FileJobResultStore::new(open(&dir), true);
        let err = store.dirty_results().await.unwrap_err();
        let StoreError::Corrupt { key, .. } = &err else {
            panic!("not corrupt: {err}")
        };
        assert!(key.ends_with(&format!("{job}_DIRTY.json")), "{key}");
        // The result exists, so a new dirty entry is refused.
        let entry = JobResultEntry::new(job, ApplicationStatus::Succeeded, 1);
        assert!(matches!(
            store.create_dirty(&entry).await,
            Err(StoreError::AlreadyExists(_))
        ));
    }

    #[tokio::test]
    async fn an_empty_location_has_no_results() {
        let store = FileJobResultStore::in_storage_dir(&BlobStore::in_memory(), "/default", true);
        assert!(store.dirty_results().await.unwrap().is_empty());
        let dir = tempfile::tempdir().unwrap();
        let store = FileJobResultStore::in_storage_dir(&open(&dir), "/default", true);
        assert!(store.dirty_results().await.unwrap().is_empty());
    }
}
