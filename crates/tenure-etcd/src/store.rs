//! [`VersionedKv`] on etcd: keys of the namespace, versions as `mod_revision`, ephemeral keys
//! under the process's lease, writes (single or [`Txn`]) as one etcd transaction each.

use std::future::Future;

use async_trait::async_trait;
use bytes::Bytes;
use std::time::Duration;

use etcd_client::{Client, GetOptions, KeyValue};
use tenure_core::kv::{
    CreateOptions, DeleteOptions, Entry, FencingToken, KvError, KvWatch, Txn, TxnOp, TxnResult,
    Version, VersionedKv, validate_key, validate_prefix,
};

use crate::EtcdBackend;
use crate::error::{client_error, timed_out};
use crate::keys::{Keys, is_latch_participant};
use crate::txn::Plan;

/// The pause before a request that could not be sent is tried again.
const UNSENT_RETRY: Duration = Duration::from_millis(50);

/// Makes the request `call` with `client`, again after a pause each time it could not be
/// sent (a node of a cluster is down and the client routed the request to it); the caller
/// bounds the whole.
pub(crate) async fn until_sent<T, F, Fut>(
    client: Client,
    mut call: F,
) -> Result<T, etcd_client::Error>
where
    F: FnMut(Client) -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    loop {
        match call(client.clone()).await {
            Err(e) if is_unsent(&e) => tokio::time::sleep(UNSENT_RETRY).await,
            r => return r,
        }
    }
}

/// Whether the request failed before it was sent: no connection to the endpoint it was routed
/// to (a node down in a cluster). Retrying it cannot apply it twice.
pub(crate) fn is_unsent(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            s.code() == tonic::Code::Unavailable && s.message().contains("connect error")
        }
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

/// The entry of an etcd key-value of the namespace.
pub(crate) fn entry(keys: &Keys, kv: &KeyValue) -> Option<Entry> {
    Some(Entry {
        key: keys.key_of(kv.key())?,
        value: Bytes::copy_from_slice(kv.value()),
        version: Version(kv.mod_revision()),
        ephemeral_owner: (kv.lease() != 0).then_some(kv.lease() as u64),
    })
}

/// A single operation's failure as the operation's own error (not a transaction's).
fn single(e: KvError) -> KvError {
    match e {
        KvError::TxnFailed { cause, .. } => *cause,
        e => e,
    }
}

impl EtcdBackend {
    /// Runs `call` within the request timeout, again while it fails without having been sent
    /// (no connection to the endpoint it was routed to: another endpoint may serve it).
    async fn bounded<T, F, Fut>(&self, key: &str, what: &str, call: F) -> Result<T, KvError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let timeout = self.shared.settings.request_timeout;
        let client = self.shared.client()?;
        match tokio::time::timeout(timeout, until_sent(client, call)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(client_error(e, key, what)),
            Err(_) => Err(timed_out(key, what, timeout)),
        }
    }

    /// Commits a compiled plan; `key` names it in errors.
    async fn commit(&self, plan: Plan, key: &str) -> Result<Vec<TxnResult>, KvError> {
        if self.shared.settings.client_only {
            return Err(KvError::Unauthorized {
                key: key.to_owned(),
                reason: "this is a client-only etcd session (EtcdSettings::for_client_only): \
                         it reads and follows leaders but writes nothing"
                    .into(),
            });
        }
        let txn = plan.etcd_txn();
        let resp = self
            .bounded(key, "transaction", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| h.revision());
            Ok(plan.results(revision))
        } else {
            Err(plan.failure(&resp.op_responses()))
        }
    }

    fn plan(&self, txn: Txn) -> Result<Plan, KvError> {
        Plan::new(&self.shared.keys, txn, self.shared.lease())
    }
}

#[async_trait]
impl VersionedKv for EtcdBackend {
    async fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        validate_key(key)?;
        let keys = &self.shared.keys;
        let ek = keys.etcd_key(key);
        let resp = self
            .bounded(key, "get", |mut c| {
                let ek = ek.clone();
                async move { c.get(ek, None).await }
            })
            .await?;
        Ok(resp.kvs().first().and_then(|kv| entry(keys, kv)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, KvError> {
        validate_prefix(prefix)?;
        let keys = &self.shared.keys;
        let (start, end) = keys.range_below(prefix);
        let resp = self
            .bounded(prefix, "range read", |mut c| {
                let (start, end) = (start.clone(), end.clone());
                async move { c.get(start, Some(GetOptions::new().with_range(end))).await }
            })
            .await?;
        Ok(resp.kvs().iter().filter_map(|kv| entry(keys, kv)).collect())
    }

    async fn watch(&self, prefix: &str) -> Result<KvWatch, KvError> {
        validate_prefix(prefix)?;
        crate::watch::start(&self.shared, prefix).await
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        opts: CreateOptions,
    ) -> Result<Version, KvError> {
        let txn = Txn::new(opts.fence).op(TxnOp::Create {
            key: key.to_owned(),
            value,
            ephemeral: opts.ephemeral,
        });
        let results = self.commit(self.plan(txn).map_err(single)?, key).await;
        results
            .map_err(single)?
            .first()
            .and_then(TxnResult::version)
            .ok_or_else(|| KvError::Backend(format!("etcd reported no version for {key:?}")))
    }

    async fn compare_and_set(
        &self,
        key: &str,
        value: Bytes,
        expected: Version,
        fence: Option<FencingToken>,
    ) -> Result<Version, KvError> {
        let txn = Txn::new(fence).op(TxnOp::Set {
            key: key.to_owned(),
            value,
            expected: Some(expected),
        });
        let results = self.commit(self.plan(txn).map_err(single)?, key).await;
        results
            .map_err(single)?
            .first()
            .and_then(TxnResult::version)
            .ok_or_else(|| KvError::Backend(format!("etcd reported no version for {key:?}")))
    }

    async fn delete(&self, key: &str, opts: DeleteOptions) -> Result<(), KvError> {
        let txn = Txn::new(opts.fence).op(TxnOp::Delete {
            key: key.to_owned(),
            expected: opts.expected,
        });
        let mut plan = self.plan(txn).map_err(single)?;
        if opts.recursive {
            plan.delete_below(&self.shared.keys, key);
        }
        self.commit(plan, key).await.map_err(single).map(|_| ())
    }

    async fn txn(&self, txn: Txn) -> Result<Vec<TxnResult>, KvError> {
        let key = txn
            .ops
            .first()
            .map_or_else(String::new, |op| op.key().to_owned());
        let plan = self.plan(txn)?;
        self.commit(plan, &key).await
    }

    async fn remove_empty_namespace(&self) -> Result<Vec<String>, KvError> {
        // etcd keys are flat: the namespace is no object of its own, nothing to remove.
        Ok(Vec::new())
    }

    fn session_id(&self) -> u64 {
        self.shared.lease() as u64
    }

    /// A participant's key is named by the lease it is attached to and never rewritten, so
    /// its version (mod revision) is its create revision: the lowest leads.
    fn latch_place(&self, node: &str, entry: &Entry) -> Option<i64> {
        let lease = entry.ephemeral_owner.map_or(0, |o| o as i64);
        is_latch_participant(node, lease).then_some(entry.version.0)
    }
}
