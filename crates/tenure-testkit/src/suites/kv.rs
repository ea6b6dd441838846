//! Versioned KV conformance: versions, conflicts, ephemeral keys, watches and fencing.

use bytes::Bytes;
use tenure_core::kv::{CreateOptions, DeleteOptions, KvError, KvEvent, Version};

use super::acquire;
use crate::{BackendFactory, DEADLINE};

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Create, get, and versions that change with every write.
pub async fn create_get_and_versions(f: &dyn BackendFactory) {
    let kv = f.connect().await.kv();
    let v1 = kv
        .create("t/a", b("1"), CreateOptions::default())
        .await
        .expect("create");
    let e = kv.get("t/a").await.expect("get").expect("present");
    assert_eq!((e.value, e.version), (b("1"), v1));
    let err = kv
        .create("t/a", b("2"), CreateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, KvError::AlreadyExists { ref key } if key == "t/a"),
        "{err}"
    );
    let v2 = kv
        .compare_and_set("t/a", b("2"), v1, None)
        .await
        .expect("cas");
    assert_ne!(v1, v2);
    assert!(kv.get("t/missing").await.expect("get").is_none());
}

/// Compare-and-set succeeds only at the expected version.
pub async fn compare_and_set_checks_versions(f: &dyn BackendFactory) {
    let kv = f.connect().await.kv();
    let v1 = kv
        .create("c", b("1"), CreateOptions::default())
        .await
        .expect("create");
    kv.compare_and_set("c", b("2"), v1, None)
        .await
        .expect("cas");
    let err = kv.compare_and_set("c", b("3"), v1, None).await.unwrap_err();
    assert!(matches!(err, KvError::VersionConflict { .. }), "{err}");
    assert_eq!(
        kv.get("c").await.expect("get").expect("present").value,
        b("2")
    );
    let err = kv
        .compare_and_set("nope", b("x"), Version(0), None)
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::NotFound { .. }), "{err}");
}

/// Deletes honour the expected version and refuse keys with descendants unless recursive.
pub async fn delete_checks_versions_and_descendants(f: &dyn BackendFactory) {
    let kv = f.connect().await.kv();
    let v = kv
        .create("d", b(""), CreateOptions::default())
        .await
        .expect("create");
    kv.create("d/x", b("1"), CreateOptions::default())
        .await
        .expect("create child");
    let err = kv.delete("d", DeleteOptions::default()).await.unwrap_err();
    assert!(matches!(err, KvError::NotEmpty { .. }), "{err}");
    let stale = DeleteOptions {
        expected: Some(Version(v.0 + 1000)),
        ..Default::default()
    };
    let err = kv.delete("d/x", stale).await.unwrap_err();
    assert!(matches!(err, KvError::VersionConflict { .. }), "{err}");
    let rec = DeleteOptions {
        recursive: true,
        ..Default::default()
    };
    kv.delete("d", rec).await.expect("recursive delete");
    assert!(kv.get("d/x").await.expect("get").is_none());
    let err = kv.delete("d", DeleteOptions::default()).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

/// Listing returns every key below the prefix, sorted, and nothing outside it.
pub async fn list_is_sorted_and_recursive(f: &dyn BackendFactory) {
    let kv = f.connect().await.kv();
    for k in ["l/b", "l/a", "l/a/x", "lx"] {
        kv.create(k, b("v"), CreateOptions::default())
            .await
            .expect("create");
    }
    let keys: Vec<String> = kv
        .list("l")
        .await
        .expect("list")
        .into_iter()
        .filter(|e| !e.value.is_empty())
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, vec!["l/a", "l/a/x", "l/b"]);
}

/// Ephemeral keys disappear when their process's session ends; persistent ones stay.
pub async fn ephemeral_keys_die_with_the_session(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let b_ = f.connect().await;
    let kv_a = a.kv();
    let kv_b = b_.kv();
    let mut w = kv_b.watch("e").await.expect("watch");
    let eph = CreateOptions {
        ephemeral: true,
        ..Default::default()
    };
    kv_a.create("e/eph", b("1"), eph)
        .await
        .expect("create ephemeral");
    kv_a.create("e/per", b("1"), CreateOptions::default())
        .await
        .expect("create");
    let owner = kv_b
        .get("e/eph")
        .await
        .expect("get")
        .expect("present")
        .ephemeral_owner;
    assert_eq!(owner, Some(kv_a.session_id()));
    f.crash(&a).await;
    tokio::time::timeout(DEADLINE, async {
        loop {
            match w.next().await {
                Some(KvEvent::Deleted { key }) if key == "e/eph" => break,
                Some(_) => {}
                None => panic!("watch ended"),
            }
        }
    })
    .await
    .expect("ephemeral key deleted in time");
    assert!(kv_b.get("e/eph").await.expect("get").is_none());
    assert!(kv_b.get("e/per").await.expect("get").is_some());
}

/// A watch sees puts and deletes made by another process.
pub async fn watch_sees_other_processes_changes(f: &dyn BackendFactory) {
    let kv_a = f.connect().await.kv();
    let kv_b = f.connect().await.kv();
    let mut w = kv_b.watch("w").await.expect("watch");
    kv_a.create("w/k", b("1"), CreateOptions::default())
        .await
        .expect("create");
    kv_a.delete("w/k", DeleteOptions::default())
        .await
        .expect("delete");
    let mut seen = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while seen.len() < 2 {
            match w.next().await {
                Some(KvEvent::Put(e)) if e.key == "w/k" => seen.push("put"),
                Some(KvEvent::Deleted { key }) if key == "w/k" => seen.push("deleted"),
                Some(_) => {}
                None => panic!("watch ended"),
            }
        }
    })
    .await
    .expect("events in time");
    assert_eq!(seen, vec!["put", "deleted"]);
}

/// Writes fenced by a term that is over fail with `NotLeader` and change nothing.
pub async fn fenced_writes_fail_after_the_term(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let b_ = f.connect().await;
    let (latch_a, token_a, _ev_a) = acquire(&a, "leader/latch").await;
    let kv_a = a.kv();
    let fenced = CreateOptions {
        fence: Some(token_a.clone()),
        ..Default::default()
    };
    let v = kv_a
        .create("f/x", b("1"), fenced.clone())
        .await
        .expect("fenced create while leader");
    latch_a.close().await.expect("leave latch");
    let (_latch_b, token_b, _ev_b) = acquire(&b_, "leader/latch").await;
    assert_ne!(token_a, token_b);
    // The deposed process is still alive and connected, yet none of its writes land.
    let err = kv_a.create("f/y", b("1"), fenced).await.unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    let err = kv_a
        .compare_and_set("f/x", b("2"), v, Some(token_a.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    let del = DeleteOptions {
        fence: Some(token_a),
        ..Default::default()
    };
    let err = kv_a.delete("f/x", del).await.unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    let kv_b = b_.kv();
    assert!(kv_b.get("f/y").await.expect("get").is_none());
    assert_eq!(
        kv_b.get("f/x").await.expect("get").expect("kept").value,
        b("1")
    );
    let ok = CreateOptions {
        fence: Some(token_b),
        ..Default::default()
    };
    kv_b.create("f/z", b("1"), ok)
        .await
        .expect("new leader writes");
}

/// Malformed keys are rejected with an error naming the key.
pub async fn invalid_keys_are_rejected(f: &dyn BackendFactory) {
    let kv = f.connect().await.kv();
    for key in ["", "/a", "a/", "a//b", "../x"] {
        let err = kv
            .create(key, b("1"), CreateOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, KvError::InvalidKey { .. }), "{key:?}: {err}");
    }
}
