//! Two `tenure run` contenders for one component on a real ZooKeeper: the standby shows in the
//! metrics before its first grant, and `leaders --watch` reports its takeover as a leader change.

#![cfg(feature = "zookeeper")]
#![allow(clippy::unwrap_used)]

use crate::common;

use common::{Running, http_get, metrics_addr};
use tenure_testkit::zookeeper::ZooKeeperServer;

/// The connection options of every `tenure` of the test, then `cmd`.
fn args(server: &ZooKeeperServer, cluster: &str, cmd: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--ha-type",
        "zookeeper",
        "--zookeeper-quorum",
        &server.connect_string(),
        "--cluster-id",
        cluster,
        "-D",
        "high-availability.zookeeper.client.session-timeout=4s",
        "-D",
        "high-availability.zookeeper.client.retry-wait=100ms",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    a.extend(cmd.iter().map(|s| (*s).to_owned()));
    a
}

fn spawn(args: &[String]) -> Running {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Running::spawn(&refs)
}

fn contender(server: &ZooKeeperServer, cluster: &str, address: &str) -> Running {
    spawn(&args(
        server,
        cluster,
        &[
            "run",
            "--component",
            "dispatcher",
            "--address",
            address,
            "--metrics-addr",
            "127.0.0.1:0",
            "--output",
            "json",
            "--",
            "sleep",
            "60",
        ],
    ))
}

fn scrape(addr: &str) -> String {
    let (status, body) = http_get(addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_is_scraped_at_0_and_its_takeover_is_a_leader_change() {
    let server = ZooKeeperServer::start().await;
    let cluster = format!("/standby-{}", uuid::Uuid::new_v4().simple());
    tokio::task::block_in_place(|| {
        let mut watch = spawn(&args(
            &server,
            &cluster,
            &["leaders", "--watch", "--output", "json"],
        ));
        watch.stdout.wait_event("snapshot");

        let mut a = contender(&server, &cluster, "http://a:8081");
        let a_metrics = metrics_addr(&mut a.stderr);
        a.stderr.wait_event("started");
        let joined = watch.stdout.wait_event("contender_joined");
        assert_eq!(joined["leader"], true, "{joined}");
        let a_node = joined["node"].as_str().unwrap().to_owned();
        let first = watch.stdout.wait_event("leader_changed");
        assert_eq!(first["node"], a_node.as_str());
        assert_eq!(first["previous"], serde_json::Value::Null);

        let mut b = contender(&server, &cluster, "http://b:8081");
        let b_metrics = metrics_addr(&mut b.stderr);
        b.stderr.wait_event("campaigning");
        let joined = watch.stdout.wait_event("contender_joined");
        assert_eq!(joined["leader"], false, "{joined}");
        let b_node = joined["node"].as_str().unwrap().to_owned();

        // The standby's metrics name the component before any grant.
        let body = scrape(&b_metrics);
        for needle in [
            "tenure_leadership{component=\"dispatcher\"} 0",
            "tenure_terms_granted_total{component=\"dispatcher\"} 0",
            "tenure_connection_state{state=\"connected\"} 1",
        ] {
            assert!(
                body.contains(needle),
                "{needle} not in the standby's:\n{body}"
            );
        }
        assert!(scrape(&a_metrics).contains("tenure_leadership{component=\"dispatcher\"} 1"));

        // The leader stops: its node leaves, and the standby's takeover is a leader change,
        // not a contender joining.
        a.signal("-TERM");
        assert_eq!(a.wait(), Some(143));
        let change = watch.stdout.wait_event("leader_changed");
        assert_eq!(change["latch"], "leader/dispatcher/latch");
        assert_eq!(change["component"], "dispatcher");
        assert_eq!(change["node"], b_node.as_str());
        assert_eq!(change["previous"], a_node.as_str());
        let since_stop: Vec<serde_json::Value> = watch
            .stdout
            .seen
            .iter()
            .skip_while(|l| !l.contains(&b_node) || !l.contains("contender_joined"))
            .skip(1)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kinds: Vec<&str> = since_stop
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert!(
            !kinds.contains(&"contender_joined"),
            "no contender joined after the standby did: {kinds:?}"
        );
        let left = since_stop
            .iter()
            .position(|e| e["event"] == "contender_left" && e["node"] == a_node.as_str())
            .unwrap_or_else(|| panic!("the leader's node left: {kinds:?}"));
        assert!(
            left < kinds.len() - 1,
            "left before the leader change: {kinds:?}"
        );

        b.stderr.wait_event("started");
        let body = scrape(&b_metrics);
        assert!(
            body.contains("tenure_leadership{component=\"dispatcher\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("tenure_terms_granted_total{component=\"dispatcher\"} 1"),
            "{body}"
        );
        b.signal("-TERM");
        assert_eq!(b.wait(), Some(143));
        watch.signal("-TERM");
        assert_eq!(watch.wait(), Some(0));
    });
}
