//! The options of the metrics endpoint, shared by every command that can serve it (`run`,
//! `demo`, `leaders --watch`): where it listens, its TLS certificate and its bearer token.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::Args;

use crate::exit::CliError;
use crate::metrics_server::Endpoint;

/// Where and how the metrics endpoint (`GET /metrics`, OpenMetrics text) is served.
#[derive(Debug, Clone, Default, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on GET /metrics of this address: PORT (on 127.0.0.1),
    /// IP:PORT or [IPv6]:PORT. A non-loopback address without --metrics-token-file is served
    /// with a warning.
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<SocketAddr>,
    /// Serve the metrics over HTTPS with this PEM certificate chain (needs --metrics-tls-key).
    #[arg(
        long,
        value_name = "FILE",
        requires = "metrics_addr",
        requires = "metrics_tls_key"
    )]
    pub metrics_tls_cert: Option<PathBuf>,
    /// The PEM private key of --metrics-tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        value_name = "FILE",
        requires = "metrics_addr",
        requires = "metrics_tls_cert"
    )]
    pub metrics_tls_key: Option<PathBuf>,
    /// Require `Authorization: Bearer TOKEN` on every metrics request, TOKEN being this file's
    /// contents without surrounding whitespace (read once at start); others get 401.
    #[arg(long, value_name = "FILE", requires = "metrics_addr")]
    pub metrics_token_file: Option<PathBuf>,
}

impl MetricsArgs {
    /// Whether any metrics option was given.
    pub fn given(&self) -> bool {
        self.metrics_addr.is_some()
            || self.metrics_tls_cert.is_some()
            || self.metrics_tls_key.is_some()
            || self.metrics_token_file.is_some()
    }

    /// The endpoint these options describe, its files read (a missing, unreadable or invalid
    /// file is a usage error naming it); `None` without `--metrics-addr`.
    pub fn endpoint(&self) -> Result<Option<Endpoint>, CliError> {
        let Some(addr) = self.metrics_addr else {
            return Ok(None);
        };
        let mut endpoint = Endpoint::plain(addr);
        if let Some(path) = &self.metrics_token_file {
            endpoint.token = Some(crate::metrics_auth::Token::read(path)?);
        }
        match (&self.metrics_tls_cert, &self.metrics_tls_key) {
            (Some(cert), Some(key)) => {
                endpoint.tls = Some(crate::metrics_tls::server_config(cert, key)?);
            }
            (None, None) => {}
            _ => {
                return Err(CliError::Usage(
                    "--metrics-tls-cert and --metrics-tls-key go together".into(),
                ));
            }
        }
        Ok(Some(endpoint))
    }

    /// Starts the endpoint if `--metrics-addr` was given (see [`crate::metrics_server::serve`]).
    pub async fn serve(&self) -> Result<Option<SocketAddr>, CliError> {
        match self.endpoint()? {
            Some(endpoint) => crate::metrics_server::serve(endpoint).await.map(Some),
            None => Ok(None),
        }
    }
}

/// `PORT` (loopback: 127.0.0.1:PORT), `IP:PORT` or `[IPv6]:PORT`.
pub fn parse_metrics_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!("invalid metrics address {s:?}: expected PORT, IP:PORT or [IPv6]:PORT")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_is_loopback_and_an_explicit_address_is_kept() {
        assert_eq!(
            parse_metrics_addr("9249"),
            Ok("127.0.0.1:9249".parse().expect("addr"))
        );
        assert_eq!(
            parse_metrics_addr("0.0.0.0:9249"),
            Ok("0.0.0.0:9249".parse().expect("addr"))
        );
        assert_eq!(
            parse_metrics_addr("[::1]:9249"),
            Ok("[::1]:9249".parse().expect("addr"))
        );
        for bad in ["", "localhost:9249", "70000", "1.2.3.4", ":9249"] {
            let e = parse_metrics_addr(bad).expect_err(bad);
            assert!(e.contains("invalid metrics address"), "{e}");
        }
    }

    #[test]
    fn without_an_address_there_is_no_endpoint() {
        let args = MetricsArgs::default();
        assert!(!args.given());
        assert!(args.endpoint().expect("no files to read").is_none());
    }
}
