//! tenure's pointer encoding for store values: small payloads inline, large ones in the blob
//! store with a pointer (name, size, checksum) in the KV.
//!
//! Format (all integers big-endian):
//!
//! ```text
//! "TNR" 0x01 0x00 <payload bytes>                                   inline
//! "TNR" 0x01 0x01 <size u64> <fnv1a-64 u64> <name len u16> <name>   blob pointer
//! ```
//!
//! Anything else is [`StoreError::Corrupt`], except values written by Flink itself (a Java
//! serialization stream, raw or base64 as in Kubernetes ConfigMaps), which are
//! [`StoreError::Foreign`].

use bytes::Bytes;

use super::StoreError;
use super::foreign::{foreign_detail, is_foreign};
use crate::blob::{BlobError, BlobStore};

/// Payloads up to this many bytes are stored inline by default.
pub const DEFAULT_INLINE_THRESHOLD: usize = 1024;
/// Blob name prefix of job graphs, Flink 1.x (`submittedJobGraph<12 hex>`).
pub const JOB_GRAPH_BLOB_PREFIX: &str = "submittedJobGraph";
/// Blob name prefix of execution plans (job graphs), Flink 2.x.
pub const EXECUTION_PLAN_BLOB_PREFIX: &str = "submittedExecutionPlan";
/// Blob name prefix of completed checkpoints.
pub const CHECKPOINT_BLOB_PREFIX: &str = "completedCheckpoint";

const MAGIC: &[u8; 3] = b"TNR";
const VERSION: u8 = 1;
const KIND_INLINE: u8 = 0;
const KIND_BLOB: u8 = 1;
const MAX_NAME_LEN: usize = 255;

/// A decoded store value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// The payload itself.
    Inline(Bytes),
    /// A pointer to a blob.
    Blob {
        /// The blob's name in the blob store.
        name: String,
        /// The blob's size in bytes.
        size: u64,
        /// FNV-1a 64 of the blob's bytes.
        checksum: u64,
    },
}

impl Payload {
    /// The encoded bytes.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        match self {
            Payload::Inline(data) => {
                out.push(KIND_INLINE);
                out.extend_from_slice(data);
            }
            Payload::Blob {
                name,
                size,
                checksum,
            } => {
                out.push(KIND_BLOB);
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(&checksum.to_be_bytes());
                // Names are at most MAX_NAME_LEN bytes; a longer one is cut so the length fits
                // and the decoder reports the mismatch instead of misreading.
                let name = name.as_bytes();
                let len = name.len().min(u16::MAX as usize);
                out.extend_from_slice(&(len as u16).to_be_bytes());
                out.extend_from_slice(name.get(..len).unwrap_or_default());
            }
        }
        Bytes::from(out)
    }

    /// Decodes the value stored under `key`: [`StoreError::Foreign`] for Flink's bytes,
    /// [`StoreError::Corrupt`] (naming `key`) for anything that is not a tenure pointer.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Payload, StoreError> {
        if is_foreign(bytes) {
            return Err(StoreError::Foreign {
                key: key.to_owned(),
                detail: foreign_detail(bytes),
            });
        }
        let corrupt = |reason: &str| StoreError::corrupt(key, reason);
        let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
            return Err(corrupt("not a tenure value (missing \"TNR\" header)"));
        };
        let [version, kind, body @ ..] = rest else {
            return Err(corrupt("truncated header"));
        };
        if *version != VERSION {
            return Err(corrupt(&format!(
                "unsupported value format version {version}"
            )));
        }
        match *kind {
            KIND_INLINE => Ok(Payload::Inline(Bytes::copy_from_slice(body))),
            KIND_BLOB => {
                let mut r = body;
                let size = take_u64(&mut r).ok_or_else(|| corrupt("truncated blob pointer"))?;
                let checksum = take_u64(&mut r).ok_or_else(|| corrupt("truncated blob pointer"))?;
                let len = take_u16(&mut r).ok_or_else(|| corrupt("truncated blob pointer"))?;
                if r.len() != len as usize {
                    return Err(corrupt(&format!(
                        "blob name length {len} does not match the {} bytes left",
                        r.len()
                    )));
                }
                let name = std::str::from_utf8(r)
                    .map_err(|_| corrupt("blob name is not UTF-8"))?
                    .to_owned();
                if !valid_blob_name(&name) {
                    return Err(corrupt(&format!("invalid blob name {name:?}")));
                }
                Ok(Payload::Blob {
                    name,
                    size,
                    checksum,
                })
            }
            other => Err(corrupt(&format!("unknown value kind {other}"))),
        }
    }
}

