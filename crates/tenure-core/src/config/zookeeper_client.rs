//! Flink's Curator client keys added in Flink 1.20 (FLINK-33376):
//! `high-availability.zookeeper.client.authorization`, `...client.max-close-wait` and
//! `...client.simulated-session-expiration-percent`, read strictly (errors name the key).

use std::fmt;
use std::time::Duration;

use super::{ConfigError, Configuration};

/// `high-availability.zookeeper.client.authorization`.
pub const AUTHORIZATION_KEY: &str = "high-availability.zookeeper.client.authorization";
/// `high-availability.zookeeper.client.max-close-wait`.
pub const MAX_CLOSE_WAIT_KEY: &str = "high-availability.zookeeper.client.max-close-wait";
/// `high-availability.zookeeper.client.simulated-session-expiration-percent`.
pub const SIMULATED_EXPIRATION_KEY: &str =
    "high-availability.zookeeper.client.simulated-session-expiration-percent";

/// Curator's default `maxCloseWaitMs` (Flink leaves the key unset): 1 s.
pub const DEFAULT_MAX_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Curator's default `simulatedSessionExpirationPercent` (Flink leaves the key unset): 100.
pub const DEFAULT_SIMULATED_EXPIRATION_PERCENT: u8 = 100;

/// One entry of `high-availability.zookeeper.client.authorization`: a scheme and its
/// credentials, sent to ZooKeeper as an `addAuth` when a session opens (Curator's `AuthInfo`).
/// The credentials are hidden in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct ZooKeeperAuth {
    /// The authentication scheme (`digest`, `ip`, `x509`, a custom provider's name, ...).
    pub scheme: String,
    /// The scheme's credentials (for `digest`: `user:password`), sent as these UTF-8 bytes.
    pub auth: String,
}

impl fmt::Debug for ZooKeeperAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperAuth")
            .field("scheme", &self.scheme)
            .field("auth", &"<redacted>")
            .finish()
    }
}

const AUTHORIZATION_FORMAT: &str = "Flink's map of scheme:credentials entries separated by \
     commas, such as digest:'user:password',ip:10.0.0.1 (quote with ' or \" a part holding : \
     or ,; an unquoted credential may hold : after the scheme), or a YAML mapping";

/// The entries of `...client.authorization`: Flink's map string (`scheme:auth,scheme:auth`,
/// parts quoted with `'` or `"` where they hold `,` or `:`, a quote doubled inside quotes), or,
/// from a YAML mapping, the flattened `...client.authorization.<scheme>` keys. A malformed entry
/// is an error naming the key (the value is not shown: it holds credentials).
pub fn read_authorization(c: &Configuration) -> Result<Vec<ZooKeeperAuth>, ConfigError> {
    let mut entries = match c.get(AUTHORIZATION_KEY) {
        Some(v) => parse_authorization(v).map_err(|why| ConfigError::InvalidValue {
            key: AUTHORIZATION_KEY.to_owned(),
            value: "<redacted>".to_owned(),
            expected: format!("{AUTHORIZATION_FORMAT} ({why})"),
        })?,
        None => Vec::new(),
    };
    let nested = format!("{AUTHORIZATION_KEY}.");
    for (k, v) in c.iter() {
        if let Some(scheme) = k.strip_prefix(&nested) {
            if scheme.is_empty() || v.is_empty() {
                return Err(ConfigError::InvalidValue {
                    key: k.to_owned(),
                    value: "<redacted>".to_owned(),
                    expected: "a scheme with non-empty credentials".to_owned(),
                });
            }
            entries.push(ZooKeeperAuth {
                scheme: scheme.to_owned(),
                auth: v.to_owned(),
            });
        }
    }
    Ok(entries)
}

/// Parses Flink's map string of `scheme:auth` entries (see [`read_authorization`]).
fn parse_authorization(value: &str) -> Result<Vec<ZooKeeperAuth>, String> {
    let mut out = Vec::new();
    for (n, entry) in split_unquoted(value, ',')?.into_iter().enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            if value.trim().is_empty() {
                break;
            }
            return Err(format!("entry {} is empty", n + 1));
        }
        let parts = split_unquoted(entry, ':')?;
        let (scheme, auth) = match parts.as_slice() {
            [_] => return Err(format!("entry {} has no ':' after its scheme", n + 1)),
            // Unquoted `digest:user:password`: everything after the scheme is the credential.
            [scheme, rest @ ..] => (unquote(scheme)?, unquote(&rest.join(":"))?),
            [] => return Err(format!("entry {} is empty", n + 1)),
        };
        if scheme.is_empty() || auth.is_empty() {
            return Err(format!(
                "entry {} needs a scheme and credentials, both non-empty",
                n + 1
            ));
        }
        out.push(ZooKeeperAuth { scheme, auth });
    }
    Ok(out)
}

/// Splits `s` at every `sep` outside quotes; the parts keep their quotes.
fn split_unquoted(s: &str, sep: char) -> Result<Vec<String>, String> {
    let mut parts = vec![String::new()];
    let mut quote: Option<char> = None;
    for ch in s.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch == sep => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(ch);
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".to_owned());
    }
    Ok(parts)
}

