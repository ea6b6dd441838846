//! A ZooKeeper ensemble for tests: several real servers on loopback forming one quorum.
//!
//! [`ZooKeeperEnsemble::start`] runs `n` servers of the Debian `zookeeper` package (the same
//! JVM command, settings and short tick as [`ZooKeeperServer`](crate::zookeeper::ZooKeeperServer))
//! with free loopback ports for the client, quorum and election ports of each, a `myid` file and
//! `server.N=127.0.0.1:<quorum>:<election>` lines, and waits until every server serves as leader
//! or follower. Servers are addressed by their index `0..n` (their `myid` is `index + 1`); each
//! can be killed ([`ZooKeeperEnsemble::kill`], SIGKILL by process id) and restarted on the same
//! ports and data ([`ZooKeeperEnsemble::restart`]). Every server is killed when the ensemble is
//! dropped.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tenure_testkit::ensemble::ZooKeeperEnsemble;
//!
//! let mut ensemble = ZooKeeperEnsemble::start(3).await;
//! let quorum = ensemble.connect_string(); // 127.0.0.1:a,127.0.0.1:b,127.0.0.1:c
//! let leader = ensemble.leader_index().await;
//! let follower = (0..3).find(|&i| i != leader).unwrap();
//! ensemble.kill(follower); // two of three still form a quorum
//! ensemble.restart(follower).await; // rejoins as a follower
//! # }
//! ```

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use crate::ports::server_port;
use crate::zookeeper::{
    START_DEADLINE, check_installed, four_letter_word_within, kill_child, log_tail, signal_pid,
    spawn_server, wait_answer, zoo_cfg,
};

/// What a server of the ensemble does, as its `srvr` answer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The quorum's leader.
    Leader,
    /// A follower of the leader.
    Follower,
}

/// One server of the ensemble.
#[derive(Debug)]
struct Node {
    client_port: u16,
    quorum_port: u16,
    election_port: u16,
    child: Option<Child>,
}

/// `n` ZooKeeper servers on loopback forming one quorum. Dropping it kills every server.
#[derive(Debug)]
pub struct ZooKeeperEnsemble {
    dir: tempfile::TempDir,
    /// Whether the `server.N` lines also name the client address (`;127.0.0.1:<client>`), so
    /// that `/zookeeper/config` lists every server's client address.
    advertise_clients: bool,
    nodes: Vec<Node>,
}

/// The role in a `srvr` answer, if the server serves.
fn parse_role(srvr: &str) -> Option<Role> {
    srvr.lines()
        .find_map(|l| l.strip_prefix("Mode:"))
        .and_then(|m| match m.trim() {
            "leader" => Some(Role::Leader),
            "follower" => Some(Role::Follower),
            _ => None,
        })
}

impl ZooKeeperEnsemble {
    /// Starts `size` servers (3 for the usual ensemble) on free loopback ports with fresh data
    /// directories and waits until each serves as leader or follower. Panics, with the servers'
    /// logs, if they do not within [`START_DEADLINE`].
    pub async fn start(size: usize) -> Self {
        Self::start_with(size, false).await
    }

    /// As [`start`](Self::start), with each `server.N` line naming its client address too
    /// (`server.N=127.0.0.1:<quorum>:<election>;127.0.0.1:<client>`): the ensemble's
    /// `/zookeeper/config` then lists the client addresses, which an ensemble tracker follows.
    pub async fn start_advertising_clients(size: usize) -> Self {
        Self::start_with(size, true).await
    }

    async fn start_with(size: usize, advertise_clients: bool) -> Self {
        assert!(size >= 1, "an ensemble needs at least one server");
        check_installed();
        let dir = tempfile::Builder::new()
            .prefix("tenure-zk-ensemble-")
            .tempdir()
            .expect("temporary directory");
        let mut ensemble = Self {
            dir,
            advertise_clients,
            nodes: Vec::new(),
        };
        let mut last = String::new();
        // A free port may be taken by someone else before a JVM binds it: try other ports.
        for _ in 0..3 {
            ensemble.nodes = (0..size)
                .map(|_| Node {
                    client_port: server_port(),
                    quorum_port: server_port(),
                    election_port: server_port(),
                    child: None,
                })
                .collect();
            match ensemble.launch_all().await {
                Ok(()) => return ensemble,
                Err(e) => {
                    last = e;
                    ensemble.kill_all();
                    // The next attempt starts from empty data directories.
                    for i in 0..size {
                        let _ = fs::remove_dir_all(ensemble.node_dir(i));
                    }
                }
            }
        }
        panic!("the ZooKeeper ensemble did not start: {last}");
    }

