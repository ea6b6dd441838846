//! The parked latch waits of one session: which participation waits, with which request, for
//! which node to be deleted. Found by the node's path hash when a deletion is seen, and by the
//! participation when it waits again or is over, so a wait never outlives its participation.
//!
//! A wait may name a second node whose deletion ends it too (the waiter's own node, while it
//! waits for the first of the line: see [`crate::deletions`]). Only those waits pay for it.

use std::collections::{BTreeSet, HashMap};

/// Parked waits, each participation with at most one.
#[derive(Debug, Default)]
pub(crate) struct Parked {
    /// Participation → (hash of the awaited node's path, the wait's request seq).
    by_participation: HashMap<u64, (u64, u64)>,
    /// Participation → hash of the second path whose deletion ends its wait, if it has one.
    also: HashMap<u64, u64>,
    /// (hash, participation): the waiters of a path (both paths of a wait with two).
    by_path: BTreeSet<(u64, u64)>,
}

impl Parked {
    /// Waits parked now.
    pub(crate) fn len(&self) -> usize {
        self.by_participation.len()
    }

    /// The hash of the path `participation` waits on, if it waits.
    pub(crate) fn parked_on(&self, participation: u64) -> Option<u64> {
        self.by_participation
            .get(&participation)
            .map(|(hash, _)| *hash)
    }

    /// The hash of the second path of `participation`'s wait, if it has one.
    pub(crate) fn also_on(&self, participation: u64) -> Option<u64> {
        self.also.get(&participation).copied()
    }

    /// Parks request `seq` of `participation` on the path of `hash` (and, with `also`, on that
    /// path's too), in place of its earlier wait.
    pub(crate) fn park(&mut self, hash: u64, also: Option<u64>, participation: u64, seq: u64) {
        if let Some((old, _)) = self.by_participation.insert(participation, (hash, seq)) {
            self.by_path.remove(&(old, participation));
        }
        self.drop_also(participation);
        self.by_path.insert((hash, participation));
        if let Some(also) = also {
            self.also.insert(participation, also);
            self.by_path.insert((also, participation));
        }
    }

    /// Removes `participation`'s wait if it is request `seq`'s (`None`: whichever); true if one
    /// was removed.
    pub(crate) fn unpark(&mut self, participation: u64, seq: Option<u64>) -> bool {
        match self.by_participation.get(&participation) {
            Some(&(_, parked)) if seq.is_none_or(|s| s == parked) => {
                self.remove(participation).is_some()
            }
            _ => false,
        }
    }

    /// Removes `participation`'s wait, whichever it is; its request seq if it had one.
    fn remove(&mut self, participation: u64) -> Option<u64> {
        self.drop_also(participation);
        let (hash, seq) = self.by_participation.remove(&participation)?;
        self.by_path.remove(&(hash, participation));
        Some(seq)
    }

    /// Removes the second path of `participation`'s wait, if it has one (most waits have
    /// none: the map is then empty and not even hashed into).
    fn drop_also(&mut self, participation: u64) {
        if !self.also.is_empty()
            && let Some(also) = self.also.remove(&participation)
        {
            self.by_path.remove(&(also, participation));
        }
    }

    /// Takes the waits on the path of `hash`, as (participation, seq).
    pub(crate) fn take_path(&mut self, hash: u64) -> Vec<(u64, u64)> {
        let waiters: Vec<u64> = self
            .by_path
            .range((hash, 0)..=(hash, u64::MAX))
            .map(|(_, p)| *p)
            .collect();
        waiters
            .into_iter()
            .filter_map(|p| {
                self.by_path.remove(&(hash, p));
                self.remove(p).map(|seq| (p, seq))
            })
            .collect()
    }

    /// Takes every wait, as (participation, seq).
    pub(crate) fn take_all(&mut self) -> Vec<(u64, u64)> {
        self.by_path.clear();
        self.also.clear();
        self.by_participation
            .drain()
            .map(|(p, (_, seq))| (p, seq))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deletion_takes_exactly_the_waiters_of_its_path() {
        let mut parked = Parked::default();
        parked.park(7, None, 1, 10);
        parked.park(7, None, 2, 20);
        parked.park(8, None, 3, 30);
        let mut woken = parked.take_path(7);
        woken.sort_unstable();
        assert_eq!(woken, vec![(1, 10), (2, 20)]);
        assert_eq!(parked.len(), 1);
        assert!(parked.take_path(7).is_empty(), "taken once");
        assert_eq!(parked.take_all(), vec![(3, 30)]);
        assert_eq!(parked.len(), 0);
    }

    #[test]
    fn waiting_again_replaces_the_earlier_wait() {
        let mut parked = Parked::default();
        parked.park(7, None, 1, 10);
        parked.park(8, None, 1, 11);
        assert_eq!(parked.len(), 1);
        assert!(parked.take_path(7).is_empty(), "the old path wakes nobody");
        assert_eq!(parked.take_path(8), vec![(1, 11)]);
    }

    #[test]
    fn unparking_removes_only_the_named_request_or_any() {
        let mut parked = Parked::default();
        parked.park(7, None, 1, 10);
        assert!(!parked.unpark(1, Some(9)), "a newer wait stays");
        assert_eq!(parked.len(), 1);
        assert!(parked.unpark(1, Some(10)));
        assert_eq!(parked.len(), 0);
        parked.park(7, None, 1, 12);
        assert!(parked.unpark(1, None), "a participation that is over");
        assert!(parked.take_path(7).is_empty());
        assert!(!parked.unpark(1, None));
    }

    #[test]
    fn a_wait_with_a_second_path_ends_on_either_and_is_taken_once() {
        let mut parked = Parked::default();
        parked.park(7, Some(9), 1, 10);
        parked.park(7, None, 2, 20);
        assert_eq!(parked.also_on(1), Some(9));
        assert_eq!(
            parked.take_path(9),
            vec![(1, 10)],
            "the second path ends it"
        );
        assert_eq!(parked.also_on(1), None);
        assert_eq!(
            parked.take_path(7),
            vec![(2, 20)],
            "its first path no longer"
        );

        parked.park(7, Some(9), 1, 11);
        assert_eq!(parked.take_path(7), vec![(1, 11)], "the first path ends it");
        assert!(parked.take_path(9).is_empty(), "its second path no longer");

        parked.park(7, Some(9), 1, 12);
        parked.park(8, None, 1, 13);
        assert!(
            parked.take_path(9).is_empty(),
            "waiting again drops the second path"
        );
        assert!(parked.unpark(1, Some(13)));
        parked.park(7, Some(9), 1, 14);
        assert_eq!(parked.take_all(), vec![(1, 14)]);
        assert!(parked.take_path(9).is_empty() && parked.also_on(1).is_none());
    }
}
