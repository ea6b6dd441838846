//! The ensemble tracker (`high-availability.zookeeper.client.ensemble-tracker`, default true),
//! at session granularity: after a session opens, the backend reads the ensemble's dynamic
//! configuration (`/zookeeper/config`) and keeps its servers' client addresses; the *next* new
//! session (after the current one is lost) connects to those, with the configured chroot. The
//! current session keeps the servers it was opened with (the client cannot change them).
//!
//! Curator's `EnsembleTracker` does the same with a watch, and like it a configuration without
//! any client address (a standalone server, or servers whose client port is configured apart
//! from the `server.N` lines) changes nothing: the configured quorum stays in use. With the key
//! false, sessions always use the configured quorum (behind a load balancer or virtual IP).

use std::time::Duration;

use tracing::{debug, info};
use zookeeper_client as zk;

/// Reads `/zookeeper/config` on `client` (for at most `bound`) and returns the connect string
/// of the next session (see [`tracked_quorum`]); `None` when it cannot be read or names no
/// client address.
pub(crate) async fn read_tracked_quorum(
    client: &zk::Client,
    configured: &str,
    bound: Duration,
) -> Option<String> {
    let data = match tokio::time::timeout(bound, client.get_config()).await {
        Ok(Ok((data, _))) => data,
        Ok(Err(e)) => {
            debug!(error = %e, "reading /zookeeper/config failed; keeping the configured quorum");
            return None;
        }
        Err(_) => {
            debug!("reading /zookeeper/config timed out; keeping the configured quorum");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&data);
    let tracked = tracked_quorum(configured, &client_addresses(&text));
    match &tracked {
        Some(q) => info!(quorum = %q, "the ensemble's client addresses; later sessions use them"),
        None => debug!(config = %text, "no client address in /zookeeper/config"),
    }
    tracked
}

/// The client addresses (`host:port`) of the servers in a `/zookeeper/config` text; empty when
/// no `server.N` line names a client port. A wildcard client host (`0.0.0.0`, `::`) or a bare
/// port stands for the server's quorum host, as Curator reads it.
pub fn client_addresses(config: &str) -> Vec<String> {
    config
        .lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once('=')?;
            key.trim().strip_prefix("server.")?;
            let (server, client) = value.trim().split_once(';')?;
            let quorum_host = host_of(server)?;
            let client = client.trim();
            let (host, port) = match client.rsplit_once(':') {
                Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
                None => ("", client),
            };
            let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
            let host = match host {
                "" | "0.0.0.0" | "::" | "0:0:0:0:0:0:0:0" => quorum_host,
                h => h,
            };
            Some(if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            })
        })
        .collect()
}

/// The host of a `host:quorumport:electionport[:role]` server address (`[v6]` unbracketed).
fn host_of(server: &str) -> Option<&str> {
    let server = server.trim();
    if let Some(rest) = server.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h);
    }
    server.split(':').next().filter(|h| !h.is_empty())
}

/// The connect string of the next session: `addresses` with the chroot of `configured`
/// (`host:port,...[/chroot]`); `None` when there are no addresses.
pub fn tracked_quorum(configured: &str, addresses: &[String]) -> Option<String> {
    if addresses.is_empty() {
        return None;
    }
    let chroot = configured.find('/').map_or("", |i| &configured[i..]);
    Some(format!("{}{chroot}", addresses.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses_of_a_dynamic_configuration() {
        let config = "server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                      server.2=10.0.0.2:2888:3888:participant;10.0.1.2:2182\n\
                      server.3=[fd00::3]:2888:3888:observer;2183\n\
                      server.4=10.0.0.4:2888:3888:participant\n\
                      version=100000000\n";
        assert_eq!(
            client_addresses(config),
            ["10.0.0.1:2181", "10.0.1.2:2182", "[fd00::3]:2183"]
        );
    }

    #[test]
    fn no_client_address_keeps_the_configured_quorum() {
        assert!(client_addresses("").is_empty());
        assert!(client_addresses("server.1=127.0.0.1:2888:3888\nversion=0\n").is_empty());
        assert_eq!(tracked_quorum("a:1,b:2/flink", &[]), None);
        let addrs = ["c:3".to_owned(), "d:4".to_owned()];
        assert_eq!(
            tracked_quorum("a:1,b:2/flink/x", &addrs).as_deref(),
            Some("c:3,d:4/flink/x")
        );
        assert_eq!(tracked_quorum("a:1", &addrs).as_deref(), Some("c:3,d:4"));
    }
}
