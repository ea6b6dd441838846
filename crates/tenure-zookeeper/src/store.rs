//! The versioned KV over znodes.
//!
//! - Key `a/b/c` is the znode `<namespace>/a/b/c`; creating it creates missing parents as
//!   persistent znodes with empty data, so [`VersionedKv::list`] also returns those implicit
//!   parents (with empty values).
//! - [`Version`] is the znode's `stat.version` (ZooKeeper's per-znode data version, widened to
//!   `i64`). It starts at 0 and restarts at 0 when a znode is deleted and created again.
//! - A write with a [`FencingToken`] is ONE ZooKeeper `multi` whose first operation is
//!   `check(<latch node>, version 0)`: the latch node is never modified, so the check holds
//!   exactly while the node (the leadership term) exists. A failed check is
//!   [`KvError::NotLeader`] and nothing is written.
//! - A [`Txn`] is ONE `multi`: the fence check first, then its operations (`store/txn.rs`). The
//!   fence must name a latch node of this namespace whose sequence is the token's epoch.
//! - A write whose reply was lost with the connection is [`KvError::OutcomeUnknown`]; reads are
//!   retried.

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::join_all;
use tenure_core::kv::{
    CreateOptions, DeleteOptions, Entry, FencingToken, KvError, KvWatch, Txn, TxnResult, Version,
    VersionedKv, validate_key, validate_prefix,
};
use tenure_core::latch;
use zookeeper_client as zk;

use crate::ZooKeeperBackend;
use crate::error::{Op, is_definite, map, map_read, read_gave_up};
use crate::paths::{Paths, child_path, parent_path};

/// The largest value accepted: ZooKeeper's default `jute.maxbuffer` (1 MiB) less a margin for
/// the request's path and headers.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024 - 1024;

#[path = "txn.rs"]
mod txn;

/// How many times a write whose parent vanished concurrently is retried.
const PARENT_RACE_ATTEMPTS: usize = 5;

/// Operations per `multi` when deleting a tree.
const DELETE_BATCH: usize = 500;

/// How many times an interrupted read is retried.
const READ_ATTEMPTS: usize = 3;

fn entry(key: &str, data: Vec<u8>, stat: &zk::Stat) -> Entry {
    Entry {
        key: key.to_owned(),
        value: Bytes::from(data),
        version: Version(i64::from(stat.version)),
        ephemeral_owner: (stat.ephemeral_owner != 0).then_some(stat.ephemeral_owner as u64),
    }
}

fn check_size(key: &str, value: &Bytes) -> Result<(), KvError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvError::TooLarge {
            key: key.to_owned(),
            size: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

/// A ZooKeeper data version from a KV version, if one can exist.
fn zk_version(v: Version) -> Option<i32> {
    i32::try_from(v.0).ok()
}

/// The latch node a fencing token names, if the token is one this backend can have minted: an
/// absolute path strictly inside this session's namespace, at least two segments below it (a
/// latch directory and the node), whose name is a well-formed latch node
/// ([`tenure_core::latch::sequence`]) whose sequence is the token's epoch. Any other token is
/// [`KvError::NotLeader`]: it names no term of this cluster, so no write may carry it.
pub(crate) fn fence_path<'t>(paths: &Paths, token: &'t FencingToken) -> Result<&'t str, KvError> {
    let lock = token.lock();
    let exact = paths.key(lock).is_some_and(|key| {
        validate_key(&key).is_ok()
            && key
                .rsplit_once('/')
                .is_some_and(|(_, name)| latch::sequence(name) == Some(token.epoch()))
    });
    if exact {
        Ok(lock)
    } else {
        Err(KvError::NotLeader {
            token: token.clone(),
        })
    }
}

/// Outcome of a `multi` guarded by a fence.
pub(crate) enum MultiFailure {
    /// The fence check (op 0) failed: the term is over.
    NotLeader(FencingToken),
    /// Operation `index` (counted without the check) failed.
    Op { index: usize, error: zk::Error },
    /// The request failed as a whole.
    Request(zk::Error),
}

