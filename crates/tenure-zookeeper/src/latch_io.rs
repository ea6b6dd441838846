//! Performs the latch recipe's requests on the session's current ZooKeeper client.

use std::sync::{Arc, Weak};

use futures::future::{BoxFuture, join};
use tenure_core::driver::{LatchIo, SessionView};
use tenure_core::kv::{KvError, VersionedKv, validate_key};
use tokio::sync::{mpsc, watch};
use zookeeper_client as zk;

use crate::ZooKeeperBackend;
use crate::deletions::Deletions;
use crate::known_dirs::KnownDirs;
use crate::latch::{Op, Recipe, Reply, Request, Response};
use crate::paths::{child_path, parent_path};
use crate::session::Shared;

/// The IO half of the ZooKeeper latch, for the session driver.
pub(crate) struct Io {
    pub shared: Weak<Shared>,
    pub view: watch::Receiver<SessionView>,
    /// Latch directories seen to exist, to pick a node's first create.
    pub known_dirs: Arc<KnownDirs>,
    /// Parked waits for deletions, woken through `late`.
    pub deletions: Arc<Deletions>,
    /// The late responses' stream, until the driver takes it.
    pub late: Option<mpsc::UnboundedReceiver<(u64, Reply)>>,
}

impl Io {
    /// The latch IO of `shared`'s session.
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let deletions = Arc::new(Deletions::new(Arc::downgrade(shared), tx));
        let _ = shared.deletions.set(deletions.clone());
        Self {
            shared: Arc::downgrade(shared),
            view: shared.subscribe_status(),
            known_dirs: Default::default(),
            deletions,
            late: Some(rx),
        }
    }
}

impl LatchIo for Io {
    type Recipe = Recipe;

    fn recipe(&self, latch: &Arc<str>) -> Result<Recipe, KvError> {
        validate_key(latch)?;
        let shared = self.shared.upgrade().ok_or(KvError::Closed)?;
        // Fail at once when the session is closed, so the election reports it.
        shared.client()?;
        Ok(Recipe::new(latch.clone(), shared.recipe.clone()))
    }

    fn perform(&self, participation: u64, request: Request) -> BoxFuture<'static, Reply> {
        // Each operation is boxed on its own, so a long-lived watch holds a future of a watch's
        // size, not of the largest operation's.
        let Request {
            generation,
            seq,
            op,
        } = request;
        let client = match client_of(&self.shared, generation) {
            Ok(c) => c,
            Err(e) => {
                let response = failed(&op, e);
                return Box::pin(async move { Reply { seq, response } });
            }
        };
        match op {
            Op::Watch { path, also } => {
                let deletions = self.deletions.clone();
                Box::pin(async move {
                    let response = deletions
                        .wait(client, generation, participation, seq, path, also)
                        .await;
                    Reply { seq, response }
                })
            }
            Op::Create { dir, prefix } => {
                let acls = self.shared.upgrade().map(|s| s.acls());
                let known = self.known_dirs.clone();
                let deletions = self.deletions.clone();
                // Read before the create is sent: the node is watched from its creation on.
                let watched = deletions.before_create(&dir, generation);
                Box::pin(async move {
                    let response = match acls {
                        Some(acls) => match create(&client, &dir, &prefix, acls, &known).await {
                            Ok((name, line)) => {
                                if let Some(epoch) = watched {
                                    let path = child_path(&dir, &name);
                                    deletions.created(epoch, participation, seq, &path);
                                }
                                match line {
                                    Some(line) => Response::Joined(name, line),
                                    None => Response::Created(Ok(name)),
                                }
                            }
                            Err(e) => Response::Created(Err(e)),
                        },
                        None => Response::Created(Err(zk::Error::ClientClosed)),
                    };
                    Reply { seq, response }
                })
            }
            Op::Find { dir, prefix } => Box::pin(async move {
                let response = Response::Names(
                    children(&client, &dir)
                        .await
                        .map(|c| c.into_iter().filter(|n| n.starts_with(&prefix)).collect()),
                );
                Reply { seq, response }
            }),
            Op::List { dir } => Box::pin(async move {
                let response = Response::Names(children(&client, &dir).await);
                Reply { seq, response }
            }),
            Op::Delete { path, also } => {
                // A request in place of the wait ends it, here before the node's deletion can
                // wake it (a standby's wait names its own node too).
                self.deletions.forget(participation);
                let also: Vec<String> = match self.shared.upgrade() {
                    Some(s) => also.iter().map(|k| s.paths().path(k)).collect(),
                    None => Vec::new(),
                };
                Box::pin(async move {
                    let response = Response::Deleted(delete_with(&client, &path, &also).await);
                    Reply { seq, response }
                })
            }
            Op::DeleteProtected { dir, prefix } => Box::pin(async move {
                let response = Response::Deleted(delete_protected(&client, &dir, &prefix).await);
                Reply { seq, response }
            }),
        }
    }

    fn late_responses(&mut self) -> Option<mpsc::UnboundedReceiver<(u64, Reply)>> {
        self.late.take()
    }

    fn forget(&self, participation: u64) {
        self.deletions.forget(participation);
    }

    fn session(&self) -> watch::Receiver<SessionView> {
        self.view.clone()
    }

    fn kv(&self) -> Result<Arc<dyn VersionedKv>, KvError> {
        let shared = self.shared.upgrade().ok_or(KvError::Closed)?;
        Ok(Arc::new(ZooKeeperBackend { shared }))
    }
}

/// The client of session `generation`, if that session is still the current one.
fn client_of(shared: &Weak<Shared>, generation: u64) -> Result<zk::Client, zk::Error> {
    let shared = shared.upgrade().ok_or(zk::Error::ClientClosed)?;
    match shared.client_gen() {
        Ok((client, g)) if g == generation => Ok(client),
        Ok(_) => Err(zk::Error::SessionExpired),
        Err(_) => Err(zk::Error::ClientClosed),
    }
}

