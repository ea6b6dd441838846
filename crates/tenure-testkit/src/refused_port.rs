//! A loopback port that refuses connections for as long as the test holds it.
//!
//! A port bound by a listener and released at once is "free" only until another test's server
//! takes it (tests run in parallel). A socket bound but never listening keeps the port reserved,
//! and the kernel answers every connection attempt to it with a reset: connection refused.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::TcpSocket;

/// A reserved loopback port where nothing listens; the reservation ends when it is dropped.
#[derive(Debug)]
pub struct RefusedPort {
    _socket: TcpSocket,
    port: u16,
}

impl RefusedPort {
    /// Reserves a free loopback port without listening on it. Panics if no socket can be bound.
    pub fn new() -> Self {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind a loopback port");
        let port = socket.local_addr().expect("its address").port();
        Self {
            _socket: socket,
            port,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_refused_while_it_is_held() {
        let p = RefusedPort::new();
        let err = tokio::net::TcpStream::connect(p.addr())
            .await
            .expect_err("nothing listens");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(std::net::TcpListener::bind(p.addr()).is_err(), "reserved");
    }
}
