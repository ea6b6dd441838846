//! Mapping of ZooKeeper client errors to the KV's errors.

use tenure_core::kv::{ClientError, KvError};
use zookeeper_client as zk;

/// Whether the operation wrote (its outcome matters when the connection drops).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
}

/// Whether `e` is a definite answer: the server refused the request (nothing was written) or
/// it was never sent (session expired or closed before). Anything else (connection lost, no
/// response in time, I/O errors) leaves a write's outcome unknown.
pub(crate) fn is_definite(e: &zk::Error) -> bool {
    matches!(
        e,
        zk::Error::NoNode
            | zk::Error::NoAuth
            | zk::Error::BadVersion
            | zk::Error::NoChildrenForEphemerals
            | zk::Error::NodeExists
            | zk::Error::NotEmpty
            | zk::Error::InvalidAcl
            | zk::Error::AuthFailed
            | zk::Error::SessionMoved
            | zk::Error::SessionExpired
            | zk::Error::ClientClosed
            | zk::Error::NotReadOnly
            | zk::Error::NoWatcher
            | zk::Error::QuotaExceeded
            | zk::Error::Throttled
            | zk::Error::MarshallingError
            | zk::Error::Unimplemented
            | zk::Error::ReconfigDisabled
            | zk::Error::RuntimeInconsistent
            | zk::Error::BadArguments(_)
            | zk::Error::UnexpectedErrorCode(_)
    )
}

/// Maps a client error for `key`. `BadVersion` needs the versions and is mapped by the caller;
/// here it becomes a generic backend message.
pub(crate) fn map(e: zk::Error, key: &str, op: Op) -> KvError {
    let key_s = || key.to_owned();
    match e {
        zk::Error::NoNode => KvError::NotFound { key: key_s() },
        zk::Error::NodeExists => KvError::AlreadyExists { key: key_s() },
        zk::Error::NotEmpty => KvError::NotEmpty { key: key_s() },
        zk::Error::ClientClosed => KvError::Closed,
        zk::Error::SessionExpired => KvError::Backend(format!(
            "{key:?}: the ZooKeeper session expired; nothing was written (a new session is being opened)"
        )),
        zk::Error::BadArguments(reason) => KvError::InvalidKey {
            key: key_s(),
            reason: format!("not a valid znode path: {reason}"),
        },
        zk::Error::NoChildrenForEphemerals => KvError::Backend(format!(
            "{key:?}: its parent is an ephemeral znode, which cannot have children"
        )),
        zk::Error::NoAuth => KvError::Unauthorized {
            key: key_s(),
            reason: "ZooKeeper refused access (NoAuth): the znode's ACL grants nothing to this \
                     session's identity; the data was created with \
                     high-availability.zookeeper.client.acl: creator by another identity, so \
                     check high-availability.zookeeper.client.digest"
                .into(),
        },
        zk::Error::AuthFailed => KvError::Unauthorized {
            key: key_s(),
            reason: "ZooKeeper refused the credentials (AuthFailed); check \
                     high-availability.zookeeper.client.digest"
                .into(),
        },
        zk::Error::InvalidAcl => KvError::Unauthorized {
            key: key_s(),
            reason: "ZooKeeper refused the ACL (InvalidACL): \
                     high-availability.zookeeper.client.acl: creator needs an authenticated \
                     session, set high-availability.zookeeper.client.digest"
                .into(),
        },
        e if op == Op::Write && !is_definite(&e) => KvError::OutcomeUnknown {
            key: key_s(),
            reason: format!("the reply was lost with the ZooKeeper connection ({e})"),
        },
        zk::Error::ConnectionLoss => KvError::Client {
            key: key_s(),
            context: "reading: the ZooKeeper connection was lost".into(),
            source: ClientError::new(zk::Error::ConnectionLoss),
        },
        other => KvError::Client {
            key: key_s(),
            context: format!("ZooKeeper error: {other}"),
            source: ClientError::new(other),
        },
    }
}

