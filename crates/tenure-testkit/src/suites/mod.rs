//! The conformance suites. Each case is an `async fn(&dyn BackendFactory)` that panics on failure.

pub mod churn;
pub mod cleanup;
pub mod client_only;
pub mod election;
pub mod election_named;
pub mod job_cleanup;
pub mod kv;
pub mod retrieval;
pub mod stores;

use std::sync::Arc;

use tenure_core::driver::{HaBackend, LatchEvent};
use tenure_core::kv::FencingToken;
use tokio::sync::mpsc;

use crate::DEADLINE;

/// Joins `latch` on `backend` and waits until it is granted; returns the latch and the token.
pub async fn acquire(
    backend: &Arc<dyn HaBackend>,
    latch: &str,
) -> (
    Box<dyn tenure_core::driver::Latch>,
    FencingToken,
    mpsc::UnboundedReceiver<LatchEvent>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let l = backend.join_latch(latch, tx).await.expect("join latch");
    let token = tokio::time::timeout(DEADLINE, async {
        loop {
            match rx.recv().await {
                Some(LatchEvent::Granted(t)) => return t,
                Some(_) => continue,
                None => panic!("latch events ended before a grant"),
            }
        }
    })
    .await
    .expect("latch granted in time");
    (l, token, rx)
}
