//! `results/report.md` and `results/plots/*.svg`, built from the JSON files of `results/`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::results::{Group, Machine, Row, ScenarioResult, read_json, who};
use crate::scenarios::ALL;
use crate::svg::{self, Series};

/// A figure of a group's unit, to three significant digits or so.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn bytes(v: f64) -> String {
    if v >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", v / 1024.0 / 1024.0)
    } else if v >= 1024.0 {
        format!("{:.2} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

/// Heap bytes per election: tenure's live heap bytes from the allocation counter
/// (`bytes_per_election`), or a peer's heap in use after GC (`heap_bytes_per_election`).
fn heap_per_election(row: &Row) -> Option<f64> {
    row.extra
        .get("bytes_per_election")
        .or_else(|| row.extra.get("heap_bytes_per_election"))
        .copied()
}

/// ZooKeeper requests of one operation of `row` (per election, in the scale tables).
pub(crate) fn requests(row: &Row) -> Option<f64> {
    row.extra
        .get("requests")
        .or_else(|| row.extra.get("requests_per_election"))
        .copied()
}

/// A request count: whole numbers as such, averages to two decimals.
pub(crate) fn count(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// How the report names the implementation of `row`.
pub(crate) fn label(row: &Row) -> String {
    match row.implementation.as_str() {
        who::TENURE => "**tenure**".into(),
        who::FLOOR => "floor (raw client)".into(),
        who::CURATOR => "Curator".into(),
        who::KAZOO => "kazoo".into(),
        who::ETCDCTL => "etcdctl elect".into(),
        other => other.into(),
    }
}

/// Reads every scenario result present in `dir`, in the order of [`ALL`].
pub fn load(dir: &Path) -> Vec<ScenarioResult> {
    ALL.iter()
        .filter_map(|s| read_json(&dir.join(format!("{s}.json"))).ok())
        .collect()
}

/// Appends the Markdown table of `group` to `out`.
pub(crate) fn table(out: &mut String, group: &Group) {
    let thr = group
        .rows
        .iter()
        .any(|r| r.extra.contains_key("throughput_ops_s"));
    let heap = group.rows.iter().any(|r| heap_per_election(r).is_some());
    let rss = group
        .rows
        .iter()
        .any(|r| r.extra.contains_key("rss_bytes_per_election"));
    let reqs = group.rows.iter().any(|r| requests(r).is_some());
    let failover = group
        .rows
        .iter()
        .any(|r| r.extra.contains_key("failover_median_ms"));
    let basis = if group.ratio_by_max { "max" } else { "median" };
    let _ = write!(
        out,
        "| implementation | what | n | median ({u}) | p99 ({u}) | max ({u}) |",
        u = group.unit
    );
    if failover {
        out.push_str(" failover median / max (ms) | server's share (median, ms) |");
    }
    if thr {
        out.push_str(" ops/s | tenure ops/s ÷ this |");
    }
    if heap {
        out.push_str(" heap per election |");
    }
    if rss {
        out.push_str(" RSS per election |");
    }
    if reqs {
        out.push_str(" requests |");
    }
    let _ = writeln!(out, " tenure ÷ this ({basis}) |");
    let cols = 7
        + 2 * usize::from(failover)
        + 2 * usize::from(thr)
        + usize::from(heap)
        + usize::from(rss)
        + usize::from(reqs);
    out.push('|');
    for _ in 0..cols {
        out.push_str("---|");
    }
    out.push('\n');
    for row in &group.rows {
        let s = row.summary;
        let f =
            |g: fn(&crate::stats::Summary) -> f64| s.as_ref().map_or("—".into(), |s| num(g(s)));
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            label(row),
            row.what,
            s.map_or(0, |s| s.n),
            f(|s| s.median),
            f(|s| s.p99),
            f(|s| s.max)
        );
        if failover {
            let _ = write!(
                out,
                " {} / {} |",
                row.extra
                    .get("failover_median_ms")
                    .map_or("—".into(), |v| num(*v)),
                row.extra
                    .get("failover_max_ms")
                    .map_or("—".into(), |v| num(*v))
            );
            let _ = write!(
                out,
                " {} |",
                row.extra
                    .get("server_share_median_ms")
                    .map_or("—".into(), |v| num(*v))
            );
        }
        if thr {
            let t = row.extra.get("throughput_ops_s").copied();
            let reference = group
                .reference_for(row)
                .and_then(|r| r.extra.get("throughput_ops_s").copied());
            let _ = write!(
                out,
                " {} | {} |",
                t.map_or("—".into(), |v| format!("{v:.0}")),
                match (reference, t) {
                    (Some(r), Some(t)) if t > 0.0 => format!("{:.0} %", 100.0 * r / t),
                    _ => "—".into(),
                }
            );
        }
        if heap {
            let _ = write!(
                out,
                " {} |",
                heap_per_election(row).map_or("—".into(), bytes)
            );
        }
        if rss {
            let _ = write!(
                out,
                " {} |",
                row.extra
                    .get("rss_bytes_per_election")
                    .map_or("—".into(), |v| bytes(*v))
            );
        }
        if reqs {
            let _ = write!(out, " {} |", requests(row).map_or("—".into(), count));
        }
        let ratio = match (
            group.reference_for(row).and_then(|r| group.compared(r)),
            group.compared(row),
        ) {
            (Some(t), Some(x)) if x.abs() > 0.0 => format!("{:.2}×", t / x),
            _ => "—".into(),
        };
        let _ = writeln!(out, " {ratio} |");
    }
}

/// The SVG latency CDF of `group`.
pub(crate) fn cdf_plot(group: &Group) -> String {
    let mut seen: Vec<&str> = Vec::new();
    let series: Vec<Series> = group
        .rows
        .iter()
        .filter(|r| !r.samples.is_empty())
        .map(|r| {
            let dashed = seen.contains(&r.implementation.as_str());
            seen.push(&r.implementation);
            Series {
                name: format!("{}: {}", r.implementation, r.what.replace('`', "")),
                color: svg::color(&r.implementation),
                dashed,
                points: svg::cdf_points(&r.samples),
            }
        })
        .collect();
    let (lo, hi) = group
        .rows
        .iter()
        .flat_map(|r| r.samples.iter().copied())
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let log = lo > 0.0 && hi / lo > 20.0;
    svg::plot(
        &format!("{} — CDF", group.title),
        &format!("{}{}", group.unit, if log { " (log scale)" } else { "" }),
        "fraction of samples ≤ x",
        &series,
        log,
        false,
    )
}

fn scale_plots(result: &ScenarioResult, plots: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut total: Vec<Series> = Vec::new();
    let mut memory: Vec<Series> = Vec::new();
    for (implementation, what) in [
        (who::TENURE, "tenure"),
        (who::FLOOR, "floor (raw client, pipelined)"),
        (who::CURATOR, "Curator LeaderLatch"),
        (who::KAZOO, "kazoo Lock (sequential)"),
    ] {
        let mut t = Vec::new();
        let mut m = Vec::new();
        let mut h = Vec::new();
        let per_size = |g: &&Group| {
            g.key
                .strip_prefix("scale-")
                .is_some_and(|n| n.parse::<usize>().is_ok())
        };
        for g in result.groups.iter().filter(per_size) {
            if let Some(r) = g.row(implementation)
                && let Some(size) = r.extra.get("size")
                && let Some(s) = r.summary
            {
                t.push((*size, s.max));
                if let Some(b) = r.extra.get("rss_bytes_per_election") {
                    m.push((*size, *b));
                }
                if let Some(b) = heap_per_election(r) {
                    h.push((*size, b));
                }
            }
        }
        for v in [&mut t, &mut m, &mut h] {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        if !t.is_empty() {
            total.push(Series {
                name: what.into(),
                color: svg::color(implementation),
                dashed: false,
                points: t,
            });
        }
        if !m.is_empty() {
            memory.push(Series {
                name: format!("{what}: VmRSS growth ÷ N"),
                color: svg::color(implementation),
                dashed: false,
                points: m,
            });
        }
        if !h.is_empty() {
            memory.push(Series {
                name: format!(
                    "{what}: {} ÷ N",
                    if implementation == who::TENURE {
                        "live heap (allocation counter)"
                    } else {
                        "heap after GC"
                    }
                ),
                color: svg::color(implementation),
                dashed: true,
                points: h,
            });
        }
    }
    if !total.is_empty() {
        let name = "scale-time.svg".to_owned();
        std::fs::write(
            plots.join(&name),
            svg::plot(
                "Time until all N elections lead (one session / one client)",
                "N elections (log scale)",
                "ms (log scale)",
                &total,
                true,
                true,
            ),
        )?;
        out.push(("Time to acquire all".into(), name));
    }
    if !memory.is_empty() {
        let name = "scale-memory.svg".to_owned();
        std::fs::write(
            plots.join(&name),
            svg::plot(
                "Memory per election (points of 0 growth left out)",
                "N elections (log scale)",
                "bytes per election (log scale)",
                &memory,
                true,
                true,
            ),
        )?;
        out.push(("Memory per election".into(), name));
    }
    if let Some(g) = result.group("scale-handover") {
        let mut med = Vec::new();
        let mut p99 = Vec::new();
        for r in &g.rows {
            if let (Some(size), Some(s)) = (r.extra.get("size"), r.summary) {
                med.push((*size, s.median));
                p99.push((*size, s.p99));
            }
        }
        if !med.is_empty() {
            let name = "scale-handover.svg".to_owned();
            std::fs::write(
                plots.join(&name),
                svg::plot(
                    "tenure handover latency with N elections live",
                    "N elections (log scale)",
                    "µs",
                    &[
                        Series {
                            name: "median".into(),
                            color: svg::color(who::TENURE),
                            dashed: false,
                            points: med,
                        },
                        Series {
                            name: "p99".into(),
                            color: svg::color(who::TENURE),
                            dashed: true,
                            points: p99,
                        },
                    ],
                    true,
                    false,
                ),
            )?;
            out.push(("Handover latency at scale".into(), name));
        }
    }
    Ok(out)
}

/// One line of the targets table.
pub(crate) struct Target {
    /// The target.
    pub(crate) what: &'static str,
    /// What is compared.
    pub(crate) compares: String,
    /// The figures.
    pub(crate) measured: String,
    /// Requests of one operation: tenure / floor.
    pub(crate) requests: String,
    /// Met or not.
    pub(crate) verdict: &'static str,
}

/// `met` or **not met**.
pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

/// `a`'s compared figure ÷ `b`'s.
pub(crate) fn ratio_of(g: &Group, a: &Row, b: &Row) -> Option<f64> {
    Some(g.compared(a)? / g.compared(b)?)
}

/// "tenure N / floor M" (or what is known of it).
pub(crate) fn request_pair(tenure: &Row, floor: Option<&Row>) -> String {
    let t = requests(tenure).map_or("—".into(), count);
    match floor {
        Some(f) => format!("{t} / {}", requests(f).map_or("—".into(), count)),
        None => format!("{t} / —"),
    }
}

/// `what` of a row, without Markdown code marks (for the *compares* column).
pub(crate) fn plain(row: &Row) -> String {
    format!("{}: {}", row.implementation, row.what.replace('`', ""))
}

/// Targets comparing tenure with the floor (≤ `max`×) and with Curator (≥ `min_speedup`×
/// faster), by the group's compared figure.
fn latency_targets(
    out: &mut Vec<Target>,
    g: &Group,
    floor: Option<&Row>,
    names: (&'static str, &'static str),
    max: f64,
    min_speedup: f64,
) {
    let Some(t) = g.row(who::TENURE) else { return };
    let basis = if g.ratio_by_max { "max" } else { "median" };
    if let Some(f) = floor
        && let Some(r) = ratio_of(g, t, f)
    {
        out.push(Target {
            what: names.0,
            compares: format!("{} ÷ {}", plain(t), plain(f)),
            measured: format!(
                "{r:.2}× ({basis} {} vs {} {})",
                num(g.compared(t).unwrap_or(f64::NAN)),
                num(g.compared(f).unwrap_or(f64::NAN)),
                g.unit
            ),
            requests: request_pair(t, Some(f)),
            verdict: verdict(r <= max),
        });
    }
    if min_speedup > 0.0
        && let Some(c) = g.row(who::CURATOR)
        && let Some(r) = ratio_of(g, c, t)
    {
        out.push(Target {
            what: names.1,
            compares: format!("{} ÷ {}", plain(c), plain(t)),
            measured: format!(
                "{r:.2}× faster ({basis} {} vs {} {})",
                num(g.compared(t).unwrap_or(f64::NAN)),
                num(g.compared(c).unwrap_or(f64::NAN)),
                g.unit
            ),
            requests: request_pair(t, None),
            verdict: verdict(r >= min_speedup),
        });
    }
}

fn targets(results: &[ScenarioResult]) -> Vec<Target> {
    let find = |scenario: &str, key: &str| {
        results
            .iter()
            .find(|r| r.scenario == scenario)
            .and_then(|r| r.group(key).cloned())
    };
    let mut out = Vec::new();
    if let Some(g) = find("election", "election") {
        latency_targets(
            &mut out,
            &g,
            g.row(who::FLOOR),
            (
                "uncontended election ≤ 1.1× the floor",
                "uncontended election ≥ 2× faster than Curator",
            ),
            1.1,
            2.0,
        );
    }
    if let Some(g) = find("handover", "handover") {
        latency_targets(
            &mut out,
            &g,
            g.row_matching(who::FLOOR, "same requests"),
            (
                "graceful handover ≤ 1.2× a floor making the same requests",
                "graceful handover ≥ 2× faster than Curator",
            ),
            1.2,
            2.0,
        );
    }
    if let Some(g) = find("retrieval", "retrieval") {
        let floor = g
            .rows
            .iter()
            .find(|r| r.implementation == who::FLOOR && r.pair.is_empty());
        latency_targets(
            &mut out,
            &g,
            floor,
            (
                "confirm → seen by a retriever in another process ≤ 1.1× the floor",
                "",
            ),
            1.1,
            0.0,
        );
    }
    if let Some(res) = results.iter().find(|r| r.scenario == "store") {
        for g in res.groups.iter().filter(|g| g.key.starts_with("jobgraph-")) {
            if let (Some(t), Some(f)) = (g.row(who::TENURE), g.row(who::FLOOR))
                && let (Some(tt), Some(ft)) = (
                    t.extra.get("throughput_ops_s"),
                    f.extra.get("throughput_ops_s"),
                )
            {
                let pct = 100.0 * tt / ft;
                let sequential = g.key.ends_with("-seq");
                out.push(Target {
                    what: if sequential {
                        "job graph put throughput ≥ 80 % of the floor, sequential"
                    } else {
                        "job graph put throughput ≥ 80 % of the floor, concurrent workers"
                    },
                    compares: format!("{} ÷ {} ({})", plain(t), plain(f), g.title),
                    measured: format!("{pct:.0} % ({tt:.0} vs {ft:.0} ops/s)"),
                    requests: request_pair(t, Some(f)),
                    verdict: verdict(pct >= 80.0),
                });
            }
        }
    }
    for size in [1_000usize, 10_000] {
        let what = if size == 1_000 {
            "memory per election < 1 KiB at 1,000 per-job elections on one session"
        } else {
            "memory per election < 1 KiB at 10,000 per-job elections on one session"
        };
        match find("scale", &format!("scale-{size}")) {
            Some(g) => {
                if let Some(t) = g.row(who::TENURE)
                    && let Some(per) = t.extra.get("bytes_per_election").copied()
                {
                    let mut measured = format!("{} live heap", bytes(per));
                    if let Some(at) = t.extra.get("bytes_per_election_at_grant") {
                        let _ = write!(measured, "; {} right at the last grant", bytes(*at));
                    }
                    if let Some(c) = g.row(who::CURATOR).and_then(heap_per_election) {
                        let _ = write!(measured, " (Curator: {} JVM heap after GC)", bytes(c));
                    }
                    out.push(Target {
                        what,
                        compares: "tenure's live heap bytes (allocation counter) from before \
                                   the first election to after the last grant, once the \
                                   session has no request in flight, ÷ N"
                            .into(),
                        measured,
                        requests: request_pair(t, g.row(who::FLOOR)),
                        verdict: verdict(per < 1024.0),
                    });
                }
            }
            None => out.push(Target {
                what,
                compares: "—".into(),
                measured: "—".into(),
                requests: "—".into(),
                verdict: "not measured (a smaller run)",
            }),
        }
    }
    match find("scale", "scale-10000") {
        Some(g) => latency_targets(
            &mut out,
            &g,
            None,
            (
                "",
                "10,000 per-job elections all granted ≥ 20× faster than Curator",
            ),
            f64::INFINITY,
            20.0,
        ),
        None => out.push(Target {
            what: "10,000 per-job elections all granted ≥ 20× faster than Curator",
            compares: "—".into(),
            measured: "—".into(),
            requests: "—".into(),
            verdict: "not measured (a smaller run)",
        }),
    }
    if let Some(res) = results.iter().find(|r| r.scenario == "failover") {
        for g in res.groups.iter().filter(|g| !g.key.ends_with("-reaction")) {
            if let (Some(t), Some(c)) = (g.row(who::TENURE), g.row(who::CURATOR))
                && let (Some(ts), Some(cs)) = (t.summary, c.summary)
            {
                let timeout = g.key.trim_start_matches("failover-");
                let reaction = res.group(&format!("{}-reaction", g.key)).and_then(|r| {
                    Some((r.row(who::TENURE)?.summary?, r.row(who::CURATOR)?.summary?))
                });
                let mut measured = format!(
                    "{timeout}: excess over the timeout, median {} vs {} ms, max {} vs {} ms",
                    num(ts.median),
                    num(cs.median),
                    num(ts.max),
                    num(cs.max)
                );
                if let Some((tr, cr)) = reaction {
                    let _ = write!(
                        measured,
                        "; reaction after expiry, median {} vs {} µs, max {} vs {} µs",
                        num(tr.median),
                        num(cr.median),
                        num(tr.max),
                        num(cr.max)
                    );
                }
                out.push(Target {
                    what: "crash failover never later than Curator (same timeout)",
                    compares: format!("{} vs {} (max)", plain(t), plain(c)),
                    measured,
                    requests: "—".into(),
                    verdict: verdict(ts.max <= cs.max),
                });
            }
        }
    }
    if let Some(g) = find("scale", "process-wide")
        && let Some(t) = g.row_matching(who::TENURE, "published")
        && let Some(s) = t.summary
    {
        let m = t.extra.get("size").copied().unwrap_or(0.0);
        out.push(Target {
            what: "10,000 job masters under one process-wide election publish in < 2 s",
            compares: plain(t),
            measured: format!("{m} job masters: {} ms", num(s.max)),
            requests: "—".into(),
            verdict: if m >= 10_000.0 {
                verdict(s.max < 2000.0)
            } else {
                "not measured at 10,000 (a smaller run)"
            },
        });
    }
    out
}

fn slower(results: &[ScenarioResult]) -> Vec<String> {
    let mut out = Vec::new();
    for res in results {
        for g in &res.groups {
            for row in &g.rows {
                if row.implementation == who::TENURE || row.implementation == who::FLOOR {
                    continue;
                }
                let Some(t) = g.reference_for(row) else {
                    continue;
                };
                if let Some(r) = ratio_of(g, t, row)
                    && r > 1.05
                {
                    out.push(format!(
                        "{} — {}: tenure {} {} vs {} {} {} ({r:.2}×)",
                        res.title,
                        g.title,
                        num(g.compared(t).unwrap_or(f64::NAN)),
                        g.unit,
                        label(row),
                        num(g.compared(row).unwrap_or(f64::NAN)),
                        g.unit
                    ));
                }
            }
        }
    }
    out
}

/// Writes `report.md` and the plots into `dir` from the results found there.
pub fn write(dir: &Path) -> anyhow::Result<()> {
    let results = load(dir);
    let machine: Option<Machine> = read_json(&dir.join("machine.json")).ok();
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).with_context(|| format!("creating {}", plots.display()))?;
    let mut out = String::new();
    out.push_str("# tenure benchmark report\n\n");
    out.push_str(
        "Generated by `tenure-bench` (crates/tenure-bench) from the JSON files next to this \
         report. Every scenario starts its own ZooKeeper server on loopback; tenure, the \
         raw-client floor and the peers run against that same server in the same run. \
         **tenure ÷ this** below 1 means tenure is faster.\n\n",
    );
    if let Some(m) = &machine {
        machine_section(&mut out, m);
    }
    out.push_str(
        "How to run: `scripts/bench-setup` (installs ZooKeeper, Curator and kazoo if missing, \
         compiles the Curator peer), then `cargo run --release -p tenure-bench -- all` \
         (`--quick` for a run under two minutes; one scenario: `tenure-bench election`, \
         `handover`, `failover`, `retrieval`, `store`, `scale`, `rtt`; `tenure-bench report` \
         rebuilds this file from the JSON). `all` then runs the etcd section (`tenure-bench \
         etcd all` alone), reported in `etcd/report.md`.\n\n",
    );
    let t = targets(&results);
    if !t.is_empty() {
        out.push_str(
            "## Targets (issue 11)\n\n\
             Each row names what it compares. *requests* are the ZooKeeper requests of one \
             operation, counted by the server (`srvr`'s `Received`, every session together) \
             during untimed trials of the same run (per election in the scale rows); the method \
             paragraph of each section says which requests they are. Where a target is missed, \
             the notes below say why.\n\n\
             | target | compares | measured | requests: tenure / floor | verdict |\n\
             |---|---|---|---|---|\n",
        );
        target_rows(&mut out, t);
    }
    let slow = slower(&results);
    out.push_str("## Where tenure is slower than a peer\n\n");
    if slow.is_empty() {
        out.push_str("Nowhere in this run (by the compared figure of each table).\n\n");
    } else {
        for s in &slow {
            let _ = writeln!(out, "- {s}");
        }
        out.push_str(
            "\nWhy: see the notes below (when present) and the method paragraph of each \
             section.\n\n",
        );
    }
    // Hand-written analysis of the run (profiling notes), kept next to the results.
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
            if g.cdf && g.rows.iter().any(|r| !r.samples.is_empty()) {
                let name = format!("{}.svg", g.key);
                std::fs::write(plots.join(&name), cdf_plot(g))?;
                let _ = writeln!(out, "![{} CDF](plots/{name})\n", g.title);
            }
        }
        if res.scenario == "scale" {
            for (title, name) in scale_plots(res, &plots)? {
                let _ = writeln!(out, "![{title}](plots/{name})\n");
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
    if let Some(section) = crate::report_etcd::summary(&dir.join(crate::scenarios::etcd::DIR)) {
        out.push_str(&section);
    }
    let missing: Vec<&str> = ALL
        .iter()
        .copied()
        .filter(|s| !results.iter().any(|r| r.scenario == *s))
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

/// The "Machine and run" section of a report: where and how the run was made, the load before
/// and after it, and the servers' and peers' versions.
pub(crate) fn machine_section(out: &mut String, m: &Machine) {
    let _ = writeln!(out, "## Machine and run\n");
    let _ = writeln!(
        out,
        "- mode: `{}`; scenarios: {}; wall time {:.0} s",
        m.mode,
        m.scenarios.join(", "),
        m.seconds
    );
    let _ = writeln!(
        out,
        "- `nproc` {}; CPU: {}; memory {:.1} GiB; {}",
        m.nproc,
        m.cpu_model,
        m.mem_total_bytes as f64 / (1u64 << 30) as f64,
        m.kernel
    );
    let _ = writeln!(
        out,
        "- load average (1/5/15 min) before: {:.2} / {:.2} / {:.2}; after: {:.2} / {:.2} / \
         {:.2} — the machine is shared: other work may have run at the same time",
        m.load_before.loadavg[0],
        m.load_before.loadavg[1],
        m.load_before.loadavg[2],
        m.load_after.loadavg[0],
        m.load_after.loadavg[1],
        m.load_after.loadavg[2]
    );
    for (k, v) in &m.versions {
        let _ = writeln!(out, "- {k}: {v}");
    }
    out.push('\n');
}

/// A scenario's heading: its title, its method paragraph, and its mode, duration and load.
pub(crate) fn scenario_heading(out: &mut String, res: &ScenarioResult) {
    let _ = writeln!(out, "## {}\n", res.title);
    let _ = writeln!(out, "{}\n", res.method);
    let _ = writeln!(
        out,
        "_Mode `{}`, {:.0} s; load before {:.2}, after {:.2}._\n",
        res.mode, res.seconds, res.load_before.loadavg[0], res.load_after.loadavg[0]
    );
}

/// One table row per target, and the blank line ending the table.
pub(crate) fn target_rows(out: &mut String, targets: Vec<Target>) {
    for t in targets {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            t.what, t.compares, t.measured, t.requests, t.verdict
        );
    }
    out.push('\n');
}
