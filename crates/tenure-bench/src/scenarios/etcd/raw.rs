//! The floor: tenure's etcd latch recipe made directly with etcd-client, request for request
//! (`tenure-etcd`'s `latch_io.rs`): a lease kept alive every third of its TTL; joining is one
//! transaction (`create_revision(<dir>/<lease hex>) == 0` ⇒ put under the lease and read it
//! back, else read it); the line is one keys-only range read of `<dir>/`; the lowest create
//! revision leads; a contender watches its predecessor (the leader its own key) from the
//! revision of its read; leaving is one transaction deleting the key (and the leader's
//! published keys) while the key exists.

use std::time::Duration;

use anyhow::{Context as _, bail};
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions, WatchStream,
};
use tokio::task::JoinHandle;

use super::server::raw_client;

/// One simulated process of the floor: a connection and a lease kept alive.
pub struct RawSession {
    client: Client,
    lease: i64,
    keeper: JoinHandle<()>,
}

impl std::fmt::Debug for RawSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSession")
            .field("lease", &format_args!("{:x}", self.lease))
            .finish_non_exhaustive()
    }
}

impl Drop for RawSession {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl RawSession {
    /// Connects to `endpoint`, grants a lease of `ttl` and keeps it alive every `ttl`/3 on one
    /// keep-alive stream.
    pub async fn open(endpoint: &str, ttl: Duration) -> anyhow::Result<Self> {
        let mut client = raw_client(endpoint).await?;
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let lease = client
            .lease_grant(secs, None)
            .await
            .context("granting the floor's lease")?
            .id();
        let (mut keeper, mut stream) = client
            .lease_keep_alive(lease)
            .await
            .context("opening the floor's keep-alive stream")?;
        let interval = Duration::from_secs(secs.unsigned_abs()) / 3;
        let keeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if keeper.keep_alive().await.is_err() {
                    return;
                }
                match stream.message().await {
                    Ok(Some(r)) if r.ttl() > 0 => {}
                    _ => return,
                }
            }
        });
        Ok(Self {
            client,
            lease,
            keeper,
        })
    }

    /// The lease id.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// A handle of the connection.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Joins the latch `dir`: its key and create revision.
    pub async fn join(&self, dir: &str) -> anyhow::Result<(String, i64)> {
        let key = format!("{dir}/{:x}", self.lease);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(
                    key.clone(),
                    Vec::new(),
                    Some(PutOptions::new().with_lease(self.lease)),
                ),
                TxnOp::get(key.clone(), None),
            ])
            .or_else([TxnOp::get(key.clone(), None)]);
        let resp = self.client.clone().txn(txn).await.context("floor join")?;
        let kv = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().cloned(),
            _ => None,
        });
        match kv {
            Some(kv) if kv.lease() == self.lease => Ok((key, kv.create_revision())),
            _ => bail!("the floor's latch key {key} is not its own after the join"),
        }
    }

    /// The line of `dir`: `(key, create revision)` by create revision, and the read's revision.
    pub async fn list(&self, dir: &str) -> anyhow::Result<(Vec<(String, i64)>, i64)> {
        list(&self.client, dir).await
    }

    /// Joins and reads the line: the key, and the line's read revision, if it leads.
    pub async fn campaign(&self, dir: &str) -> anyhow::Result<Campaign> {
        let (key, _) = self.join(dir).await?;
        let (line, revision) = self.list(dir).await?;
        let position = line
            .iter()
            .position(|(k, _)| *k == key)
            .with_context(|| format!("the floor's key {key} is not in the line"))?;
        Ok(Campaign {
            predecessor: position.checked_sub(1).map(|p| line[p].0.clone()),
            key,
            revision,
        })
    }

    /// Leaves: deletes `key` and `also` (etcd keys) in one transaction while `key` exists.
    pub async fn leave(&self, key: &str, also: &[String]) -> anyhow::Result<()> {
        let mut ops: Vec<TxnOp> = also
            .iter()
            .map(|k| TxnOp::delete(k.as_str(), None))
            .collect();
        ops.push(TxnOp::delete(key, None));
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Greater, 0)])
            .and_then(ops);
        self.client.clone().txn(txn).await.context("floor leave")?;
        Ok(())
    }

    /// Revokes the lease (its keys go at once).
    pub async fn revoke(&self) {
        let _ = self.client.clone().lease_revoke(self.lease).await;
    }
}

/// The line of `dir` read on `client`: `(key, create revision)` of every key under a lease, by
/// create revision, and the read's revision.
pub async fn list(client: &Client, dir: &str) -> anyhow::Result<(Vec<(String, i64)>, i64)> {
    let start = format!("{dir}/").into_bytes();
    let end = tenure_etcd::keys::range_end(&start);
    let resp = client
        .clone()
        .get(
            start,
            Some(GetOptions::new().with_range(end).with_keys_only()),
        )
        .await
        .context("floor list")?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut line: Vec<(String, i64)> = resp
        .kvs()
        .iter()
        .filter(|kv| kv.lease() != 0)
        .filter_map(|kv| {
            let key = std::str::from_utf8(kv.key()).ok()?;
            Some((key.to_owned(), kv.create_revision()))
        })
        .collect();
    line.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok((line, revision))
}

/// Where a contender stands after its join and read.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// Its key.
    pub key: String,
    /// The key ahead of it (`None`: it leads).
    pub predecessor: Option<String>,
    /// The revision of the read it decided on.
    pub revision: i64,
}

/// A watch of `key` from `revision` + 1, as the recipe sets it (the stream's first answer is
/// awaited, so the server has the watch when this returns).
pub async fn watch(client: &Client, key: &str, revision: i64) -> anyhow::Result<WatchStream> {
    let options = WatchOptions::new().with_start_revision(revision + 1);
    let mut stream = client
        .clone()
        .watch(key, Some(options))
        .await
        .with_context(|| format!("watching {key}"))?;
    match stream.message().await {
        Ok(Some(r)) if r.created() => Ok(stream),
        other => bail!("the watch of {key} was not created: {other:?}"),
    }
}

/// Resolves once the watched key is deleted (or the watch ends).
pub async fn deleted(stream: &mut WatchStream) {
    while let Ok(Some(resp)) = stream.message().await {
        if resp.canceled()
            || resp.compact_revision() > 0
            || resp
                .events()
                .iter()
                .any(|e| e.event_type() == EventType::Delete)
        {
            return;
        }
    }
}
