//! Transactions on a real etcd: a failed operation is named by index, key and cause; later
//! operations see the effects of earlier ones on the same key; a fence is checked first.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use tenure_core::kv::{
    CreateOptions, FencingToken, KvError, Txn, TxnOp, TxnResult, Version, VersionedKv,
};
use tenure_testkit::etcd::EtcdFactory;

fn create(key: &str, value: &'static [u8]) -> TxnOp {
    TxnOp::Create {
        key: key.into(),
        value: Bytes::from_static(value),
        ephemeral: false,
    }
}

/// Operations, the index that fails, and a test of its cause.
type Case = (Vec<TxnOp>, usize, fn(&KvError) -> bool);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failed_operation_is_named_with_its_cause() {
    let f = EtcdFactory::start().await;
    let kv = f.connect_etcd().await;
    let v = kv
        .create("t/a", Bytes::from_static(b"1"), CreateOptions::default())
        .await
        .unwrap();
    kv.create("t/d/child", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    kv.create("t/d", Bytes::new(), CreateOptions::default())
        .await
        .unwrap();
    let cases: Vec<Case> = vec![
        (
            vec![create("t/new", b"x"), create("t/a", b"x")],
            1,
            |e| matches!(e, KvError::AlreadyExists { key } if key == "t/a"),
        ),
        (
            vec![
                TxnOp::CheckExists { key: "t/a".into() },
                TxnOp::Set {
                    key: "t/a".into(),
                    value: Bytes::new(),
                    expected: Some(Version(v.0 + 100)),
                },
            ],
            1,
            |e| {
                matches!(
                    e,
                    KvError::VersionConflict {
                        actual: Some(_),
                        ..
                    }
                )
            },
        ),
        (
            vec![TxnOp::Delete {
                key: "t/d".into(),
                expected: None,
            }],
            0,
            |e| matches!(e, KvError::NotEmpty { key } if key == "t/d"),
        ),
        (
            vec![
                TxnOp::CheckAbsent { key: "t/x".into() },
                TxnOp::CheckExists { key: "t/x".into() },
            ],
            1,
            |e| matches!(e, KvError::NotFound { key } if key == "t/x"),
        ),
    ];
    for (ops, index, cause) in cases {
        let err = kv.txn(Txn { fence: None, ops }).await.unwrap_err();
        let (i, c) = err.failed_op().unwrap_or_else(|| panic!("{err}"));
        assert_eq!(i, index, "{err}");
        assert!(cause(c), "{err}");
    }
    // Nothing of a failed transaction was written.
    assert!(kv.get("t/new").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_see_the_effects_of_earlier_ones_on_the_same_key() {
    let f = EtcdFactory::start().await;
    let kv = f.connect_etcd().await;
    let results = kv
        .txn(Txn {
            fence: None,
            ops: vec![
                create("s/a", b"1"),
                TxnOp::CheckExists { key: "s/a".into() },
                TxnOp::Set {
                    key: "s/a".into(),
                    value: Bytes::from_static(b"2"),
                    expected: None,
                },
                create("s/b", b"1"),
                TxnOp::Delete {
                    key: "s/b".into(),
                    expected: None,
                },
            ],
        })
        .await
        .unwrap();
    assert_eq!(results[1], TxnResult::Checked);
    assert_eq!(results[4], TxnResult::Deleted);
    let a = kv.get("s/a").await.unwrap().unwrap();
    assert_eq!(a.value, Bytes::from_static(b"2"));
    assert_eq!(Some(a.version), results[2].version());
    assert!(kv.get("s/b").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_outside_the_namespace_is_not_leader() {
    let f = EtcdFactory::start().await;
    let kv = f.connect_etcd().await;
    let token = FencingToken::new("/elsewhere/leader/latch/1", 1);
    let err = kv
        .txn(Txn::new(Some(token)).op(create("f/a", b"1")))
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
}

/// Someone overwrites the leader's latch key without its lease (`etcdctl put` by hand): the key
/// keeps its create revision, but it is no participant any more (a key is one only while
/// attached to the lease it is named by), so a contender reading the line can lead. The old
/// leader's fence must fail from then on: it compares the key's lease too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latch_key_overwritten_without_its_lease_fences_its_leader_out() {
    let f = EtcdFactory::start().await;
    let kv = f.connect_etcd().await;
    let (_latch, _events, token) = tenure_testkit::lead_alone(&kv, "leader/latch").await;
    let fenced = |key: &str| kv.txn(Txn::new(Some(token.clone())).op(create(key, b"1")));
    fenced("f/before").await.unwrap();

    let mut raw = etcd_client::Client::connect([f.server().endpoint()], None)
        .await
        .unwrap();
    raw.put(token.lock(), "", None).await.unwrap();
    let now = raw.get(token.lock(), None).await.unwrap();
    let key = &now.kvs()[0];
    assert_eq!(
        key.create_revision(),
        token.epoch(),
        "the create revision stays"
    );
    assert_eq!(key.lease(), 0, "no lease any more");

    let err = fenced("f/after").await.unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    assert!(
        kv.get("f/after").await.unwrap().is_none(),
        "nothing written"
    );
}
