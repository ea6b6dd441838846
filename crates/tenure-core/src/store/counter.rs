//! The checkpoint id counter of one job (Flink's `ZooKeeperCheckpointIDCounter`, a Curator
//! `SharedCount`): key `jobs/<job-id>/checkpoint_id_counter`, value the next id to hand out as a
//! 4-byte big-endian signed int, updated by compare-and-set on the key's version so every id is
//! handed out once, even by two processes at the same time.
//!
//! The decimal-string form of Flink's Kubernetes backend (`"42"`) is read as well; tenure always
//! writes the 4-byte form.

use std::sync::Arc;

use bytes::Bytes;

use super::Writes;
use super::{
    JobStatus, MAX_CAS_ATTEMPTS, StoreError, delete_opts, ignore_not_found, persistent,
    too_much_contention,
};
use crate::ids::{CheckpointId, JobId};
use crate::kv::{FencingToken, KvError, Version, VersionedKv};
use crate::layout::Layout;

/// The largest value the counter holds (Curator `SharedCount` is a Java `int`).
const MAX_VALUE: u64 = i32::MAX as u64;

/// Encodes a counter value as 4 big-endian bytes; values above `i32::MAX` are refused.
pub fn encode_counter(value: CheckpointId) -> Result<Bytes, StoreError> {
    let v = i32::try_from(value.0).map_err(|_| {
        StoreError::InvalidArgument(format!(
            "checkpoint id {value} exceeds the counter's maximum {MAX_VALUE}"
        ))
    })?;
    Ok(Bytes::copy_from_slice(&v.to_be_bytes()))
}

/// Decodes the counter value stored under `key`: exactly 4 bytes are a big-endian int
/// (ZooKeeper form), other lengths a decimal string (Kubernetes form). Anything else, and
/// negative values, are [`StoreError::Corrupt`] naming `key`.
pub fn decode_counter(key: &str, bytes: &[u8]) -> Result<CheckpointId, StoreError> {
    if let Ok(four) = <[u8; 4]>::try_from(bytes) {
        let v = i32::from_be_bytes(four);
        return u64::try_from(v)
            .map(CheckpointId)
            .map_err(|_| StoreError::corrupt(key, format!("negative counter value {v}")));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| StoreError::corrupt(key, "counter is neither 4 bytes nor a decimal string"))?
        .trim();
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::corrupt(
            key,
            format!("counter {text:?} is neither 4 bytes nor a decimal number"),
        ));
    }
    text.parse::<u64>()
        .map(CheckpointId)
        .map_err(|e| StoreError::corrupt(key, format!("counter {text:?}: {e}")))
}

/// The checkpoint id counter of one job (Flink's `CheckpointIDCounter`): starts at 1; every
/// increment is a compare-and-set, fenced when taken from a leader term's stores.
///
/// ```
/// # use tenure_core::config::HaConfig;
/// # use tenure_core::embedded::EmbeddedCluster;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let services = EmbeddedCluster::new().services(&HaConfig::embedded())?;
/// use tenure_core::ids::{CheckpointId, JobId};
///
/// let mut election = services.dispatcher_leader_election().await?;
/// let term = election.wait_for_leadership().await?;
/// let counter = services.leader_stores(&term).checkpoint_id_counter(JobId::new_random());
/// counter.start().await?;
/// assert_eq!(counter.get_and_increment().await?, CheckpointId(1));
/// assert_eq!(counter.get().await?, CheckpointId(2));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CheckpointIdCounter {
    kv: Arc<dyn VersionedKv>,
    key: String,
    fence: Option<FencingToken>,
}

impl CheckpointIdCounter {
    /// The counter of `job`, writing as `writes`.
    pub fn new(kv: Arc<dyn VersionedKv>, layout: Layout, job: JobId, writes: Writes) -> Self {
        Self {
            kv,
            key: layout.checkpoint_counter(&job),
            fence: writes.into_token(),
        }
    }

