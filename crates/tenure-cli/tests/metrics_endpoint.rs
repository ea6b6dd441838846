//! The metrics endpoint keeps answering while many clients hold idle connections.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{dispatcher_serving_metrics, http_get};

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
