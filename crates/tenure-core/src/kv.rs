//! The one versioned key-value trait every backend implements.
//!
//! Keys are relative paths of `/`-separated, non-empty segments (`jobs/<job-id>/checkpoints`),
//! resolved inside the cluster's namespace by the backend. A key can hold a value and have
//! descendants at the same time (as a znode can). Every write may carry the writer's
//! [`FencingToken`]; the backend checks it *in the same atomic operation* as the write and fails
//! with [`KvError::NotLeader`] if that leadership term is over.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

/// The version of one key's value. It changes with every write of that key; backends compare it
/// in [`VersionedKv::compare_and_set`] and in versioned deletes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Version(pub i64);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Proof of one leadership term, checked atomically by every fenced write.
///
/// Opaque to callers: only a backend mints one (from the object that holds the term: a ZooKeeper
/// latch node, a Kubernetes lease record, an etcd leader key, the embedded election) and only
/// that backend checks it, exactly, in the same atomic operation as the write. Callers keep it
/// and hand it to fenced writes; they compare tokens for equality and may show them.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct FencingToken {
    lock: Arc<str>,
    epoch: i64,
}

impl FencingToken {
    /// Mints a token for the term `epoch` held by the backend object `lock`. For backend
    /// implementations: a token is only meaningful to the backend that minted it.
    pub fn new(lock: impl Into<Arc<str>>, epoch: i64) -> Self {
        Self {
            lock: lock.into(),
            epoch,
        }
    }

    /// The backend object holding the term (a latch node path, a ConfigMap name, a key).
    pub fn lock(&self) -> &str {
        &self.lock
    }

    /// The term on that object (latch node sequence, leader transitions, create revision). Terms
    /// of one lock grow; use it to order terms, never to build a token.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.lock, self.epoch)
    }
}

/// One stored key with its value and version.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    /// The key, relative to the namespace.
    pub key: String,
    /// The value.
    pub value: Bytes,
    /// The version of the value.
    pub version: Version,
    /// The backend session owning the entry if it is ephemeral.
    pub ephemeral_owner: Option<u64>,
}

/// A change seen by a [`KvWatch`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum KvEvent {
    /// A key was created or changed.
    Put(Entry),
    /// A key was deleted.
    Deleted {
        /// The deleted key.
        key: String,
    },
    /// The watch may have missed events (reconnect, session change): re-read what you follow.
    Reset,
}

/// A stream of changes below a prefix. Dropping it ends the watch.
#[derive(Debug)]
pub struct KvWatch {
    rx: mpsc::UnboundedReceiver<KvEvent>,
}

impl KvWatch {
    /// A watch fed by `rx`; for backend implementations.
    pub fn new(rx: mpsc::UnboundedReceiver<KvEvent>) -> Self {
        Self { rx }
    }

    /// The next change, or `None` once the backend session is closed.
    pub async fn next(&mut self) -> Option<KvEvent> {
        self.rx.recv().await
    }
}

/// Options of [`VersionedKv::create`].
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Delete the key when this process's backend session ends.
    pub ephemeral: bool,
    /// Fail with [`KvError::NotLeader`] unless this term is current.
    pub fence: Option<FencingToken>,
}

/// Options of [`VersionedKv::delete`].
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// Delete only if the key is at this version.
    pub expected: Option<Version>,
    /// Fail with [`KvError::NotLeader`] unless this term is current.
    pub fence: Option<FencingToken>,
    /// Delete the key's descendants too; without it a key with descendants fails with
    /// [`KvError::NotEmpty`].
    pub recursive: bool,
}

