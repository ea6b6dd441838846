//! Latch directories the session has seen exist: a hint that picks a latch node's first create.
//!
//! A latch node's create is one request when its directory exists, and one `multi` (parent,
//! directory, node) when it does not. Guessing wrong costs a failed request, so the guess comes
//! from what this process saw: a directory it created or joined a latch in lately exists (the
//! process-wide latch, a component's latch); one it never saw usually does not (a new job's own
//! election). The set is bounded, so thousands of per-job latches cost it nothing per election;
//! a directory deleted since (a cleanup) only makes the next create take the slower path.
//!
//! Each entry keeps its path's hash beside it: a burst of new jobs looks up and inserts a
//! directory per election, and the paths of one namespace share a long prefix and often a
//! length, so comparing the strings first cost a long `memcmp` per entry.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use tenure_core::sync::lock;

/// How many directories are remembered (the oldest is forgotten first).
const CAPACITY: usize = 64;

/// A bounded set of znode paths known to exist.
#[derive(Debug, Default)]
pub(crate) struct KnownDirs {
    /// (hash of the path, path), the most recently seen last.
    dirs: Mutex<VecDeque<(u64, Box<str>)>>,
    hasher: RandomState,
}

impl KnownDirs {
    /// Whether `dir` was seen to exist lately.
    pub fn contains(&self, dir: &str) -> bool {
        let hash = self.hasher.hash_one(dir);
        lock(&self.dirs)
            .iter()
            .any(|(h, d)| *h == hash && &**d == dir)
    }

    /// Remembers that `dir` exists, forgetting the oldest directory beyond the capacity.
    pub fn insert(&self, dir: &str) {
        let hash = self.hasher.hash_one(dir);
        let mut dirs = lock(&self.dirs);
        if let Some(i) = dirs.iter().position(|(h, d)| *h == hash && &**d == dir) {
            // Most recently seen last, so a busy latch is never the one forgotten.
            if let Some(d) = dirs.remove(i) {
                dirs.push_back(d);
            }
            return;
        }
        if dirs.len() == CAPACITY {
            dirs.pop_front();
        }
        dirs.push_back((hash, dir.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_it_was_told_and_forgets_the_oldest_beyond_capacity() {
        let known = KnownDirs::default();
        assert!(!known.contains("/a"));
        known.insert("/a");
        assert!(known.contains("/a"));
        for i in 0..CAPACITY {
            // "/a" is seen again halfway, so it outlives the older entries.
            if i == CAPACITY / 2 {
                known.insert("/a");
            }
            known.insert(&format!("/job-{i}"));
        }
        assert!(known.contains("/a"));
        assert!(!known.contains("/job-0"));
        assert!(known.contains(&format!("/job-{}", CAPACITY - 1)));
        assert_eq!(lock(&known.dirs).len(), CAPACITY);
    }
}
