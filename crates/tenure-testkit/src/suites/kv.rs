//! Versioned KV conformance: versions, conflicts, ephemeral keys, watches and fencing.

use bytes::Bytes;
use tenure_core::kv::{
    CreateOptions, DeleteOptions, FencingToken, KvError, KvEvent, Txn, TxnOp, TxnResult, Version,
};

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

fn set(key: &str, value: &'static str, expected: Option<Version>) -> TxnOp {
    TxnOp::Set {
        key: key.into(),
        value: b(value),
        expected,
    }
}

/// A transaction writes all of its operations or none: a failing check in the middle leaves
/// every key as it was, and the error names the failed operation's index and key. A
/// transaction that holds applies creates, sets (with and without expected version), deletes
/// and checks in order, and returns the new versions.
pub async fn txn_is_all_or_nothing(f: &dyn BackendFactory) {
    let kv = f.connect().await.kv();
    let va = kv
        .create("x/a", b("a1"), CreateOptions::default())
        .await
        .expect("create a");
    let vd = kv
        .create("x/d", b("d1"), CreateOptions::default())
        .await
        .expect("create d");
    let failing = Txn::new(None)
        .op(set("x/a", "a2", Some(va)))
        .op(TxnOp::Create {
            key: "x/b".into(),
            value: b("b1"),
            ephemeral: false,
        })
        .op(TxnOp::CheckVersion {
            key: "x/d".into(),
            version: Version(vd.0 + 1000),
        })
        .op(TxnOp::Delete {
            key: "x/d".into(),
            expected: None,
        });
    let err = kv.txn(failing).await.unwrap_err();
    match &err {
        KvError::TxnFailed { index, op, cause } => {
            assert_eq!(*index, 2, "{err}");
            assert!(op.contains("x/d"), "{err}");
            assert!(
                matches!(**cause, KvError::VersionConflict { ref key, .. } if key == "x/d"),
                "{err}"
            );
        }
        other => panic!("expected TxnFailed, got {other}"),
    }
    let a = kv.get("x/a").await.expect("get").expect("a kept");
    assert_eq!((a.value, a.version), (b("a1"), va));
    assert!(kv.get("x/b").await.expect("get").is_none(), "b not created");
    assert_eq!(
        kv.get("x/d").await.expect("get").expect("d kept").version,
        vd
    );

    // A check of a missing key and of a present one fail naming their op.
    let err = kv
        .txn(Txn::new(None).op(TxnOp::CheckExists {
            key: "x/nope".into(),
        }))
        .await
        .unwrap_err();
    assert!(
        matches!(err.failed_op(), Some((0, KvError::NotFound { key })) if key == "x/nope"),
        "{err}"
    );
    let err = kv
        .txn(
            Txn::new(None)
                .op(TxnOp::CheckAbsent {
                    key: "x/nope".into(),
                })
                .op(TxnOp::CheckAbsent { key: "x/a".into() }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.failed_op(), Some((1, KvError::AlreadyExists { key })) if key == "x/a"),
        "{err}"
    );

    let ok = Txn::new(None)
        .op(TxnOp::CheckVersion {
            key: "x/a".into(),
            version: va,
        })
        .op(TxnOp::CheckAbsent { key: "x/b".into() })
        .op(set("x/a", "a2", Some(va)))
        .op(TxnOp::Create {
            key: "x/b".into(),
            value: b("b1"),
            ephemeral: true,
        })
        .op(set("x/b", "b2", None))
        .op(TxnOp::CheckExists { key: "x/d".into() })
        .op(TxnOp::Delete {
            key: "x/d".into(),
            expected: Some(vd),
        });
    let results = kv.txn(ok).await.expect("txn");
    assert_eq!(results.len(), 7);
    assert_eq!(results[0], TxnResult::Checked);
    assert_eq!(results[6], TxnResult::Deleted);
    let a = kv.get("x/a").await.expect("get").expect("a");
    assert_eq!((a.value, Some(a.version)), (b("a2"), results[2].version()));
    assert_ne!(a.version, va);
    let bb = kv.get("x/b").await.expect("get").expect("b");
    assert_eq!(
        (bb.value, Some(bb.version)),
        (b("b2"), results[4].version())
    );
    assert_eq!(
        bb.ephemeral_owner,
        Some(kv.session_id()),
        "b stays ephemeral"
    );
    assert!(kv.get("x/d").await.expect("get").is_none(), "d deleted");
}

