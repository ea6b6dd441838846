//! Connections that end when their client goes quiet: an idle or stalled client of the metrics
//! endpoint is disconnected after a limit instead of holding its socket (and a file descriptor
//! of the process) forever. hyper has no such limit of its own when axum serves it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// A stream that fails with [`io::ErrorKind::TimedOut`] once nothing was read or written for
/// its idle limit while a read waits.
#[derive(Debug)]
pub struct IdleLimited<S> {
    inner: S,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> IdleLimited<S> {
    /// `inner`, ended after `limit` without traffic.
    pub fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn active(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.limit);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleLimited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.active();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no request within {:?}", this.limit),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleLimited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.active();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TCP listener whose connections are [`IdleLimited`].
#[derive(Debug)]
pub struct IdleLimitedListener {
    inner: TcpListener,
    limit: Duration,
}

impl IdleLimitedListener {
    /// Accepts on `inner`; every connection ends after `limit` without traffic.
    pub fn new(inner: TcpListener, limit: Duration) -> Self {
        Self { inner, limit }
    }
}

impl axum::serve::Listener for IdleLimitedListener {
    type Io = IdleLimited<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept loop for a TcpListener: connection errors are retried at once,
        // others (too many open files) after a pause.
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (IdleLimited::new(stream, self.limit), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[test]
    fn a_quiet_peer_is_cut_off_and_an_active_one_is_not() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let limit = Duration::from_millis(200);
            let mut listener = IdleLimitedListener::new(listener, limit);
            let server = tokio::spawn(async move {
                let (mut io, _) = axum::serve::Listener::accept(&mut listener).await;
                let mut buf = [0u8; 16];
                let mut echoed = 0;
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) => return Ok(echoed),
                        Ok(n) => {
                            io.write_all(&buf[..n]).await.expect("echo");
                            echoed += n;
                        }
                        Err(e) => return Err((e.kind(), echoed)),
                    }
                }
            });
            let mut client = TcpStream::connect(addr).await.expect("connect");
            // Traffic within the limit keeps the connection.
            for _ in 0..3 {
                client.write_all(b"x").await.expect("write");
                let mut one = [0u8; 1];
                client.read_exact(&mut one).await.expect("echoed");
                tokio::time::sleep(limit / 2).await;
            }
            // Then silence: the server side ends it, and the client reads EOF.
            let mut rest = Vec::new();
            tokio::time::timeout(Duration::from_secs(30), client.read_to_end(&mut rest))
                .await
                .expect("closed by the server within the deadline")
                .expect("EOF");
            let ended = server.await.expect("server task");
            assert_eq!(ended, Err((io::ErrorKind::TimedOut, 3)));
        });
    }
}
