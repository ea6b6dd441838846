//! The session of a client-only process: no lease, and a connection state that follows a cheap
//! read of the namespace.
//!
//! A reader has no lease to keep alive and no key whose loss it must notice, so its state
//! answers one question: does etcd answer? A count-only range read of the namespace (the same
//! permission a reader needs anyway) every lease TTL / 3 keeps it `Connected`; a failed one
//! makes it `Suspended` until one succeeds again. It is never `Lost`: nothing of the session
//! lives on the server. Watches resume by revision on their own after a reconnect.

use std::sync::Weak;
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use tenure_core::connection::ConnectionState;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::keys::Keys;
use crate::session::Shared;

/// How soon a failed read is retried.
const RETRY: Duration = Duration::from_millis(250);

/// One count-only read of the namespace: proves the endpoints answer and the credentials may
/// read the cluster's keys.
pub(crate) async fn probe(client: &mut Client, keys: &Keys) -> Result<(), etcd_client::Error> {
    let (start, end) = keys.range_below("");
    client
        .get(
            start,
            Some(GetOptions::new().with_range(end).with_count_only()),
        )
        .await
        .map(|_| ())
}

/// Reads the namespace every `interval` while the backend lives and sets the connection state
/// from the answers.
pub(crate) async fn follow(weak: Weak<Shared>, closed: CancellationToken) {
    let Some(shared) = weak.upgrade() else { return };
    let mut client = shared.raw_client();
    let keys = shared.keys.clone();
    let ttl = Duration::from_secs(u64::try_from(shared.settings.lease_ttl_secs()).unwrap_or(1));
    let timeout = shared.settings.request_timeout.min(ttl / 3).max(RETRY);
    drop(shared);
    let interval = ttl / 3;
    loop {
        let answered = tokio::select! {
            _ = closed.cancelled() => return,
            r = tokio::time::timeout(timeout, probe(&mut client, &keys)) => r,
        };
        let Some(shared) = weak.upgrade() else { return };
        let wait = match answered {
            Ok(Ok(())) => {
                if shared.status().state != ConnectionState::Connected {
                    info!("etcd answers again");
                }
                shared.set_state(ConnectionState::Connected);
                interval
            }
            Ok(Err(e)) => {
                if shared.status().state == ConnectionState::Connected {
                    warn!(error = %e, "etcd does not answer; connection suspended");
                }
                shared.set_state(ConnectionState::Suspended);
                RETRY
            }
            Err(_) => {
                if shared.status().state == ConnectionState::Connected {
                    warn!("etcd did not answer within {timeout:?}; connection suspended");
                }
                shared.set_state(ConnectionState::Suspended);
                RETRY
            }
        };
        drop(shared);
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