/// Errors of the versioned KV. Every variant that concerns a key names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key does not exist.
    #[error("key {key:?} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The key exists already.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// The key's version is not the expected one.
    #[error("version conflict on key {key:?}: expected version {expected}, found {actual:?}")]
    VersionConflict {
        /// The key.
        key: String,
        /// The version the writer expected.
        expected: Version,
        /// The version found, if the key exists.
        actual: Option<Version>,
    },
    /// The key has descendants and the delete was not recursive.
    #[error("key {key:?} has descendants")]
    NotEmpty {
        /// The key.
        key: String,
    },
    /// The writer's leadership term is over; nothing was written.
    #[error("not leader: term {token} is over; nothing was written")]
    NotLeader {
        /// The stale token.
        token: FencingToken,
    },
    /// The connection was lost before the result arrived: the write may or may not have happened.
    /// Read back to find out.
    #[error("outcome of the operation on key {key:?} is unknown: {reason}")]
    OutcomeUnknown {
        /// The key.
        key: String,
        /// Why the result was lost.
        reason: String,
    },
    /// The key is not a valid key.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The value stored under a key could not be decoded.
    #[error("corrupt value under key {key:?}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong with the bytes.
        reason: String,
    },
    /// The value is larger than the backend accepts.
    #[error("value for key {key:?} is {size} bytes; the backend accepts at most {limit}")]
    TooLarge {
        /// The key.
        key: String,
        /// The value's size.
        size: usize,
        /// The backend's limit.
        limit: usize,
    },
    /// The backend refused the operation: this process's credentials were rejected, or they do
    /// not grant the access the key's permissions require (ZooKeeper `AuthFailed`, `NoAuth`,
    /// `InvalidACL`). Nothing was written; retrying with the same credentials fails again.
    #[error("not authorized for key {key:?}: {reason}")]
    Unauthorized {
        /// The key.
        key: String,
        /// What was refused, naming the settings that decide it.
        reason: String,
    },
    /// Operation `index` of a [`Txn`] failed, so nothing of the transaction was written.
    #[error("transaction operation {index} ({op}) failed; nothing was written: {cause}")]
    TxnFailed {
        /// The index of the failed operation in [`Txn::ops`].
        index: usize,
        /// A short description of the operation, naming its key (`create jobs/x/checkpoints/1`).
        op: String,
        /// Why it failed ([`KvError::VersionConflict`], [`KvError::NotFound`],
        /// [`KvError::AlreadyExists`], [`KvError::NotEmpty`], [`KvError::InvalidKey`], ...).
        cause: Box<KvError>,
    },
    /// This process's backend session is closed.
    #[error("backend session is closed")]
    Closed,
    /// The backend failed (unreachable, refused, timed out before sending).
    #[error("backend failure: {0}")]
    Backend(String),
    /// The backend's client failed on `key`; `source` is the client's own error, kept whole.
    #[error("backend failure on {key:?}: {context}")]
    Client {
        /// The key (or prefix, or object) the operation was on.
        key: String,
        /// What was being done, and what the client said.
        context: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
}

/// A backend client's error, kept with its type behind [`KvError::Client`]. Two are equal when
/// they say the same (errors of client crates are rarely comparable themselves).
#[derive(Clone, Debug)]
pub struct ClientError(pub Arc<dyn std::error::Error + Send + Sync>);

impl ClientError {
    /// Wraps a client's error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(e))
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl PartialEq for ClientError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for ClientError {}

impl KvError {
    /// Whether this is [`KvError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, KvError::NotFound { .. })
    }

    /// The error of transaction operation `index` (`op`) failing with `cause`.
    pub fn txn_failed(index: usize, op: &TxnOp, cause: KvError) -> Self {
        KvError::TxnFailed {
            index,
            op: op.to_string(),
            cause: Box::new(cause),
        }
    }

    /// For [`KvError::TxnFailed`]: the failed operation's index and cause; `None` for any other
    /// error (the transaction failed as a whole).
    pub fn failed_op(&self) -> Option<(usize, &KvError)> {
        match self {
            KvError::TxnFailed { index, cause, .. } => Some((*index, cause)),
            _ => None,
        }
    }
}

/// One operation of a [`Txn`]. Checks write nothing; writes behave as the single-key
/// operations of [`VersionedKv`] (a create makes missing parents where the backend needs them).
/// Operations apply in order, each seeing the effect of the ones before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    /// `key` exists at `version`; else [`KvError::VersionConflict`] ([`KvError::NotFound`] if
    /// it does not exist).
    CheckVersion {
        /// The key.
        key: String,
        /// Its expected version.
        version: Version,
    },
    /// `key` exists (any version); else [`KvError::NotFound`].
    CheckExists {
        /// The key.
        key: String,
    },
    /// `key` does not exist; else [`KvError::AlreadyExists`].
    CheckAbsent {
        /// The key.
        key: String,
    },
    /// Creates `key`; [`KvError::AlreadyExists`] if it exists.
    Create {
        /// The key.
        key: String,
        /// Its value.
        value: Bytes,
        /// Delete it when this process's backend session ends.
        ephemeral: bool,
    },
    /// Replaces the value of an existing `key` (only at version `expected`, if given);
    /// [`KvError::NotFound`] or [`KvError::VersionConflict`] otherwise. An ephemeral key stays
    /// ephemeral.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: Bytes,
        /// The version it must be at.
        expected: Option<Version>,
    },
    /// Deletes `key` (only at version `expected`, if given); [`KvError::NotFound`],
    /// [`KvError::VersionConflict`], or [`KvError::NotEmpty`] if it has descendants.
    Delete {
        /// The key.
        key: String,
        /// The version it must be at.
        expected: Option<Version>,
    },
}

