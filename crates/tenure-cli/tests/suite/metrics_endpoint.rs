//! The metrics endpoint: it keeps answering while many clients hold idle connections; it binds
//! loopback unless told otherwise, requires its bearer token when given one, and serves HTTPS
//! with a certificate (verified here against a CA made by the test).

#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::Write as _;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Running, assert_error, dispatcher_serving_metrics, http_get, run};

#[test]
fn a_scrape_succeeds_while_200_idle_connections_are_open() {
    let (mut t, addr) = dispatcher_serving_metrics();
    // Half say nothing at all, half send the start of a request and stop.
    let mut idle = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(&addr).expect("open an idle connection");
        if i % 2 == 1 {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        idle.push(s);
    }
    let started = Instant::now();
    let scrape = std::thread::spawn(move || http_get(&addr, "/metrics"));
    let deadline = Duration::from_secs(10);
    while !scrape.is_finished() {
        assert!(
            started.elapsed() < deadline,
            "no scrape answer within {deadline:?} with 200 idle connections open"
        );
        std::thread::park_timeout(Duration::from_millis(10));
    }
    let (status, body) = scrape.join().unwrap();
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("tenure_leadership{component=\"dispatcher\"} 1"),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    drop(idle);
    t.signal("-TERM");
    assert_eq!(t.wait(), Some(143));
}

// ---- Security of the endpoint: loopback by default, bearer token, TLS ----

/// `tenure run --component dispatcher` on the embedded backend serving metrics with `extra`
/// options; the process and the endpoint's `scheme://addr` once it leads.
fn dispatcher_with(extra: &[&str]) -> (Running, String, String) {
    let mut args = vec!["--ha-type", "none", "run", "--component", "dispatcher"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--output", "json", "--", "sleep", "60"]);
    let mut t = Running::spawn(&args);
    let line = t
        .stderr
        .wait_for("the metrics address", |l| l.contains("metrics on http"));
    let url = line.split("metrics on ").nth(1).unwrap();
    let (scheme, rest) = url.split_once("://").unwrap();
    let addr = rest.strip_suffix("/metrics").unwrap().to_owned();
    t.stderr.wait_event("started");
    (t, scheme.to_owned(), addr)
}

/// Sends `GET path` with `headers` on `stream`; returns everything the server answered (a
/// connection the server closes without TLS close_notify still yields what was read; a
/// failed TLS handshake yields nothing).
fn get(mut stream: impl std::io::Read + std::io::Write, path: &str, headers: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: h\r\n{headers}Connection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        // A TLS handshake that failed (the certificate refused): nothing was answered.
        return String::new();
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn plain(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(common::DEADLINE)).unwrap();
    s
}

fn stop(mut t: Running) {
    t.signal("-TERM");
    assert_eq!(t.wait(), Some(143));
}

#[test]
fn a_bare_port_binds_loopback_only_and_warns_about_nothing() {
    let (t, scheme, addr) = dispatcher_with(&["--metrics-addr", "0"]);
    assert_eq!(scheme, "http");
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let answer = get(plain(&addr), "/metrics", "");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        !t.stderr.seen.iter().any(|l| l.contains("warning")),
        "{:?}",
        t.stderr.seen
    );
    stop(t);
}

#[test]
fn with_a_token_file_requests_need_the_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "t0k-3n_42\n").unwrap();
    let (t, _, addr) = dispatcher_with(&[
        "--metrics-addr",
        "127.0.0.1:0",
        "--metrics-token-file",
        token_file.to_str().unwrap(),
    ]);
    for (headers, why) in [
        ("", "no Authorization"),
        (
            "Authorization: Bearer t0k-3n_4\r\n",
            "a prefix of the token",
        ),
        ("Authorization: Bearer wrong\r\n", "a wrong token"),
        ("Authorization: Basic dDBrLTNuXzQy\r\n", "another scheme"),
    ] {
        for path in ["/metrics", "/other"] {
            let answer = get(plain(&addr), path, headers);
            assert!(answer.starts_with("HTTP/1.1 401 "), "{why}: {answer}");
            assert!(
                answer
                    .to_lowercase()
                    .contains("www-authenticate: bearer\r\n"),
                "{why}: {answer}"
            );
            assert!(!answer.contains("tenure_leadership"), "{why}: {answer}");
        }
    }
    let answer = get(
        plain(&addr),
        "/metrics",
        "Authorization: Bearer t0k-3n_42\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.contains("tenure_leadership{component=\"dispatcher\"} 1"),
        "{answer}"
    );
    stop(t);
}