/// A part without its surrounding whitespace and quotes (a doubled quote inside stands for one).
fn unquote(part: &str) -> Result<String, String> {
    let part = part.trim();
    let mut out = String::new();
    let mut chars = part.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(ch) = chars.next() {
        match quote {
            Some(q) if ch == q => {
                if chars.peek() == Some(&q) {
                    out.push(q);
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some(_) => out.push(ch),
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None => out.push(ch),
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".to_owned());
    }
    Ok(out)
}

/// `...client.simulated-session-expiration-percent`: 1 to 100, default 100 (Curator's).
pub fn read_simulated_expiration_percent(c: &Configuration) -> Result<u8, ConfigError> {
    let Some(v) = c.get(SIMULATED_EXPIRATION_KEY) else {
        return Ok(DEFAULT_SIMULATED_EXPIRATION_PERCENT);
    };
    match v.trim().parse::<u8>() {
        Ok(p) if (1..=100).contains(&p) => Ok(p),
        _ => Err(ConfigError::InvalidValue {
            key: SIMULATED_EXPIRATION_KEY.to_owned(),
            value: v.to_owned(),
            expected: "a whole percentage from 1 to 100 of the negotiated session timeout \
                       (0, Curator's \"no simulated expiration\", is not supported: a \
                       disconnected session is always declared lost in time)"
                .to_owned(),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn auth(scheme: &str, auth: &str) -> ZooKeeperAuth {
        ZooKeeperAuth {
            scheme: scheme.into(),
            auth: auth.into(),
        }
    }

    #[test]
    fn authorization_entries_in_flinks_map_syntax() {
        let ok = |v: &str| parse_authorization(v).unwrap();
        assert_eq!(ok(""), vec![]);
        assert_eq!(ok("digest:'u:p'"), vec![auth("digest", "u:p")]);
        assert_eq!(ok("digest:u:p"), vec![auth("digest", "u:p")]);
        assert_eq!(
            ok(" digest:\"u:p,q\" , ip:10.0.0.1"),
            vec![auth("digest", "u:p,q"), auth("ip", "10.0.0.1")]
        );
        assert_eq!(ok("'x':'it''s'"), vec![auth("x", "it's")]);
        for bad in [
            "digest",
            "digest:",
            ":u:p",
            "digest:'u:p",
            "a:b,,c:d",
            "a:b,",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn authorization_errors_name_the_key_and_hide_the_value() {
        let c = Configuration::from_pairs([(AUTHORIZATION_KEY, "digest")]);
        let e = read_authorization(&c).unwrap_err().to_string();
        assert!(e.contains(AUTHORIZATION_KEY), "{e}");
        let c = Configuration::from_pairs([(AUTHORIZATION_KEY, "digest:'secret")]);
        let e = read_authorization(&c).unwrap_err().to_string();
        assert!(
            e.contains(AUTHORIZATION_KEY) && !e.contains("secret"),
            "{e}"
        );
        assert!(!format!("{:?}", auth("digest", "u:secret")).contains("secret"));
    }

    #[test]
    fn authorization_from_a_yaml_mapping() {
        let c = Configuration::parse_yaml(
            "high-availability:\n  zookeeper:\n    client:\n      authorization:\n        \
             digest: 'u:p'\n",
        )
        .unwrap();
        assert_eq!(read_authorization(&c).unwrap(), vec![auth("digest", "u:p")]);
    }

    #[test]
    fn the_keys_reach_the_zookeeper_config() {
        let zk = |pairs: &[(&str, &str)]| {
            let mut all = vec![
                ("high-availability.type", "zookeeper"),
                ("high-availability.zookeeper.quorum", "h:2181"),
                ("high-availability.storageDir", "file:///tmp/ha"),
            ];
            all.extend_from_slice(pairs);
            crate::config::HaConfig::from_configuration(&Configuration::from_pairs(all))
                .map(|c| c.zookeeper)
        };
        let d = zk(&[]).unwrap();
        assert_eq!(d.max_close_wait, Duration::from_secs(1));
        assert!(d.authorization.is_empty());
        assert_eq!(d.simulated_session_expiration_percent, 100);
        let z = zk(&[
            (MAX_CLOSE_WAIT_KEY, "500 ms"),
            (AUTHORIZATION_KEY, "digest:'u:pw'"),
            (SIMULATED_EXPIRATION_KEY, "40"),
        ])
        .unwrap();
        assert_eq!(z.max_close_wait, Duration::from_millis(500));
        assert_eq!(z.authorization, vec![auth("digest", "u:pw")]);
        assert_eq!(z.simulated_session_expiration_percent, 40);
        assert!(!format!("{z:?}").contains("pw"));
        for (key, bad) in [
            (MAX_CLOSE_WAIT_KEY, "0"),
            (MAX_CLOSE_WAIT_KEY, "soon"),
            (AUTHORIZATION_KEY, "digest"),
            (SIMULATED_EXPIRATION_KEY, "0"),
        ] {
            let e = zk(&[(key, bad)]).unwrap_err().to_string();
            assert!(e.contains(key), "{key}={bad}: {e}");
        }
    }

    #[test]
    fn simulated_expiration_percent_is_1_to_100() {
        let read = |v: &str| {
            read_simulated_expiration_percent(&Configuration::from_pairs([(
                SIMULATED_EXPIRATION_KEY,
                v,
            )]))
        };
        assert_eq!(
            read_simulated_expiration_percent(&Configuration::new()).unwrap(),
            100
        );
        assert_eq!(read("1").unwrap(), 1);
        assert_eq!(read(" 75 ").unwrap(), 75);
        assert_eq!(read("100").unwrap(), 100);
        for bad in ["0", "101", "-5", "50%", "x", ""] {
            let e = read(bad).unwrap_err().to_string();
            assert!(e.contains(SIMULATED_EXPIRATION_KEY), "{bad:?}: {e}");
        }
    }
}
