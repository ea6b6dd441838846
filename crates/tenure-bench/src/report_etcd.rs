//! `results/etcd/report.md` and `results/etcd/plots/*.svg`, built from the JSON files of the
//! etcd section, and the summary of it that the main report carries.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::report::{
    Target, cdf_plot, label, machine_section, num, plain, ratio_of, scenario_heading, table,
    target_rows, verdict,
};
use crate::results::{Group, Machine, Row, ScenarioResult, read_json, who};
use crate::scenarios::etcd::ALL;
use crate::scenarios::etcd::metrics::describe;

/// Reads every etcd scenario result present in `dir`, in the order of [`ALL`].
pub fn load(dir: &Path) -> Vec<ScenarioResult> {
    ALL.iter()
        .filter_map(|s| read_json(&dir.join(format!("{s}.json"))).ok())
        .collect()
}

/// "tenure's requests / the floor's", by method.
fn requests_of(t: &Row, f: Option<&Row>) -> String {
    let d = |r: &Row| describe(r).unwrap_or_else(|| "—".into());
    match f {
        Some(f) => format!("{} / {}", d(t), d(f)),
        None => format!("{} / —", d(t)),
    }
}

/// A target comparing the compared figures of tenure and `other` in `g` (≤ `max`×), or, with
/// `max` infinite, a figure shown for reference.
fn latency(out: &mut Vec<Target>, g: &Group, other: Option<&Row>, what: &'static str, max: f64) {
    let (Some(t), Some(o)) = (g.row(who::TENURE), other) else {
        return;
    };
    let Some(r) = ratio_of(g, t, o) else { return };
    let basis = if g.ratio_by_max { "max" } else { "median" };
    out.push(Target {
        what,
        compares: format!("{} ÷ {} ({})", plain(t), plain(o), g.title),
        measured: format!(
            "{r:.2}× ({basis} {} vs {} {})",
            num(g.compared(t).unwrap_or(f64::NAN)),
            num(g.compared(o).unwrap_or(f64::NAN)),
            g.unit
        ),
        requests: requests_of(t, (o.implementation == who::FLOOR).then_some(o)),
        verdict: if max.is_finite() {
            verdict(r <= max)
        } else {
            "no target (for reference)"
        },
    });
}

/// The targets of the section (issue 14, item 10), and figures shown next to them.
fn targets(results: &[ScenarioResult]) -> Vec<Target> {
    let find = |scenario: &str, key: &str| {
        results
            .iter()
            .find(|r| r.scenario == format!("etcd-{scenario}"))
            .and_then(|r| r.group(key).cloned())
    };
    let mut out = Vec::new();
    if let Some(g) = find("election", "etcd-election") {
        latency(
            &mut out,
            &g,
            g.row(who::FLOOR),
            "uncontended election ≤ 1.1× the floor",
            1.1,
        );
    }
    for key in ["etcd-checkpoint-seq", "etcd-checkpoint-c16"] {
        let Some(g) = find("store", key) else {
            continue;
        };
        if let (Some(t), Some(f)) = (g.row(who::TENURE), g.row(who::FLOOR))
            && let (Some(tt), Some(ft)) = (
                t.extra.get("throughput_ops_s"),
                f.extra.get("throughput_ops_s"),
            )
        {
            let pct = 100.0 * tt / ft;
            out.push(Target {
                what: if key.ends_with("-seq") {
                    "fenced checkpoint add throughput ≥ 80 % of the floor, sequential"
                } else {
                    "fenced checkpoint add throughput ≥ 80 % of the floor, 16 workers"
                },
                compares: format!("{} ÷ {} ({})", plain(t), plain(f), g.title),
                measured: format!("{pct:.0} % ({tt:.0} vs {ft:.0} ops/s)"),
                requests: requests_of(t, Some(f)),
                verdict: verdict(pct >= 80.0),
            });
        }
    }
    if let Some(g) = find("handover", "etcd-handover") {
        latency(
            &mut out,
            &g,
            g.row(who::FLOOR),
            "graceful handover vs the floor making the same requests",
            f64::INFINITY,
        );
        latency(
            &mut out,
            &g,
            g.row(who::ETCDCTL),
            "graceful handover vs etcdctl elect (SIGINT → resign)",
            f64::INFINITY,
        );
    }
    if let Some(res) = results.iter().find(|r| r.scenario == "etcd-failover") {
        for g in res.groups.iter().filter(|g| !g.key.ends_with("-reaction")) {
            let Some(t) = g.row(who::TENURE) else {
                continue;
            };
            let reaction = res.group(&format!("{}-reaction", g.key));
            for other in [who::FLOOR, who::ETCDCTL] {
                let (Some(o), Some(ts)) = (g.row(other), t.summary) else {
                    continue;
                };
                let Some(os) = o.summary else { continue };
                let mut measured = format!(
                    "excess over the TTL, median {} vs {} ms, max {} vs {} ms",
                    num(ts.median),
                    num(os.median),
                    num(ts.max),
                    num(os.max)
                );
                if let Some(r) = reaction
                    && let (Some(tr), Some(or)) = (
                        r.row(who::TENURE).and_then(|r| r.summary),
                        r.row(other).and_then(|r| r.summary),
                    )
                {
                    let _ = write!(
                        measured,
                        "; reaction after the key's deletion, median {} vs {} µs",
                        num(tr.median),
                        num(or.median)
                    );
                }
                out.push(Target {
                    what: if other == who::FLOOR {
                        "crash failover vs the floor (same TTL)"
                    } else {
                        "crash failover vs etcdctl elect (its TTL is 60 s)"
                    },
                    compares: format!("{} vs {} ({})", plain(t), plain(o), g.title),
                    measured,
                    requests: "—".into(),
                    verdict: "no target (for reference)",
                });
            }
        }
    }
    if let Some(res) = results.iter().find(|r| r.scenario == "etcd-scale") {
        for g in &res.groups {
            latency(
                &mut out,
                g,
                g.row(who::FLOOR),
                "per-job elections on one lease, all granted, vs the floor",
                f64::INFINITY,
            );
        }
    }
    out
}