impl TxnOp {
    /// The key the operation concerns.
    pub fn key(&self) -> &str {
        match self {
            TxnOp::CheckVersion { key, .. }
            | TxnOp::CheckExists { key }
            | TxnOp::CheckAbsent { key }
            | TxnOp::Create { key, .. }
            | TxnOp::Set { key, .. }
            | TxnOp::Delete { key, .. } => key,
        }
    }

    /// Whether the operation writes (create, set, delete).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            TxnOp::Create { .. } | TxnOp::Set { .. } | TxnOp::Delete { .. }
        )
    }
}

impl fmt::Display for TxnOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |v: &Option<Version>| v.map(|v| format!(" at version {v}")).unwrap_or_default();
        match self {
            TxnOp::CheckVersion { key, version } => {
                write!(f, "check {key} is at version {version}")
            }
            TxnOp::CheckExists { key } => write!(f, "check {key} exists"),
            TxnOp::CheckAbsent { key } => write!(f, "check {key} is absent"),
            TxnOp::Create { key, ephemeral, .. } => {
                let kind = if *ephemeral { "ephemeral " } else { "" };
                write!(f, "create {kind}{key}")
            }
            TxnOp::Set { key, expected, .. } => write!(f, "set {key}{}", at(expected)),
            TxnOp::Delete { key, expected } => write!(f, "delete {key}{}", at(expected)),
        }
    }
}

/// The result of one [`TxnOp`] of a committed transaction, in the same position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnResult {
    /// A check held.
    Checked,
    /// The key was created at this version.
    Created(Version),
    /// The key was set; its new version.
    Set(Version),
    /// The key was deleted.
    Deleted,
}

impl TxnResult {
    /// The new version written by a create or set.
    pub fn version(&self) -> Option<Version> {
        match self {
            TxnResult::Created(v) | TxnResult::Set(v) => Some(*v),
            TxnResult::Checked | TxnResult::Deleted => None,
        }
    }
}

/// An atomic transaction: every operation holds and is applied, or nothing is written
/// ([`VersionedKv::txn`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    /// Commit only while this term is current; else [`KvError::NotLeader`], nothing written.
    pub fence: Option<FencingToken>,
    /// The operations, applied in order.
    pub ops: Vec<TxnOp>,
}

impl Txn {
    /// An empty transaction fenced by `fence`.
    pub fn new(fence: Option<FencingToken>) -> Self {
        Self {
            fence,
            ops: Vec::new(),
        }
    }

    /// Adds `op`.
    pub fn op(mut self, op: TxnOp) -> Self {
        self.ops.push(op);
        self
    }

    /// Checks every key of the transaction, failing with [`KvError::TxnFailed`] naming the
    /// first invalid one.
    pub fn validate(&self) -> Result<(), KvError> {
        for (i, op) in self.ops.iter().enumerate() {
            validate_key(op.key()).map_err(|e| KvError::txn_failed(i, op, e))?;
        }
        Ok(())
    }
}

