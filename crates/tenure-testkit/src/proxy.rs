//! A TCP proxy that injects network faults between a client and a server (ZooKeeper, etcd).
//!
//! [`FaultProxy`] listens on a free loopback port and forwards every connection to one upstream
//! address. Tests point the client at [`FaultProxy::addr`] and then, at the moment they choose:
//!
//! - [`pause`](FaultProxy::pause) / [`resume`](FaultProxy::resume): bytes stop flowing in both
//!   directions but connections stay open; held bytes are delivered on resume (a long GC pause or
//!   a congested link);
//! - [`black_hole`](FaultProxy::black_hole) / [`heal`](FaultProxy::heal): a network partition.
//!   Existing connections lose every byte in both directions and see no close; new connections
//!   are accepted and read but never reach the server and get no answer. On heal, connections
//!   that lost bytes are cut (their streams cannot continue) and new ones are forwarded again;
//! - [`cut`](FaultProxy::cut): every current connection is closed at once with a TCP reset; new
//!   connections are forwarded as before.
//!
//! Mode changes are signalled to the connection tasks through a `watch` channel; nothing sleeps.
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
//! use tenure_testkit::proxy::FaultProxy;
//!
//! let proxy = FaultProxy::start(server).await?;
//! // connect the client to proxy.addr() ...
//! proxy.black_hole(); // partition: the client's session will be suspended, then lost
//! proxy.heal();       // the client reconnects through the proxy
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::pending;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy currently does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Bytes are forwarded both ways as they arrive.
    Forwarding,
    /// Bytes are held (not forwarded, not dropped) until the mode changes; connections stay open.
    Paused,
    /// Bytes are dropped both ways and closes are not passed on; new connections are accepted
    /// and read but not forwarded.
    BlackHole,
}

/// One live connection, as the registry sees it.
struct ConnEntry {
    /// Fired to close the connection with a reset.
    kill: Arc<Notify>,
    /// Whether the connection lived through a black hole (and so lost bytes).
    tainted: bool,
}

struct State {
    mode: ProxyMode,
    next_id: u64,
    conns: HashMap<u64, ConnEntry>,
}

struct Shared {
    state: Mutex<State>,
    /// The mode as the connection tasks see it; only sent while `state` is locked.
    mode: watch::Sender<ProxyMode>,
    /// The number of live connections.
    count: watch::Sender<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (every update is one step).
        tenure_core::sync::lock(&self.state)
    }

    fn set_mode(state: &mut State, tx: &watch::Sender<ProxyMode>, mode: ProxyMode) {
        state.mode = mode;
        tx.send_replace(mode);
    }

    /// Registers a just-accepted connection; returns its id, kill switch and whether it must be
    /// black-holed. Taken under the same lock as mode changes, so no connection escapes one.
    fn register(&self) -> (u64, Arc<Notify>, bool) {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        let black_holed = st.mode == ProxyMode::BlackHole;
        let kill = Arc::new(Notify::new());
        st.conns.insert(
            id,
            ConnEntry {
                kill: kill.clone(),
                tainted: black_holed,
            },
        );
        self.count.send_replace(st.conns.len());
        (id, kill, black_holed)
    }

    fn unregister(&self, id: u64) {
        let mut st = self.lock();
        st.conns.remove(&id);
        self.count.send_replace(st.conns.len());
    }
}

/// Removes a connection from the registry when its task ends (normally or aborted).
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.unregister(self.id);
    }
}

