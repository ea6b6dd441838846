//! Loopback ports for the servers the tests start.
//!
//! Servers are restarted on their ports (a node of a cluster, a server down past a session
//! timeout), and while one is down its peers and clients keep dialling that port. A dial to an
//! unbound port of the kernel's ephemeral range can pick that very port as its source and
//! connect to itself (TCP simultaneous open), and the server that should listen there then
//! fails to start with "address already in use" (ZooKeeper exits with status 14, etcd says so
//! in its log). Ports below the ephemeral range (32768–60999 by default) are never a source
//! port, so they never collide that way; a random pick among them rarely meets another test's.

use std::net::{Ipv4Addr, TcpListener};

/// A loopback port between 15000 and 32000 that was free a moment ago.
pub(crate) fn server_port() -> u16 {
    for _ in 0..1000 {
        let candidate = 15_000 + (uuid::Uuid::new_v4().as_u128() % 17_000) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, candidate)).is_ok() {
            return candidate;
        }
    }
    panic!("no free loopback port between 15000 and 32000");
}
