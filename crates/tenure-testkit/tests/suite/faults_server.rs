//! Fault test, separate processes: the ZooKeeper server is killed and restarted (same port,
//! same data) while `tenure-contender` processes run. Leadership comes back, writes go on, and
//! every acknowledged checkpoint survives: the contenders retain all checkpoints, so the
//! checker's "no acknowledged write lost" covers every one written before the restart.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use common::faults::{
    HistoryExt, Scenario, Settings, figure, now_ms, wait_any_leading, wait_leading,
};
use tenure_testkit::zookeeper::ZooKeeperServer;

/// Keep every checkpoint: then no acknowledged one may be missing at the end.
const RETAIN_ALL: usize = 100_000;

/// Runs the restart scenario; `outage` is how long the server stays down.
async fn restart_scenario(outage: Option<Duration>, figure_name: &str) {
    let mut server = ZooKeeperServer::start().await;
    let quorum = server.connect_string();
    let s = Scenario::new(Settings {
        retain: RETAIN_ALL,
        ..Settings::default()
    });

    let mut a = s.spawn("a", &quorum);
    wait_leading(&[&a], "a", 0).await;
    let mut b = s.spawn("b", &quorum);
    s.wait_latch_participants(&quorum, 2).await;

    let stopped = now_ms();
    server.stop();
    if let Some(outage) = outage {
        // Let time pass with the server down, so the clients give their sessions up.
        tokio::time::sleep(outage).await;
    }
    server.restart().await;
    let restarted = now_ms();
    let before = [&a, &b]
        .iter()
        .flat_map(|c| c.history().acknowledged_ids())
        .max()
        .unwrap();

    let leader = wait_any_leading(&[&a, &b], stopped).await;
    figure(figure_name, leader.t_ms.saturating_sub(restarted));
    println!(
        "{} leads again {} ms after the restart ({} ms after the stop)",
        leader.process,
        leader.t_ms.saturating_sub(restarted),
        leader.t_ms - stopped
    );
    // The checkpoint counter survived: new ids continue after the ones acknowledged before.
    let new_leader = if leader.process == "a" { &a } else { &b };
    let h = new_leader.history();
    let first_new = h.acked_since(leader.t_ms)[0].id.unwrap();
    assert!(
        first_new > before,
        "checkpoint {first_new} written after the restart, {before} before"
    );

    let done = s.finish(&mut [&mut a, &mut b], &quorum).await;
    // Retaining everything: the recovered ids include every acknowledged one.
    for id in done.merged.acknowledged_ids() {
        assert!(done.recovered.contains(&id), "checkpoint {id} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_server_restart_recovers_leadership_and_data() {
    restart_scenario(None, "server_restart_recovery").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_past_the_session_timeout_recovers_leadership_and_data() {
    // 7/5 of the session timeout is when the client gives its session up; a little more.
    let outage = Settings::default().session_timeout * 2;
    restart_scenario(Some(outage), "server_outage_recovery").await;
}
