//! etcd client errors as [`KvError`]s.

use etcd_client::Error;
use tenure_core::config::etcd_security::USERNAME_KEY;
use tenure_core::kv::{ClientError, KvError};

/// The client's error on `key` while doing `what`, kept whole as the source. A refusal by
/// etcd's RBAC (the user's roles do not cover the key) is [`KvError::Unauthorized`].
pub(crate) fn client_error(e: Error, key: &str, what: &str) -> KvError {
    if let Error::GRpcStatus(status) = &e
        && (status.code() == tonic::Code::PermissionDenied || crate::auth::is_refused(&e))
    {
        return KvError::Unauthorized {
            key: key.to_owned(),
            reason: format!(
                "etcd {what} refused ({}): the roles of {USERNAME_KEY} must grant readwrite \
                 on the cluster's prefix",
                status.message()
            ),
        };
    }
    KvError::Client {
        key: key.to_owned(),
        context: format!("etcd {what} failed: {e}"),
        source: ClientError::new(e),
    }
}

/// A request that got no answer within `timeout`.
pub(crate) fn timed_out(key: &str, what: &str, timeout: std::time::Duration) -> KvError {
    KvError::OutcomeUnknown {
        key: key.to_owned(),
        reason: format!("etcd {what} got no answer within {timeout:?}"),
    }
}
