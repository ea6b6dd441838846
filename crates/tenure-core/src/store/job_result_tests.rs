#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::embedded::EmbeddedCluster;
use crate::store::test_util::{kv, lead, stale_token};

/// What Flink 2.2.0 wrote for a finished job (reference §9).
pub(crate) const FLINK_JSON: &str = r#"{"result":{"id":"58c7b669261b7be65fa686cc039885b6","application-status":"SUCCEEDED","accumulator-results":{},"net-runtime":1961},"version":1}"#;

pub(crate) fn flink_job() -> JobId {
    JobId::parse("58c7b669261b7be65fa686cc039885b6").unwrap()
}

fn failed(job: JobId) -> JobResultEntry {
    let mut e = JobResultEntry::new(job, ApplicationStatus::Failed, 5);
    e.accumulator_results
        .insert("numRecords".into(), "rO0ABXNyAC==".into());
    e.failure_cause = Some(FailureCause {
        class: "java.lang.RuntimeException".into(),
        stack_trace: "java.lang.RuntimeException: boom\n\tat X".into(),
        serialized_throwable: Some("rO0ABXNyACVvcmcu".into()),
    });
    e
}

/// The behaviour every job result store shares.
pub(crate) async fn exercise(store: impl Into<JobResultStore>, keeps_clean: bool) {
    let store = store.into();
    let (a, b) = (JobId::new_random(), JobId::new_random());
    assert!(!store.has_entry(a).await.unwrap());
    assert!(matches!(
        store.mark_clean(a).await,
        Err(StoreError::NotFound(_))
    ));
    store.create_dirty(&failed(a)).await.unwrap();
    store
        .create_dirty(&JobResultEntry::new(b, ApplicationStatus::Canceled, 1))
        .await
        .unwrap();
    let err = store.create_dirty(&failed(a)).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    assert!(store.has_dirty(a).await.unwrap() && store.has_entry(a).await.unwrap());
    assert!(!store.has_clean(a).await.unwrap());
    let mut dirty = store.dirty_results().await.unwrap();
    dirty.sort_by_key(|e| e.job_id);
    let mut expected = vec![
        failed(a),
        JobResultEntry::new(b, ApplicationStatus::Canceled, 1),
    ];
    expected.sort_by_key(|e| e.job_id);
    assert_eq!(dirty, expected);

    store.mark_clean(a).await.unwrap();
    assert!(!store.has_dirty(a).await.unwrap());
    assert_eq!(store.has_clean(a).await.unwrap(), keeps_clean);
    assert_eq!(store.has_entry(a).await.unwrap(), keeps_clean);
    assert_eq!(store.dirty_results().await.unwrap().len(), 1);
    if keeps_clean {
        assert_eq!(store.clean_results().await.unwrap(), vec![failed(a)]);
        store.mark_clean(a).await.unwrap();
        let err = store.create_dirty(&failed(a)).await.unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists(_)), "{err}");
    } else {
        assert!(store.clean_results().await.unwrap().is_empty());
    }
    store.remove(a).await.unwrap();
    store.remove(b).await.unwrap();
    store.remove(b).await.unwrap();
    assert!(!store.has_entry(a).await.unwrap() && !store.has_entry(b).await.unwrap());
    assert!(store.dirty_results().await.unwrap().is_empty());
}

#[test]
fn flink_json_golden() {
    let e = JobResultEntry::from_json("f", FLINK_JSON.as_bytes()).unwrap();
    assert_eq!(
        e,
        JobResultEntry::new(flink_job(), ApplicationStatus::Succeeded, 1961)
    );
    assert_eq!(std::str::from_utf8(&e.to_json()).unwrap(), FLINK_JSON);
}

