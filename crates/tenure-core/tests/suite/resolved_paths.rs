//! Arbitrary strings as cluster ids: either the configuration rejects them, or everything the
//! services write lands inside `<storageDir>/<cluster-id>` and
//! `<storageDir>/job-result-store/<cluster-id>`, and cleanup deletes nothing outside them.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use tenure_core::config::{Configuration, HaConfig};
use tenure_core::ids::JobId;
use tenure_core::segments::PathSegments;
use tenure_core::services::{HaServicesOptions, JobResultStorage};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Characters that change the meaning of paths and URLs, plus ordinary ones.
fn hostile_id() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("%2e%2e".to_owned()),
        Just("%2F".to_owned()),
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("/".to_owned()),
        Just("#".to_owned()),
        Just("?".to_owned()),
        Just(" ".to_owned()),
        Just("\\".to_owned()),
        Just("\n".to_owned()),
        Just("job-result-store".to_owned()),
        Just("☃".to_owned()),
        "[a-z0-9_-]{1,6}",
        ".{0,4}",
    ];
    prop::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

fn check(id: &str) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    let conf = Configuration::from_pairs([
        ("high-availability.storageDir", storage.to_str().unwrap()),
        ("high-availability.cluster-id", id),
    ]);
    let Ok(config) = HaConfig::from_configuration(&conf) else {
        return Ok(());
    };
    let segs = PathSegments::parse(&config.cluster_id).unwrap();
    let mut blob_dir = storage.clone();
    let mut result_dir = storage.join("job-result-store");
    for s in segs.iter() {
        blob_dir.push(s);
        result_dir.push(s);
    }
    let options = HaServicesOptions::from_config(&config).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let job = JobId::new_random();
    rt.block_on(async {
        options
            .blobs
            .put("completedCheckpoint0123456789ab", Bytes::from_static(b"b"))
            .await
            .unwrap();
        let JobResultStorage::Files { dir, .. } = &options.job_results else {
            panic!("files expected with a storage dir");
        };
        dir.put(&format!("{job}_DIRTY.json"), Bytes::from_static(b"{}"))
            .await
            .unwrap();
    });
    let written = files(tmp.path());
    prop_assert_eq!(written.len(), 2, "{:?}", written);
    for f in &written {
        let inside = f.starts_with(&blob_dir) || f.starts_with(&result_dir);
        prop_assert!(
            inside,
            "{id:?} wrote {f:?} outside {blob_dir:?} and {result_dir:?}"
        );
        prop_assert!(
            f.canonicalize()
                .unwrap()
                .starts_with(storage.canonicalize().unwrap())
        );
    }
    prop_assert!(
        written
            .iter()
            .any(|f| f.parent() == Some(blob_dir.as_path()))
    );
    prop_assert!(
        written
            .iter()
            .any(|f| f.parent() == Some(result_dir.as_path()))
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_cluster_id_is_rejected_or_resolves_inside_the_storage_dir(id in hostile_id()) {
        check(&id)?;
    }

    #[test]
    fn any_string_cluster_id_is_rejected_or_resolves_inside(id in ".{0,12}") {
        check(&id)?;
    }

    #[test]
    fn job_ids_are_exactly_32_hex_digits(s in ".{0,40}") {
        if let Ok(job) = JobId::parse(&s) {
            prop_assert_eq!(job.to_string().len(), 32);
            prop_assert!(s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}

#[test]
fn the_reported_escapes_are_rejected_naming_the_key() {
    for id in [
        "%2e%2e/%2e%2e",
        "cluster-b#x",
        "cluster-b?x",
        " ",
        "",
        "/",
        "a/../b",
    ] {
        let conf = Configuration::from_pairs([
            ("high-availability.storageDir", "/tmp/ha"),
            ("high-availability.cluster-id", id),
        ]);
        let e = HaConfig::from_configuration(&conf).unwrap_err();
        assert!(
            e.to_string().contains("high-availability.cluster-id"),
            "{id:?}: {e}"
        );
    }
    let mut built = HaConfig::embedded();
    built.cluster_id = "%2e%2e".into();
    assert!(
        HaServicesOptions::from_config(&built).is_err(),
        "a configuration built in code is validated too"
    );
}
