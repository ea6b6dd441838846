//! Exit codes and one-line error reports.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | any other failure (an HA invariant broke in `demo`, I/O) |
//! | 2 | bad arguments or configuration; a destructive command without `--yes` |
//! | 3 | the job, checkpoint, result or other entry named does not exist |
//! | 4 | the backend is unreachable (or the session was closed under us) |
//! | 5 | not leader, or refused because a live leader or contender would race the write |
//! | 6 | corrupt or unreadable HA data (read views print everything first, then exit 6) |
//! | 7 | authentication or authorization failed (credentials refused, or an ACL denies them) |

use std::process::ExitCode;

use tenure::blob::BlobError;
use tenure::election::ElectionError;
use tenure::kv::KvError;
use tenure::store::StoreError;
use tenure::{ConnectError, HaError};

/// An error that ends the command, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The entry named does not exist (exit 3).
    #[error("{0}")]
    NotFound(String),
    /// The backend cannot be reached (exit 4).
    #[error("{0}")]
    Unreachable(String),
    /// Not leader, or refused because a live leader would race the write (exit 5).
    #[error("{0}")]
    Refused(String),
    /// Corrupt or unreadable HA data (exit 6).
    #[error("{0}")]
    Corrupt(String),
    /// The backend refused the credentials, or an ACL denies them the access (exit 7).
    #[error("{0}")]
    Unauthorized(String),
    /// Anything else (exit 1).
    #[error("{0}")]
    Other(String),
}

/// Exit code of a successful run.
pub const OK: u8 = 0;
/// Exit code when an HA invariant broke or the command failed.
pub const FAILED: u8 = 1;
/// Exit code for bad arguments or configuration.
pub const USAGE: u8 = 2;
/// Exit code when the entry named does not exist.
pub const NOT_FOUND: u8 = 3;
/// Exit code when the backend is unreachable.
pub const UNREACHABLE: u8 = 4;
/// Exit code when not leader, or refused because a live leader would race.
pub const REFUSED: u8 = 5;
/// Exit code when HA data is corrupt or unreadable.
pub const CORRUPT: u8 = 6;
/// Exit code when authentication or authorization failed.
pub const UNAUTHORIZED: u8 = 7;

