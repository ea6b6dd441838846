//! Latch events in tests: a contender that leads alone, and the grants of two contenders of one
//! latch, for tests that assert at most one of them leads after some event.

use tenure_core::driver::{HaBackend, Latch, LatchEvent};
use tenure_core::kv::FencingToken;
use tokio::sync::mpsc::{self, UnboundedReceiver};

use crate::{DEADLINE, wait_until};

/// Joins `latch` on `backend` as one contender: the latch (leave by dropping or closing it) and
/// its events.
pub async fn join(
    backend: &impl HaBackend,
    latch: &str,
) -> (Box<dyn Latch>, UnboundedReceiver<LatchEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (backend.join_latch(latch, tx).await.unwrap(), rx)
}

/// Joins `latch` on `backend`, the only contender, and waits for its grant: the latch (leave by
/// dropping or closing it), its further events and the term's token. Panics if no grant comes
/// first within [`DEADLINE`].
pub async fn lead_alone(
    backend: &impl HaBackend,
    latch: &str,
) -> (Box<dyn Latch>, UnboundedReceiver<LatchEvent>, FencingToken) {
    let (joined, mut rx) = join(backend, latch).await;
    let first = tokio::time::timeout(DEADLINE, rx.recv()).await;
    let Ok(Some(LatchEvent::Granted(token))) = first else {
        panic!("the only contender of {latch} is granted first: {first:?}");
    };
    (joined, rx, token)
}

/// The grants two contenders received, as `[a, b]`: waits until at least one of them is
/// granted, then until `settled` holds (the line is quiet again: each waits where it will
/// stay), then counts every event left in both channels. Panics if nobody is granted within
/// [`DEADLINE`].
pub async fn grants_until_settled<F, Fut>(
    a: &mut UnboundedReceiver<LatchEvent>,
    b: &mut UnboundedReceiver<LatchEvent>,
    settled: F,
) -> [usize; 2]
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let granted = |e: Option<LatchEvent>| match e {
        Some(e) => usize::from(matches!(e, LatchEvent::Granted(_))),
        None => panic!("a contender's latch is gone"),
    };
    let mut grants = [0, 0];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while grants == [0, 0] {
        tokio::select! {
            e = a.recv() => grants[0] += granted(e),
            e = b.recv() => grants[1] += granted(e),
            () = tokio::time::sleep_until(deadline) => {
                panic!("nobody was granted within {DEADLINE:?}")
            }
        }
    }
    wait_until("the line settled", DEADLINE, settled).await;
    while let Ok(e) = a.try_recv() {
        grants[0] += granted(Some(e));
    }
    while let Ok(e) = b.try_recv() {
        grants[1] += granted(Some(e));
    }
    grants
}
