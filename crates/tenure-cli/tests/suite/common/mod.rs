//! Helpers for running the `tenure` binary in tests: output lines as they come, waited on with
//! deadlines (never a bare sleep), and a minimal HTTP GET for the metrics endpoint.

#![allow(dead_code, clippy::unwrap_used)]

pub mod kubernetes;

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a test waits for an expected line before failing.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The binary under test.
pub fn tenure() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tenure"));
    c.env_remove("RUST_LOG");
    // Operator commands read Flink's conf dir from here: the tests say what they connect to.
    c.env_remove("FLINK_CONF_DIR");
    c
}

/// Runs `tenure args…` to completion off the async runtime's threads.
pub async fn tenure_async(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || tenure().args(&args).output().unwrap())
        .await
        .unwrap()
}

/// Runs `tenure args…` to completion.
pub fn run(args: &[&str]) -> std::process::Output {
    tenure().args(args).output().expect("run tenure")
}

/// stdout as JSON.
pub fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// stderr as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code and a one-line error on stderr containing `needle`.
pub fn assert_error(out: &std::process::Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert!(err.starts_with("tenure: error: "), "{err}");
}

/// Lines of a child's pipe, read by a thread as they arrive.
pub struct Lines {
    rx: mpsc::Receiver<String>,
    /// Every line seen so far.
    pub seen: Vec<String>,
}

impl Lines {
    /// Starts reading `pipe`.
    pub fn new(pipe: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for the next line matching `pred`, up to [`DEADLINE`].
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {what} within {DEADLINE:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the next JSON line whose `event` field is `event`.
    pub fn wait_event(&mut self, event: &str) -> serde_json::Value {
        let line = self.wait_for(event, |l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["event"] == event)
                .unwrap_or(false)
        });
        serde_json::from_str(&line).unwrap()
    }

    /// Reads until the pipe closes; returns every line seen.
    pub fn drain(&mut self) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.seen.clone(),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("pipe not closed within {DEADLINE:?}")
                }
            }
        }
    }
}

/// A spawned `tenure` with piped stdout and stderr.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Its stdout.
    pub stdout: Lines,
    /// Its stderr.
    pub stderr: Lines,
}

impl Running {
    /// Spawns `tenure args…`.
    pub fn spawn(args: &[&str]) -> Self {
        let mut child = tenure()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tenure");
        let stdout = Lines::new(child.stdout.take().unwrap());
        let stderr = Lines::new(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Sends `signal` (`-TERM`, `-INT`, ...) to the process, by its id.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, up to [`DEADLINE`]; returns its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "tenure did not exit within {DEADLINE:?}"
            );
            std::thread::park_timeout(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET path` on `addr`; returns the status line and the body.
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// The address from `tenure: metrics on http://ADDR/metrics` on stderr.
pub fn metrics_addr(stderr: &mut Lines) -> String {
    let line = stderr.wait_for("the metrics address", |l| l.contains("metrics on http://"));
    line.split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap()
        .to_owned()
}

/// `tenure run --component dispatcher` on the embedded backend with a metrics endpoint on a
/// free port, running `sleep 60` once it leads: the running process and the endpoint's address.
pub fn dispatcher_serving_metrics() -> (Running, String) {
    let mut t = Running::spawn(&[
        "--ha-type",
        "none",
        "run",
        "--component",
        "dispatcher",
        "--metrics-addr",
        "127.0.0.1:0",
        "--output",
        "json",
        "--",
        "sleep",
        "60",
    ]);
    let addr = metrics_addr(&mut t.stderr);
    t.stderr.wait_event("started");
    (t, addr)
}

/// Every file below `dir` (recursively; a missing directory has none).
pub fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