    /// The key holding the counter.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Creates the counter with [`CheckpointId::INITIAL`] unless it exists.
    pub async fn start(&self) -> Result<(), StoreError> {
        let value = encode_counter(CheckpointId::INITIAL)?;
        match self
            .kv
            .create(&self.key, value, persistent(&self.fence))
            .await
        {
            Ok(_) | Err(KvError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self) -> Result<Option<(CheckpointId, Version)>, StoreError> {
        match self.kv.get(&self.key).await? {
            None => Ok(None),
            Some(e) => Ok(Some((decode_counter(&self.key, &e.value)?, e.version))),
        }
    }

    /// The next id to be handed out ([`CheckpointId::INITIAL`] if the counter does not exist).
    pub async fn get(&self) -> Result<CheckpointId, StoreError> {
        Ok(self.read().await?.map_or(CheckpointId::INITIAL, |(v, _)| v))
    }

    /// Hands out the next id and advances the counter, atomically: concurrent callers (in any
    /// process) never get the same id. Fails when the counter would pass `i32::MAX`.
    #[tracing::instrument(level = "debug", skip_all, fields(key = %self.key))]
    pub async fn get_and_increment(&self) -> Result<CheckpointId, StoreError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = self.read().await?;
            let id = current.map_or(CheckpointId::INITIAL, |(v, _)| v);
            if id.0 >= MAX_VALUE {
                return Err(StoreError::InvalidArgument(format!(
                    "checkpoint id counter {:?} would overflow past {MAX_VALUE}",
                    self.key
                )));
            }
            let next = encode_counter(CheckpointId(id.0 + 1))?;
            if self.write(current.map(|(_, v)| v), next).await? {
                return Ok(id);
            }
        }
        Err(too_much_contention(&self.key))
    }

