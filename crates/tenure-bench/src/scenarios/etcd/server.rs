//! The etcd server of one scenario (a fresh one per scenario, started by the testkit's harness),
//! tenure's sessions on it and the raw client's.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tenure::services::{ElectionMode, HaServices};
use tenure_etcd::{EtcdBackend, EtcdSettings};
use tenure_testkit::etcd::EtcdServer;

use crate::bench::{self, ROOT, SETTLE};

use super::metrics::Requests;

/// The lease TTL of every session that is not the subject of a crash.
pub const SESSION_TTL: Duration = Duration::from_secs(10);

/// How long a request may take before a session gives it up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One etcd server (single node, loopback).
#[derive(Debug)]
pub struct Etcd {
    server: EtcdServer,
}

impl Etcd {
    /// Starts a server on free loopback ports (the testkit's harness: Debian's `etcd`,
    /// single node, data in a temporary directory, heartbeat 100 ms).
    pub async fn start() -> anyhow::Result<Self> {
        let server = tokio::spawn(EtcdServer::start()).await.context(
            "the etcd server did not start (is the Debian package `etcd-server` installed?)",
        )?;
        Ok(Self { server })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// The server's version, as it reports it.
    pub async fn version(&self) -> Option<String> {
        let mut c = self.raw().await.ok()?;
        let status = tokio::time::timeout(Duration::from_secs(5), c.status())
            .await
            .ok()?
            .ok()?;
        Some(status.version().to_owned())
    }

    /// The server's request counts now.
    pub async fn requests(&self) -> anyhow::Result<Requests> {
        Requests::scrape(self.server.port()).await
    }

    /// Runs `op` and returns its output with the requests the server received meanwhile (and in
    /// the [`SETTLE`] after it, so requests sent as it completes are in), keep-alives left out.
    /// Call it only while nothing else sends requests.
    pub async fn counted<T>(
        &self,
        op: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<(T, Requests)> {
        let before = self.requests().await?;
        let out = op.await?;
        tokio::time::sleep(SETTLE).await;
        Ok((out, self.requests().await?.since(&before)))
    }

    /// Waits until the server has received `count` messages of `method` in all (then
    /// [`SETTLE`] more), within 30 s.
    pub async fn wait_requests(&self, method: &str, count: u64) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let have = self.requests().await?.of(method);
            if have >= count {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the server received {have} {method} requests, expected {count}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(SETTLE).await;
        Ok(())
    }

    /// tenure's settings for `cluster_id` with a lease of `ttl`.
    pub fn settings(&self, cluster_id: &str, ttl: Duration) -> EtcdSettings {
        settings(&self.endpoint(), cluster_id, ttl)
    }

    /// A new tenure session (one process's lease).
    pub async fn backend(&self, cluster_id: &str) -> anyhow::Result<EtcdBackend> {
        Ok(EtcdBackend::connect(self.settings(cluster_id, SESSION_TTL)).await?)
    }

    /// HA services on a new session, elections in `mode`, blobs below `blob_dir`; and the
    /// session itself (its lease id names its latch keys).
    pub async fn services(
        &self,
        cluster_id: &str,
        mode: ElectionMode,
        blob_dir: &std::path::Path,
    ) -> anyhow::Result<(HaServices, EtcdBackend)> {
        let backend = self.backend(cluster_id).await?;
        let services = bench::services_on(Arc::new(backend.clone()), cluster_id, mode, blob_dir)?;
        Ok((services, backend))
    }

    /// A raw client connection.
    pub async fn raw(&self) -> anyhow::Result<etcd_client::Client> {
        raw_client(&self.endpoint()).await
    }

    /// Waits until `prefix/` has `count` keys (then [`SETTLE`] more, when `count` > 1, so a
    /// standby's watch is in place), within 30 s.
    pub async fn wait_keys(&self, prefix: &str, count: usize) -> anyhow::Result<()> {
        let mut c = self.raw().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let have = count_below(&mut c, prefix).await?;
            if have == count {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{prefix}/ has {have} keys, expected {count}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if count > 1 {
            tokio::time::sleep(SETTLE).await;
        }
        Ok(())
    }
}

/// tenure's settings for a cluster on `endpoint`.
pub fn settings(endpoint: &str, cluster_id: &str, ttl: Duration) -> EtcdSettings {
    EtcdSettings::new(vec![endpoint.to_owned()], ROOT, cluster_id)
        .with_lease_ttl(ttl)
        .with_request_timeout(REQUEST_TIMEOUT)
}

/// The etcd key of a tenure key in `cluster_id` (`/flink/<cluster>/<key>`).
pub fn etcd_key(cluster_id: &str, key: &str) -> String {
    bench::znode(cluster_id, key)
}

/// A raw client connection to `endpoint`, within 15 s. Its HTTP/2 keep-alive pings are 10 s
/// apart: etcd answers pings closer than its `--grpc-keepalive-min-time` (5 s by default) on a
/// connection with an idle stream (a watch waiting for an event) by closing the connection
/// (seen here: a 1 s interval broke an idle watch after about 3 s).
pub async fn raw_client(endpoint: &str) -> anyhow::Result<etcd_client::Client> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(15))
        .with_keep_alive(Duration::from_secs(10), REQUEST_TIMEOUT);
    match tokio::time::timeout(
        Duration::from_secs(15),
        etcd_client::Client::connect([endpoint], Some(options)),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => bail!("raw etcd client cannot connect to {endpoint}: {e}"),
        Err(_) => bail!("raw etcd client cannot connect to {endpoint} within 15 s"),
    }
}

/// The number of keys below `prefix/`.
pub async fn count_below(c: &mut etcd_client::Client, prefix: &str) -> anyhow::Result<usize> {
    let start = format!("{prefix}/").into_bytes();
    let end = tenure_etcd::keys::range_end(&start);
    let resp = c
        .get(
            start,
            Some(
                etcd_client::GetOptions::new()
                    .with_range(end)
                    .with_count_only(),
            ),
        )
        .await
        .with_context(|| format!("counting the keys below {prefix}/"))?;
    Ok(usize::try_from(resp.count()).unwrap_or(0))
}