fn targets_table(out: &mut String, t: Vec<Target>) {
    out.push_str(
        "| target | compares | measured | requests by method: tenure / floor | verdict |\n\
         |---|---|---|---|---|\n",
    );
    target_rows(out, t);
}

/// The section of the main report: the targets and a link to `etcd/report.md`; `None` when
/// there are no etcd results in `dir`.
pub fn summary(dir: &Path) -> Option<String> {
    let results = load(dir);
    if results.is_empty() {
        return None;
    }
    let mut out = String::from(
        "## etcd\n\nThe etcd section (tenure's etcd backend against the raw etcd-client making \
         the same requests, and `etcdctl elect`) has its own report: \
         [etcd/report.md](etcd/report.md). Its targets:\n\n",
    );
    targets_table(&mut out, targets(&results));
    Some(out)
}

/// Writes `report.md` and the plots into `dir` (the section's directory) from the results
/// found there.
pub fn write(dir: &Path) -> anyhow::Result<()> {
    let results = load(dir);
    let machine: Option<Machine> = read_json(&dir.join("machine.json")).ok();
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).with_context(|| format!("creating {}", plots.display()))?;
    let mut out = String::new();
    out.push_str("# tenure benchmark report: etcd\n\n");
    out.push_str(
        "Generated by `tenure-bench etcd` (crates/tenure-bench) from the JSON files next to \
         this report. Every scenario starts its own etcd server (single node, loopback); \
         tenure, the raw etcd-client floor and `etcdctl elect` run against that same server in \
         the same run. The floor makes the requests tenure's recipe makes, request for request \
         (`tenure-etcd`'s latch and transaction code); the *requests* of each row are the gRPC \
         messages the server received, counted by its own `grpc_server_msg_received_total` \
         metrics, by method. **tenure ÷ this** below 1 means tenure is faster.\n\n",
    );
    if let Some(m) = &machine {
        machine_section(&mut out, m);
    }
    out.push_str(
        "How to run: `cargo run --release -p tenure-bench -- etcd all` (`--quick` for a \
         smaller run; one scenario: `tenure-bench etcd election`, `handover`, `failover`, \
         `store`, `scale`; `tenure-bench etcd report` rebuilds this file from the JSON). \
         `tenure-bench all` runs this section after the ZooKeeper scenarios. The peer is \
         Debian's `etcdctl` (package `etcd-client`); `--peers none` leaves it out.\n\n",
    );
    let t = targets(&results);
    if !t.is_empty() {
        out.push_str("## Targets (issue 14, item 10)\n\n");
        targets_table(&mut out, t);
    }
    // Hand-written analysis of the run, kept next to the results.
    if let Ok(notes) = std::fs::read_to_string(dir.join("notes.md")) {
        out.push_str(notes.trim_end());
        out.push_str("\n\n");
    }
    for res in &results {
        scenario_heading(&mut out, res);
        for g in &res.groups {
            let _ = writeln!(out, "### {}\n", g.title);
            table(&mut out, g);
            out.push('\n');
            let by_method: Vec<String> = g
                .rows
                .iter()
                .filter_map(|r| {
                    let d = describe(r)?;
                    Some(format!("{} ({}): {d}", label(r), r.what.replace('`', "")))
                })
                .collect();
            if !by_method.is_empty() {
                out.push_str("Requests of one operation, by gRPC method:\n\n");
                for line in by_method {
                    let _ = writeln!(out, "- {line}");
                }
                out.push('\n');
            }
            if g.cdf && g.rows.iter().any(|r| !r.samples.is_empty()) {
                let name = format!("{}.svg", g.key);
                std::fs::write(plots.join(&name), cdf_plot(g))?;
                let _ = writeln!(out, "![{} CDF](plots/{name})\n", g.title);
            }
        }
        if !res.notes.is_empty() {
            out.push_str("Notes:\n\n");
            for n in &res.notes {
                let _ = writeln!(out, "- {n}");
            }
            out.push('\n');
        }
    }
    let missing: Vec<&str> = ALL
        .iter()
        .copied()
        .filter(|s| !results.iter().any(|r| r.scenario == format!("etcd-{s}")))
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "Not in this report (no results file): {}.\n",
            missing.join(", ")
        );
    }
    std::fs::write(dir.join("report.md"), out)
        .with_context(|| format!("writing {}", dir.join("report.md").display()))
}
