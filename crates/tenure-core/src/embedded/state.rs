//! The shared state of an embedded cluster: the KV map, the watchers and the latch queues.
//!
//! Everything happens under one mutex, so a fence check and the write it guards are atomic, as
//! they are in a ZooKeeper `multi` or an etcd `txn`.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::driver::LatchEvent;
use crate::kv::{
    CreateOptions, DeleteOptions, Entry, FencingToken, KvError, KvEvent, Version, is_below,
};

#[derive(Debug)]
pub(crate) struct Node {
    pub value: Bytes,
    pub version: i64,
    pub ephemeral_owner: Option<u64>,
}

#[derive(Debug)]
struct Watcher {
    session: u64,
    prefix: String,
    tx: mpsc::UnboundedSender<KvEvent>,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub id: u64,
    pub session: u64,
    pub tx: mpsc::UnboundedSender<LatchEvent>,
}

#[derive(Debug, Default)]
pub(crate) struct LatchQueue {
    /// In line order; the first member leads unless it is suspended.
    pub members: Vec<Member>,
    /// `(member id, epoch)` of the current holder.
    pub holder: Option<(u64, i64)>,
}

/// The embedded "server".
#[derive(Debug, Default)]
pub(crate) struct State {
    pub nodes: BTreeMap<String, Node>,
    pub(crate) revision: i64,
    watchers: Vec<Watcher>,
    pub latches: HashMap<String, LatchQueue>,
    next_id: u64,
    /// Sessions whose connection is suspended: they cannot lead until they reconnect.
    pub suspended: Vec<u64>,
}

impl State {
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn next_revision(&mut self) -> i64 {
        self.revision += 1;
        self.revision
    }

    pub(crate) fn notify(&mut self, event: &KvEvent) {
        let key = match event {
            KvEvent::Put(e) => e.key.as_str(),
            KvEvent::Deleted { key } => key.as_str(),
            KvEvent::Reset => "",
        };
        self.watchers
            .retain(|w| !is_below(&w.prefix, key) || w.tx.send(event.clone()).is_ok());
    }