fn take_u64(r: &mut &[u8]) -> Option<u64> {
    let (head, tail) = r.split_first_chunk::<8>()?;
    *r = tail;
    Some(u64::from_be_bytes(*head))
}

fn take_u16(r: &mut &[u8]) -> Option<u16> {
    let (head, tail) = r.split_first_chunk::<2>()?;
    *r = tail;
    Some(u16::from_be_bytes(*head))
}

/// Blob names tenure writes: one path segment of letters, digits, `_`, `-` and `.`.
fn valid_blob_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// FNV-1a, 64 bits: the checksum of blob payloads.
pub fn fnv1a64(data: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    data.iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// Stores payloads inline or in the blob store, and reads them back verified.
#[derive(Clone, Debug)]
pub struct PayloadCodec {
    blobs: BlobStore,
    threshold: usize,
}

impl PayloadCodec {
    /// A codec writing payloads larger than [`DEFAULT_INLINE_THRESHOLD`] to `blobs`.
    pub fn new(blobs: BlobStore) -> Self {
        Self {
            blobs,
            threshold: DEFAULT_INLINE_THRESHOLD,
        }
    }

    /// The same codec, storing payloads of up to `threshold` bytes inline.
    pub fn with_threshold(mut self, threshold: usize) -> Self {
        self.threshold = threshold;
        self
    }

    /// The blob store holding large payloads.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The inline threshold in bytes.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Stores `data` and returns the encoded value for the KV. Large payloads go to a new blob
    /// named `<blob_name_hint><12 random hex>` (Flink's file naming).
    pub async fn store(&self, blob_name_hint: &str, data: Bytes) -> Result<Bytes, StoreError> {
        if data.len() <= self.threshold {
            return Ok(Payload::Inline(data).encode());
        }
        let random: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .take(12)
            .collect();
        let name = format!("{blob_name_hint}{random}");
        if !valid_blob_name(&name) {
            return Err(StoreError::InvalidArgument(format!(
                "blob name hint {blob_name_hint:?} gives the invalid blob name {name:?}"
            )));
        }
        let pointer = Payload::Blob {
            name: name.clone(),
            size: data.len() as u64,
            checksum: fnv1a64(&data),
        };
        // In place: nothing reads the blob before the pointer returned here is committed, and
        // `load` checks the size and checksum the pointer carries.
        self.blobs.put_new_in_place(&name, data).await?;
        Ok(pointer.encode())
    }

    /// Reads the payload of the value `encoded` stored under `key`, checking the blob's size and
    /// checksum. A missing or damaged blob is [`StoreError::Corrupt`] naming `key`.
    pub async fn load(&self, key: &str, encoded: &[u8]) -> Result<Bytes, StoreError> {
        match Payload::decode(key, encoded)? {
            Payload::Inline(data) => Ok(data),
            Payload::Blob {
                name,
                size,
                checksum,
            } => {
                let data = match self.blobs.get(&name).await {
                    Ok(data) => data,
                    Err(BlobError::NotFound(_)) => {
                        return Err(StoreError::corrupt(
                            key,
                            format!("blob {name:?} in {} is missing", self.blobs.location()),
                        ));
                    }
                    Err(e) => return Err(e.into()),
                };
                if data.len() as u64 != size {
                    return Err(StoreError::corrupt(
                        key,
                        format!("blob {name:?} has {} bytes, expected {size}", data.len()),
                    ));
                }
                if fnv1a64(&data) != checksum {
                    return Err(StoreError::corrupt(
                        key,
                        format!("blob {name:?} fails its checksum"),
                    ));
                }
                Ok(data)
            }
        }
    }

    /// Deletes the blob the value `encoded` (stored under `key`) points to, if any. A missing
    /// blob is fine; Flink's values are refused with [`StoreError::Foreign`].
    pub async fn discard(&self, key: &str, encoded: &[u8]) -> Result<(), StoreError> {
        if let Payload::Blob { name, .. } = Payload::decode(key, encoded)? {
            self.blobs.delete(&name).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn small_payloads_are_inline_and_large_ones_in_a_blob() {
        let codec = PayloadCodec::new(BlobStore::in_memory()).with_threshold(4);
        let small = codec.store("x", Bytes::from_static(b"abcd")).await.unwrap();
        assert_eq!(&small[..], b"TNR\x01\x00abcd");
        assert!(codec.blobs().list("").await.unwrap().is_empty());
        assert_eq!(codec.load("k", &small).await.unwrap(), &b"abcd"[..]);

        let big = codec
            .store(CHECKPOINT_BLOB_PREFIX, Bytes::from_static(b"abcde"))
            .await
            .unwrap();
        let names = codec.blobs().list("").await.unwrap();
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with("completedCheckpoint"));
        assert_eq!(names[0].len(), "completedCheckpoint".len() + 12);
        assert_eq!(codec.load("k", &big).await.unwrap(), &b"abcde"[..]);
        codec.discard("k", &big).await.unwrap();
        assert!(codec.blobs().list("").await.unwrap().is_empty());
        let err = codec.load("some/key", &big).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { key, .. } if key == "some/key"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn damaged_blob_is_detected_and_names_the_key() {
        let codec = PayloadCodec::new(BlobStore::in_memory()).with_threshold(0);
        let ptr = codec
            .store("p", Bytes::from_static(b"hello"))
            .await
            .unwrap();
        let Payload::Blob { name, .. } = Payload::decode("k", &ptr).unwrap() else {
            panic!("not a blob")
        };
        codec
            .blobs()
            .put(&name, Bytes::from_static(b"hellO"))
            .await
            .unwrap();
        let err = codec.load("jobs/x", &ptr).await.unwrap_err();
        assert!(err.to_string().contains("jobs/x") && err.to_string().contains("checksum"));
        codec
            .blobs()
            .put(&name, Bytes::from_static(b"hell"))
            .await
            .unwrap();
        let err = codec.load("jobs/x", &ptr).await.unwrap_err();
        assert!(err.to_string().contains("expected 5"), "{err}");
    }

    #[tokio::test]
    async fn a_partly_written_local_blob_is_reported_corrupt_never_read() {
        // A local directory: the blob is written in place, so a crash mid-write leaves a short
        // file under the blob's own name. Its pointer's size and checksum catch it.
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path().to_str().unwrap(), "cluster").unwrap();
        let codec = PayloadCodec::new(blobs).with_threshold(0);
        let data = Bytes::from(vec![42u8; 4096]);
        let ptr = codec.store("graph-", data.clone()).await.unwrap();
        assert_eq!(codec.load("jobs/x", &ptr).await.unwrap(), data);
        let Payload::Blob { name, .. } = Payload::decode("k", &ptr).unwrap() else {
            panic!("not a blob")
        };
        let file = dir.path().join("cluster").join(&name);
        std::fs::write(&file, &data[..1000]).unwrap();
        let err = codec.load("jobs/x", &ptr).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { key, .. } if key == "jobs/x"),
            "{err}"
        );
        assert!(err.to_string().contains("expected 4096"), "{err}");
    }

    #[test]
    fn pointer_golden_bytes() {
        let p = Payload::Blob {
            name: "ab".into(),
            size: 2,
            checksum: 0x0102,
        };
        let bytes = p.encode();
        assert_eq!(
            &bytes[..],
            b"TNR\x01\x01\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\x01\x02\0\x02ab"
        );
        assert_eq!(Payload::decode("k", &bytes).unwrap(), p);
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn garbage_is_corrupt_and_names_the_key() {
        for bad in [
            &b""[..],
            b"TN",
            b"TNR",
            b"TNR\x02\x00",
            b"TNR\x01\x07",
            b"TNR\x01\x01\0",
        ] {
            let err = Payload::decode("the/key", bad).unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt { key, .. } if key == "the/key"),
                "{bad:?}: {err}"
            );
        }
        let mut traversal = b"TNR\x01\x01".to_vec();
        traversal.extend_from_slice(&[0; 16]);
        traversal.extend_from_slice(&[0, 5]);
        traversal.extend_from_slice(b"../x/");
        assert!(Payload::decode("k", &traversal).is_err());
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Payload::decode("k", &bytes);
            let mut tnr = b"TNR\x01\x01".to_vec();
            tnr.extend_from_slice(&bytes);
            let _ = Payload::decode("k", &tnr);
        }

        #[test]
        fn pointers_round_trip(data in proptest::collection::vec(any::<u8>(), 0..64), name in "[a-zA-Z0-9_.-]{3,40}") {
            let inline = Payload::Inline(Bytes::from(data.clone()));
            prop_assert_eq!(Payload::decode("k", &inline.encode()).unwrap(), inline);
            let blob = Payload::Blob { name, size: data.len() as u64, checksum: fnv1a64(&data) };
            prop_assert_eq!(Payload::decode("k", &blob.encode()).unwrap(), blob);
        }
    }
}
