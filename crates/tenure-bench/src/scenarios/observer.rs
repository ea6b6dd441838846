//! An observer session: a persistent recursive watch that records when znodes are deleted, as a
//! watcher sees it (so the moment a leader's node goes, by stop or by session expiry, is known
//! apart from when the next leader notices).
//!
//! The observer runs on a thread of its own with its own runtime and client, so the work of the
//! contenders being measured (on the harness's runtime) does not delay its timestamps. Its
//! notification is not always the server's first: a standby watching the same node can lead
//! before the observer hears of the deletion. So a trial's deletion is the first one seen after
//! the trial began (the kill or the stop), never "the last one before the grant", which would
//! then be an earlier trial's.

use std::time::Duration;

use anyhow::Context as _;
use tenure_zookeeper::zk;
use tokio::sync::{oneshot, watch};

use crate::bench::{self, Zk};
use crate::clock::mono_ns;

/// Records when znodes below a path are deleted.
#[derive(Debug)]
pub struct Observer {
    deletions: watch::Receiver<Vec<u64>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Observer {
    /// Starts observing `path` and everything below it; returns once the watch is in place.
    pub async fn start(zk: &Zk, path: &str) -> anyhow::Result<Self> {
        let connect = zk.connect_string();
        let path = path.to_owned();
        let (sink, deletions) = watch::channel(Vec::new());
        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-observer".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let started = async {
                        let client = bench::raw_client(&connect, bench::SESSION_TIMEOUT).await?;
                        let watcher = client
                            .watch(&path, zk::AddWatchMode::PersistentRecursive)
                            .await?;
                        anyhow::Ok((client, watcher))
                    };
                    let (_client, mut watcher) = match started.await {
                        Ok(x) => {
                            let _ = ready_tx.send(Ok(()));
                            x
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    loop {
                        let event = tokio::select! {
                            _ = &mut stop_rx => return,
                            e = watcher.changed() => e,
                        };
                        if event.event_type == zk::EventType::NodeDeleted {
                            let t = mono_ns();
                            sink.send_modify(|d| d.push(t));
                        } else if event.event_type == zk::EventType::Session
                            && event.session_state.is_terminated()
                        {
                            return;
                        }
                    }
                });
            })
            .context("starting the observer thread")?;
        ready_rx.await.context("the observer thread ended")??;
        Ok(Self {
            deletions,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// For each trial begun at `starts[i]`, the first deletion seen at or after it and before
    /// the next trial began; it may come after the trial's grant (see the module docs).
    pub fn deletions_after(&self, starts: &[u64]) -> Vec<Option<u64>> {
        let deletions = self.deletions.borrow();
        starts
            .iter()
            .enumerate()
            .map(|(i, &from)| {
                first_between(
                    &deletions,
                    from,
                    starts.get(i + 1).copied().unwrap_or(u64::MAX),
                )
            })
            .collect()
    }

    /// The first deletion seen at or after `from`, waiting up to `patience` for the observer's
    /// notification; `None` if none came.
    pub async fn deletion_after(&self, from: u64, patience: Duration) -> Option<u64> {
        let mut rx = self.deletions.clone();
        let seen = tokio::time::timeout(
            patience,
            rx.wait_for(|d| first_between(d, from, u64::MAX).is_some()),
        )
        .await
        .ok()?
        .ok()?;
        first_between(&seen, from, u64::MAX)
    }
}

/// The first of `deletions` (in the order seen) at or after `from` and before `until`.
fn first_between(deletions: &[u64], from: u64, until: u64) -> Option<u64> {
    deletions.iter().copied().find(|&d| d >= from && d < until)
}

impl Drop for Observer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observer_with(deletions: Vec<u64>) -> (watch::Sender<Vec<u64>>, Observer) {
        let (tx, rx) = watch::channel(deletions);
        let observer = Observer {
            deletions: rx,
            stop: None,
            thread: None,
        };
        (tx, observer)
    }

    #[test]
    fn a_trial_pairs_with_the_first_deletion_after_it_began_not_an_earlier_trials() {
        // Trial 0 began at 100; its node went at 150. Trial 1 began at 300 and its standby
        // led at 320, before the observer heard of the deletion (330); trial 2 (at 500) saw none.
        let (_tx, observer) = observer_with(vec![150, 200, 330, 400]);
        assert_eq!(
            observer.deletions_after(&[100, 300, 500]),
            vec![Some(150), Some(330), None]
        );
    }

    #[tokio::test]
    async fn a_deletion_reported_late_is_waited_for() {
        let (tx, observer) = observer_with(vec![10]);
        let late = tokio::spawn(async move {
            tx.send_modify(|d| d.push(40));
            tx
        });
        assert_eq!(
            observer.deletion_after(20, Duration::from_secs(10)).await,
            Some(40)
        );
        let _tx = late.await.unwrap();
        assert_eq!(
            observer.deletion_after(50, Duration::from_millis(1)).await,
            None
        );
    }
}
