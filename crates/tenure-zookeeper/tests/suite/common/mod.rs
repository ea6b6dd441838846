//! Helpers shared by the ZooKeeper backend's tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use tenure_core::driver::LatchEvent;
use tenure_core::kv::FencingToken;
use tenure_testkit::DEADLINE;
use tenure_testkit::zookeeper::{ZooKeeperFactory, four_letter_word};
use tenure_zookeeper::ZooKeeperBackend;
use tokio::sync::mpsc;

/// Requests the server received from `backend`'s session so far (`cons`' `recved`).
pub async fn received(f: &ZooKeeperFactory, backend: &ZooKeeperBackend) -> u64 {
    let sid = format!("sid=0x{:x}", backend.session_info().unwrap().id().0);
    let cons = four_letter_word(f.server().port(), "cons").await.unwrap();
    let line = cons
        .lines()
        .find(|l| l.contains(&sid))
        .unwrap_or_else(|| panic!("no connection of {sid} in {cons}"));
    let recved = line.split("recved=").nth(1).unwrap();
    recved.split(',').next().unwrap().parse().unwrap()
}

/// The next latch event, within the deadline.
pub async fn next_event(rx: &mut mpsc::UnboundedReceiver<LatchEvent>) -> LatchEvent {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("a latch event in time")
        .expect("the latch is alive")
}

/// Waits for a grant and returns its token.
pub async fn granted(rx: &mut mpsc::UnboundedReceiver<LatchEvent>) -> FencingToken {
    match next_event(rx).await {
        LatchEvent::Granted(t) => t,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// The server's watches by session (`wchc`): session id ⇒ watched paths.
pub async fn watches_by_session(port: u16) -> BTreeMap<i64, Vec<String>> {
    let text = four_letter_word(port, "wchc").await.unwrap();
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(hex) = line.strip_prefix("0x") {
            let id = u64::from_str_radix(hex.trim(), 16).unwrap() as i64;
            current = Some(id);
            out.entry(id).or_default();
        } else if let (Some(id), path) = (current, line.trim())
            && !path.is_empty()
        {
            out.entry(id).or_default().push(path.to_owned());
        }
    }
    out
}

/// Polls `wchc` until `pred` holds (watches have no change notification).
pub async fn wait_for_watches(
    port: u16,
    what: &str,
    pred: impl Fn(&BTreeMap<i64, Vec<String>>) -> bool,
) -> BTreeMap<i64, Vec<String>> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let w = watches_by_session(port).await;
        if pred(&w) {
            return w;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waiting for {what}: watches are {w:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `backend`'s session has `parked` latch waits (parked waits have no change
/// notification).
pub async fn wait_for_parked(
    backend: &tenure_zookeeper::ZooKeeperBackend,
    what: &str,
    parked: usize,
) {
    tenure_testkit::wait_until(what, DEADLINE, || async {
        tenure_zookeeper::latch_waits(backend).parked == parked
    })
    .await;
}