/// A transaction fenced by a term that is over fails with `NotLeader` and writes nothing; the
/// current term's transaction commits.
pub async fn txn_fence_is_checked(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let b_ = f.connect().await;
    let (latch_a, token_a, _ev_a) = acquire(&a, "leader/latch").await;
    let kv_a = a.kv();
    let write = |fence| {
        Txn::new(fence)
            .op(TxnOp::Create {
                key: "tf/x".into(),
                value: b("1"),
                ephemeral: false,
            })
            .op(TxnOp::Create {
                key: "tf/y".into(),
                value: b("1"),
                ephemeral: false,
            })
    };
    latch_a.close().await.expect("leave latch");
    let (_latch_b, token_b, _ev_b) = acquire(&b_, "leader/latch").await;
    let err = kv_a.txn(write(Some(token_a))).await.unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    let kv_b = b_.kv();
    assert!(kv_b.get("tf/x").await.expect("get").is_none());
    assert!(kv_b.get("tf/y").await.expect("get").is_none());
    kv_b.txn(write(Some(token_b))).await.expect("current term");
    assert!(kv_b.get("tf/y").await.expect("get").is_some());
}

/// Fencing tokens are checked exactly: a token naming the current lock with another epoch, or
/// naming an object that is no lock of this cluster, is refused with `NotLeader` by every
/// fenced write (create, compare-and-set, delete, transaction), and nothing is written.
pub async fn forged_fencing_tokens_are_rejected(f: &dyn BackendFactory) {
    let a = f.connect().await;
    let (_latch, real, _ev) = acquire(&a, "leader/latch").await;
    let kv = a.kv();
    let v = kv
        .create("ff/x", b("1"), CreateOptions::default())
        .await
        .expect("create");
    let outside = format!("/elsewhere/{}", real.lock().trim_start_matches('/'));
    let parent = real
        .lock()
        .rsplit_once('/')
        .map_or_else(|| "leader".to_owned(), |(p, _)| p.to_owned());
    let forged = [
        FencingToken::new(real.lock(), real.epoch() + 1),
        FencingToken::new(real.lock(), real.epoch() - 1),
        FencingToken::new(outside.as_str(), real.epoch()),
        FencingToken::new(parent.as_str(), real.epoch()),
        FencingToken::new(format!("{}x", real.lock()), real.epoch()),
        FencingToken::new("", real.epoch()),
    ];
    for token in forged {
        let err = kv
            .create(
                "ff/y",
                b("1"),
                CreateOptions {
                    fence: Some(token.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, KvError::NotLeader { .. }), "{token}: {err}");
        let err = kv
            .compare_and_set("ff/x", b("2"), v, Some(token.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, KvError::NotLeader { .. }), "{token}: {err}");
        let del = DeleteOptions {
            fence: Some(token.clone()),
            ..Default::default()
        };
        let err = kv.delete("ff/x", del).await.unwrap_err();
        assert!(matches!(err, KvError::NotLeader { .. }), "{token}: {err}");
        let txn = Txn::new(Some(token.clone())).op(set("ff/x", "3", None));
        let err = kv.txn(txn).await.unwrap_err();
        assert!(matches!(err, KvError::NotLeader { .. }), "{token}: {err}");
    }
    assert!(kv.get("ff/y").await.expect("get").is_none());
    let x = kv.get("ff/x").await.expect("get").expect("kept");
    assert_eq!((x.value, x.version), (b("1"), v));
    // The real token still writes.
    kv.compare_and_set("ff/x", b("2"), v, Some(real))
        .await
        .expect("real token");
}
