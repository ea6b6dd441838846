//! Flink 1.20's Curator client options as the session uses them:
//! `client.authorization` (extra `addAuth` entries of every new session),
//! `client.simulated-session-expiration-percent` (when a disconnected session is declared lost)
//! and `client.max-close-wait` (how long closing waits), with their checks.

use std::time::Duration;

use tenure_core::config::zookeeper_client::{
    AUTHORIZATION_KEY, MAX_CLOSE_WAIT_KEY, SIMULATED_EXPIRATION_KEY,
};
use zookeeper_client as zk;

use crate::settings::{ConnectError, ZooKeeperSettings};

/// Checks the options; errors name the Flink key.
pub(crate) fn validate(settings: &ZooKeeperSettings) -> Result<(), ConnectError> {
    if !(1..=100).contains(&settings.simulated_expiration_percent) {
        return Err(ConnectError::InvalidConfig {
            key: SIMULATED_EXPIRATION_KEY,
            reason: format!(
                "{} is not a percentage from 1 to 100",
                settings.simulated_expiration_percent
            ),
        });
    }
    if settings.max_close_wait.is_zero() {
        return Err(ConnectError::InvalidConfig {
            key: MAX_CLOSE_WAIT_KEY,
            reason: "must be positive".into(),
        });
    }
    if let Some(n) = settings
        .authorization
        .iter()
        .position(|a| a.scheme.is_empty() || a.auth.is_empty())
    {
        return Err(ConnectError::InvalidConfig {
            key: AUTHORIZATION_KEY,
            reason: format!("entry {} needs a scheme and non-empty credentials", n + 1),
        });
    }
    Ok(())
}

/// `connector` with every `client.authorization` entry added as an `addAuth`.
pub(crate) fn with_authorization(
    mut connector: zk::Connector,
    settings: &ZooKeeperSettings,
) -> zk::Connector {
    for a in &settings.authorization {
        connector = connector.with_auth(&a.scheme, a.auth.as_bytes());
    }
    connector
}

/// The key whose credentials a refused session names: `client.digest` when set, else
/// `client.authorization` when it has entries (the digest otherwise, as before).
pub(crate) fn credentials_key(settings: &ZooKeeperSettings) -> &'static str {
    if settings.digest_auth.is_none() && !settings.authorization.is_empty() {
        AUTHORIZATION_KEY
    } else {
        "high-availability.zookeeper.client.digest"
    }
}

/// How long a session with the negotiated `session_timeout` may stay disconnected before it is
/// declared lost: `percent` of the timeout (Curator's simulated session expiration).
pub(crate) fn simulated_expiry(session_timeout: Duration, percent: u8) -> Duration {
    session_timeout * u32::from(percent.clamp(1, 100)) / 100
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_is_the_share_of_the_negotiated_timeout() {
        let t = Duration::from_secs(10);
        assert_eq!(simulated_expiry(t, 100), t);
        assert_eq!(simulated_expiry(t, 40), Duration::from_secs(4));
        assert_eq!(simulated_expiry(t, 1), Duration::from_millis(100));
    }

    #[test]
    fn refused_credentials_name_the_key_that_set_them() {
        let s = ZooKeeperSettings::new("h:1", "/flink", "c");
        assert_eq!(
            credentials_key(&s.clone().with_authorization("digest", "u:p")),
            AUTHORIZATION_KEY
        );
        assert_eq!(
            credentials_key(
                &s.with_acl(tenure_core::config::ZooKeeperAcl::Open, Some("u:p".into()))
            ),
            "high-availability.zookeeper.client.digest"
        );
    }

    #[test]
    fn invalid_options_name_their_key() {
        let s = || ZooKeeperSettings::new("h:1", "/flink", "c");
        let key = |s: ZooKeeperSettings| match s.validate().unwrap_err() {
            ConnectError::InvalidConfig { key, .. } => key,
            other => panic!("{other}"),
        };
        assert_eq!(
            key(s().with_simulated_expiration_percent(0)),
            SIMULATED_EXPIRATION_KEY
        );
        assert_eq!(
            key(s().with_simulated_expiration_percent(101)),
            SIMULATED_EXPIRATION_KEY
        );
        assert_eq!(
            key(s().with_max_close_wait(Duration::ZERO)),
            MAX_CLOSE_WAIT_KEY
        );
        assert_eq!(key(s().with_authorization("digest", "")), AUTHORIZATION_KEY);
        s().with_authorization("digest", "u:p").validate().unwrap();
        // A digest entry authenticates the creator ACL as client.digest does.
        s().with_acl(tenure_core::config::ZooKeeperAcl::Creator, None)
            .with_authorization("digest", "u:p")
            .validate()
            .unwrap();
    }
}
