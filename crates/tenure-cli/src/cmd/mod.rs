//! The operator commands.

pub mod checkpoints;
pub mod cleanup;
pub mod counter;
pub mod jobs;
pub mod leaders;
pub mod registry;
pub mod results;
pub mod run;
#[cfg(test)]
mod store_tests;

use serde::Serialize;
use tenure::store::{Payload, StoreError};

use crate::exit::CliError;

/// Where a stored value came from, as the stores see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// `tenure` (a tenure pointer), `flink` (Java-serialized by Flink itself) or `corrupt`.
    pub origin: &'static str,
    /// `inline` or `blob` (tenure values only).
    pub storage: Option<&'static str>,
    /// The blob holding the payload (tenure values stored in a blob).
    pub blob: Option<String>,
    /// The payload's size in bytes (tenure values).
    pub size_bytes: Option<u64>,
    /// The file a Flink value names (its state handle's file), if found.
    pub file: Option<String>,
    /// What the Flink value is, or why the value is corrupt.
    pub detail: Option<String>,
}

impl Origin {
    /// Classifies the value stored under `key` without reading any blob.
    pub fn of(key: &str, value: &[u8]) -> Self {
        let base = Origin {
            origin: "tenure",
            storage: None,
            blob: None,
            size_bytes: None,
            file: None,
            detail: None,
        };
        match Payload::decode(key, value) {
            Ok(Payload::Inline(data)) => Origin {
                storage: Some("inline"),
                size_bytes: Some(data.len() as u64),
                ..base
            },
            Ok(Payload::Blob { name, size, .. }) => Origin {
                storage: Some("blob"),
                blob: Some(name),
                size_bytes: Some(size),
                ..base
            },
            Err(StoreError::Foreign { detail, .. }) => Origin {
                origin: "flink",
                file: foreign_file(&detail),
                detail: Some(detail),
                ..base
            },
            Err(e) => Origin {
                origin: "corrupt",
                detail: Some(e.to_string()),
                ..base
            },
        }
    }

    /// Whether the value was written by Flink itself.
    pub fn is_flink(&self) -> bool {
        self.origin == "flink"
    }
}

/// The file named at the end of a [`StoreError::Foreign`] detail (`…, file <uri>`).
pub fn foreign_file(detail: &str) -> Option<String> {
    detail
        .rsplit_once(", file ")
        .map(|(_, f)| f.trim().to_owned())
        .filter(|f| !f.is_empty())
}

/// Refuses a destructive command without `--yes`, saying what it would do.
pub fn require_yes(yes: bool, what: &str) -> Result<(), CliError> {
    if yes {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{what} changes HA data; nothing was changed: pass --yes to do it"
        )))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_stored_value_is_classified_without_panic(
            key in any::<String>(),
            value in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..96),
                // A Java stream header or tenure's magic, then anything.
                proptest::collection::vec(any::<u8>(), 0..64).prop_map(|t| {
                    let mut v = vec![0xAC, 0xED, 0x00, 0x05, 0x73, 0x72];
                    v.extend(t);
                    v
                }),
                proptest::collection::vec(any::<u8>(), 0..64).prop_map(|t| {
                    let mut v = b"TNR".to_vec();
                    v.extend(t);
                    v
                }),
            ],
        ) {
            let o = Origin::of(&key, &value);
            prop_assert!(matches!(o.origin, "tenure" | "flink" | "corrupt"));
            if let Some(d) = &o.detail {
                let _ = foreign_file(d);
            }
        }
    }

    #[test]
    fn flink_values_name_their_file() {
        let uri = b"file:/tmp/ha/peer1/completedCheckpoint2e1519c07c46";
        let mut bytes = vec![0xAC, 0xED, 0x00, 0x05, 0x73, 0x72, 0x00, 0x01, b't'];
        bytes.extend_from_slice(&[0x74, 0x00, uri.len() as u8]);
        bytes.extend_from_slice(uri);
        bytes.push(0x78);
        let o = Origin::of("jobs/x/checkpoints/0000000000000000001", &bytes);
        assert!(o.is_flink());
        assert_eq!(
            o.file.as_deref(),
            Some("file:/tmp/ha/peer1/completedCheckpoint2e1519c07c46")
        );
        let o = Origin::of("k", b"TNR\x01\x00abc");
        assert_eq!(
            (o.origin, o.storage, o.size_bytes),
            ("tenure", Some("inline"), Some(3))
        );
        assert_eq!(Origin::of("k", b"zzz").origin, "corrupt");
        assert_eq!(foreign_file("Java-serialized Flink object, 4 bytes"), None);
    }
}
