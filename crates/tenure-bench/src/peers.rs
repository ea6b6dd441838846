//! The peer programs: Curator's `LeaderLatch` (Java, `bench/curator/CuratorBench.java`, compiled
//! by `scripts/bench-setup` into `target/bench/curator/`) and kazoo's `Lock`
//! (`bench/kazoo/kazoo_bench.py`). Each prints one JSON object per result on stdout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

/// The Debian jars the Curator program runs with (Curator's jars name their own dependencies in
/// their manifests; these are listed so the run does not depend on that).
const CURATOR_JARS: &[&str] = &[
    "curator-recipes.jar",
    "curator-framework.jar",
    "curator-client.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "guava.jar",
    "slf4j-api.jar",
    "slf4j-nop.jar",
];

/// Where the Debian jars are.
const JAVA_LIB: &str = "/usr/share/java";

/// A peer: how to start it.
#[derive(Clone, Debug)]
pub struct Peer {
    /// `curator` or `kazoo`.
    pub name: &'static str,
    program: PathBuf,
    args: Vec<String>,
}

/// One result line of a peer.
#[derive(Clone, Debug, Deserialize)]
pub struct PeerResult {
    /// The scenario it belongs to.
    pub scenario: String,
    /// Samples in nanoseconds.
    pub samples_ns: Vec<f64>,
    /// Further figures and versions.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl PeerResult {
    /// The samples in microseconds.
    pub fn samples_us(&self) -> Vec<f64> {
        self.samples_ns.iter().map(|ns| ns / 1e3).collect()
    }

    /// The samples in milliseconds.
    pub fn samples_ms(&self) -> Vec<f64> {
        self.samples_ns.iter().map(|ns| ns / 1e6).collect()
    }

    /// A numeric extra figure.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.extra.get(key).and_then(serde_json::Value::as_f64)
    }

    /// A string extra figure.
    pub fn text(&self, key: &str) -> Option<String> {
        self.extra.get(key).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// The peers found on this machine, and why the others are missing.
#[derive(Clone, Debug, Default)]
pub struct Peers {
    /// Curator, if installed and compiled.
    pub curator: Option<Peer>,
    /// kazoo, if installed.
    pub kazoo: Option<Peer>,
    /// Why a peer is not there (for the report).
    pub missing: Vec<String>,
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

impl Peers {
    /// No peers (`--peers none`).
    pub fn none() -> Self {
        Self {
            missing: vec!["peers were not run (`--peers none`)".into()],
            ..Self::default()
        }
    }

    /// Finds the peers below the workspace `root` (the directory holding `bench/`).
    pub async fn detect(root: &Path) -> Self {
        let mut peers = Self::default();
        let classes = root.join("target/bench/curator");
        let jars_missing: Vec<&str> = CURATOR_JARS
            .iter()
            .copied()
            .filter(|j| !Path::new(JAVA_LIB).join(j).is_file())
            .collect();
        match on_path("java") {
            None => peers
                .missing
                .push("Curator: no `java` on PATH (run `scripts/bench-setup`)".into()),
            Some(_) if !jars_missing.is_empty() => peers.missing.push(format!(
                "Curator: {} missing in {JAVA_LIB} (run `scripts/bench-setup`)",
                jars_missing.join(", ")
            )),
            Some(_) if !classes.join("CuratorBench.class").is_file() => {
                peers.missing.push(format!(
                    "Curator: the peer program is not compiled ({} has no CuratorBench.class; \
                     run `scripts/bench-setup`)",
                    classes.display()
                ))
            }
            Some(java) => {
                let mut cp = vec![classes.display().to_string()];
                cp.extend(CURATOR_JARS.iter().map(|j| format!("{JAVA_LIB}/{j}")));
                peers.curator = Some(Peer {
                    name: "curator",
                    program: java,
                    args: vec![
                        "-Xms64m".into(),
                        "-Xmx1g".into(),
                        "-cp".into(),
                        cp.join(":"),
                        "CuratorBench".into(),
                    ],
                });
            }
        }
        let script = root.join("bench/kazoo/kazoo_bench.py");
        match on_path("python3") {
            None => peers.missing.push("kazoo: no `python3` on PATH".into()),
            Some(python) => {
                let has_kazoo = Command::new(&python)
                    .args(["-c", "import kazoo"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .is_ok_and(|s| s.success());
                if !has_kazoo {
                    peers.missing.push(
                        "kazoo: the `kazoo` module is not installed for `python3` \
                         (run `scripts/bench-setup`)"
                            .into(),
                    );
                } else if !script.is_file() {
                    peers
                        .missing
                        .push(format!("kazoo: {} is missing", script.display()));
                } else {
                    peers.kazoo = Some(Peer {
                        name: "kazoo",
                        program: python,
                        args: vec![script.display().to_string()],
                    });
                }
            }
        }
        peers
    }

    /// The peers present.
    pub fn present(&self) -> Vec<&Peer> {
        self.curator.iter().chain(self.kazoo.iter()).collect()
    }

    /// A note for the report on the peers that are missing, if any.
    pub fn missing_note(&self) -> Option<String> {
        (!self.missing.is_empty()).then(|| {
            format!(
                "Peers skipped: {}. Their rows are absent from this report.",
                self.missing.join("; ")
            )
        })
    }
}

impl Peer {
    /// Runs `scenario` with `args` against `connect` and returns its result lines; fails if the
    /// program fails or runs longer than `timeout`.
    pub async fn run(
        &self,
        scenario: &str,
        connect: &str,
        args: &[(&str, String)],
        timeout: Duration,
    ) -> anyhow::Result<Vec<PeerResult>> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .arg(scenario)
            .args(["--connect", connect])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in args {
            cmd.arg(format!("--{k}")).arg(v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting the {} peer", self.name))?;
        let stdout = child.stdout.take().context("peer stdout")?;
        let stderr = child.stderr.take().context("peer stderr")?;
        let err_task = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut tail: Vec<String> = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                tail.push(line);
                if tail.len() > 40 {
                    tail.remove(0);
                }
            }
            tail
        });
        let work = async {
            let mut out = Vec::new();
            let mut lines = BufReader::new(stdout).lines();
            while let Some(line) = lines.next_line().await? {
                if line.trim_start().starts_with('{') {
                    out.push(
                        serde_json::from_str::<PeerResult>(&line)
                            .with_context(|| format!("{} printed {line:?}", self.name))?,
                    );
                }
            }
            let status = child.wait().await?;
            anyhow::Ok((out, status))
        };
        let (out, status) = match tokio::time::timeout(timeout, work).await {
            Ok(r) => r?,
            Err(_) => bail!("the {} peer ran longer than {timeout:?}", self.name),
        };
        let tail = err_task.await.unwrap_or_default();
        if !status.success() {
            bail!(
                "the {} peer ({scenario}) exited with {status}: {}",
                self.name,
                tail.join(" | ")
            );
        }
        Ok(out)
    }
}
