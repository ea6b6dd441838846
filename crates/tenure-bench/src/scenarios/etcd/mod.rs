//! The etcd section (`tenure-bench etcd ...`): tenure's etcd backend against the raw
//! etcd-client making the same requests (the floor) and `etcdctl elect` (Go's `concurrency`
//! package, the peer). Each scenario starts its own etcd server; results go to
//! `<out>/etcd/<scenario>.json` and `<out>/etcd/report.md`.

pub mod child;
pub mod deletions;
pub mod election;
pub mod etcdctl;
pub mod failover;
pub mod handover;
pub mod metrics;
pub mod raw;
pub mod scale;
pub mod server;
pub mod store;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;

use crate::bench::Ctx;
use crate::results::{Load, Machine, ScenarioResult, read_json, write_json};

use self::etcdctl::Etcdctl;
use self::server::Etcd;
use super::Scenario;

/// Every etcd scenario, in the order `etcd all` runs them.
pub const ALL: &[&str] = &["election", "handover", "failover", "store", "scale"];

/// The directory of the section's results below the output directory.
pub const DIR: &str = "etcd";

/// The section's results directory below `out`.
pub fn dir(out: &Path) -> PathBuf {
    out.join(DIR)
}

/// The number of progress steps of `scenario`.
pub fn steps(ctx: &Ctx, etcdctl: bool, scenario: &str) -> u64 {
    let peer = u64::from(etcdctl);
    match scenario {
        "election" => 1 + peer,
        "handover" => 2 + peer,
        "failover" => {
            let with_peer = u64::from(etcdctl && ctx.sizes.etcdctl_crash > 0);
            (2 + with_peer) * ctx.sizes.etcd_crash.len() as u64
        }
        "store" => 2,
        "scale" => 2 * ctx.sizes.etcd_scale.len() as u64,
        _ => 0,
    }
}

/// Runs one etcd scenario on a server of its own.
pub async fn run(
    ctx: &Ctx,
    etcdctl: Result<&Etcdctl, &str>,
    scenario: &str,
) -> anyhow::Result<ScenarioResult> {
    let (etcdctl, missing) = match etcdctl {
        Ok(p) => (Some(p), None),
        Err(why) => (None, Some(why)),
    };
    let mut s = Scenario::begin(&format!("etcd-{scenario}"));
    let etcd = Etcd::start().await?;
    match scenario {
        "election" => election::run(ctx, &etcd, etcdctl, &mut s.result).await?,
        "handover" => handover::run(ctx, &etcd, etcdctl, &mut s.result).await?,
        "failover" => failover::run(ctx, &etcd, etcdctl, &mut s.result).await?,
        "store" => store::run(ctx, &etcd, &mut s.result).await?,
        "scale" => scale::run(ctx, &etcd, &mut s.result).await?,
        other => anyhow::bail!("unknown etcd scenario {other:?}"),
    }
    if let Some(v) = etcd.version().await {
        ctx.version(
            "etcd server",
            format!(
                "{v} (Debian `etcd-server`; single node on loopback, started per scenario by \
                 the testkit's harness: heartbeat 100 ms, election timeout 1 s)"
            ),
        );
    }
    if let Some(why) = missing
        && matches!(scenario, "election" | "handover" | "failover")
    {
        s.result.notes.push(why.to_owned());
    }
    s.result.mode = ctx.mode.name().to_owned();
    Ok(s.finish())
}

/// Runs `scenarios` of the section, writes their JSON, the section's machine record and its
/// report below `out`; false if a scenario failed (the rest still run).
pub async fn run_section(
    ctx: &Ctx,
    out: &Path,
    scenarios: &[&str],
    use_peer: bool,
    whole: bool,
) -> anyhow::Result<bool> {
    let dir = dir(out);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut machine = Machine::probe(ctx.mode.name());
    let started = Instant::now();
    let etcdctl = if use_peer {
        Etcdctl::detect().await
    } else {
        Err("etcdctl not run (`--peers none`)".to_owned())
    };
    match &etcdctl {
        Ok(p) => ctx.version(
            "etcdctl (peer)",
            format!("{} (Debian `etcd-client`)", p.version),
        ),
        Err(note) => ctx.progress.println(&format!("note: {note}")),
    }
    for s in scenarios {
        ctx.progress.add_steps(steps(ctx, etcdctl.is_ok(), s));
    }
    let mut ok = true;
    for s in scenarios {
        match run(ctx, etcdctl.as_ref().map_err(String::as_str), s).await {
            Ok(result) => write_json(&dir.join(format!("{s}.json")), &result)?,
            Err(e) => {
                ok = false;
                ctx.progress
                    .println(&format!("error: etcd scenario {s} failed: {e:#}"));
            }
        }
    }
    machine.load_after = Load::now();
    machine.seconds = started.elapsed().as_secs_f64();
    machine.scenarios = scenarios.iter().map(|s| format!("etcd {s}")).collect();
    machine
        .versions
        .extend(tenure_core::sync::lock(&ctx.versions).clone());
    let machine_path = dir.join("machine.json");
    if whole || read_json::<Machine>(&machine_path).is_err() {
        write_json(&machine_path, &machine)?;
    }
    crate::report_etcd::write(&dir)?;
    Ok(ok)
}

/// Whether etcd can run here (Debian's server binary is installed).
pub fn installed() -> bool {
    Path::new(tenure_testkit::etcd::ETCD_BIN).is_file()
}
