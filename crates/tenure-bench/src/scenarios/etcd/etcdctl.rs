//! The peer: `etcdctl elect` (Debian's `etcd-client` package), which campaigns with Go's
//! `go.etcd.io/etcd/clientv3/concurrency` package: a session (a lease of 60 s, fixed in
//! etcdctl 3.4: `elect` has no TTL flag), `Election.Campaign` (a create-if-absent transaction,
//! then a read of the newest earlier key and a watch of its deletion, repeated), then a read
//! of its own key, which it prints (key line, then value line). On SIGINT it resigns (a
//! transaction deleting its key) and exits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::child::Spawned;

/// The etcdctl of the Debian package `etcd-client`.
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// The lease TTL of `etcdctl elect`'s session (Go's `concurrency.NewSession` default).
pub const ETCDCTL_TTL: Duration = Duration::from_secs(60);

/// An installed etcdctl.
#[derive(Clone, Debug)]
pub struct Etcdctl {
    program: PathBuf,
    /// `etcdctl version`'s first line.
    pub version: String,
}

impl Etcdctl {
    /// The etcdctl of this machine, or why there is none.
    pub async fn detect() -> Result<Self, String> {
        let program = Path::new(ETCDCTL);
        if !program.is_file() {
            return Err(format!(
                "etcdctl not run: {ETCDCTL} is missing (Debian package `etcd-client`)"
            ));
        }
        let out = tokio::process::Command::new(program)
            .arg("version")
            .env("ETCDCTL_API", "3")
            .output()
            .await
            .map_err(|e| format!("etcdctl not run: `{ETCDCTL} version` failed: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .lines()
            .next()
            .map(|l| l.trim_start_matches("etcdctl version:").trim().to_owned())
            .unwrap_or_default();
        Ok(Self {
            program: program.to_path_buf(),
            version,
        })
    }

    fn command(&self, endpoint: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.program);
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .arg("--dial-timeout=10s")
            .arg("--command-timeout=10s");
        c
    }

    /// `etcdctl elect <name> <proposal>`: campaigns, prints its key once it leads, and holds
    /// the leadership until SIGINT (it resigns) or SIGKILL.
    pub fn elect(&self, endpoint: &str, name: &str, proposal: &str) -> anyhow::Result<Spawned> {
        let mut c = self.command(endpoint);
        c.args(["elect", name, proposal]);
        Spawned::spawn(c).context("starting etcdctl elect")
    }

    /// `etcdctl get <key>`: one read, printed.
    pub fn get(&self, endpoint: &str, key: &str) -> anyhow::Result<Spawned> {
        let mut c = self.command(endpoint);
        c.args(["get", key]);
        Spawned::spawn(c).context("starting etcdctl get")
    }
}

/// The lease id in an `etcdctl elect` key (`<name>/<lease hex>`).
pub fn lease_of(key: &str) -> Option<i64> {
    let hex = key.rsplit('/').next()?;
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_the_last_segment_in_hex() {
        assert_eq!(
            lease_of("e/x/390da23aba7ba507"),
            Some(0x390d_a23a_ba7b_a507)
        );
        assert_eq!(lease_of("e/x/zz"), None);
    }
}
