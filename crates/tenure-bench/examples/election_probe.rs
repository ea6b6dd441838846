//! Probe: where an uncontended election's time goes on ZooKeeper, next to the same requests made
//! directly, trials interleaved so both see the same load
//! (`cargo run --release -p tenure-bench --example election_probe`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tenure_core::election::ElectionService;
use tenure_core::ids::ComponentId;
use tenure_core::layout::Layout;
use tenure_testkit::zookeeper::ZooKeeperServer;
use tenure_zookeeper::ZooKeeperBackend;
use tenure_zookeeper::settings::ZooKeeperSettings;
use zookeeper_client as zk;

fn median(mut v: Vec<Duration>) -> u128 {
    v.sort();
    v[v.len() / 2].as_micros()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let server = ZooKeeperServer::start().await;
    let settings = ZooKeeperSettings::new(server.connect_string(), "/flink", "probe")
        .with_session_timeout(Duration::from_secs(20));
    let a = Arc::new(ZooKeeperBackend::connect(settings).await?);
    let layout = Layout::default();
    let service = ElectionService::new(a.clone(), layout, layout.cluster_latch());
    let raw = zk::Client::connector()
        .connect(&server.connect_string())
        .await?;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    raw.mkdir("/raw/latch", &open).await?;
    let node = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let (mut reg, mut grant, mut floor, mut floor_seq) = (vec![], vec![], vec![], vec![]);
    for i in 0..400 {
        let t = Instant::now();
        let mut e = service.register(ComponentId::Dispatcher).await?;
        let t_reg = t.elapsed();
        e.wait_for_leadership().await?;
        let t_grant = t.elapsed();
        e.stop().await?;

        let prefix = format!("/raw/latch/_c_{}-latch-", uuid::Uuid::new_v4());
        let t = Instant::now();
        let (c, l) = futures::future::join(
            raw.create(&prefix, &[], &node),
            raw.list_children("/raw/latch"),
        )
        .await;
        let t_floor = t.elapsed();
        let (_, seq) = c?;
        l?;
        raw.delete(&format!("{prefix}{seq}"), None).await?;

        let t = Instant::now();
        let (_, seq) = raw.create(&prefix, &[], &node).await?;
        raw.list_children("/raw/latch").await?;
        let t_seq = t.elapsed();
        raw.delete(&format!("{prefix}{seq}"), None).await?;
        if i >= 50 {
            reg.push(t_reg);
            grant.push(t_grant);
            floor.push(t_floor);
            floor_seq.push(t_seq);
        }
    }
    println!(
        "tenure: register {} µs, granted {} µs | floor pipelined {} µs, sequential {} µs",
        median(reg),
        median(grant),
        median(floor),
        median(floor_seq)
    );
    Ok(())
}
