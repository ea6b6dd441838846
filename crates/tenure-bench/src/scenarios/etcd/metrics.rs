//! Requests counted by the etcd server: its Prometheus endpoint (`/metrics` on the client URL)
//! counts every gRPC message it received, by method (`grpc_server_msg_received_total`: one per
//! unary call, one per message of a stream: a watch's create request, a lease keep-alive).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::results::Row;

/// The metric counted.
const METRIC: &str = "grpc_server_msg_received_total{";

/// Keep-alives of every lease of the run arrive in the background (each session renews every
/// third of its TTL); they are no request of the operation measured and are left out.
const BACKGROUND: &str = "LeaseKeepAlive";

/// The prefix of a row's extra figures holding its requests by method.
pub const RPC_PREFIX: &str = "rpc ";

/// gRPC messages received by the server, by method (`Txn`, `Range`, `Watch`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requests(BTreeMap<String, u64>);

impl Requests {
    /// The server's counts now (`GET /metrics` on `port`, within five seconds).
    pub async fn scrape(port: u16) -> anyhow::Result<Self> {
        let io = async {
            let mut s = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .await?;
            let mut out = String::new();
            s.read_to_string(&mut out).await?;
            anyhow::Ok(out)
        };
        let text = match tokio::time::timeout(Duration::from_secs(5), io).await {
            Ok(r) => r.with_context(|| format!("reading http://127.0.0.1:{port}/metrics"))?,
            Err(_) => bail!("http://127.0.0.1:{port}/metrics did not answer within 5 s"),
        };
        let counts = Self::parse(&text);
        if counts.0.is_empty() {
            bail!("http://127.0.0.1:{port}/metrics has no {METRIC}...}} lines");
        }
        Ok(counts)
    }

    /// The counts of a Prometheus text exposition (summed over services and types).
    pub fn parse(text: &str) -> Self {
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(METRIC) else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once('}') else {
                continue;
            };
            let method = labels.split(',').find_map(|l| {
                l.trim()
                    .strip_prefix("grpc_method=\"")
                    .and_then(|m| m.strip_suffix('"'))
            });
            let value = value.trim().parse::<f64>().ok();
            if let (Some(method), Some(value)) = (method, value) {
                *counts.entry(method.to_owned()).or_insert(0) += value as u64;
            }
        }
        Self(counts)
    }

    /// What arrived since `before`, without background keep-alives and methods of no request.
    pub fn since(&self, before: &Self) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(m, _)| m.as_str() != BACKGROUND)
                .map(|(m, v)| (m.clone(), v.saturating_sub(*before.0.get(m).unwrap_or(&0))))
                .filter(|(_, v)| *v > 0)
                .collect(),
        )
    }

    /// Messages of `method` received.
    pub fn of(&self, method: &str) -> u64 {
        self.0.get(method).copied().unwrap_or(0)
    }

    /// Requests of every method together.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The counts divided by `n` (per operation of a batch of `n`).
    pub fn per(&self, n: usize) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .map(|(m, v)| (m.clone(), *v as f64 / n.max(1) as f64))
            .collect()
    }

    /// `row` with these counts, taken over `n` operations: `requests` (per operation) and one
    /// `rpc <method>` figure per method.
    pub fn on(&self, row: Row, n: usize) -> Row {
        let mut row = row.with("requests", self.total() as f64 / n.max(1) as f64);
        for (m, v) in self.per(n) {
            row = row.with(&format!("{RPC_PREFIX}{m}"), v);
        }
        row
    }
}

/// `Txn 1 + Range 1` from a row's `rpc <method>` figures; `None` if it has none.
pub fn describe(row: &Row) -> Option<String> {
    let mut out = String::new();
    for (k, v) in &row.extra {
        let Some(m) = k.strip_prefix(RPC_PREFIX) else {
            continue;
        };
        if !out.is_empty() {
            out.push_str(" + ");
        }
        if (v - v.round()).abs() < 1e-9 {
            let _ = write!(out, "{m} {v:.0}");
        } else {
            let _ = write!(out, "{m} {v:.3}");
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The fewest requests seen over several counted trials (a request of another session that
/// happens to fall into one trial is left out that way).
#[derive(Clone, Debug, Default)]
pub struct FewestRequests(Option<Requests>);

impl FewestRequests {
    /// Takes one trial's counts into account.
    pub fn add(&mut self, r: Requests) {
        if self.0.as_ref().is_none_or(|have| r.total() < have.total()) {
            self.0 = Some(r);
        }
    }

    /// `row` with the fewest counts seen (per operation), if any trial was counted.
    pub fn on(&self, row: Row) -> Row {
        match &self.0 {
            Some(r) => r.on(row, 1),
            None => row,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP grpc_server_msg_received_total Total number of RPC stream messages received on the server.
# TYPE grpc_server_msg_received_total counter
grpc_server_msg_received_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 3
grpc_server_msg_received_total{grpc_method=\"Txn\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1
grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"bidi_stream\"} 7
grpc_server_started_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 3
";

    #[test]
    fn counts_are_read_by_method_and_keep_alives_left_out() {
        let before = Requests::parse(TEXT);
        assert_eq!(before.0.get("Range"), Some(&3));
        let after = Requests::parse(
            &TEXT
                .replace(
                    "} 3\ngrpc_server_msg_received_total{grpc_method=\"Txn\"",
                    "} 5\ngrpc_server_msg_received_total{grpc_method=\"Txn\"",
                )
                .replace("} 7", "} 9"),
        );
        let d = after.since(&before);
        assert_eq!(d.total(), 2);
        let row = d.on(Row::new("tenure", "x", vec![1.0]), 1);
        assert_eq!(describe(&row).as_deref(), Some("Range 2"));
    }
}