/// One operation fenced by `token`, committed as `multi(check, op)`: its results or its own
/// error, or [`KvError::NotLeader`] when the term is over.
async fn fenced(
    client: &zk::Client,
    paths: &Paths,
    token: &FencingToken,
    build: impl FnOnce(&mut zk::MultiWriter<'_>) -> Result<(), zk::Error>,
) -> Result<Result<Vec<zk::MultiWriteResult>, zk::Error>, KvError> {
    match commit(client, paths, Some(token), build).await {
        Ok(results) => Ok(Ok(results)),
        Err(MultiFailure::NotLeader(token)) => Err(KvError::NotLeader { token }),
        Err(MultiFailure::Op { error, .. } | MultiFailure::Request(error)) => Ok(Err(error)),
    }
}

/// Commits the operations `build` adds as ONE `multi`, preceded by the fence check
/// `check(<latch node>, 0)` when `fence` is given (a token [`fence_path`] refuses sends
/// nothing and is [`MultiFailure::NotLeader`]). Latch nodes are created with empty data and
/// never set, so version 0 holds exactly while the node, the term, exists.
pub(crate) async fn commit(
    client: &zk::Client,
    paths: &Paths,
    fence: Option<&FencingToken>,
    build: impl FnOnce(&mut zk::MultiWriter<'_>) -> Result<(), zk::Error>,
) -> Result<Vec<zk::MultiWriteResult>, MultiFailure> {
    let not_leader = |t: &FencingToken| MultiFailure::NotLeader(t.clone());
    let mut w = client.new_multi_writer();
    if let Some(token) = fence {
        let lock = fence_path(paths, token).map_err(|_| not_leader(token))?;
        w.add_check_version(lock, 0)
            .map_err(|_| not_leader(token))?;
    }
    build(&mut w).map_err(MultiFailure::Request)?;
    let offset = usize::from(fence.is_some());
    match w.commit().await {
        Ok(mut results) => {
            if offset == 1 && !results.is_empty() {
                results.remove(0);
            }
            Ok(results)
        }
        Err(zk::MultiWriteError::OperationFailed { index, source }) => match fence {
            Some(token) if index == 0 => Err(not_leader(token)),
            _ => Err(MultiFailure::Op {
                index: index - offset,
                error: source,
            }),
        },
        // A fenced write on an expired session: its latch node went with the session, so the
        // term is over, and an expired session writes nothing.
        Err(zk::MultiWriteError::RequestFailed { source }) => match (fence, source) {
            (Some(token), zk::Error::SessionExpired) => Err(not_leader(token)),
            (_, source) => Err(MultiFailure::Request(source)),
        },
    }
}

impl ZooKeeperBackend {
    fn path(&self, key: &str) -> String {
        self.shared.paths().path(key)
    }

    async fn current_version(&self, client: &zk::Client, key: &str) -> Option<Version> {
        match client.check_stat(&self.path(key)).await {
            Ok(Some(stat)) => Some(Version(i64::from(stat.version))),
            _ => None,
        }
    }

    async fn conflict(&self, client: &zk::Client, key: &str, expected: Version) -> KvError {
        KvError::VersionConflict {
            key: key.to_owned(),
            expected,
            actual: self.current_version(client, key).await,
        }
    }

    /// Creates the missing ancestors of `path` inside and above the namespace (persistent,
    /// empty data). Nothing of the key itself is written.
    async fn make_parents(
        &self,
        client: &zk::Client,
        key: &str,
        path: &str,
    ) -> Result<(), KvError> {
        let Some(parent) = parent_path(path) else {
            return Ok(());
        };
        if parent == "/" {
            return Ok(());
        }
        let opts = zk::CreateMode::Persistent.with_acls(self.shared.acls());
        match client.mkdir(parent, &opts).await {
            Ok(()) => Ok(()),
            Err(e) if !is_definite(&e) => Err(KvError::Backend(format!(
                "{key:?}: the connection was lost while creating its parent znodes; the key was not written ({e})"
            ))),
            Err(e) => Err(map(e, key, Op::Read)),
        }
    }

    /// Runs the read `f` on the current session's client. A read interrupted by the
    /// connection is retried at once a few times while the session looks connected; otherwise,
    /// and after a session expiry, it waits for the session to come back (a new one after an
    /// expiry) and reads again. The whole read, attempts and waits, is bounded by
    /// `high-availability.zookeeper.client.connection-timeout`; at the bound it fails saying it
    /// was a read and how long it waited ([`read_gave_up`]).
    async fn read_retrying<T, F, Fut>(&self, key: &str, mut f: F) -> Result<T, KvError>
    where
        F: FnMut(zk::Client) -> Fut,
        Fut: Future<Output = Result<T, zk::Error>>,
    {
        let bound = self.shared.settings.connection_timeout;
        let started = tokio::time::Instant::now();
        let deadline = started + bound;
        let mut quick_retries = 0;
        loop {
            let before = self.shared.status();
            let (client, generation) = self.shared.client_gen()?;
            // A request sent while the client is disconnected waits in the client until it
            // reconnects (or learns the session expired): bound it too.
            let e = match tokio::time::timeout_at(deadline, f(client)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) => {
                    let last = zk::Error::Timeout;
                    return Err(read_gave_up(key, last, started.elapsed(), bound));
                }
            };
            let new_session = matches!(e, zk::Error::SessionExpired | zk::Error::SessionMoved);
            if !new_session && is_definite(&e) {
                return Err(map_read(e, key));
            }
            let unchanged = self.shared.status() == before
                && before.state == tenure_core::connection::ConnectionState::Connected;
            if !new_session && unchanged && quick_retries + 1 < READ_ATTEMPTS {
                quick_retries += 1;
                continue;
            }
            if !self
                .shared
                .wait_for_session(generation, before, new_session, deadline)
                .await?
            {
                return Err(read_gave_up(key, e, started.elapsed(), bound));
            }
        }
    }

    /// Every znode strictly below `path`, leaves last (parents before children), as paths.
    async fn descendants(
        &self,
        client: &zk::Client,
        key: &str,
        path: &str,
    ) -> Result<Vec<String>, KvError> {
        let mut out = Vec::new();
        let mut frontier = vec![path.to_owned()];
        while !frontier.is_empty() {
            let lists = join_all(frontier.iter().map(|p| client.list_children(p))).await;
            let mut next = Vec::new();
            for (parent, children) in frontier.iter().zip(lists) {
                match children {
                    Ok(children) => {
                        for c in children {
                            next.push(child_path(parent, &c));
                        }
                    }
                    Err(zk::Error::NoNode) => {}
                    Err(e) => return Err(map(e, key, Op::Read)),
                }
            }
            out.extend(next.iter().cloned());
            frontier = next;
        }
        Ok(out)
    }

    /// Deletes `path` and its descendants: deepest first, in `multi` batches that each start
    /// with the fence check (and the expected version of `path`, when given).
    async fn delete_tree(
        &self,
        client: &zk::Client,
        key: &str,
        path: &str,
        expected: Option<i32>,
        fence: Option<&FencingToken>,
    ) -> Result<(), KvError> {
        if let Some(token) = fence {
            fence_path(self.shared.paths(), token)?;
        }
        let mut last_err = None;
        for _ in 0..PARENT_RACE_ATTEMPTS {
            let stat = match client.check_stat(path).await {
                Ok(Some(stat)) => stat,
                Ok(None) => {
                    return Err(KvError::NotFound {
                        key: key.to_owned(),
                    });
                }
                Err(e) => return Err(map(e, key, Op::Read)),
            };
            if let Some(v) = expected
                && stat.version != v
            {
                return Err(KvError::VersionConflict {
                    key: key.to_owned(),
                    expected: Version(i64::from(v)),
                    actual: Some(Version(i64::from(stat.version))),
                });
            }
            let mut doomed = self.descendants(client, key, path).await?;
            doomed.reverse();
            doomed.push(path.to_owned());
            let batches: Vec<&[String]> = doomed.chunks(DELETE_BATCH).collect();
            let n = batches.len();
            let mut retry = false;
            for (i, batch) in batches.into_iter().enumerate() {
                let last = i + 1 == n;
                let result = commit(client, self.shared.paths(), fence, |w| {
                    if let Some(v) = expected {
                        w.add_check_version(path, v)?;
                    }
                    for (j, p) in batch.iter().enumerate() {
                        let v = if last && j + 1 == batch.len() {
                            expected
                        } else {
                            None
                        };
                        w.add_delete(p, v)?;
                    }
                    Ok(())
                })
                .await;
                match result {
                    Ok(_) => {}
                    Err(MultiFailure::NotLeader(token)) => {
                        return Err(KvError::NotLeader { token });
                    }
                    // A node was added or removed meanwhile: list again.
                    Err(MultiFailure::Op {
                        error: e @ (zk::Error::NotEmpty | zk::Error::NoNode),
                        index,
                    }) => {
                        if e == zk::Error::NoNode && index == 0 && expected.is_some() {
                            return Err(KvError::NotFound {
                                key: key.to_owned(),
                            });
                        }
                        last_err = Some(map(e, key, Op::Write));
                        retry = true;
                        break;
                    }
                    Err(MultiFailure::Op {
                        error: zk::Error::BadVersion,
                        ..
                    }) => {
                        let expected = Version(i64::from(expected.unwrap_or_default()));
                        return Err(self.conflict(client, key, expected).await);
                    }
                    Err(MultiFailure::Op { error, .. }) | Err(MultiFailure::Request(error)) => {
                        return Err(map(error, key, Op::Write));
                    }
                }
            }
            if !retry {
                return Ok(());
            }
        }
        Err(last_err.unwrap_or_else(|| {
            KvError::Backend(format!("{key:?}: recursive delete did not settle"))
        }))
    }

    /// Deletes the namespace znode if it holds no data and has no children, conditioned on the
    /// version read (so data written in between keeps it). Never `/`, never a parent: the root
    /// path belongs to whoever configured it, and a namespace node holding data is not ours.
    pub(crate) async fn remove_namespace_node(&self) -> Result<Vec<String>, KvError> {
        let client = self.client()?;
        let ns = self.shared.paths().namespace().to_owned();
        if ns == "/" {
            return Ok(Vec::new());
        }
        let (data, stat) = match client.get_data(&ns).await {
            Ok(got) => got,
            Err(zk::Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(map(e, "", Op::Read)),
        };
        if !data.is_empty() || stat.num_children > 0 {
            return Ok(Vec::new());
        }
        match client.delete(&ns, Some(stat.version)).await {
            Ok(()) => Ok(vec![ns]),
            Err(zk::Error::NoNode | zk::Error::NotEmpty | zk::Error::BadVersion) => Ok(Vec::new()),
            Err(e) => Err(map(e, "", Op::Write)),
        }
    }
}

#[async_trait]
impl VersionedKv for ZooKeeperBackend {
    async fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        validate_key(key)?;
        let path = self.path(key);
        let got = self
            .read_retrying(key, |c| {
                let path = path.clone();
                async move { c.get_data(&path).await }
            })
            .await;
        match got {
            Ok((data, stat)) => Ok(Some(entry(key, data, &stat))),
            Err(KvError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, KvError> {
        validate_prefix(prefix)?;
        self.read_retrying(prefix, |client| self.list_once(client, prefix))
            .await
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
        validate_key(key)?;
        check_size(key, &value)?;
        let client = self.client()?;
        let path = self.path(key);
        let mode = if opts.ephemeral {
            zk::CreateMode::Ephemeral
        } else {
            zk::CreateMode::Persistent
        };
        let acls = self.shared.acls();
        let create_opts = mode.with_acls(acls);
        let fence = opts.fence.as_ref();
        for _ in 0..PARENT_RACE_ATTEMPTS {
            let result = match fence {
                None => client.create(&path, &value, &create_opts).await.map(|_| ()),
                Some(token) => fenced(&client, self.shared.paths(), token, |w| {
                    w.add_create(&path, &value, &create_opts)
                })
                .await?
                .map(|_| ()),
            };
            match result {
                // A created znode's data version is always 0.
                Ok(()) => return Ok(Version(0)),
                Err(zk::Error::NoNode) => self.make_parents(&client, key, &path).await?,
                Err(e) => return Err(map(e, key, Op::Write)),
            }
        }
        Err(KvError::Backend(format!(
            "{key:?}: its parent znode kept disappearing while creating it"
        )))
    }

    async fn compare_and_set(
        &self,
        key: &str,
        value: Bytes,
        expected: Version,
        fence: Option<FencingToken>,
    ) -> Result<Version, KvError> {
        validate_key(key)?;
        check_size(key, &value)?;
        let client = self.client()?;
        let path = self.path(key);
        let fence = fence.as_ref();
        let Some(v) = zk_version(expected) else {
            // No znode version is outside i32; only the existence question remains.
            return match client.check_stat(&path).await {
                Ok(None) => Err(KvError::NotFound {
                    key: key.to_owned(),
                }),
                Ok(Some(_)) => Err(self.conflict(&client, key, expected).await),
                Err(e) => Err(map(e, key, Op::Read)),
            };
        };
        let result = match fence {
            None => client.set_data(&path, &value, Some(v)).await,
            Some(token) => fenced(&client, self.shared.paths(), token, |w| {
                w.add_set_data(&path, &value, Some(v))
            })
            .await?
            .and_then(|mut results| match results.pop() {
                Some(zk::MultiWriteResult::SetData { stat }) => Ok(stat),
                _ => Err(zk::Error::UnexpectedError(
                    "multi returned no SetData result".into(),
                )),
            }),
        };
        match result {
            Ok(stat) => Ok(Version(i64::from(stat.version))),
            Err(zk::Error::BadVersion) => Err(self.conflict(&client, key, expected).await),
            Err(e) => Err(map(e, key, Op::Write)),
        }
    }

    async fn delete(&self, key: &str, opts: DeleteOptions) -> Result<(), KvError> {
        validate_key(key)?;
        let client = self.client()?;
        let path = self.path(key);
        let expected = match opts.expected {
            None => None,
            Some(v) => match zk_version(v) {
                Some(v) => Some(v),
                None => {
                    return match client.check_stat(&path).await {
                        Ok(None) => Err(KvError::NotFound {
                            key: key.to_owned(),
                        }),
                        Ok(Some(_)) => Err(self.conflict(&client, key, v).await),
                        Err(e) => Err(map(e, key, Op::Read)),
                    };
                }
            },
        };
        if opts.recursive {
            return self
                .delete_tree(&client, key, &path, expected, opts.fence.as_ref())
                .await;
        }
        let result = match opts.fence.as_ref() {
            None => client.delete(&path, expected).await,
            Some(token) => fenced(&client, self.shared.paths(), token, |w| {
                w.add_delete(&path, expected)
            })
            .await?
            .map(|_| ()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(zk::Error::BadVersion) => {
                let expected = opts.expected.unwrap_or(Version(-1));
                Err(self.conflict(&client, key, expected).await)
            }
            Err(e) => Err(map(e, key, Op::Write)),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<Vec<TxnResult>, KvError> {
        self.commit_txn(txn).await
    }

    async fn remove_empty_namespace(&self) -> Result<Vec<String>, KvError> {
        self.remove_namespace_node().await
    }

    fn parents_are_keys(&self) -> bool {
        true
    }

    fn session_id(&self) -> u64 {
        self.shared.session_id() as u64
    }
}

impl ZooKeeperBackend {
    /// Every key below `prefix`, read with `client`: the prefix's children, then their data
    /// and children level by level (znodes deleted meanwhile are skipped).
    async fn list_once(&self, client: zk::Client, prefix: &str) -> Result<Vec<Entry>, zk::Error> {
        let root = self.shared.paths().prefix_path(prefix);
        let paths = self.shared.paths();
        let mut out = Vec::new();
        let mut frontier: Vec<String> = match client.list_children(&root).await {
            Ok(children) => children.iter().map(|c| child_path(&root, c)).collect(),
            Err(zk::Error::NoNode) => return Ok(out),
            Err(e) => return Err(e),
        };
        if root == "/" {
            frontier.retain(|p| p != "/zookeeper");
        }
        while !frontier.is_empty() {
            // Requests are sent when created, so these are pipelined on the one connection.
            let reads = join_all(frontier.iter().map(|p| client.get_data(p))).await;
            let mut parents = Vec::new();
            for (path, read) in frontier.iter().zip(reads) {
                match read {
                    Ok((data, stat)) => {
                        if let Some(key) = paths.key(path) {
                            out.push(entry(&key, data, &stat));
                        }
                        if stat.num_children > 0 {
                            parents.push(path.clone());
                        }
                    }
                    Err(zk::Error::NoNode) => {}
                    Err(e) => return Err(e),
                }
            }
            let lists = join_all(parents.iter().map(|p| client.list_children(p))).await;
            let mut next = Vec::new();
            for (parent, children) in parents.iter().zip(lists) {
                match children {
                    Ok(children) => next.extend(children.iter().map(|c| child_path(parent, c))),
                    Err(zk::Error::NoNode) => {}
                    Err(e) => return Err(e),
                }
            }
            frontier = next;
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