    /// Sets the next id to hand out (on restore: the restored checkpoint's id + 1). Values above
    /// `i32::MAX` are refused.
    #[tracing::instrument(level = "debug", skip_all, fields(key = %self.key, %value))]
    pub async fn set(&self, value: CheckpointId) -> Result<(), StoreError> {
        let bytes = encode_counter(value)?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let version = self.read_version().await?;
            if self.write(version, bytes.clone()).await? {
                return Ok(());
            }
        }
        Err(too_much_contention(&self.key))
    }

    async fn read_version(&self) -> Result<Option<Version>, StoreError> {
        Ok(self.kv.get(&self.key).await?.map(|e| e.version))
    }

    /// Writes `value` if the counter is still at `version` (absent for `None`); `Ok(false)` if
    /// another writer came first.
    async fn write(&self, version: Option<Version>, value: Bytes) -> Result<bool, StoreError> {
        let result = match version {
            None => self
                .kv
                .create(&self.key, value, persistent(&self.fence))
                .await
                .map(|_| ()),
            Some(v) => self
                .kv
                .compare_and_set(&self.key, value, v, self.fence.clone())
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => Ok(true),
            Err(
                KvError::AlreadyExists { .. }
                | KvError::VersionConflict { .. }
                | KvError::NotFound { .. },
            ) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Shuts the counter down: deleted if the job is globally terminal, kept otherwise.
    pub async fn shutdown(&self, status: JobStatus) -> Result<(), StoreError> {
        if status.is_globally_terminal() {
            ignore_not_found(
                self.kv
                    .delete(&self.key, delete_opts(&self.fence, true))
                    .await,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::embedded::EmbeddedCluster;
    use crate::store::test_util::{kv, lead, stale_token};

    #[test]
    fn golden_bytes_and_kubernetes_form() {
        assert_eq!(
            &encode_counter(CheckpointId(42)).unwrap()[..],
            [0, 0, 0, 0x2A]
        );
        assert_eq!(&encode_counter(CheckpointId(1)).unwrap()[..], [0, 0, 0, 1]);
        assert!(encode_counter(CheckpointId(1 << 31)).is_err());
        assert_eq!(
            decode_counter("k", &[0, 0, 0, 0x2A]).unwrap(),
            CheckpointId(42)
        );
        assert_eq!(
            decode_counter("k", &[0x7F, 0xFF, 0xFF, 0xFF]).unwrap().0,
            MAX_VALUE
        );
        assert_eq!(decode_counter("k", b"42").unwrap(), CheckpointId(42));
        assert_eq!(
            decode_counter("k", b"123456").unwrap(),
            CheckpointId(123456)
        );
        for bad in [&b""[..], b"4x", b"-1", &[0xFF, 0xFF, 0xFF, 0xFF], &[0xC3]] {
            let err = decode_counter("jobs/j/checkpoint_id_counter", bad).unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt { key, .. } if key == "jobs/j/checkpoint_id_counter"),
                "{bad:?}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn starts_at_one_and_increments() {
        let cluster = EmbeddedCluster::new();
        let s = cluster.connect();
        let job = JobId::new_random();
        let c = CheckpointIdCounter::new(kv(&s), Layout::default(), job, Writes::Unfenced);
        assert_eq!(c.get().await.unwrap(), CheckpointId(1));
        c.start().await.unwrap();
        let stored = s.get(c.key()).await.unwrap().unwrap();
        assert_eq!(&stored.value[..], [0, 0, 0, 1]);
        assert_eq!(c.get_and_increment().await.unwrap(), CheckpointId(1));
        assert_eq!(c.get_and_increment().await.unwrap(), CheckpointId(2));
        assert_eq!(c.get().await.unwrap(), CheckpointId(3));
        c.start().await.unwrap(); // keeps the value
        assert_eq!(c.get().await.unwrap(), CheckpointId(3));
        c.set(CheckpointId(42)).await.unwrap();
        assert_eq!(
            &s.get(c.key()).await.unwrap().unwrap().value[..],
            [0, 0, 0, 0x2A]
        );
        assert!(c.set(CheckpointId(MAX_VALUE + 1)).await.is_err());
        c.set(CheckpointId(MAX_VALUE)).await.unwrap();
        assert!(c.get_and_increment().await.is_err(), "overflow");
        assert_eq!(c.get().await.unwrap().0, MAX_VALUE);

        c.shutdown(JobStatus::Suspended).await.unwrap();
        assert!(s.get(c.key()).await.unwrap().is_some());
        c.shutdown(JobStatus::Canceled).await.unwrap();
        assert!(cluster.all_keys().is_empty());
        c.shutdown(JobStatus::Canceled).await.unwrap();
    }

    #[tokio::test]
    async fn a_kubernetes_decimal_value_is_continued() {
        let s = EmbeddedCluster::new().connect();
        let c = CheckpointIdCounter::new(
            kv(&s),
            Layout::default(),
            JobId::new_random(),
            Writes::Unfenced,
        );
        s.create(c.key(), Bytes::from_static(b"17"), Default::default())
            .await
            .unwrap();
        assert_eq!(c.get_and_increment().await.unwrap(), CheckpointId(17));
        assert_eq!(
            &s.get(c.key()).await.unwrap().unwrap().value[..],
            [0, 0, 0, 18]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_increments_hand_out_each_id_once() {
        let cluster = EmbeddedCluster::new();
        let job = JobId::new_random();
        let sessions = [cluster.connect(), cluster.connect()];
        let mut tasks = Vec::new();
        for i in 0..16 {
            // Two processes, eight tasks each.
            let s = sessions[i % 2].clone();
            let c = CheckpointIdCounter::new(kv(&s), Layout::default(), job, Writes::Unfenced);
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..10 {
                    ids.push(c.get_and_increment().await.unwrap());
                }
                drop(s);
                ids
            }));
        }
        let mut all = BTreeSet::new();
        for t in tasks {
            for id in t.await.unwrap() {
                assert!(all.insert(id), "{id} handed out twice");
            }
        }
        assert_eq!(all.len(), 160);
        assert_eq!(all.iter().next().copied(), Some(CheckpointId(1)));
        assert_eq!(all.iter().last().copied(), Some(CheckpointId(160)));
    }

    #[tokio::test]
    async fn stale_fence_writes_nothing() {
        let cluster = EmbeddedCluster::new();
        let s = cluster.connect();
        let stale = stale_token(&cluster).await;
        let (good, _latch) = lead(&s, "leader/latch").await;
        let job = JobId::new_random();
        let c = CheckpointIdCounter::new(kv(&s), Layout::default(), job, Writes::Fenced(stale));
        assert!(c.start().await.unwrap_err().is_not_leader());
        assert!(c.get_and_increment().await.unwrap_err().is_not_leader());
        assert!(cluster.all_keys().is_empty());
        let leader = CheckpointIdCounter::new(kv(&s), Layout::default(), job, Writes::Fenced(good));
        assert_eq!(leader.get_and_increment().await.unwrap(), CheckpointId(1));
        assert!(c.set(CheckpointId(9)).await.unwrap_err().is_not_leader());
        assert!(
            c.shutdown(JobStatus::Finished)
                .await
                .unwrap_err()
                .is_not_leader()
        );
        assert_eq!(c.get().await.unwrap(), CheckpointId(2));
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = decode_counter("k", &bytes);
        }

        #[test]
        fn values_round_trip(v in 0..=MAX_VALUE) {
            let bytes = encode_counter(CheckpointId(v)).unwrap();
            prop_assert_eq!(decode_counter("k", &bytes).unwrap(), CheckpointId(v));
        }
    }
}
