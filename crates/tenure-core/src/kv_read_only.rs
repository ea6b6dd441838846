//! A read-only view of a [`VersionedKv`]: reads and watches pass through, every write is
//! refused before it reaches the backend.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::kv::{
    CreateOptions, DeleteOptions, Entry, FencingToken, KvError, KvWatch, Txn, TxnResult, Version,
    VersionedKv,
};

/// The KV of client-only services ([`ClientHaServices`](crate::services_client::ClientHaServices)):
/// `get`, `list` and `watch` of the backend's KV; `create`, `compare_and_set`, `delete`, `txn`
/// and `remove_empty_namespace` fail with [`KvError::Unauthorized`] naming the operation and
/// the key, and nothing is sent to the backend.
#[derive(Debug, Clone)]
pub struct ReadOnlyKv {
    inner: Arc<dyn VersionedKv>,
}

impl ReadOnlyKv {
    /// A read-only view of `inner`.
    pub fn new(inner: Arc<dyn VersionedKv>) -> Self {
        Self { inner }
    }

    fn refuse<T>(op: &str, key: &str) -> Result<T, KvError> {
        Err(KvError::Unauthorized {
            key: key.to_owned(),
            reason: format!(
                "client-only HA services only read: {op} is refused (connect the full HA \
                 services to write)"
            ),
        })
    }
}

#[async_trait]
impl VersionedKv for ReadOnlyKv {
    async fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, KvError> {
        self.inner.list(prefix).await
    }

    async fn watch(&self, prefix: &str) -> Result<KvWatch, KvError> {
        self.inner.watch(prefix).await
    }

    async fn create(
        &self,
        key: &str,
        _value: Bytes,
        _opts: CreateOptions,
    ) -> Result<Version, KvError> {
        Self::refuse("create", key)
    }

    async fn compare_and_set(
        &self,
        key: &str,
        _value: Bytes,
        _expected: Version,
        _fence: Option<FencingToken>,
    ) -> Result<Version, KvError> {
        Self::refuse("compare-and-set", key)
    }

    async fn delete(&self, key: &str, _opts: DeleteOptions) -> Result<(), KvError> {
        Self::refuse("delete", key)
    }

    async fn txn(&self, txn: Txn) -> Result<Vec<TxnResult>, KvError> {
        let key = txn.ops.first().map(|op| op.key().to_owned());
        Self::refuse("a transaction", key.as_deref().unwrap_or(""))
    }

    async fn remove_empty_namespace(&self) -> Result<Vec<String>, KvError> {
        Self::refuse("removing the empty namespace", "")
    }

    fn session_id(&self) -> u64 {
        self.inner.session_id()
    }

    fn parents_are_keys(&self) -> bool {
        self.inner.parents_are_keys()
    }

    fn latch_place(&self, node: &str, entry: &Entry) -> Option<i64> {
        self.inner.latch_place(node, entry)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::driver::HaBackend;
    use crate::embedded::EmbeddedCluster;

    #[tokio::test]
    async fn reads_pass_and_writes_are_refused_naming_the_key() {
        let cluster = EmbeddedCluster::new();
        let writer = cluster.connect().kv();
        writer
            .create("a/b", Bytes::from_static(b"x"), CreateOptions::default())
            .await
            .unwrap();
        let ro = ReadOnlyKv::new(cluster.connect().kv());
        assert_eq!(&ro.get("a/b").await.unwrap().unwrap().value[..], b"x");
        assert_eq!(ro.list("a").await.unwrap().len(), 1);
        let e = ro
            .create("a/c", Bytes::new(), CreateOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, KvError::Unauthorized { key, .. } if key == "a/c"),
            "{e}"
        );
        assert!(e.to_string().contains("client-only"), "{e}");
        let e = ro
            .delete("a/b", DeleteOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e, KvError::Unauthorized { .. }));
        assert!(writer.get("a/b").await.unwrap().is_some());
    }
}
