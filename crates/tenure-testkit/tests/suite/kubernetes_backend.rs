//! Kubernetes-specific behaviour of the backend on the fake API server: the ConfigMap layout
//! seen by Flink's tools, corrupt data, the 1 MiB limit, watch recovery after `410 Gone` and
//! dropped streams, API server errors, per-job claims, and cleanup.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tenure_core::driver::HaBackend;
use tenure_core::ids::{CheckpointId, ComponentId, JobId};
use tenure_core::kv::{CreateOptions, DeleteOptions, KvError, KvEvent, VersionedKv};
use tenure_core::layout::Layout;
use tenure_core::services::{HaServices, HaServicesOptions};
use tenure_testkit::kube_fake::{KubernetesFactory, Resource};
use tenure_testkit::suites::acquire;
use tenure_testkit::{DEADLINE, wait_until};

fn cm(f: &KubernetesFactory, name: &str) -> Option<Value> {
    f.server()
        .object(Resource::ConfigMaps, &f.settings().namespace, name)
}

fn cluster_cm_name(f: &KubernetesFactory) -> String {
    format!("{}-cluster-config-map", f.settings().cluster_id)
}

async fn next_event(w: &mut tenure_core::kv::KvWatch) -> KvEvent {
    tokio::time::timeout(DEADLINE, w.next())
        .await
        .expect("event in time")
        .expect("watch alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_use_flinks_data_keys_and_encodings() {
    let f = KubernetesFactory::start().await;
    let b = f.connect_k8s().await;
    let layout = Layout::default();
    let job = JobId::new_random();
    b.create(
        &layout.job_graph(&job),
        Bytes::from_static(b"\xAC\xED\x00\x05graph"),
        CreateOptions::default(),
    )
    .await
    .unwrap();
    b.create(
        &layout.checkpoint_counter(&job),
        Bytes::from_static(&[0, 0, 0, 42]),
        CreateOptions::default(),
    )
    .await
    .unwrap();
    b.create(
        &layout.checkpoint(&job, CheckpointId(7)),
        Bytes::from_static(b"cp"),
        CreateOptions::default(),
    )
    .await
    .unwrap();
    let cluster = cm(&f, &cluster_cm_name(&f)).unwrap();
    assert_eq!(
        cluster["data"][format!("executionPlan-{job}")],
        "rO0ABWdyYXBo"
    );
    let per_job = cm(&f, &format!("{}-{job}-config-map", f.settings().cluster_id)).unwrap();
    assert_eq!(per_job["data"]["counter"], "42");
    assert_eq!(per_job["data"]["checkpointID-0000000000000000007"], "Y3A=");
    // A decimal written by Flink reads back as the core's form.
    let entry = b
        .get(&layout.checkpoint_counter(&job))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&entry.value[..], [0, 0, 0, 42]);
    // Flink's per-job ConfigMap is labelled like the cluster one.
    assert_eq!(
        per_job["metadata"]["labels"]["configmap-type"],
        "high-availability"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_data_is_an_error_naming_object_and_key_and_is_never_overwritten() {
    let f = KubernetesFactory::start().await;
    let b = f.connect_k8s().await;
    let layout = Layout::default();
    let job = JobId::new_random();
    let name = format!("{}-{job}-config-map", f.settings().cluster_id);
    let ns = f.settings().namespace;
    f.server().put_raw(
        Resource::ConfigMaps,
        &ns,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "labels": {"app": f.settings().cluster_id,
                 "type": "flink-native-kubernetes", "configmap-type": "high-availability"}},
               "data": {"checkpointID-0000000000000000001": "not base64!", "counter": "x1"}}),
    );
    let key = layout.checkpoint(&job, CheckpointId(1));
    let err = b.get(&key).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, KvError::Corrupt { .. }), "{msg}");
    assert!(
        msg.contains(&name) && msg.contains("checkpointID-0000000000000000001"),
        "{msg}"
    );
    let err = b.get(&layout.checkpoint_counter(&job)).await.unwrap_err();
    assert!(err.to_string().contains("counter"), "{err}");
    let err = b.list(&layout.checkpoints_dir(&job)).await.unwrap_err();
    assert!(matches!(err, KvError::Corrupt { .. }), "{err}");
    // A corrupt tenure/kv annotation blocks every write to that object.
    let cluster = cluster_cm_name(&f);
    f.server().put_raw(
        Resource::ConfigMaps,
        &ns,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": cluster, "annotations": {"tenure/kv": "{broken"}},
               "data": {"unknown-key": "kept"}}),
    );
    let err = b
        .create("x", Bytes::from_static(b"1"), CreateOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tenure/kv"), "{err}");
    let after = cm(&f, &cluster).unwrap();
    assert_eq!(after["metadata"]["annotations"]["tenure/kv"], "{broken");
    assert_eq!(after["data"]["unknown-key"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_leader_annotation_is_not_overwritten() {
    let f = KubernetesFactory::start().await;
    let ns = f.settings().namespace;
    let cluster = cluster_cm_name(&f);
    f.server().put_raw(
        Resource::ConfigMaps,
        &ns,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": cluster, "annotations": {
                   "control-plane.alpha.kubernetes.io/leader": "holder=somebody"}}}),
    );
    let b: Arc<dyn HaBackend> = Arc::new(f.connect_k8s().await);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let latch = b.join_latch("leader/latch", tx).await.unwrap();
    tokio::time::sleep(f.settings().lease_duration + Duration::from_millis(500)).await;
    assert!(rx.try_recv().is_err(), "no grant over an unreadable record");
    let after = cm(&f, &cluster).unwrap();
    assert_eq!(
        after["metadata"]["annotations"]["control-plane.alpha.kubernetes.io/leader"],
        "holder=somebody"
    );
    latch.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_over_one_mebibyte_are_too_large_before_the_server_refuses_them() {
    let f = KubernetesFactory::start().await;
    let b = f.connect_k8s().await;
    let big = Bytes::from(vec![7u8; 600 * 1024]);
    b.create("a", big.clone(), CreateOptions::default())
        .await
        .unwrap();
    let err = b
        .create("b", big, CreateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, KvError::TooLarge { ref key, size, limit } if key == "b" && size == 600 * 1024 && limit < size),
        "{err}"
    );
    // "a" created the ConfigMap; "b" was refused before any replace was sent.
    let puts: Vec<String> = f
        .server()
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT") && r.contains("cluster-config-map"))
        .collect();
    assert!(puts.is_empty(), "{puts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_recover_from_gone_and_dropped_streams_without_losing_changes() {
    let f = KubernetesFactory::start().await;
    let a = f.connect_k8s().await;
    let b = f.connect_k8s().await;
    let mut w = b.watch("w").await.unwrap();
    a.create("w/1", Bytes::from_static(b"1"), CreateOptions::default())
        .await
        .unwrap();
    assert!(matches!(next_event(&mut w).await, KvEvent::Put(e) if e.key == "w/1"));
    // History gone and streams cut: the watcher re-lists and reports what changed meanwhile.
    f.server().set_history_limit(1);
    f.server().compact();
    f.server().drop_watches();
    a.create("w/2", Bytes::from_static(b"2"), CreateOptions::default())
        .await
        .unwrap();
    a.delete("w/1", Default::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next_event(&mut w).await {
            KvEvent::Put(e) if e.key == "w/2" => seen.push("put w/2"),
            KvEvent::Deleted { key } if key == "w/1" => seen.push("deleted w/1"),
            _ => {}
        }
    }
    seen.sort();
    assert_eq!(seen, ["deleted w/1", "put w/2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_writes_are_not_doubled() {
    let f = KubernetesFactory::start().await;
    let b = f.connect_k8s().await;
    let layout = Layout::default();
    let services = HaServices::new(Arc::new(b.clone()), HaServicesOptions::default());
    let counter = services
        .admin_stores()
        .checkpoint_recovery_factory()
        .create_checkpoint_id_counter(JobId::new_random());
    counter.start().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..6 {
        f.server().fail_next(2, if i % 2 == 0 { 503 } else { 500 });
        ids.push(counter.get_and_increment().await.unwrap().0);
    }
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    // More failures than retries: the outcome of a write is unknown, never silently lost.
    f.server().fail_next(100_000, 503);
    let err = b
        .create(
            &layout.running_job(&JobId::new_random()),
            Bytes::from_static(b"RUNNING"),
            CreateOptions::default(),
        )
        .await
        .unwrap_err();
    f.server().clear_failures();
    assert!(
        matches!(
            err,
            KvError::Backend(_) | KvError::Client { .. } | KvError::OutcomeUnknown { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("ConfigMap"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_job_writes_carry_the_leaders_claim_and_a_stale_term_cannot_write_there() {
    let f = KubernetesFactory::start().await;
    let a: Arc<dyn HaBackend> = Arc::new(f.connect_k8s().await);
    let b: Arc<dyn HaBackend> = Arc::new(f.connect_k8s().await);
    let layout = Layout::default();
    let job = JobId::new_random();
    let (latch_a, token_a, _ev) = acquire(&a, "leader/latch").await;
    let fenced = |t: &tenure_core::kv::FencingToken| CreateOptions {
        fence: Some(t.clone()),
        ..Default::default()
    };
    a.kv()
        .create(
            &layout.checkpoint(&job, CheckpointId(1)),
            Bytes::from_static(b"1"),
            fenced(&token_a),
        )
        .await
        .unwrap();
    let name = format!("{}-{job}-config-map", f.settings().cluster_id);
    let claim: Value = serde_json::from_str(
        cm(&f, &name).unwrap()["metadata"]["annotations"]["tenure/claim"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claim["lock"], cluster_cm_name(&f).as_str());
    assert_eq!(claim["term"], token_a.epoch());
    latch_a.close().await.unwrap();
    let (_latch_b, token_b, _ev) = acquire(&b, "leader/latch").await;
    assert!(token_b.epoch() > token_a.epoch());
    // The new term claimed the existing per-job ConfigMap before it was reported.
    let swept: Value = serde_json::from_str(
        cm(&f, &name).unwrap()["metadata"]["annotations"]["tenure/claim"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(swept["term"], token_b.epoch());
    let err = a
        .kv()
        .create(
            &layout.checkpoint(&job, CheckpointId(2)),
            Bytes::from_static(b"2"),
            fenced(&token_a),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::NotLeader { .. }), "{err}");
    b.kv()
        .create(
            &layout.checkpoint(&job, CheckpointId(2)),
            Bytes::from_static(b"2"),
            fenced(&token_b),
        )
        .await
        .unwrap();
    let claim: Value = serde_json::from_str(
        cm(&f, &name).unwrap()["metadata"]["annotations"]["tenure/claim"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claim["term"], token_b.epoch());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_component_latches_use_flinks_per_component_configmaps() {
    let f = KubernetesFactory::start().await;
    let a: Arc<dyn HaBackend> = Arc::new(f.connect_k8s().await);
    let layout = Layout::default();
    let job = JobId::new_random();
    let (_l, token, _ev) = acquire(&a, &layout.component_latch(&ComponentId::JobMaster(job))).await;
    let name = format!("{}-{job}-jobmanager-leader", f.settings().cluster_id);
    assert_eq!(token.lock(), name.as_str());
    let lock = cm(&f, &name).unwrap();
    assert!(
        lock["metadata"]["annotations"]["control-plane.alpha.kubernetes.io/leader"].is_string()
    );
    let (_l2, token2, _ev2) = acquire(&a, &layout.component_latch(&ComponentId::Dispatcher)).await;
    assert_eq!(
        token2.lock(),
        format!("{}-dispatcher-leader", f.settings().cluster_id).as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptied_configmaps_of_the_cluster_are_removed_and_nothing_else() {
    let f = KubernetesFactory::start().await;
    let ns = f.settings().namespace;
    f.server().put_raw(
        Resource::ConfigMaps,
        &ns,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated"}}),
    );
    let a = f.connect_k8s().await;
    let layout = Layout::default();
    let job = JobId::new_random();
    a.create(
        &layout.checkpoint(&job, CheckpointId(1)),
        Bytes::from_static(b"x"),
        CreateOptions::default(),
    )
    .await
    .unwrap();
    a.create("k", Bytes::from_static(b"x"), CreateOptions::default())
        .await
        .unwrap();
    assert!(f.server().objects(Resource::ConfigMaps, &ns).len() >= 4);
    a.delete(
        &layout.checkpoint(&job, CheckpointId(1)),
        DeleteOptions::default(),
    )
    .await
    .unwrap();
    a.delete("k", DeleteOptions::default()).await.unwrap();
    let removed = a.remove_empty_namespace().await.unwrap();
    assert!(!removed.is_empty(), "the emptied ConfigMaps go");
    a.close().await.unwrap();
    wait_until("only the unrelated ConfigMap left", DEADLINE, || {
        let names: Vec<String> = f
            .server()
            .objects(Resource::ConfigMaps, &ns)
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        std::future::ready(names == ["unrelated"])
    })
    .await;
}
