//! The HTTP endpoint of the metrics: `GET /metrics` on `--metrics-addr`, served by axum (hyper)
//! on the command's tokio runtime.
//!
//! Every connection is its own task, so idle or slow clients never hold up a scrape, and a
//! connection without traffic for [`IDLE_LIMIT`] is closed (see [`crate::idle_stream`]). The
//! responses are those of the endpoint's first version: the OpenMetrics text on `GET /metrics`
//! (a query string is ignored), `404 not found` for any other path, `405 only GET` for any
//! other method.
//!
//! Security: a bare port (`--metrics-addr 9249`) binds 127.0.0.1 only. Another address (such
//! as `0.0.0.0:9249`) is served as asked, with a warning on stderr when no token is required.
//! `--metrics-tls-cert`/`--metrics-tls-key` serve HTTPS instead of HTTP (see
//! [`crate::metrics_tls`]); `--metrics-token-file` requires `Authorization: Bearer <token>` on
//! every request, answering `401` with `WWW-Authenticate: Bearer` otherwise (see
//! [`crate::metrics_auth`]). Every file is read once, at start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::exit::CliError;
use crate::idle_stream::IdleLimitedListener;
use crate::metrics::metrics;
use crate::metrics_auth::Token;
use crate::metrics_tls::TlsListener;

/// How long a connection may stay without traffic (a request not sent, or kept alive between
/// scrapes) before the endpoint closes it.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where and how the endpoint is served.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The address to bind.
    pub addr: SocketAddr,
    /// HTTPS with this configuration; plain HTTP without.
    pub tls: Option<Arc<ServerConfig>>,
    /// The bearer token every request must present; none required without.
    pub token: Option<Token>,
}

impl Endpoint {
    /// Plain HTTP on `addr`, no token.
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: None,
            token: None,
        }
    }
}

/// The routes: the metrics on `/metrics`, a plain-text error for anything else; with a token,
/// every route behind it.
fn router(token: Option<Token>) -> Router {
    let routes = Router::new()
        .route("/metrics", get(scrape).fallback(other))
        .fallback(other);
    match token {
        Some(token) => routes.layer(axum::middleware::from_fn_with_state(
            token,
            crate::metrics_auth::require,
        )),
        None => routes,
    }
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

/// Whether an endpoint bound to `bound` can be reached from other hosts without a token (then
/// [`serve`] warns).
fn exposed_without_token(bound: SocketAddr, token: Option<&Token>) -> bool {
    !bound.ip().is_loopback() && token.is_none()
}

/// Serves `GET /metrics` as `endpoint` says in the background; returns the address bound
/// (useful with port 0) and prints it on stderr. An address that cannot be bound is a usage
/// error.
pub async fn serve(endpoint: Endpoint) -> Result<SocketAddr, CliError> {
    let Endpoint { addr, tls, token } = endpoint;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Usage(format!("cannot serve metrics on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::Other(format!("metrics listener on {addr}: {e}")))?;
    if exposed_without_token(bound, token.as_ref()) {
        eprintln!(
            "tenure: warning: the metrics endpoint on {bound} is reachable beyond this host and \
             needs no token: anyone who reaches it reads the metrics (give --metrics-token-file, \
             or a bare port for loopback only)"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("tenure: metrics on {scheme}://{bound}/metrics");
    let app = router(token);
    match tls {
        Some(config) => {
            let listener = TlsListener::new(listener, IDLE_LIMIT, config)
                .map_err(|e| CliError::Other(format!("metrics listener on {addr}: {e}")))?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::warn!(error = %e, "the metrics endpoint stopped");
                }
            });
        }
        None => {
            tokio::spawn(async move {
                let listener = IdleLimitedListener::new(listener, IDLE_LIMIT);
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::warn!(error = %e, "the metrics endpoint stopped");
                }
            });
        }
    }
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
    fn only_a_non_loopback_address_without_a_token_is_warned_about() {
        let at = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert!(exposed_without_token(at("0.0.0.0:9249"), None));
        assert!(exposed_without_token(at("[::]:9249"), None));
        assert!(exposed_without_token(at("10.1.2.3:9249"), None));
        assert!(!exposed_without_token(at("127.0.0.1:9249"), None));
        assert!(!exposed_without_token(at("[::1]:9249"), None));
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("token");
        std::fs::write(&file, "t").expect("write");
        let token = Token::read(&file).expect("token");
        assert!(!exposed_without_token(at("0.0.0.0:9249"), Some(&token)));
    }

    #[test]
    fn paths_methods_and_content_type_are_those_documented() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let addr = serve(Endpoint::plain("127.0.0.1:0".parse().expect("addr")))
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
            let taken = serve(Endpoint::plain(addr)).await.expect_err("the address is in use");
            assert_eq!(taken.code(), crate::exit::USAGE);
        });
    }
}