/// A TCP proxy on a free loopback port in front of one upstream address, with fault injection.
/// Dropping it closes the listener and every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("mode", &self.mode())
            .field("connections", &self.connections())
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:<free port>` forwarding to `upstream`, in
    /// [`ProxyMode::Forwarding`]. The upstream need not be up: a connection made while it is down
    /// is closed once the upstream connect fails. Must be called inside a tokio runtime.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(ProxyMode::Forwarding);
        let (count, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode: ProxyMode::Forwarding,
                next_id: 0,
                conns: HashMap::new(),
            }),
            mode,
            count,
        });
        let accept_task = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        Ok(FaultProxy {
            addr,
            upstream,
            shared,
            accept_task,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address connections are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        self.shared.lock().mode
    }

    /// Stops forwarding in both directions; connections stay open and bytes are held (by the
    /// proxy and the kernel's socket buffers) until [`resume`](Self::resume). Every byte read
    /// after this call is held; a chunk already being written may still arrive.
    pub fn pause(&self) {
        let mut st = self.shared.lock();
        Shared::set_mode(&mut st, &self.shared.mode, ProxyMode::Paused);
    }

    /// Forwards again, delivering held bytes in order. Connections that lost bytes in a
    /// [`black_hole`](Self::black_hole) are cut, as in [`heal`](Self::heal).
    pub fn resume(&self) {
        self.to_forwarding();
    }

    /// Partitions the network: the bytes of existing connections are dropped both ways and their
    /// closes are not passed on; new connections are accepted and read from, but not forwarded
    /// and never answered. Lasts until [`heal`](Self::heal).
    pub fn black_hole(&self) {
        let mut st = self.shared.lock();
        for conn in st.conns.values_mut() {
            conn.tainted = true;
        }
        Shared::set_mode(&mut st, &self.shared.mode, ProxyMode::BlackHole);
    }

    /// Ends a partition: every connection that lived through the black hole is cut (with a
    /// reset), and new connections are forwarded normally.
    pub fn heal(&self) {
        self.to_forwarding();
    }

    /// Closes every current connection at once, with a TCP reset on both sides (`SO_LINGER` 0).
    /// The mode is unchanged and new connections are accepted as before. Only connections the
    /// proxy has accepted are cut: wait for [`connections`](Self::connections) (or a round trip)
    /// before cutting a connection just made.
    pub fn cut(&self) {
        let st = self.shared.lock();
        for conn in st.conns.values() {
            conn.kill.notify_one();
        }
    }

    /// The number of open client connections (forwarded or black-holed).
    pub fn connections(&self) -> usize {
        *self.shared.count.borrow()
    }

    /// A `watch` of [`connections`](Self::connections), to wait for a count with
    /// [`wait_for`](crate::wait_for).
    pub fn connections_watch(&self) -> watch::Receiver<usize> {
        self.shared.count.subscribe()
    }

    fn to_forwarding(&self) {
        let mut st = self.shared.lock();
        for conn in st.conns.values_mut() {
            if conn.tainted {
                conn.kill.notify_one();
            }
        }
        Shared::set_mode(&mut st, &self.shared.mode, ProxyMode::Forwarding);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut();
        // Aborting the accept task drops the listener and its `JoinSet` of connection tasks,
        // which aborts them and closes their sockets.
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    let (id, kill, black_holed) = shared.register();
                    let registration = Registration { shared: shared.clone(), id };
                    let mode = shared.mode.subscribe();
                    conns.spawn(async move {
                        let _registration = registration;
                        serve(client, upstream, mode, kill, black_holed).await;
                    });
                }
                Err(e) => {
                    // Transient (e.g. out of file descriptors, or the peer reset before accept).
                    tracing::debug!("fault proxy: accept failed: {e}");
                    // Back off instead of spinning on a persistent error (EMFILE).
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Serves one client connection until it ends or is killed.
async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mode: watch::Receiver<ProxyMode>,
    kill: Arc<Notify>,
    black_holed: bool,
) {
    let _ = client.set_nodelay(true);
    if black_holed {
        // Accepted during a partition: read and discard, never answer, never close on our own.
        tokio::select! {
            _ = kill.notified() => {}
            _ = swallow(&mut client) => {}
        }
        let _ = client.set_zero_linger();
        return;
    }
    let mut server = tokio::select! {
        _ = kill.notified() => {
            let _ = client.set_zero_linger();
            return;
        }
        connected = TcpStream::connect(upstream) => match connected {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("fault proxy: cannot connect to {upstream}: {e}");
                return;
            }
        }
    };
    let _ = server.set_nodelay(true);
    let killed = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let forward = async {
            let _ = tokio::try_join!(
                pump(client_read, server_write, mode.clone()),
                pump(server_read, client_write, mode.clone()),
            );
        };
        tokio::select! {
            _ = kill.notified() => true,
            _ = forward => false,
        }
    };
    if killed {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}

/// Reads and discards everything until EOF or an error, then waits to be killed.
async fn swallow(stream: &mut TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
    pending::<()>().await;
}

/// Waits until `mode` is not [`ProxyMode::Paused`] and returns it.
async fn unpaused(mode: &mut watch::Receiver<ProxyMode>) -> ProxyMode {
    loop {
        let m = *mode.borrow_and_update();
        if m != ProxyMode::Paused {
            return m;
        }
        if mode.changed().await.is_err() {
            // The proxy is gone; its drop aborts this task.
            return pending().await;
        }
    }
}

/// Forwards one direction, obeying the mode for every chunk, and for the end of the stream: a
/// close or error seen during a black hole is not passed on (the task waits to be killed).
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    mut mode: watch::Receiver<ProxyMode>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = from.read(&mut buf).await;
        let m = unpaused(&mut mode).await;
        match (read, m) {
            (Ok(0), ProxyMode::Forwarding) => {
                let _ = to.shutdown().await;
                return Ok(());
            }
            (Ok(n), ProxyMode::Forwarding) => to.write_all(&buf[..n]).await?,
            (Err(e), ProxyMode::Forwarding) => return Err(e),
            (Ok(0) | Err(_), _) => return pending().await,
            (Ok(_), _) => {} // black hole: dropped
        }
    }
}
