//! The fault proxy in front of a small echo server.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tenure_testkit::proxy::{FaultProxy, ProxyMode};
use tenure_testkit::{DEADLINE, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// How long a read must stay unanswered to count as "nothing arrives" (the one wait-with-timeout
/// these tests assert on: the absence of an event).
const SILENCE: Duration = Duration::from_millis(300);

/// An echo server counting the connections it accepted and the bytes it received.
struct Echo {
    addr: SocketAddr,
    accepted: watch::Receiver<usize>,
    received: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo_server() -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted_tx, accepted) = watch::channel(0usize);
    let (received_tx, received) = watch::channel(0usize);
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            accepted_tx.send_modify(|n| *n += 1);
            let received_tx = received_tx.clone();
            conns.spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    received_tx.send_modify(|r| *r += n);
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Echo {
        addr,
        accepted,
        received,
        task,
    }
}

async fn round_trip(c: &mut TcpStream, msg: &[u8]) {
    c.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    timeout(DEADLINE, c.read_exact(&mut back))
        .await
        .expect("echo within the deadline")
        .unwrap();
    assert_eq!(back, msg);
}

/// Asserts that nothing can be read from `c` for [`SILENCE`].
async fn assert_silent(c: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    match timeout(SILENCE, c.read(&mut buf)).await {
        Err(_) => {}
        Ok(r) => panic!("{what}: expected silence, read {r:?}"),
    }
}

/// Asserts that `c` is closed (EOF or reset) within the deadline and returns the read error
/// (`None` for EOF); bytes still in flight before the close are skipped.
async fn assert_closed(c: &mut TcpStream, what: &str) -> Option<std::io::ErrorKind> {
    let mut buf = [0u8; 1024];
    let closed = timeout(DEADLINE, async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) => return None,
                Err(e) => return Some(e.kind()),
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.unwrap_or_else(|_| panic!("{what}: still open after {DEADLINE:?}"))
}

async fn wait_connections(proxy: &FaultProxy, n: usize) {
    let mut rx = proxy.connections_watch();
    wait_for(
        &mut rx,
        &format!("{n} proxied connections"),
        DEADLINE,
        |c| *c == n,
    )
    .await;
}

#[tokio::test]
async fn bytes_flow_both_ways() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await.unwrap();
    assert_eq!(proxy.upstream(), echo.addr);
    assert!(proxy.addr().ip().is_loopback());
    assert_eq!(proxy.mode(), ProxyMode::Forwarding);

    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut c, b"hello").await;
    assert_eq!(proxy.connections(), 1);

    // A payload larger than the socket buffers, written while it is read back.
    let big: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = c.into_split();
    let sent = big.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w
    });
    let mut back = vec![0u8; big.len()];
    timeout(DEADLINE, r.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert!(back == big, "payload altered by the proxy");
    let w = writer.await.unwrap();

    // A client's close reaches the server, whose close comes back; the proxy forgets the
    // connection.
    let mut c = r.reunite(w).unwrap();
    c.shutdown().await.unwrap();
    assert_closed(&mut c, "after the client's close").await;
    wait_connections(&proxy, 0).await;
}

#[tokio::test]
async fn pause_holds_bytes_until_resume() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut c, b"a").await;

    proxy.pause();
    assert_eq!(proxy.mode(), ProxyMode::Paused);
    c.write_all(b"held").await.unwrap();
    assert_silent(&mut c, "paused").await;
    assert_eq!(
        *echo.received.borrow(),
        1,
        "the server got bytes while paused"
    );
    assert_eq!(proxy.connections(), 1, "pause keeps connections open");

    proxy.resume();
    assert_eq!(proxy.mode(), ProxyMode::Forwarding);
    let mut back = [0u8; 4];
    timeout(DEADLINE, c.read_exact(&mut back))
        .await
        .expect("held bytes delivered after resume")
        .unwrap();
    assert_eq!(&back, b"held");
    round_trip(&mut c, b"more").await;
}

#[tokio::test]
async fn black_hole_drops_traffic_and_heal_restores() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await.unwrap();
    let mut before = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut before, b"a").await;

    proxy.black_hole();
    assert_eq!(proxy.mode(), ProxyMode::BlackHole);
    // An existing connection: bytes vanish, nothing comes back, no close is seen.
    before.write_all(b"lost").await.unwrap();
    assert_silent(&mut before, "existing connection in a black hole").await;
    // A new connection is accepted but never reaches the server nor gets an answer.
    let mut during = TcpStream::connect(proxy.addr()).await.unwrap();
    during.write_all(b"void").await.unwrap();
    assert_silent(&mut during, "new connection in a black hole").await;
    wait_connections(&proxy, 2).await;
    assert_eq!(
        *echo.accepted.borrow(),
        1,
        "a black-holed connection reached the server"
    );
    assert_eq!(
        *echo.received.borrow(),
        1,
        "black-holed bytes reached the server"
    );

    proxy.heal();
    assert_eq!(proxy.mode(), ProxyMode::Forwarding);
    // Connections that lost bytes are cut; new ones work.
    assert_closed(&mut before, "pre-partition connection after heal").await;
    assert_closed(&mut during, "partition-time connection after heal").await;
    wait_connections(&proxy, 0).await;
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut after, b"back").await;
    assert_eq!(*echo.received.borrow(), 1 + 4);
}

#[tokio::test]
async fn cut_closes_every_connection_and_allows_new_ones() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await.unwrap();
    let mut c1 = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut c2 = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut c1, b"one").await;
    round_trip(&mut c2, b"two").await;
    wait_connections(&proxy, 2).await;

    proxy.cut();
    // SO_LINGER 0: the client sees a reset, not an orderly close.
    let reset = Some(std::io::ErrorKind::ConnectionReset);
    assert_eq!(
        assert_closed(&mut c1, "first connection after cut").await,
        reset
    );
    assert_eq!(
        assert_closed(&mut c2, "second connection after cut").await,
        reset
    );
    wait_connections(&proxy, 0).await;
    assert_eq!(proxy.mode(), ProxyMode::Forwarding);

    let mut c3 = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut c3, b"three").await;
}

#[tokio::test]
async fn a_down_upstream_closes_the_client() {
    // A port with nothing listening, reserved while the test runs.
    let refused = tenure_testkit::refused_port::RefusedPort::new();
    let proxy = FaultProxy::start(refused.addr().parse().unwrap())
        .await
        .unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_closed(&mut c, "client of a down upstream").await;
    wait_connections(&proxy, 0).await;
}

#[tokio::test]
async fn dropping_the_proxy_closes_connections() {
    let echo = echo_server().await;
    let proxy = FaultProxy::start(echo.addr).await.unwrap();
    let addr = proxy.addr();
    let mut c = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut c, b"x").await;
    drop(proxy);
    assert_closed(&mut c, "client after the proxy is dropped").await;
}
