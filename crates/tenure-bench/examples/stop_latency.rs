//! Probe: how long a process-wide leader's `stop()` takes on ZooKeeper, next to the one multi
//! it sends made directly (`cargo run --release -p tenure-bench --example stop_latency`;
//! `... stop_latency standby` with a second session in line, as in the handover scenario).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tenure_core::election::ElectionService;
use tenure_core::ids::ComponentId;
use tenure_core::kv::{CreateOptions, Txn, TxnOp, VersionedKv};
use tenure_core::layout::Layout;
use tenure_testkit::zookeeper::ZooKeeperServer;
use tenure_zookeeper::ZooKeeperBackend;
use tenure_zookeeper::settings::ZooKeeperSettings;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let server = ZooKeeperServer::start().await;
    let settings = ZooKeeperSettings::new(server.connect_string(), "/flink", "stop")
        .with_session_timeout(Duration::from_secs(20));
    let a = Arc::new(ZooKeeperBackend::connect(settings.clone()).await?);
    let b = Arc::new(ZooKeeperBackend::connect(settings).await?);
    let standby_service = ElectionService::new(
        b.clone(),
        Layout::default(),
        Layout::default().cluster_latch(),
    );
    let with_standby = std::env::args().nth(1).as_deref() == Some("standby");
    let layout = Layout::default();
    let service = ElectionService::new(a.clone(), layout, layout.cluster_latch());
    let mut stops = Vec::new();
    let mut txns = Vec::new();
    for _ in 0..60 {
        let mut e = service.register(ComponentId::Dispatcher).await?;
        let term = e.wait_for_leadership().await?;
        e.confirm(term.session_id, "addr").await?;
        let standby = if with_standby {
            let s = standby_service.register(ComponentId::Dispatcher).await?;
            while a.list("leader/latch").await?.len() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some(s)
        } else {
            None
        };
        let t = Instant::now();
        e.stop().await?;
        stops.push(t.elapsed());
        if let Some(mut s) = standby {
            s.wait_for_leadership().await?;
            s.stop().await?;
        }
        for k in ["q", "q/a", "q/a/b"] {
            let _ = a.create(k, Bytes::new(), CreateOptions::default()).await;
        }
        let t = Instant::now();
        let txn = Txn::new(None)
            .op(TxnOp::Delete {
                key: "q/a/b".into(),
                expected: None,
            })
            .op(TxnOp::Delete {
                key: "q/a".into(),
                expected: None,
            })
            .op(TxnOp::Delete {
                key: "q".into(),
                expected: None,
            });
        a.txn(txn).await?;
        txns.push(t.elapsed());
    }
    // The same multi from a raw client, with a raw standby watching the node when asked.
    let ca = zookeeper_client::Client::connector()
        .connect(&server.connect_string())
        .await?;
    let cb = zookeeper_client::Client::connector()
        .connect(&server.connect_string())
        .await?;
    let acl = zookeeper_client::Acls::anyone_all();
    let seq = zookeeper_client::CreateMode::EphemeralSequential.with_acls(acl);
    let eph = zookeeper_client::CreateMode::Ephemeral.with_acls(acl);
    let per = zookeeper_client::CreateMode::Persistent.with_acls(acl);
    ca.mkdir("/raw/latch", &per).await?;
    let mut raws = Vec::new();
    for _ in 0..60 {
        let (_, sa) = ca.create("/raw/latch/a-latch-", &[], &seq).await?;
        let pa = format!("/raw/latch/a-latch-{sa}");
        let (_, own) = ca.check_and_watch_stat(&pa).await?;
        let _ = ca.create("/raw/dir", &[], &per).await;
        ca.create("/raw/dir/info", b"x", &eph).await?;
        let standby = if with_standby {
            let (_, sb) = cb.create("/raw/latch/b-latch-", &[], &seq).await?;
            let (_, w) = cb.check_and_watch_stat(&pa).await?;
            Some((format!("/raw/latch/b-latch-{sb}"), w))
        } else {
            None
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = Instant::now();
        let mut w = ca.new_multi_writer();
        w.add_delete("/raw/dir/info", None)?;
        w.add_delete("/raw/dir", None)?;
        w.add_delete(&pa, None)?;
        w.commit().await?;
        raws.push(t.elapsed());
        own.changed().await;
        if let Some((pb, w)) = standby {
            w.changed().await;
            cb.list_children("/raw/latch").await?;
            cb.delete(&pb, None).await?;
        }
    }
    raws.sort();
    println!("raw multi median {:?} (p10 {:?})", raws[30], raws[6]);
    stops.sort();
    txns.sort();
    println!(
        "stop median {:?} (p10 {:?}); same-shape txn median {:?} (p10 {:?})",
        stops[30], stops[6], txns[30], txns[6]
    );
    Ok(())
}
