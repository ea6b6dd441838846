//! `tenure-bench etcd-child leader ...`: the leader process that the etcd crash failover kills.
//! It prints `LEADER <lease id>` once it leads, then keeps its lease alive (tenure: its
//! session's own renewals, every third of the TTL; raw: the same cadence) until killed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tenure::services::ElectionMode;
use tenure_etcd::EtcdBackend;

use crate::bench;
use crate::child::Impl;

use super::raw::RawSession;
use super::server::{etcd_key, settings};

/// Arguments of `tenure-bench etcd-child`.
#[derive(Clone, Debug, clap::Args)]
pub struct EtcdChildArgs {
    /// Which implementation leads.
    #[arg(long = "impl", value_enum)]
    pub implementation: Impl,
    /// The etcd client URL.
    #[arg(long)]
    pub endpoint: String,
    /// The cluster id (keys below `/flink/<id>`).
    #[arg(long)]
    pub cluster_id: String,
    /// The lease TTL in seconds.
    #[arg(long)]
    pub ttl_s: u64,
}

/// The raw recipe's latch directory of a cluster.
pub fn raw_latch_dir(cluster_id: &str) -> String {
    etcd_key(cluster_id, "raw/latch")
}

fn say(line: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Leads, says so, and holds the leadership until killed.
pub async fn run(args: EtcdChildArgs) -> anyhow::Result<()> {
    let ttl = Duration::from_secs(args.ttl_s);
    match args.implementation {
        Impl::Tenure => {
            let backend =
                EtcdBackend::connect(settings(&args.endpoint, &args.cluster_id, ttl)).await?;
            let blobs = tempfile::tempdir()?;
            let services = bench::services_on(
                Arc::new(backend.clone()),
                &args.cluster_id,
                ElectionMode::ProcessWide,
                blobs.path(),
            )?;
            let mut election = services.dispatcher_leader_election().await?;
            election.wait_for_leadership().await?;
            say(&format!("LEADER {}", backend.lease_id()))?;
            std::future::pending::<()>().await;
        }
        Impl::Raw => {
            let session = RawSession::open(&args.endpoint, ttl).await?;
            let c = session.campaign(&raw_latch_dir(&args.cluster_id)).await?;
            if c.predecessor.is_some() {
                bail!("the raw leader is not first in line");
            }
            say(&format!("LEADER {}", session.lease()))?;
            std::future::pending::<()>().await;
        }
    }
    Ok(())
}
