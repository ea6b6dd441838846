//! Username/password authentication: the credentials of the settings, and which etcd errors
//! mean the server refused them.
//!
//! etcd answers `Authenticate` with a token that every request carries. etcd-client gets the
//! token when it connects and, with automatic refresh on (as here), authenticates again when a
//! request is refused for an expired token. etcd 3.4's simple tokens expire after
//! `--auth-token-ttl` (300 s) without use, and a watch opened with an expired token is
//! cancelled as "permission denied" rather than refused, so the session also uses the token at
//! every lease renewal (see the `session` module): it never idles out while the session lives.

use std::fmt;

use etcd_client::Error;
use tonic::Code;

/// An etcd user and its password. The password is hidden in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The etcd user (`high-availability.etcd.username`).
    pub username: String,
    password: String,
}

impl Credentials {
    /// The credentials of `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Whether `e` says the server refused the credentials (wrong user or password, auth not
/// enabled on the server while credentials were given, none given while auth is on) or the
/// user's token.
pub(crate) fn is_refused(e: &Error) -> bool {
    let Error::GRpcStatus(status) = e else {
        return false;
    };
    let message = status.message();
    match status.code() {
        Code::Unauthenticated => true,
        Code::InvalidArgument | Code::FailedPrecondition => {
            message.contains("authentication failed")
                || message.contains("authentication is not enabled")
                || message.contains("user name is empty")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::new("flink", "hunter2");
        let text = format!("{c:?}");
        assert!(
            !text.contains("hunter2") && text.contains("flink"),
            "{text}"
        );
    }

    #[test]
    fn refusals_are_told_apart() {
        let status = |code, msg: &str| Error::GRpcStatus(tonic::Status::new(code, msg));
        assert!(is_refused(&status(
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password"
        )));
        assert!(is_refused(&status(
            Code::FailedPrecondition,
            "etcdserver: authentication is not enabled"
        )));
        assert!(is_refused(&status(
            Code::Unauthenticated,
            "etcdserver: invalid auth token"
        )));
        assert!(!is_refused(&status(
            Code::Unavailable,
            "connection refused"
        )));
        assert!(!is_refused(&status(
            Code::InvalidArgument,
            "etcdserver: key is not provided"
        )));
    }
}
