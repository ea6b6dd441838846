//! KV watches of one session share one ZooKeeper watch per prefix: N retrievers of a component
//! in one process register one persistent recursive watch on the server, each of them sees
//! every change, and the server-side watch goes when the last of them is dropped.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use common::{wait_for_watches, watches_by_session};
use tenure_core::ids::ComponentId;
use tenure_core::retrieval::LeaderState;
use tenure_core::services::{HaServices, HaServicesOptions};
use tenure_testkit::zookeeper::ZooKeeperFactory;
use tenure_testkit::{DEADLINE, wait_for};
use tenure_zookeeper::watch::{WatchStats, stats};

const RETRIEVERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrievers_of_one_component_share_one_server_side_watch() {
    let f = ZooKeeperFactory::start().await;
    let port = f.server().port();
    let follower = f.connect_zk().await;
    let session = follower.session_info().unwrap().id().0;
    let dir = follower.znode_path("leader/dispatcher").unwrap();
    let services = HaServices::new(Arc::new(follower.clone()), HaServicesOptions::default());

    let retrievers: Vec<_> = (0..RETRIEVERS)
        .map(|_| services.dispatcher_leader_retriever())
        .collect();
    let mut views: Vec<_> = retrievers.iter().map(|r| r.leader()).collect();
    // A retriever shows `NoLeader` only after its watch is in place and the key was read.
    for v in &mut views {
        wait_for(v, "no leader yet", DEADLINE, |s| {
            *s == LeaderState::NoLeader
        })
        .await;
    }
    assert_eq!(
        stats(&follower),
        WatchStats {
            persistent_watches: 1,
            registered: 1,
        }
    );
    let server = watches_by_session(port).await;
    assert_eq!(server.get(&session), Some(&vec![dir.clone()]), "{server:?}");

    // Every retriever sees every change: a leader, then none.
    let leader = HaServices::new(Arc::new(f.connect_zk().await), HaServicesOptions::default());
    let mut election = leader
        .leader_election(ComponentId::Dispatcher)
        .await
        .unwrap();
    let term = election.wait_for_leadership().await.unwrap();
    assert!(election.confirm(term.session_id, "addr-1").await.unwrap());
    for v in &mut views {
        wait_for(v, "the leader", DEADLINE, |s| {
            matches!(s, LeaderState::Leader { address, session_id }
                if address == "addr-1" && *session_id == term.session_id)
        })
        .await;
    }
    election.stop().await.unwrap();
    for v in &mut views {
        wait_for(v, "no leader again", DEADLINE, |s| {
            *s == LeaderState::NoLeader
        })
        .await;
    }
    assert_eq!(stats(&follower).registered, 1, "one registration in all");

    // Half of them go: the watch stays for the others.
    let mut retrievers = retrievers;
    retrievers.truncate(RETRIEVERS / 2);
    assert_eq!(stats(&follower).persistent_watches, 1);
    let server = watches_by_session(port).await;
    assert_eq!(server.get(&session), Some(&vec![dir.clone()]), "{server:?}");

    // The last one goes: so does the server-side watch.
    drop(retrievers);
    drop(views);
    wait_for_watches(port, "the shared watch removed from the server", |w| {
        w.get(&session).is_none_or(|paths| paths.is_empty())
    })
    .await;
    assert_eq!(stats(&follower).persistent_watches, 0);

    // A new retriever registers it again.
    let again = services.dispatcher_leader_retriever();
    let mut v = again.leader();
    wait_for(&mut v, "no leader", DEADLINE, |s| {
        *s == LeaderState::NoLeader
    })
    .await;
    assert_eq!(
        stats(&follower),
        WatchStats {
            persistent_watches: 1,
            registered: 2,
        }
    );
}
