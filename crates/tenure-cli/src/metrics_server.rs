//! The HTTP endpoint of the metrics: `GET /metrics` on `--metrics-addr`, served by axum (hyper)
//! on the command's tokio runtime.
//!
//! Every connection is its own task, so idle or slow clients never hold up a scrape, and a
//! connection without traffic for [`IDLE_LIMIT`] is closed (see [`crate::idle_stream`]). The
//! responses are those of the endpoint's first version: the OpenMetrics text on `GET /metrics`
//! (a query string is ignored), `404 not found` for any other path, `405 only GET` for any
//! other method.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::exit::CliError;
use crate::idle_stream::IdleLimitedListener;
use crate::metrics::metrics;

/// How long a connection may stay without traffic (a request not sent, or kept alive between
/// scrapes) before the endpoint closes it.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The routes: the metrics on `/metrics`, a plain-text error for anything else.
fn router() -> Router {
    Router::new()
        .route("/metrics", get(scrape).fallback(other))
        .fallback(other)
}

async fn scrape() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics().render())
}

/// Anything but `GET /metrics`: 404 for another path, 405 for another method.
async fn other(method: Method) -> impl IntoResponse {
    let (status, body) = if method == Method::GET {
        (StatusCode::NOT_FOUND, "not found\n")
    } else {
        (StatusCode::METHOD_NOT_ALLOWED, "only GET\n")
    };
    (status, [(header::CONTENT_TYPE, "text/plain")], body)
}

/// Serves `GET /metrics` on `addr` in the background; returns the address bound (useful with
/// port 0) and prints it on stderr. An address that cannot be bound is a usage error.
pub async fn serve(addr: SocketAddr) -> Result<SocketAddr, CliError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Usage(format!("cannot serve metrics on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::Other(format!("metrics listener on {addr}: {e}")))?;
    eprintln!("tenure: metrics on http://{bound}/metrics");
    tokio::spawn(async move {
        let listener = IdleLimitedListener::new(listener, IDLE_LIMIT);
        if let Err(e) = axum::serve(listener, router()).await {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;

    async fn request(addr: SocketAddr, head: &str) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("write");
        let mut text = String::new();
        s.read_to_string(&mut text).await.expect("read");
        text
    }

    #[test]
    fn paths_methods_and_content_type_are_those_documented() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let addr = serve("127.0.0.1:0".parse().expect("addr"))
                .await
                .expect("serve");
            let ok = request(
                addr,
                "GET /metrics?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            )
            .await;
            assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
            assert!(
                ok.to_lowercase()
                    .contains(&format!("content-type: {OPENMETRICS}")),
                "{ok}"
            );
            assert!(ok.ends_with("# EOF\n"), "{ok}");
            let missing =
                request(addr, "GET /other HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").await;
            assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
            assert!(missing.ends_with("not found\n"), "{missing}");
            for path in ["/metrics", "/other"] {
                let post = request(
                    addr,
                    &format!(
                        "POST {path} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                )
                .await;
                assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
                assert!(post.ends_with("only GET\n"), "{post}");
            }
            let taken = serve(addr).await.expect_err("the address is in use");
            assert_eq!(taken.code(), crate::exit::USAGE);
        });
    }
}