fn failed(op: &Op, e: zk::Error) -> Response {
    match op {
        Op::Create { .. } => Response::Created(Err(e)),
        Op::Find { .. } | Op::List { .. } => Response::Names(Err(e)),
        Op::Watch { .. } => Response::Watched,
        Op::Delete { .. } | Op::DeleteProtected { .. } => Response::Deleted(Err(e)),
    }
}

async fn children(client: &zk::Client, dir: &str) -> Result<Vec<String>, zk::Error> {
    match client.list_children(dir).await {
        Ok(c) => Ok(c),
        Err(zk::Error::NoNode) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

async fn delete(client: &zk::Client, path: &str) -> Result<(), zk::Error> {
    match client.delete(path, None).await {
        Ok(()) | Err(zk::Error::NoNode) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes the latch node `path` and, in the same multi before it, the paths of `also` (the
/// leader's published information): the node's delete fences them, since the node exists only
/// while its term holds. A path of `also` that is missing or not empty is left out and the
/// multi sent again without it (the last one first); with none left it is a plain delete.
async fn delete_with(client: &zk::Client, path: &str, also: &[String]) -> Result<(), zk::Error> {
    for n in (1..=also.len()).rev() {
        let mut w = client.new_multi_writer();
        for p in &also[..n] {
            w.add_delete(p, None)?;
        }
        w.add_delete(path, None)?;
        match w.commit().await {
            Ok(_) => return Ok(()),
            Err(zk::MultiWriteError::OperationFailed { .. }) => {}
            Err(zk::MultiWriteError::RequestFailed { source }) => return Err(source),
        }
    }
    delete(client, path).await
}

async fn delete_protected(client: &zk::Client, dir: &str, prefix: &str) -> Result<(), zk::Error> {
    for name in children(client, dir).await? {
        if name.starts_with(prefix) {
            delete(client, &child_path(dir, &name)).await?;
        }
    }
    Ok(())
}

/// The latch node's name, and the latch's children read right behind its create when that read
/// succeeded.
type Joined = (String, Option<Vec<String>>);

/// Creates the latch node `<prefix><seq>`; in a directory that exists it also reads the line in
/// the same round trip: the get-children is sent right behind the create, and ZooKeeper answers
/// a session's requests in order, so the line it returns already holds the new node.
///
/// A new latch (a job's own election) usually lacks its directory and that directory's parent:
/// then both and the node are created in one multi. Which create goes first is guessed from
/// `known` (directories this session saw exist); a wrong guess costs one failed write, and after
/// both guesses failed the directories are made one by one.
///
/// A multi that succeeded made the latch directory in the same transaction as the node, so the
/// line is known without a read: the node was the directory's first child, and every later one
/// gets a higher sequence number (ZooKeeper numbers a directory's sequential children from its
/// own count of child changes, which only grows while the directory exists, and the directory
/// cannot go while the node is in it). The line returned is the node alone, exactly what a
/// get-children right behind the multi would have read; a per-job election is one request.
async fn create(
    client: &zk::Client,
    dir: &str,
    prefix: &str,
    acls: zk::Acls<'static>,
    known: &KnownDirs,
) -> Result<Joined, zk::Error> {
    let node = zk::CreateMode::EphemeralSequential.with_acls(acls);
    let dirs = zk::CreateMode::Persistent.with_acls(acls);
    let name_of = |path: &str| path.rsplit('/').next().unwrap_or_default().to_owned();
    let parent = parent_path(dir).filter(|p| *p != "/");
    // The multi making `parent`, the directory and the node: the node and its line (the node
    // alone, see above), or `None` when one of its creates failed (a directory was there, or
    // the parent's parent was not).
    let with_dirs = async |parent: &str| -> Result<Option<Joined>, zk::Error> {
        let mut w = client.new_multi_writer();
        w.add_create(parent, &[], &dirs)?;
        w.add_create(dir, &[], &dirs)?;
        w.add_create(prefix, &[], &node)?;
        match w.commit().await {
            Ok(results) => match results.into_iter().last() {
                Some(zk::MultiWriteResult::Create { path, .. }) => {
                    known.insert(dir);
                    let name = name_of(&path);
                    let line = vec![name.clone()];
                    Ok(Some((name, Some(line))))
                }
                _ => Err(zk::Error::UnexpectedError(
                    "a multi create returned no created node".into(),
                )),
            },
            Err(zk::MultiWriteError::OperationFailed { .. }) => Ok(None),
            Err(zk::MultiWriteError::RequestFailed { source }) => Err(source),
        }
    };
    let multi_first = parent.is_some() && !known.contains(dir);
    // No read behind a guess: a wrong one then costs the failed write alone.
    if let Some(parent) = parent.filter(|_| multi_first)
        && let Some(joined) = with_dirs(parent).await?
    {
        return Ok(joined);
    }
    let (written, line) = join(client.create(prefix, &[], &node), client.list_children(dir)).await;
    match written {
        Ok((_, seq)) => {
            known.insert(dir);
            return Ok((name_of(&format!("{prefix}{seq}")), line.ok()));
        }
        Err(zk::Error::NoNode) => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = parent.filter(|_| !multi_first)
        && let Some(joined) = with_dirs(parent).await?
    {
        return Ok(joined);
    }
    match client.mkdir(dir, &dirs).await {
        Ok(()) | Err(zk::Error::NodeExists) => {}
        Err(e) => return Err(e),
    }
    let (_, seq) = client.create(prefix, &[], &node).await?;
    known.insert(dir);
    Ok((name_of(&format!("{prefix}{seq}")), None))
}