/// Checks that `key` is a valid key: non-empty `/`-separated segments, none `.` or `..`.
pub fn validate_key(key: &str) -> Result<(), KvError> {
    let bad = |reason: &str| {
        Err(KvError::InvalidKey {
            key: key.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if key.is_empty() {
        return bad("empty key");
    }
    for seg in key.split('/') {
        if seg.is_empty() {
            return bad("empty path segment (leading, trailing or double '/')");
        }
        if seg == "." || seg == ".." {
            return bad("'.' and '..' are not allowed as segments");
        }
        if seg.chars().any(|c| c.is_control()) {
            return bad("control characters are not allowed");
        }
    }
    Ok(())
}

/// Checks a prefix for [`VersionedKv::list`] / [`VersionedKv::watch`]: `""` (everything) or a key.
pub fn validate_prefix(prefix: &str) -> Result<(), KvError> {
    if prefix.is_empty() {
        Ok(())
    } else {
        validate_key(prefix)
    }
}

/// Whether `key` is below `prefix` (a strict descendant; `""` contains every key).
pub fn is_below(prefix: &str, key: &str) -> bool {
    prefix.is_empty()
        || (key.len() > prefix.len()
            && key.starts_with(prefix)
            && key.as_bytes()[prefix.len()] == b'/')
}

/// The versioned key-value store every backend implements; the typed HA stores are written once
/// over it.
#[async_trait]
pub trait VersionedKv: Send + Sync + fmt::Debug {
    /// The value under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Entry>, KvError>;

    /// Every key strictly below `prefix` (all depths), sorted by key. Backends with implicit
    /// parent nodes (ZooKeeper) list those too, with empty values; callers ignore keys they do
    /// not recognise.
    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, KvError>;

    /// Follows changes strictly below `prefix`. Events after this call returns are delivered;
    /// read the current state after starting the watch to miss nothing.
    async fn watch(&self, prefix: &str) -> Result<KvWatch, KvError>;

    /// Creates `key` with `value`; fails with [`KvError::AlreadyExists`] if it exists.
    async fn create(
        &self,
        key: &str,
        value: Bytes,
        opts: CreateOptions,
    ) -> Result<Version, KvError>;

    /// Replaces the value of `key` if it is at version `expected`.
    async fn compare_and_set(
        &self,
        key: &str,
        value: Bytes,
        expected: Version,
        fence: Option<FencingToken>,
    ) -> Result<Version, KvError>;

    /// Deletes `key`; [`KvError::NotFound`] if it does not exist.
    async fn delete(&self, key: &str, opts: DeleteOptions) -> Result<(), KvError>;

    /// Commits `txn` atomically, in one round trip to the backend: either every operation holds
    /// and its writes are applied (results in operation order), or nothing is written. A failed
    /// operation is [`KvError::TxnFailed`] naming its index, key and cause; a term that is over
    /// is [`KvError::NotLeader`]. Backends may limit which keys can share a transaction
    /// (Kubernetes: keys of one ConfigMap) and fail otherwise, naming the keys.
    async fn txn(&self, txn: Txn) -> Result<Vec<TxnResult>, KvError>;

    /// Removes the container of this cluster's namespace once nothing of it is left (the last
    /// step of `close_and_cleanup_all_data`, after every planned key was deleted one by one).
    /// It removes only what is provably empty: on ZooKeeper the namespace znode if it holds no
    /// data and has no children (never its parents, which belong to the root's owner); on
    /// Kubernetes the cluster's labelled ConfigMaps that hold no data key (session and leader
    /// records are annotations); nothing on the embedded backend. Returns what it removed, in the
    /// backend's own names.
    async fn remove_empty_namespace(&self) -> Result<Vec<String>, KvError>;

    /// The id of this process's backend session (owner of its ephemeral keys).
    fn session_id(&self) -> u64;

    /// Whether a key's parents are keys of their own that a write needs (ZooKeeper's znodes:
    /// `leader/<component>` must exist before `leader/<component>/connection_info`). Writers
    /// that know a parent is missing can then create it in the same transaction; on backends
    /// without such parents (the default) they never write one.
    fn parents_are_keys(&self) -> bool {
        false
    }

    /// The place in its latch's line of the latch key `entry`, whose last segment is `node`:
    /// the lowest place leads. `None` when this backend's latch recipe does not count the key
    /// as a participant (foreign data in a latch directory). The default is the rule of the
    /// Curator-style recipes ([`crate::latch::sequence`]: the node's sequence number); a
    /// backend whose recipe names and orders participants otherwise overrides it, so tools
    /// that inspect latches read every backend's line as its recipe does.
    fn latch_place(&self, node: &str, entry: &Entry) -> Option<i64> {
        let _ = entry;
        crate::latch::sequence(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(validate_key("jobs/abc/checkpoints").is_ok());
        for bad in ["", "/a", "a/", "a//b", "a/../b", "a/\n"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn key_validation_never_panics(key in ".*", prefix in ".*") {
            let _ = validate_key(&key);
            let _ = validate_prefix(&prefix);
            let _ = is_below(&prefix, &key);
        }
    }

    #[test]
    fn below_means_strict_descendant() {
        assert!(is_below("a", "a/b"));
        assert!(is_below("", "a"));
        assert!(!is_below("a", "a"));
        assert!(!is_below("a", "ab/c"));
    }
}