    pub fn add_watcher(&mut self, session: u64, prefix: &str) -> mpsc::UnboundedReceiver<KvEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers.push(Watcher {
            session,
            prefix: prefix.to_owned(),
            tx,
        });
        rx
    }

    pub fn check_fence(&self, fence: Option<&FencingToken>) -> Result<(), KvError> {
        let Some(token) = fence else { return Ok(()) };
        let current = self
            .latches
            .get(token.lock())
            .and_then(|q| q.holder)
            .map(|(_, epoch)| epoch);
        if current == Some(token.epoch()) {
            Ok(())
        } else {
            Err(KvError::NotLeader {
                token: token.clone(),
            })
        }
    }

    pub fn entry(key: &str, node: &Node) -> Entry {
        Entry {
            key: key.to_owned(),
            value: node.value.clone(),
            version: Version(node.version),
            ephemeral_owner: node.ephemeral_owner,
        }
    }

    pub fn create(
        &mut self,
        session: u64,
        key: &str,
        value: Bytes,
        opts: &CreateOptions,
    ) -> Result<Version, KvError> {
        self.check_fence(opts.fence.as_ref())?;
        if self.nodes.contains_key(key) {
            return Err(KvError::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let version = self.next_revision();
        let node = Node {
            value,
            version,
            ephemeral_owner: opts.ephemeral.then_some(session),
        };
        let event = KvEvent::Put(Self::entry(key, &node));
        self.nodes.insert(key.to_owned(), node);
        self.notify(&event);
        Ok(Version(version))
    }

    pub fn compare_and_set(
        &mut self,
        key: &str,
        value: Bytes,
        expected: Version,
        fence: Option<&FencingToken>,
    ) -> Result<Version, KvError> {
        self.check_fence(fence)?;
        let actual = match self.nodes.get(key) {
            None => {
                return Err(KvError::NotFound {
                    key: key.to_owned(),
                });
            }
            Some(n) => n.version,
        };
        if actual != expected.0 {
            return Err(KvError::VersionConflict {
                key: key.to_owned(),
                expected,
                actual: Some(Version(actual)),
            });
        }
        let version = self.next_revision();
        let event = match self.nodes.get_mut(key) {
            Some(node) => {
                node.value = value;
                node.version = version;
                KvEvent::Put(Self::entry(key, node))
            }
            None => {
                return Err(KvError::NotFound {
                    key: key.to_owned(),
                });
            }
        };
        self.notify(&event);
        Ok(Version(version))
    }

    pub fn delete(&mut self, key: &str, opts: &DeleteOptions) -> Result<(), KvError> {
        self.check_fence(opts.fence.as_ref())?;
        let Some(node) = self.nodes.get(key) else {
            return Err(KvError::NotFound {
                key: key.to_owned(),
            });
        };
        if let Some(expected) = opts.expected
            && node.version != expected.0
        {
            return Err(KvError::VersionConflict {
                key: key.to_owned(),
                expected,
                actual: Some(Version(node.version)),
            });
        }
        let below = self.keys_below(key);
        if !below.is_empty() && !opts.recursive {
            return Err(KvError::NotEmpty {
                key: key.to_owned(),
            });
        }
        for k in below.into_iter().rev() {
            self.remove(&k);
        }
        self.remove(key);
        Ok(())
    }

    pub fn keys_below(&self, prefix: &str) -> Vec<String> {
        let start = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        self.nodes
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn remove(&mut self, key: &str) {
        if self.nodes.remove(key).is_some() {
            self.notify(&KvEvent::Deleted {
                key: key.to_owned(),
            });
        }
    }

    /// Ends a session: its latch places, ephemeral keys and watchers go.
    pub fn end_session(&mut self, session: u64) {
        let latches: Vec<String> = self.latches.keys().cloned().collect();
        // A process whose session ends is told it lost leadership (as a ZooKeeper client learns
        // of its session's expiry), before the next in line is granted.
        self.revoke_held_by(session);
        for latch in latches {
            self.leave_latch_where(&latch, |m| m.session == session);
        }
        let ephemeral: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.ephemeral_owner == Some(session))
            .map(|(k, _)| k.clone())
            .collect();
        for key in ephemeral {
            self.remove(&key);
        }
        self.watchers.retain(|w| w.session != session);
        self.suspended.retain(|s| *s != session);
    }

    /// Removes the latch members matching `pred` and grants the next in line if needed.
    pub fn leave_latch_where(&mut self, latch: &str, pred: impl Fn(&Member) -> bool) {
        let Some(queue) = self.latches.get_mut(latch) else {
            return;
        };
        queue.members.retain(|m| !pred(m));
        if let Some((holder, _)) = queue.holder
            && !queue.members.iter().any(|m| m.id == holder)
        {
            queue.holder = None;
        }
        self.grant_next(latch);
    }

    /// Grants the latch to the first member in line if nobody holds it.
    pub fn grant_next(&mut self, latch: &str) {
        let epoch = self.revision + 1;
        let suspended = self.suspended.clone();
        let Some(queue) = self.latches.get_mut(latch) else {
            return;
        };
        if queue.holder.is_some() {
            return;
        }
        // The first member leads; a suspended first member blocks the line (its node still
        // exists on a real server) until it reconnects or its session ends.
        let Some(first) = queue.members.first() else {
            self.latches.remove(latch);
            return;
        };
        if suspended.contains(&first.session) {
            return;
        }
        queue.holder = Some((first.id, epoch));
        let token = FencingToken::new(latch, epoch);
        let _ = first.tx.send(LatchEvent::Granted(token));
        self.revision = epoch;
    }

    /// Tells `session`'s members that hold a latch that they lost it, and frees the latch (the
    /// caller decides who is granted next).
    fn revoke_held_by(&mut self, session: u64) {
        for queue in self.latches.values_mut() {
            if let Some((holder, _)) = queue.holder
                && let Some(m) = queue
                    .members
                    .iter()
                    .find(|m| m.id == holder && m.session == session)
            {
                let _ = m.tx.send(LatchEvent::Revoked);
                queue.holder = None;
            }
        }
    }

    /// A session's connection was suspended: its held latches are revoked (Curator's default
    /// policy) but its place stays, blocking the line as a live latch node does.
    pub fn suspend_session(&mut self, session: u64, revoke: bool) {
        if !self.suspended.contains(&session) {
            self.suspended.push(session);
        }
        if !revoke {
            return;
        }
        self.revoke_held_by(session);
    }

    /// A suspended session reconnected. Members that lost leadership re-join at the back of the
    /// line (Curator re-creates its latch node), members that kept it keep it.
    pub fn resume_session(&mut self, session: u64) {
        self.suspended.retain(|s| *s != session);
        let latches: Vec<String> = self.latches.keys().cloned().collect();
        for latch in latches {
            if let Some(queue) = self.latches.get_mut(&latch) {
                let held_by_session = queue
                    .holder
                    .and_then(|(h, _)| queue.members.iter().find(|m| m.id == h))
                    .is_some_and(|m| m.session == session);
                if !held_by_session {
                    let (mine, others): (Vec<Member>, Vec<Member>) =
                        queue.members.drain(..).partition(|m| m.session == session);
                    queue.members = others;
                    queue.members.extend(mine);
                }
            }
            self.grant_next(&latch);
        }
    }
}