#[test]
fn failure_and_2x_fields_round_trip_and_unknown_fields_are_ignored() {
    let mut e = failed(flink_job());
    e.name = Some("wordcount".into());
    e.start_time = Some(10);
    e.end_time = Some(20);
    e.application_id = Some("app".into());
    let json = e.to_json();
    let text = std::str::from_utf8(&json).unwrap();
    assert!(
        text.contains(r#""failure-cause":{"class":"java.lang.RuntimeException","stack-trace":"#),
        "{text}"
    );
    assert!(text.contains(r#""start-time":10"#) && text.contains(r#""application-id":"app""#));
    assert_eq!(JobResultEntry::from_json("k", &json).unwrap(), e);
    let newer = r#"{"result":{"id":"58c7b669261b7be65fa686cc039885b6","application-status":"FAILED",
        "accumulator-results":{"a":"AAEC"},"net-runtime":-1,"whatever":[1,{}],
        "failure-cause":{"class":"C","stack-trace":"S","message":"m","cause":null,"suppressed":[]}},
        "version":2,"extra":true}"#;
    let e = JobResultEntry::from_json("k", newer.as_bytes()).unwrap();
    assert_eq!(e.application_status, ApplicationStatus::Failed);
    assert_eq!(e.accumulator_results["a"], "AAEC");
    assert_eq!(e.failure_cause.unwrap().serialized_throwable, None);
}

#[test]
fn bad_json_is_corrupt_and_names_the_key() {
    for bad in [
        "",
        "{}",
        "[1]",
        r#"{"result":{"id":"nope","application-status":"SUCCEEDED","net-runtime":1}}"#,
        r#"{"result":{"id":"58c7b669261b7be65fa686cc039885b6","application-status":"DONE","net-runtime":1}}"#,
        r#"{"result":{"id":"58c7b669261b7be65fa686cc039885b6","application-status":"FAILED"}}"#,
    ] {
        let err = JobResultEntry::from_json("job-results/x", bad.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { key, .. } if key == "job-results/x"),
            "{bad}: {err}"
        );
    }
}

#[tokio::test]
async fn kv_store_behaves() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let store = KvJobResultStore::new(kv(&s), Layout::default(), Writes::Unfenced);
    exercise(store, true).await;
    assert!(cluster.all_keys().is_empty());
}

#[tokio::test]
async fn kv_store_uses_the_layout_keys_and_flink_json() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let store = KvJobResultStore::new(kv(&s), Layout::default(), Writes::Unfenced);
    let job = flink_job();
    store
        .create_dirty(&JobResultEntry::new(
            job,
            ApplicationStatus::Succeeded,
            1961,
        ))
        .await
        .unwrap();
    let key = Layout::default().job_result(&job, true);
    assert_eq!(
        s.get(&key).await.unwrap().unwrap().value,
        FLINK_JSON.as_bytes()
    );
    // A corrupt entry names its key; keys that are not results are ignored.
    s.create(
        "job-results/notes",
        Bytes::from_static(b"x"),
        Default::default(),
    )
    .await
    .unwrap();
    let other = Layout::default().job_result(&JobId::new_random(), true);
    s.create(&other, Bytes::from_static(b"{"), Default::default())
        .await
        .unwrap();
    let err = store.dirty_results().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { key, .. } if *key == other),
        "{err}"
    );
    s.delete(&other, Default::default()).await.unwrap();
    // An entry under another job's key is corrupt too.
    let wrong = Layout::default().job_result(&JobId::new_random(), true);
    s.create(
        &wrong,
        Bytes::from_static(FLINK_JSON.as_bytes()),
        Default::default(),
    )
    .await
    .unwrap();
    assert!(matches!(
        store.dirty_results().await,
        Err(StoreError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn kv_store_fenced_writes() {
    let cluster = EmbeddedCluster::new();
    let s = cluster.connect();
    let stale = stale_token(&cluster).await;
    let (good, _latch) = lead(&s, "leader/latch").await;
    let job = JobId::new_random();
    let fenced = KvJobResultStore::new(kv(&s), Layout::default(), Writes::Fenced(stale));
    let entry = JobResultEntry::new(job, ApplicationStatus::Succeeded, 1);
    assert!(
        fenced
            .create_dirty(&entry)
            .await
            .unwrap_err()
            .is_not_leader()
    );
    assert!(cluster.all_keys().is_empty());
    let leader = KvJobResultStore::new(kv(&s), Layout::default(), Writes::Fenced(good));
    leader.create_dirty(&entry).await.unwrap();
    assert!(fenced.mark_clean(job).await.unwrap_err().is_not_leader());
    assert!(leader.has_dirty(job).await.unwrap() && !leader.has_clean(job).await.unwrap());
    leader.mark_clean(job).await.unwrap();
}

proptest! {
    #[test]
    fn json_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = JobResultEntry::from_json("k", &bytes);
    }

    #[test]
    fn json_like_input_never_panics(s in r#"\{"result":\{"id":"[0-9a-f]{0,33}","application-status":"[A-Z]{0,9}","net-runtime":-?[0-9]{0,20}.{0,20}"#) {
        let _ = JobResultEntry::from_json("k", s.as_bytes());
    }
}
