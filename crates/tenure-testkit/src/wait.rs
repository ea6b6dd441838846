//! Waiting on events with deadlines (never bare sleeps).

use std::time::Duration;

use tokio::sync::watch;

/// The default deadline for an expected event in conformance tests: generous, because a test
/// asserts that something happens, not how fast.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Waits until the watched value satisfies `pred` and returns it; panics naming `what` after
/// `timeout`.
pub async fn wait_for<T: Clone>(
    rx: &mut watch::Receiver<T>,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&T) -> bool,
) -> T {
    let result = tokio::time::timeout(timeout, async {
        loop {
            {
                let v = rx.borrow_and_update();
                if pred(&v) {
                    return Some(v.clone());
                }
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    match result {
        Ok(Some(v)) => v,
        Ok(None) => panic!("waiting for {what}: the sender is gone"),
        Err(_) => panic!("waiting for {what}: not within {timeout:?}"),
    }
}

/// Polls the async condition `check` (each poll is itself an event read, e.g. a KV get) until it
/// holds; panics naming `what` after `timeout`. For conditions with no change notification.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = Duration::from_millis(1);
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("waiting for {what}: not within {timeout:?}");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(100));
    }
}
