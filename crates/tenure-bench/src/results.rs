//! The results of a run: one JSON file per scenario (`results/<scenario>.json`) and one for the
//! machine (`results/machine.json`); the report is built from these files alone.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::stats::{Summary, summarize};

/// Who a row measures.
pub mod who {
    /// tenure itself.
    pub const TENURE: &str = "tenure";
    /// The same ZooKeeper operations made directly with the raw Rust client.
    pub const FLOOR: &str = "floor";
    /// Apache Curator (Java).
    pub const CURATOR: &str = "curator";
    /// kazoo (Python).
    pub const KAZOO: &str = "kazoo";
    /// `etcdctl elect` (Go's etcd `concurrency` package).
    pub const ETCDCTL: &str = "etcdctl";
}

/// One measured series: one implementation doing one thing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// [`who::TENURE`], [`who::FLOOR`], [`who::CURATOR`], [`who::KAZOO`] or [`who::ETCDCTL`].
    pub implementation: String,
    /// What exactly was measured (shown next to the implementation).
    pub what: String,
    /// The samples, in the group's unit, in the order taken.
    pub samples: Vec<f64>,
    /// Their summary.
    pub summary: Option<Summary>,
    /// Further figures (`throughput_ops_s`, `bytes_per_election`, `total_ms`, `size`, ...).
    #[serde(default)]
    pub extra: BTreeMap<String, f64>,
    /// Rows are compared with the `tenure` row of the same pair key (empty: the main one).
    #[serde(default)]
    pub pair: String,
}

impl Row {
    /// A row of `samples` (kept to three decimals: ns for µs series, µs for ms series).
    pub fn new(implementation: &str, what: impl Into<String>, samples: Vec<f64>) -> Self {
        let samples: Vec<f64> = samples
            .into_iter()
            .map(|v| (v * 1e3).round() / 1e3)
            .collect();
        Self {
            implementation: implementation.to_owned(),
            what: what.into(),
            summary: summarize(&samples),
            samples,
            extra: BTreeMap::new(),
            pair: String::new(),
        }
    }

    /// The same row, compared with the `tenure` row of pair key `pair`.
    pub fn paired(mut self, pair: &str) -> Self {
        self.pair = pair.to_owned();
        self
    }

    /// The same row with one more extra figure.
    pub fn with(mut self, key: &str, value: f64) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// The same row with `requests`: the ZooKeeper requests one operation of the row made (all
    /// sessions together, counted by the server), when they were counted.
    pub fn with_requests(mut self, requests: Option<u64>) -> Self {
        if let Some(r) = requests {
            self.extra.insert("requests".to_owned(), r as f64);
        }
        self
    }
}

/// Rows that are compared with each other (one table in the report).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Group {
    /// Short key (used for plot file names).
    pub key: String,
    /// The table's title.
    pub title: String,
    /// The unit of every row's samples (`µs`, `ms`).
    pub unit: String,
    /// The rows; the first `tenure` row is the one ratios are taken of.
    pub rows: Vec<Row>,
    /// Whether the report draws a latency CDF of this group.
    #[serde(default)]
    pub cdf: bool,
    /// Whether ratios compare the maxima (the time until the last one, for "all of N" series)
    /// instead of the medians.
    #[serde(default)]
    pub ratio_by_max: bool,
}

impl Group {
    /// An empty group.
    pub fn new(key: &str, title: impl Into<String>, unit: &str) -> Self {
        Self {
            key: key.to_owned(),
            title: title.into(),
            unit: unit.to_owned(),
            rows: Vec::new(),
            cdf: false,
            ratio_by_max: false,
        }
    }

    /// The same group, its ratios taken of the maxima.
    pub fn by_max(mut self) -> Self {
        self.ratio_by_max = true;
        self
    }

    /// The figure ratios are taken of, for `row`.
    pub fn compared(&self, row: &Row) -> Option<f64> {
        row.summary
            .map(|s| if self.ratio_by_max { s.max } else { s.median })
    }

    /// The same group, drawn as a CDF in the report.
    pub fn with_cdf(mut self) -> Self {
        self.cdf = true;
        self
    }

    /// The first row of `implementation`.
    pub fn row(&self, implementation: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.implementation == implementation)
    }

    /// The `tenure` row `row` is compared with (same pair key), unless `row` is one itself.
    pub fn reference_for(&self, row: &Row) -> Option<&Row> {
        if row.implementation == who::TENURE {
            return None;
        }
        self.rows
            .iter()
            .find(|r| r.implementation == who::TENURE && r.pair == row.pair)
    }

    /// The first row of `implementation` whose `what` contains `needle`.
    pub fn row_matching(&self, implementation: &str, needle: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.implementation == implementation && r.what.contains(needle))
    }
}

/// The load of the machine at one moment.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Load {
    /// `/proc/loadavg`: 1, 5 and 15 minute load averages.
    pub loadavg: [f64; 3],
    /// Seconds since the Unix epoch.
    pub unix_s: u64,
}

impl Load {
    /// The load now.
    pub fn now() -> Self {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let mut v = text
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(f64::NAN));
        Self {
            loadavg: [
                v.next().unwrap_or(f64::NAN),
                v.next().unwrap_or(f64::NAN),
                v.next().unwrap_or(f64::NAN),
            ],
            unix_s: unix_now(),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The results of one scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// The scenario's key (file name and subcommand).
    pub scenario: String,
    /// The report section's title.
    pub title: String,
    /// `smoke`, `quick` or `default`.
    pub mode: String,
    /// What is measured and how (markdown).
    pub method: String,
    /// The load before the scenario ran.
    pub load_before: Load,
    /// The load after.
    pub load_after: Load,
    /// Wall time of the scenario in seconds.
    pub seconds: f64,
    /// The tables.
    pub groups: Vec<Group>,
    /// Remarks: skipped peers, failures, caveats (markdown, one per item).
    pub notes: Vec<String>,
}

impl ScenarioResult {
    /// The group with key `key`.
    pub fn group(&self, key: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.key == key)
    }
}

/// What the run ran on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// `nproc`.
    pub nproc: usize,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` in bytes.
    pub mem_total_bytes: u64,
    /// `uname -sr`-like kernel string.
    pub kernel: String,
    /// Versions of the things compared (ZooKeeper server, Java, Curator, Python, kazoo, rustc
    /// profile).
    pub versions: BTreeMap<String, String>,
    /// The mode of the run.
    pub mode: String,
    /// Load when the run started.
    pub load_before: Load,
    /// Load when it ended.
    pub load_after: Load,
    /// Wall time of the whole run in seconds (0 for a single scenario).
    pub seconds: f64,
    /// Which scenarios the run ran.
    pub scenarios: Vec<String>,
}

impl Machine {
    /// Reads what can be read about this machine now.
    pub fn probe(mode: &str) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total_bytes = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |k| k * 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| "unknown".into());
        let mut versions = BTreeMap::new();
        versions.insert(
            "tenure-bench build".into(),
            if cfg!(debug_assertions) {
                "debug (figures are not representative)".into()
            } else {
                "release".into()
            },
        );
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            mem_total_bytes,
            kernel,
            versions,
            mode: mode.to_owned(),
            load_before: Load::now(),
            load_after: Load::default(),
            seconds: 0.0,
            scenarios: Vec::new(),
        }
    }
}

/// Writes `value` as JSON to `path` (compact: the sample arrays are long).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Reads JSON from `path`.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
