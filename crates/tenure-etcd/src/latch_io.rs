//! Performs the latch recipe's requests on the backend's etcd client.

use std::sync::{Arc, Weak};
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, GetOptions, PutOptions, Txn as EtcdTxn, TxnOp as EtcdOp, TxnOpResponse,
};
use futures::future::BoxFuture;
use tenure_core::driver::{LatchIo, SessionView};
use tenure_core::kv::{KvError, VersionedKv, validate_key};
use tenure_core::retry::RetryPolicy;
use tokio::sync::watch;

use crate::EtcdBackend;
use crate::deletions::Deletions;
use crate::keys::{is_latch_participant, latch_node, range_end};
use crate::latch::{Op, Recipe, Reply, Request, Response};
use crate::session::Shared;
use crate::store::until_sent;

/// The IO half of the etcd latch, for the session driver.
pub(crate) struct Io {
    pub shared: Weak<Shared>,
    pub view: watch::Receiver<SessionView>,
    /// The session's latch waits, on one etcd watch stream.
    pub deletions: Arc<Deletions>,
}

impl LatchIo for Io {
    type Recipe = Recipe;

    fn recipe(&self, latch: &Arc<str>) -> Result<Recipe, KvError> {
        validate_key(latch)?;
        let shared = self.shared.upgrade().ok_or(KvError::Closed)?;
        shared.client()?;
        let ttl = shared.settings.lease_ttl;
        Ok(Recipe::new(
            shared.keys.etcd_key(latch).into(),
            shared.settings.suspended_policy,
            RetryPolicy::new(Duration::from_millis(100), ttl.max(Duration::from_secs(1))),
            shared.settings.request_timeout,
        ))
    }

    fn perform(&self, _participation: u64, request: Request) -> BoxFuture<'static, Reply> {
        let Request {
            generation,
            seq,
            op,
        } = request;
        let shared = match self.shared.upgrade() {
            Some(s) if s.status().generation == generation && s.client().is_ok() => s,
            _ => {
                let response = stale(&op);
                return Box::pin(async move { Reply { seq, response } });
            }
        };
        // Each operation is boxed on its own: a wait can last as long as a term, and a future
        // shared by all would be as large as the largest etcd call (about 14 KiB per parked
        // wait, by `tenure-bench etcd scale`); a wait's holds the wait alone.
        match op {
            Op::Watch {
                key,
                revision,
                also,
            } => {
                drop(shared);
                let deleted = self.deletions.wait(key, revision, also);
                Box::pin(async move {
                    let response = if deleted.await {
                        Response::Gone
                    } else {
                        Response::Watched
                    };
                    Reply { seq, response }
                })
            }
            Op::Join { dir } => Box::pin(async move {
                let response = Response::Joined(join(&shared, &dir).await);
                Reply { seq, response }
            }),
            Op::List { dir } => Box::pin(async move {
                let response = Response::Listed(list(&shared, &dir).await);
                Reply { seq, response }
            }),
            Op::Delete { key, also } => Box::pin(async move {
                let response = Response::Deleted(delete(&shared, &key, &also).await);
                Reply { seq, response }
            }),
        }
    }

    fn session(&self) -> watch::Receiver<SessionView> {
        self.view.clone()
    }

    fn kv(&self) -> Result<Arc<dyn VersionedKv>, KvError> {
        let shared = self.shared.upgrade().ok_or(KvError::Closed)?;
        Ok(Arc::new(EtcdBackend { shared }))
    }
}

/// The response to a request of a lease that is no longer current.
fn stale(op: &Op) -> Response {
    let why = || "the lease of this request is gone".to_owned();
    match op {
        Op::Join { .. } => Response::Joined(Err(why())),
        Op::List { .. } => Response::Listed(Err(why())),
        Op::Watch { .. } => Response::Watched,
        Op::Delete { .. } => Response::Deleted(Err(why())),
    }
}

/// Runs `call` within the request timeout; errors as text for the recipe.
async fn bounded<T, F, Fut>(shared: &Shared, call: F) -> Result<T, String>
where
    F: FnMut(etcd_client::Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let timeout = shared.settings.request_timeout;
    let client = shared.client().map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, until_sent(client, call)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn join(shared: &Shared, dir: &str) -> Result<(String, i64), String> {
    let lease = shared.lease();
    let key = format!("{dir}/{}", latch_node(lease));
    let txn = EtcdTxn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([
            EtcdOp::put(
                key.clone(),
                Vec::new(),
                Some(PutOptions::new().with_lease(lease)),
            ),
            EtcdOp::get(key.clone(), None),
        ])
        .or_else([EtcdOp::get(key.clone(), None)]);
    let resp = bounded(shared, |mut c| {
        let txn = txn.clone();
        async move { c.txn(txn).await }
    })
    .await?;
    let kv = resp.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(g) => g.kvs().first().cloned(),
        _ => None,
    });
    match kv {
        Some(kv) if kv.lease() == lease => Ok((key, kv.create_revision())),
        Some(_) => Err(format!("the latch key {key} belongs to another lease")),
        None => Err(format!("the latch key {key} was not found after its put")),
    }
}

async fn list(shared: &Shared, dir: &str) -> Result<(Vec<(String, i64)>, i64), String> {
    let start = format!("{dir}/").into_bytes();
    let end = range_end(&start);
    let resp = bounded(shared, |mut c| {
        let (start, end) = (start.clone(), end.clone());
        async move {
            c.get(
                start,
                Some(GetOptions::new().with_range(end).with_keys_only()),
            )
            .await
        }
    })
    .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let line = resp
        .kvs()
        .iter()
        .filter_map(|kv| {
            let key = std::str::from_utf8(kv.key()).ok()?;
            // Only direct children named by the lease they are attached to are participants.
            let name = key.strip_prefix(dir)?.strip_prefix('/')?;
            is_latch_participant(name, kv.lease()).then(|| (key.to_owned(), kv.create_revision()))
        })
        .collect();
    Ok((line, revision))
}

async fn delete(shared: &Shared, key: &str, also: &[String]) -> Result<(), String> {
    let mut ops: Vec<EtcdOp> = also
        .iter()
        .filter(|k| validate_key(k).is_ok())
        .map(|k| EtcdOp::delete(shared.keys.etcd_key(k), None))
        .collect();
    ops.push(EtcdOp::delete(key, None));
    let txn = EtcdTxn::new()
        .when([Compare::create_revision(key, CompareOp::Greater, 0)])
        .and_then(ops);
    bounded(shared, |mut c| {
        let txn = txn.clone();
        async move { c.txn(txn).await }
    })
    .await
    .map(|_| ())
}