    fn node_dir(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("server{}", n + 1))
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.node_dir(n).join("zookeeper.log")
    }

    /// Writes node `n`'s `zoo.cfg` and `myid`; returns the configuration file.
    fn write_config(&self, n: usize) -> PathBuf {
        let data = self.node_dir(n).join("data");
        fs::create_dir_all(&data).expect("create the data directory");
        fs::write(data.join("myid"), format!("{}\n", n + 1)).expect("write myid");
        let mut text = zoo_cfg(&data, self.nodes[n].client_port);
        for (i, node) in self.nodes.iter().enumerate() {
            let client = if self.advertise_clients {
                format!(";127.0.0.1:{}", node.client_port)
            } else {
                String::new()
            };
            text.push_str(&format!(
                "server.{}=127.0.0.1:{}:{}{client}\n",
                i + 1,
                node.quorum_port,
                node.election_port
            ));
        }
        let cfg = self.node_dir(n).join("zoo.cfg");
        fs::write(&cfg, text).expect("write zoo.cfg");
        cfg
    }

    fn spawn(&mut self, n: usize) -> Result<(), String> {
        let cfg = self.write_config(n);
        self.nodes[n].child = Some(spawn_server(&cfg, &self.log_path(n))?);
        Ok(())
    }

    /// Waits until node `n` serves as leader or follower.
    async fn wait_serving(&mut self, n: usize) -> Result<(), String> {
        let log_path = self.log_path(n);
        let node = &mut self.nodes[n];
        wait_answer(&mut node.child, node.client_port, &log_path, "srvr", |a| {
            parse_role(a).is_some()
        })
        .await
        .map_err(|e| format!("server {} (index {n}): {e}", n + 1))
    }

    async fn launch_all(&mut self) -> Result<(), String> {
        for n in 0..self.nodes.len() {
            self.spawn(n)?;
        }
        for n in 0..self.nodes.len() {
            self.wait_serving(n).await?;
        }
        Ok(())
    }

    fn kill_all(&mut self) {
        for node in &mut self.nodes {
            kill_child(&mut node.child);
        }
    }

    /// The number of servers.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the ensemble has no servers (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The quorum string of every server, `127.0.0.1:<port>,...` in index order.
    pub fn connect_string(&self) -> String {
        self.connect_string_of(&(0..self.nodes.len()).collect::<Vec<_>>())
    }

    /// The quorum string of the servers `indices` only (to pin a client to some servers).
    pub fn connect_string_of(&self, indices: &[usize]) -> String {
        indices
            .iter()
            .map(|&i| format!("127.0.0.1:{}", self.nodes[i].client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client port of server `n`.
    pub fn client_port(&self, n: usize) -> u16 {
        self.nodes[n].client_port
    }

    /// The client address of server `n`, `127.0.0.1:<port>`.
    pub fn addr(&self, n: usize) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.nodes[n].client_port))
    }

    /// The process id of server `n` while it runs.
    pub fn pid(&self, n: usize) -> Option<u32> {
        self.nodes[n].child.as_ref().map(Child::id)
    }

    /// Whether server `n`'s process runs.
    pub fn is_running(&mut self, n: usize) -> bool {
        self.nodes[n]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills server `n` (SIGKILL of its process, by id). Its data stays for [`Self::restart`].
    pub fn kill(&mut self, n: usize) {
        kill_child(&mut self.nodes[n].child);
    }

    /// Freezes server `n` (SIGSTOP): its connections stay open and nothing is answered.
    pub fn pause(&self, n: usize) {
        signal_pid(self.pid(n).expect("the server is running"), "-STOP");
    }

    /// Continues server `n` after [`Self::pause`] (SIGCONT).
    pub fn resume(&self, n: usize) {
        signal_pid(self.pid(n).expect("the server is running"), "-CONT");
    }

    /// Starts server `n` again (killing it first if it runs) on the same ports with the same
    /// data, and waits until it serves as leader or follower again.
    pub async fn restart(&mut self, n: usize) {
        self.kill(n);
        let started = match self.spawn(n) {
            Ok(()) => self.wait_serving(n).await,
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            self.kill(n);
            panic!("ZooKeeper server {} did not restart: {e}", n + 1);
        }
    }

    /// Server `n`'s role now (one `srvr` query), `None` if it does not run or does not serve.
    pub async fn role(&self, n: usize) -> Option<Role> {
        four_letter_word_within(self.nodes[n].client_port, "srvr", Duration::from_secs(2))
            .await
            .ok()
            .and_then(|a| parse_role(&a))
    }

    /// The index of the quorum's leader: waits (polling `srvr`, at most [`START_DEADLINE`])
    /// until exactly one server says it leads and every other running server follows. Panics,
    /// with the logs, if that does not happen.
    pub async fn leader_index(&mut self) -> usize {
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            let mut roles = Vec::new();
            for n in 0..self.nodes.len() {
                let role = if self.is_running(n) {
                    Some(self.role(n).await)
                } else {
                    None
                };
                roles.push(role);
            }
            let leaders: Vec<usize> = (0..roles.len())
                .filter(|&n| roles[n] == Some(Some(Role::Leader)))
                .collect();
            let all_serve = roles.iter().flatten().all(Option::is_some);
            if let [leader] = leaders[..]
                && all_serve
            {
                return leader;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "no single ZooKeeper leader within {START_DEADLINE:?}: roles {roles:?}; \
                     logs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The running followers, in index order (one `srvr` query each).
    pub async fn followers(&mut self) -> Vec<usize> {
        let mut out = Vec::new();
        for n in 0..self.nodes.len() {
            if self.is_running(n) && self.role(n).await == Some(Role::Follower) {
                out.push(n);
            }
        }
        out
    }

    /// Server `n`'s log so far (its last 64 KiB).
    pub fn log(&self, n: usize) -> String {
        log_tail(&self.log_path(n), 64 * 1024)
    }

    /// The tails of every server's log, for failure messages.
    pub fn logs(&self) -> String {
        (0..self.nodes.len())
            .map(|n| {
                format!(
                    "--- server {} ---\n{}",
                    n + 1,
                    log_tail(&self.log_path(n), 3000)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ZooKeeperEnsemble {
    fn drop(&mut self) {
        self.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_from_srvr() {
        let srvr = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\n\
                    Node count: 5\n";
        assert_eq!(parse_role(srvr), Some(Role::Follower));
        assert_eq!(parse_role("Mode: leader\n"), Some(Role::Leader));
        assert_eq!(parse_role("Mode: standalone\n"), None);
        assert_eq!(
            parse_role("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }
}
