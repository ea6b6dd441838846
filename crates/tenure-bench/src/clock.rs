//! Time and memory readings: a monotonic clock that is the same in every process of the machine
//! (so a child process's timestamps compare with ours), and the resident set size.

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// `CLOCK_MONOTONIC` in nanoseconds: the clock `System.nanoTime()` (Java) and
/// `time.monotonic_ns()` (Python) read on Linux, comparable across processes.
pub fn mono_ns() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => (ts.tv_sec() as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec() as u64),
        Err(_) => 0,
    }
}

/// Nanoseconds from `from` to `to` (both [`mono_ns`]) as microseconds.
pub fn us_between(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1_000.0
}

/// Microseconds from `from` to `to` (both [`mono_ns`]), negative if `to` came first: for two
/// observers' moments, either of which may be seen first.
pub fn us_signed(from: u64, to: u64) -> f64 {
    (i128::from(to) - i128::from(from)) as f64 / 1_000.0
}

/// A duration in microseconds.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// This process's resident set size in bytes (`VmRSS` of `/proc/self/status`), if known.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())?;
    Some(kib * 1024)
}