impl CliError {
    /// The exit code.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => USAGE,
            CliError::NotFound(_) => NOT_FOUND,
            CliError::Unreachable(_) => UNREACHABLE,
            CliError::Refused(_) => REFUSED,
            CliError::Corrupt(_) => CORRUPT,
            CliError::Unauthorized(_) => UNAUTHORIZED,
            CliError::Other(_) => FAILED,
        }
    }

    /// Prints the one-line error to stderr and returns the exit code.
    pub fn report(&self) -> ExitCode {
        let text = self.to_string().replace('\n', " ");
        eprintln!("tenure: error: {text}");
        ExitCode::from(self.code())
    }

    /// Ends a read view that printed corrupt or unreadable entries (`found`, each naming its
    /// key and the problem): one line on stderr, exit 6; exit 0 when `found` is empty.
    pub fn corrupt_found(found: &[String]) -> u8 {
        if found.is_empty() {
            return OK;
        }
        CliError::Corrupt(format!(
            "corrupt or unreadable HA data ({} entr{}): {}",
            found.len(),
            if found.len() == 1 { "y" } else { "ies" },
            found.join("; ")
        ))
        .report();
        CORRUPT
    }

    /// The error of a KV operation, prefixed with what was being done.
    pub fn kv(context: &str, e: KvError) -> Self {
        let msg = format!("{context}: {e}");
        match e {
            KvError::NotFound { .. } => CliError::NotFound(msg),
            KvError::NotLeader { .. } => CliError::Refused(msg),
            KvError::Backend(_) | KvError::Client { .. } | KvError::Closed => {
                CliError::Unreachable(msg)
            }
            KvError::InvalidKey { .. } => CliError::Usage(msg),
            KvError::Corrupt { .. } => CliError::Corrupt(msg),
            KvError::Unauthorized { .. } => CliError::Unauthorized(msg),
            _ => CliError::Other(msg),
        }
    }

    /// The error of a store operation, prefixed with what was being done.
    pub fn store(context: &str, e: StoreError) -> Self {
        match e {
            StoreError::Kv(kv) => Self::kv(context, kv),
            StoreError::Blob(b) => Self::blob(context, b),
            StoreError::NotFound(_) => CliError::NotFound(format!("{context}: {e}")),
            StoreError::InvalidArgument(_) => CliError::Usage(format!("{context}: {e}")),
            StoreError::Corrupt { .. } => CliError::Corrupt(format!("{context}: {e}")),
            other => CliError::Other(format!("{context}: {other}")),
        }
    }

    /// The error of a blob store operation, prefixed with what was being done.
    pub fn blob(context: &str, e: BlobError) -> Self {
        let msg = format!("{context}: {e}");
        match e {
            BlobError::NotFound(_) => CliError::NotFound(msg),
            BlobError::InvalidLocation { .. } => CliError::Usage(msg),
            _ => CliError::Other(msg),
        }
    }

    /// The error of an election, prefixed with what was being done.
    pub fn election(context: &str, e: ElectionError) -> Self {
        match e {
            ElectionError::Backend(kv) => Self::kv(context, kv),
            ElectionError::Closed => CliError::Unreachable(format!("{context}: {e}")),
            other => CliError::Other(format!("{context}: {other}")),
        }
    }

    /// The error of connecting a backend, prefixed with what was being done: a bad setting is
    /// a usage error (exit 2), refused credentials exit 7, anything else is unreachable (exit 4).
    pub fn connect(context: &str, e: ConnectError) -> Self {
        let msg = format!("{context}: {e}");
        match e {
            ConnectError::InvalidConfig { .. } => CliError::Usage(msg),
            ConnectError::AuthFailed { .. } | ConnectError::Tls { .. } => {
                CliError::Unauthorized(msg)
            }
            ConnectError::NoClientConfig { .. } | ConnectError::Unreachable { .. } => {
                CliError::Unreachable(msg)
            }
        }
    }

    /// The error of the HA services as a whole, prefixed with what was being done.
    pub fn ha(context: &str, e: HaError) -> Self {
        match e {
            HaError::Config(c) => CliError::Usage(format!("{context}: {c}")),
            HaError::Unsupported(m) => CliError::Usage(format!("{context}: {m}")),
            HaError::Connect(c) => Self::connect(context, c),
            HaError::Kv(kv) => Self::kv(context, kv),
            HaError::Blob(b) => Self::blob(context, b),
            HaError::Store(s) => Self::store(context, s),
            HaError::Election(el) => Self::election(context, el),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_their_exit_codes() {
        let backend = CliError::kv("listing", KvError::Backend("connection refused".into()));
        assert_eq!(backend.code(), UNREACHABLE);
        assert!(backend.to_string().starts_with("listing: "));
        let nf = CliError::store("reading", StoreError::NotFound("job graph x".into()));
        assert_eq!(nf.code(), NOT_FOUND);
        let nl = CliError::store(
            "writing",
            StoreError::Kv(KvError::NotLeader {
                token: tenure::kv::FencingToken::new("leader/latch", 3),
            }),
        );
        assert_eq!(nl.code(), REFUSED);
        let cfg = CliError::ha("connecting", HaError::Unsupported("no zookeeper".into()));
        assert_eq!(cfg.code(), USAGE);
        let down = CliError::ha(
            "connecting",
            HaError::Connect(ConnectError::Unreachable {
                service: "ZooKeeper",
                address: "zk1:2181".into(),
                attempts: 4,
                limit: None,
                source: "no session".into(),
            }),
        );
        assert_eq!(down.code(), UNREACHABLE);
        let no_config = CliError::ha(
            "connecting",
            HaError::Connect(ConnectError::NoClientConfig {
                service: "Kubernetes",
                origin: None,
                source: "no kubeconfig".into(),
            }),
        );
        assert_eq!(no_config.code(), UNREACHABLE);
        let setting = CliError::ha(
            "connecting",
            HaError::Connect(ConnectError::InvalidConfig {
                key: "high-availability.zookeeper.quorum",
                reason: "not set".into(),
            }),
        );
        assert_eq!(setting.code(), USAGE);
        assert!(
            setting.to_string().contains("zookeeper.quorum"),
            "{setting}"
        );
        assert_eq!(CliError::Other("x".into()).code(), FAILED);
    }

    #[test]
    fn corrupt_data_and_refused_credentials_have_their_own_codes() {
        let kv = CliError::kv(
            "reading",
            KvError::Corrupt {
                key: "k".into(),
                reason: "bad".into(),
            },
        );
        assert_eq!(kv.code(), CORRUPT);
        let store = CliError::store(
            "reading",
            StoreError::Corrupt {
                key: "k".into(),
                reason: "bad".into(),
            },
        );
        assert_eq!(store.code(), CORRUPT);
        let nested = CliError::ha(
            "reading",
            HaError::Store(StoreError::Kv(KvError::Corrupt {
                key: "k".into(),
                reason: "bad".into(),
            })),
        );
        assert_eq!(nested.code(), CORRUPT);
        let denied = CliError::store(
            "reading",
            StoreError::Kv(KvError::Unauthorized {
                key: "jobs/x".into(),
                reason: "check high-availability.zookeeper.client.digest".into(),
            }),
        );
        assert_eq!(denied.code(), UNAUTHORIZED);
        assert!(denied.to_string().contains("client.digest"), "{denied}");
        let refused = CliError::ha(
            "connecting",
            HaError::Connect(ConnectError::AuthFailed {
                service: "ZooKeeper",
                address: "zk1:2181".into(),
                setting: "high-availability.zookeeper.client.digest",
                source: "AuthFailed".into(),
            }),
        );
        assert_eq!(refused.code(), UNAUTHORIZED);
        let untrusted = CliError::ha(
            "connecting",
            HaError::Connect(ConnectError::Tls {
                service: "ZooKeeper",
                address: "zk1:2281".into(),
                source: "certificate verification failed".into(),
            }),
        );
        assert_eq!(untrusted.code(), UNAUTHORIZED);
        assert!(untrusted.to_string().contains("zk1:2281"), "{untrusted}");
        let election = CliError::election(
            "campaigning",
            ElectionError::Backend(KvError::Unauthorized {
                key: "leader/latch".into(),
                reason: "r".into(),
            }),
        );
        assert_eq!(election.code(), UNAUTHORIZED);
        assert_eq!(CliError::corrupt_found(&[]), OK);
        assert_eq!(CliError::corrupt_found(&["k: bad".into()]), CORRUPT);
    }
}
