//! An observer session: a persistent recursive watch that records when znodes are deleted, as a
//! watcher sees it (so the moment a leader's node goes, by stop or by session expiry, is known
//! apart from when the next leader notices).
//!
//! The observer runs on a thread of its own with its own runtime and client, so the work of the
//! contenders being measured (on the harness's runtime) does not delay its timestamps.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tenure_zookeeper::zk;
use tokio::sync::oneshot;

use crate::bench::{self, Zk};
use crate::clock::mono_ns;

/// Records when znodes below a path are deleted.
#[derive(Debug)]
pub struct Observer {
    deletions: Arc<Mutex<Vec<u64>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Observer {
    /// Starts observing `path` and everything below it; returns once the watch is in place.
    pub async fn start(zk: &Zk, path: &str) -> anyhow::Result<Self> {
        let connect = zk.connect_string();
        let path = path.to_owned();
        let deletions = Arc::new(Mutex::new(Vec::new()));
        let sink = deletions.clone();
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
                            tenure_core::sync::lock(&sink).push(t);
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

    /// For each moment of `grants`, the last deletion seen before it (the previous leader's node).
    pub fn expiries(&self, grants: &[u64]) -> Vec<Option<u64>> {
        let deletions = tenure_core::sync::lock(&self.deletions);
        grants
            .iter()
            .map(|g| deletions.iter().copied().filter(|d| d <= g).max())
            .collect()
    }
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
