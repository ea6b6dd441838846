//! Every kind of HA event reaches an observer of the services on the embedded backend: a grant,
//! a publication, a store operation, a connection change and a revocation.

use std::sync::Arc;
use std::time::Duration;

use tenure_core::connection::ConnectionState;
use tenure_core::embedded::EmbeddedCluster;
use tenure_core::ids::{ComponentId, JobId};
use tenure_core::observer::{Events, HaEvent, KeyKind, KvOp};
use tenure_core::services::{ElectionMode, HaServices, HaServicesOptions};

const DEADLINE: Duration = Duration::from_secs(10);

/// The first event matching `pred`, within the deadline.
async fn wait_for(events: &mut Events, what: &str, pred: impl Fn(&HaEvent) -> bool) -> HaEvent {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match events.recv().await {
                Some(e) if pred(&e) => return e,
                Some(_) => {}
                None => panic!("event channel closed while waiting for {what}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"))
}

async fn each_event_kind_is_reported(mode: ElectionMode) {
    let cluster = EmbeddedCluster::new();
    let session = cluster.connect();
    let options = HaServicesOptions {
        election_mode: mode,
        ..HaServicesOptions::default()
    };
    let services = HaServices::new(Arc::new(session.clone()), options);
    let mut events = services.subscribe();

    let mut election = services
        .dispatcher_leader_election()
        .await
        .expect("election");
    let term = election.wait_for_leadership().await.expect("leadership");
    match wait_for(&mut events, "a grant", |e| {
        matches!(e, HaEvent::LeadershipGranted { .. })
    })
    .await
    {
        HaEvent::LeadershipGranted {
            component,
            session,
            token,
            latch,
        } => {
            assert_eq!(component, ComponentId::Dispatcher);
            assert_eq!(session, term.session_id);
            assert_eq!(token, term.fencing_token);
            assert!(latch.starts_with("leader/"), "{latch}");
        }
        _ => unreachable!(),
    }

    assert!(
        election
            .confirm(
                term.session_id,
                "pekko.tcp://flink@jm:6123/user/rpc/dispatcher_1"
            )
            .await
            .expect("confirm")
    );
    let published = wait_for(&mut events, "a publication", |e| {
        matches!(e, HaEvent::LeaderPublished { .. })
    })
    .await;
    assert_eq!(
        published,
        HaEvent::LeaderPublished {
            component: ComponentId::Dispatcher,
            address: "pekko.tcp://flink@jm:6123/user/rpc/dispatcher_1".into(),
        }
    );

    services
        .leader_stores(&term)
        .checkpoint_id_counter(JobId::new_random())
        .get_and_increment()
        .await
        .expect("counter");
    wait_for(&mut events, "a counter update", |e| {
        matches!(
            e,
            HaEvent::StoreOp {
                op: KvOp::CompareAndSet | KvOp::Create,
                key: KeyKind::CheckpointCounter,
                ok: true,
                ..
            }
        )
    })
    .await;

    election.stop().await.expect("stop");
    wait_for(&mut events, "a revocation", |e| {
        *e == HaEvent::LeadershipRevoked {
            component: ComponentId::Dispatcher,
        }
    })
    .await;

    session.simulate_connection(ConnectionState::Suspended);
    wait_for(&mut events, "a suspension", |e| {
        *e == HaEvent::Connection(ConnectionState::Suspended)
    })
    .await;
    session.simulate_connection(ConnectionState::Connected);
    wait_for(&mut events, "a reconnection", |e| {
        *e == HaEvent::Connection(ConnectionState::Connected)
    })
    .await;
}

#[tokio::test]
async fn each_event_kind_is_reported_on_the_process_wide_election() {
    each_event_kind_is_reported(ElectionMode::ProcessWide).await;
}

#[tokio::test]
async fn each_event_kind_is_reported_on_per_component_elections() {
    each_event_kind_is_reported(ElectionMode::PerComponent).await;
}

#[tokio::test]
async fn nothing_is_reported_to_a_dropped_subscription() {
    let services = HaServices::new(
        Arc::new(EmbeddedCluster::new().connect()),
        HaServicesOptions::default(),
    );
    let events = services.subscribe();
    assert!(services.observer().is_observed());
    drop(events);
    assert!(!services.observer().is_observed());
}