#[test]
fn an_empty_or_missing_token_file_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, " \n").unwrap();
    let missing = dir.path().join("missing-token");
    for file in [&empty, &missing] {
        let out = run(&[
            "--ha-type",
            "none",
            "run",
            "--component",
            "dispatcher",
            "--metrics-addr",
            "0",
            "--metrics-token-file",
            file.to_str().unwrap(),
            "--",
            "true",
        ]);
        assert_error(&out, 2, file.to_str().unwrap());
    }
}

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1, written as PEM files:
/// (CA certificate DER, certificate path, key path).
fn test_pki(dir: &Path) -> (rustls::pki_types::CertificateDer<'static>, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let cert_path = dir.join("metrics.crt");
    let key_path = dir.join("metrics.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (
        ca_cert.der().clone(),
        cert_path.to_str().unwrap().to_owned(),
        key_path.to_str().unwrap().to_owned(),
    )
}

#[test]
fn tls_scrapes_verify_against_the_test_ca_and_plaintext_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki(dir.path());
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "secret").unwrap();
    let (t, scheme, addr) = dispatcher_with(&[
        "--metrics-addr",
        "0",
        "--metrics-tls-cert",
        &cert,
        "--metrics-tls-key",
        &key,
        "--metrics-token-file",
        token_file.to_str().unwrap(),
    ]);
    assert_eq!(scheme, "https");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let tls = |name: &str, headers: &str| {
        let server = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let conn = rustls::ClientConnection::new(config.clone(), server).unwrap();
        get(
            rustls::StreamOwned::new(conn, plain(&addr)),
            "/metrics",
            headers,
        )
    };
    // Clients that never finish (or never start) their handshake hold up no one.
    let mut idle = Vec::new();
    for i in 0..50 {
        let mut s = plain(&addr);
        if i % 2 == 1 {
            s.write_all(&[0x16, 0x03, 0x01]).unwrap();
        }
        idle.push(s);
    }
    for name in ["localhost", "127.0.0.1"] {
        let answer = tls(name, "Authorization: Bearer secret\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 "), "{name}: {answer}");
        assert!(answer.ends_with("# EOF\n"), "{name}: {answer}");
        let answer = tls(name, "");
        assert!(answer.starts_with("HTTP/1.1 401 "), "{name}: {answer}");
    }
    // A name the certificate does not hold fails verification: nothing is answered.
    assert_eq!(
        tls("elsewhere.invalid", "Authorization: Bearer secret\r\n"),
        ""
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    let answer = get(plain(&addr), "/metrics", "Authorization: Bearer secret\r\n");
    assert!(!answer.contains("HTTP/1.1"), "{answer}");
    drop(idle);
    stop(t);
}

#[test]
fn tls_files_that_cannot_be_used_are_usage_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = test_pki(dir.path());
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    for (c, k, needle) in [
        (missing, key.as_str(), missing),
        (cert.as_str(), missing, missing),
        (key.as_str(), key.as_str(), key.as_str()),
        (cert.as_str(), cert.as_str(), cert.as_str()),
    ] {
        let out = run(&[
            "--ha-type",
            "none",
            "run",
            "--component",
            "dispatcher",
            "--metrics-addr",
            "0",
            "--metrics-tls-cert",
            c,
            "--metrics-tls-key",
            k,
            "--",
            "true",
        ]);
        assert_error(&out, 2, needle);
    }
}

#[test]
fn the_help_documents_the_metrics_security_options() {
    let out = run(&["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--metrics-addr",
        "--metrics-tls-cert",
        "--metrics-tls-key",
        "--metrics-token-file",
        "127.0.0.1",
    ] {
        assert!(help.contains(flag), "{flag} not in:\n{help}");
    }
}

#[test]
fn metrics_options_out_of_place_are_usage_errors() {
    // A certificate without its key.
    let out = run(&[
        "--ha-type",
        "none",
        "run",
        "--component",
        "dispatcher",
        "--metrics-addr",
        "0",
        "--metrics-tls-cert",
        "c.pem",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("--metrics-tls-key"));
    // A token without an address to serve.
    let out = run(&[
        "--ha-type",
        "none",
        "run",
        "--component",
        "dispatcher",
        "--metrics-token-file",
        "t",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("--metrics-addr"));
    // `leaders` serves metrics only while watching.
    let out = run(&["--ha-type", "none", "leaders", "--metrics-addr", "0"]);
    assert_error(&out, 2, "need --watch");
}
