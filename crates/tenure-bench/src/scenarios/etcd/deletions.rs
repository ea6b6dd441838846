//! An observer connection watching a latch's keys: when each key was deleted, as seen by a
//! third party (it splits a handover or a failover into the leader's or the server's part and
//! the standby's reaction).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use etcd_client::{EventType, WatchOptions};
use tokio::task::JoinHandle;

use crate::clock::mono_ns;

/// The deletions below one prefix, stamped with [`mono_ns`] on arrival.
#[derive(Debug)]
pub struct Deletions {
    seen: Arc<Mutex<HashMap<String, u64>>>,
    task: JoinHandle<()>,
}

impl Drop for Deletions {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Deletions {
    /// Watches every key below `prefix/` on its own connection to `endpoint`.
    pub async fn start(endpoint: &str, prefix: &str) -> anyhow::Result<Self> {
        let mut client = super::server::raw_client(endpoint).await?;
        let start = format!("{prefix}/").into_bytes();
        let end = tenure_etcd::keys::range_end(&start);
        let mut stream = client
            .watch(start, Some(WatchOptions::new().with_range(end)))
            .await
            .with_context(|| format!("the observer's watch of {prefix}/"))?;
        match stream.message().await {
            Ok(Some(r)) if r.created() => {}
            other => bail!("the observer's watch of {prefix}/ was not created: {other:?}"),
        }
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            while let Ok(Some(resp)) = stream.message().await {
                let at = mono_ns();
                let mut seen = tenure_core::sync::lock(&record);
                for e in resp.events() {
                    if e.event_type() == EventType::Delete
                        && let Some(kv) = e.kv()
                    {
                        seen.insert(String::from_utf8_lossy(kv.key()).into_owned(), at);
                    }
                }
            }
        });
        Ok(Self { seen, task })
    }

    /// When the observer last saw `key` deleted, if it did.
    pub fn at(&self, key: &str) -> Option<u64> {
        tenure_core::sync::lock(&self.seen).get(key).copied()
    }

    /// When the observer saw `key` deleted at `since` or later, waiting up to a second for its
    /// notification (it may arrive after the standby's). A key deleted in every trial (the same
    /// lease's latch key) keeps the time of the trial before until this trial's notification
    /// arrives: that one is not this trial's.
    pub async fn wait_at(&self, key: &str, since: u64) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            if let Some(at) = self.at(key).filter(|&at| at >= since) {
                return Some(at);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trial_pairs_with_a_deletion_after_it_began_not_an_earlier_trials() {
        let seen = Arc::new(Mutex::new(HashMap::from([("k".to_owned(), 150)])));
        let observer = Deletions {
            seen: seen.clone(),
            task: tokio::spawn(async {}),
        };
        // Trial 0 began at 100 and the key went at 150; trial 1 began at 300 and its deletion
        // is heard at 330, after the trial asks.
        assert_eq!(observer.wait_at("k", 100).await, Some(150));
        let late = tokio::spawn(async move {
            tenure_core::sync::lock(&seen).insert("k".to_owned(), 330);
        });
        assert_eq!(observer.wait_at("k", 300).await, Some(330));
        late.await.unwrap();
    }
}