/// Maps the error of a read (get, list, the first read of a watch) for `key`: as [`map`], but
/// an expired session is said to have failed a read, not a write.
pub(crate) fn map_read(e: zk::Error, key: &str) -> KvError {
    match e {
        e @ (zk::Error::SessionExpired | zk::Error::SessionMoved) => KvError::Client {
            key: key.to_owned(),
            context: "reading: the ZooKeeper session expired (a new session is being opened)"
                .into(),
            source: ClientError::new(e),
        },
        other => map(other, key, Op::Read),
    }
}

/// The error of a read of `key` that found no usable session for `waited`, the bound
/// `high-availability.zookeeper.client.connection-timeout` (`bound`); `last` is the read's
/// last failure.
pub(crate) fn read_gave_up(
    key: &str,
    last: zk::Error,
    waited: std::time::Duration,
    bound: std::time::Duration,
) -> KvError {
    let what = match last {
        zk::Error::SessionExpired | zk::Error::SessionMoved => {
            "a new ZooKeeper session after the session expired"
        }
        zk::Error::Timeout => "ZooKeeper's answer (the connection is down or the server slow)",
        _ => "the ZooKeeper connection to come back",
    };
    KvError::Client {
        key: key.to_owned(),
        context: format!(
            "reading: waited {waited:.1?} for {what}, up to \
             high-availability.zookeeper.client.connection-timeout ({bound:?}); nothing was read"
        ),
        source: ClientError::new(last),
    }
}

/// Whether `e` is about the session or the connection (retry once connected again) rather than
/// about the request.
pub(crate) fn is_transient(e: &zk::Error) -> bool {
    !is_definite(e)
        || matches!(
            e,
            zk::Error::SessionExpired | zk::Error::SessionMoved | zk::Error::Throttled
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_loss_on_a_write_is_outcome_unknown() {
        let e = map(zk::Error::ConnectionLoss, "jobs/x", Op::Write);
        assert!(
            matches!(e, KvError::OutcomeUnknown { ref key, .. } if key == "jobs/x"),
            "{e}"
        );
        let e = map(zk::Error::Timeout, "jobs/x", Op::Write);
        assert!(matches!(e, KvError::OutcomeUnknown { .. }), "{e}");
        let e = map(zk::Error::SessionExpired, "jobs/x", Op::Write);
        assert!(matches!(e, KvError::Backend(_)), "{e}");
        let e = map(zk::Error::ConnectionLoss, "jobs/x", Op::Read);
        assert!(
            matches!(e, KvError::Client { ref key, .. } if key == "jobs/x"),
            "{e}"
        );
        let source = std::error::Error::source(&e).expect("the client's error is kept");
        assert!(source.to_string().contains("connection"), "{source}");
        assert_eq!(map(zk::Error::ClientClosed, "k", Op::Read), KvError::Closed);
        assert!(map(zk::Error::NoNode, "k", Op::Read).is_not_found());
    }

    #[test]
    fn an_expired_session_fails_a_read_as_a_read() {
        let e = map_read(zk::Error::SessionExpired, "jobs/x");
        assert!(
            matches!(&e, KvError::Client { key, .. } if key == "jobs/x"),
            "{e}"
        );
        let text = e.to_string();
        assert!(text.contains("reading"), "{text}");
        assert!(!text.contains("written"), "{text}");
        let e = read_gave_up(
            "jobs/x",
            zk::Error::SessionExpired,
            std::time::Duration::from_millis(5004),
            std::time::Duration::from_secs(5),
        );
        let text = e.to_string();
        assert!(text.contains("reading: waited 5.0s"), "{text}");
        assert!(text.contains("connection-timeout (5s)"), "{text}");
        assert!(!text.contains("written"), "{text}");
        assert!(map_read(zk::Error::NoNode, "k").is_not_found());
    }

    #[test]
    fn auth_failures_are_unauthorized_naming_the_key_and_the_setting() {
        for e in [
            zk::Error::NoAuth,
            zk::Error::AuthFailed,
            zk::Error::InvalidAcl,
        ] {
            for op in [Op::Read, Op::Write] {
                let mapped = map(e.clone(), "jobs/x", op);
                assert!(
                    matches!(&mapped, KvError::Unauthorized { key, .. } if key == "jobs/x"),
                    "{mapped}"
                );
                assert!(
                    mapped
                        .to_string()
                        .contains("high-availability.zookeeper.client.digest"),
                    "{mapped}"
                );
            }
        }
    }
}
