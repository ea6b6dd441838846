//! The scenarios. Each starts its own ZooKeeper server, measures tenure, the raw-client floor
//! and the peers, and returns a [`ScenarioResult`].

pub mod election;
pub mod etcd;
pub mod failover;
pub mod handover;
pub mod observer;
pub mod retrieval;
pub mod rtt;
pub mod scale;
pub mod store;

use std::time::Instant;

use crate::bench::{Ctx, Zk};
use crate::peers::PeerResult;
use crate::results::{Load, Row, ScenarioResult};

/// Every scenario, in the order `all` runs them.
pub const ALL: &[&str] = &[
    "rtt",
    "election",
    "handover",
    "failover",
    "retrieval",
    "store",
    "scale",
];

/// The number of progress steps of `scenario`.
pub fn steps(ctx: &Ctx, scenario: &str) -> u64 {
    let peers = ctx.peers.present().len() as u64;
    match scenario {
        "rtt" => 2 + peers,
        "election" => 2 + peers,
        "handover" => 2 + peers,
        "failover" => (2 + peers) * ctx.sizes.crash.len() as u64,
        "retrieval" => 2,
        "store" => 6,
        "scale" => 2 * ctx.sizes.scale.len() as u64 + 2 + peers,
        _ => 0,
    }
}

/// Runs `scenario`.
pub async fn run(ctx: &Ctx, scenario: &str) -> anyhow::Result<ScenarioResult> {
    let mut s = Scenario::begin(scenario);
    let zk = Zk::start().await?;
    match scenario {
        "rtt" => rtt::run(ctx, &zk, &mut s.result).await?,
        "election" => election::run(ctx, &zk, &mut s.result).await?,
        "handover" => handover::run(ctx, &zk, &mut s.result).await?,
        "failover" => failover::run(ctx, &zk, &mut s.result).await?,
        "retrieval" => retrieval::run(ctx, &zk, &mut s.result).await?,
        "store" => store::run(ctx, &zk, &mut s.result).await?,
        "scale" => scale::run(ctx, &zk, &mut s.result).await?,
        other => anyhow::bail!("unknown scenario {other:?}"),
    }
    if let Some(v) = zk.version().await {
        ctx.version(
            "ZooKeeper server",
            format!(
                "{v} (Debian; standalone on loopback, started per scenario by the testkit's \
                 harness: tickTime 200 ms, transaction log fsync on, JVM -XX:TieredStopAtLevel=1 \
                 -XX:+UseSerialGC -Xmx256m)"
            ),
        );
    }
    if let Some(note) = ctx.peers.missing_note()
        && matches!(
            scenario,
            "rtt" | "election" | "handover" | "failover" | "scale"
        )
    {
        s.result.notes.push(note);
    }
    s.result.mode = ctx.mode.name().to_owned();
    Ok(s.finish())
}

/// A scenario's result while it runs.
struct Scenario {
    result: ScenarioResult,
    started: Instant,
}

impl Scenario {
    fn begin(scenario: &str) -> Self {
        Self {
            result: ScenarioResult {
                scenario: scenario.to_owned(),
                title: String::new(),
                mode: String::new(),
                method: String::new(),
                load_before: Load::now(),
                load_after: Load::default(),
                seconds: 0.0,
                groups: Vec::new(),
                notes: Vec::new(),
            },
            started: Instant::now(),
        }
    }

    fn finish(mut self) -> ScenarioResult {
        self.result.load_after = Load::now();
        self.result.seconds = self.started.elapsed().as_secs_f64();
        self.result
    }
}

/// The row of the first peer result of `scenario` (µs), with its numeric extras.
pub fn peer_row_us(
    implementation: &str,
    what: &str,
    results: &[PeerResult],
    scenario: &str,
) -> Option<Row> {
    let r = results.iter().find(|r| r.scenario == scenario)?;
    let mut row = Row::new(implementation, what, r.samples_us());
    for (k, v) in &r.extra {
        if let Some(x) = v.as_f64() {
            row.extra.insert(k.clone(), x);
        }
    }
    Some(row)
}
