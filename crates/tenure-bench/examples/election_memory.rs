//! Live heap bytes per per-job election on one ZooKeeper session (a quick probe of the figure
//! `tenure-bench scale` reports): `cargo run -p tenure-bench --example election_memory [N]`.

use std::alloc::System;
use std::sync::Arc;
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tenure_core::blob::BlobStore;
use tenure_core::ids::JobId;
use tenure_core::layout::Layout;
use tenure_core::services::{ElectionMode, HaServices, HaServicesOptions, JobResultStorage};
use tenure_testkit::zookeeper::ZooKeeperServer;
use tenure_zookeeper::ZooKeeperBackend;
use tenure_zookeeper::settings::ZooKeeperSettings;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let embedded = std::env::args().nth(2).as_deref() == Some("embedded");
    {
        let b = live();
        let w: Vec<_> = (0..1000)
            .map(|_| tokio::sync::watch::channel(tenure_core::election::Leadership::NotLeader))
            .collect();
        println!("watch channel: {} B", (live() - b) / 1000);
        drop(w);
    }
    let server = if embedded {
        None
    } else {
        Some(ZooKeeperServer::start().await)
    };
    let backend: Arc<dyn tenure_core::driver::HaBackend> = match &server {
        Some(server) => {
            let settings = ZooKeeperSettings::new(server.connect_string(), "/flink", "mem")
                .with_session_timeout(Duration::from_secs(20));
            Arc::new(ZooKeeperBackend::connect(settings).await?)
        }
        None => Arc::new(tenure_core::embedded::EmbeddedCluster::new().connect()),
    };
    let dir = tempfile::tempdir()?;
    let options = HaServicesOptions {
        layout: Layout::default(),
        blobs: BlobStore::open(&dir.path().display().to_string(), "mem")?,
        job_results: JobResultStorage::Kv,
        num_retained_checkpoints: 3,
        election_mode: ElectionMode::PerComponent,
    };
    let services = HaServices::new(backend, options);
    for _ in 0..50 {
        let mut e = services
            .job_master_leader_election(JobId::new_random())
            .await?;
        e.wait_for_leadership().await?;
        e.stop().await?;
    }
    let mut held = Vec::with_capacity(n);
    let before = live();
    for _ in 0..n {
        let mut e = services
            .job_master_leader_election(JobId::new_random())
            .await?;
        e.wait_for_leadership().await?;
        held.push(e);
    }
    let after = live();
    println!(
        "{n} elections: {} bytes live, {:.0} bytes per election (incl. the caller's Vec of handles: {} bytes each)",
        after - before,
        (after - before) as f64 / n as f64,
        std::mem::size_of::<tenure_core::election::LeaderElection>()
    );
    drop(held);
    services.close().await?;
    Ok(())
}
