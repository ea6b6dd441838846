//! The form of `high-availability.etcd.endpoints`: client URLs `http://host:port` or
//! `https://host:port` (or a bare `host:port`, taken as `http://`), checked before anything
//! connects so that a typo is a configuration error naming it, not an unreachable server.

use super::ConfigError;
use super::ha::invalid;

/// The key of the endpoints.
const KEY: &str = "high-availability.etcd.endpoints";

/// What an endpoint must look like.
const EXPECTED: &str = "comma-separated etcd client URLs such as http://127.0.0.1:2379 or \
                        https://etcd-0:2379 (a bare host:port means http://)";

/// Checks every endpoint; the error names the first malformed one and why.
pub(super) fn check(endpoints: &[String]) -> Result<(), ConfigError> {
    for e in endpoints {
        if let Err(why) = check_one(e) {
            return Err(invalid(KEY, e, &format!("{EXPECTED}; {why}")));
        }
    }
    Ok(())
}

fn check_one(endpoint: &str) -> Result<(), String> {
    let rest = match endpoint.split_once("://") {
        Some((scheme, rest)) => {
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return Err(format!("the scheme {scheme:?} is neither http nor https"));
            }
            rest
        }
        None => endpoint,
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) || authority.chars().any(char::is_whitespace) {
        return Err("only host:port may follow the scheme (no path, query or user)".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or("an IPv6 host needs its closing ]")?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{addr:?} is not an IPv6 address"));
        }
        let port = after.strip_prefix(':').ok_or("the port is missing")?;
        (addr, port)
    } else {
        authority.rsplit_once(':').ok_or("the port is missing")?
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{port:?} is not a port (1 to 65535)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn well_formed_endpoints_pass() {
        check(&eps(&[
            "http://127.0.0.1:2379",
            "https://etcd-0.etcd:2379/",
            "HTTPS://[::1]:2379",
            "localhost:2379",
        ]))
        .expect("valid");
    }

    #[test]
    fn malformed_endpoints_are_named_with_the_reason() {
        for (bad, why) in [
            ("ftp://127.0.0.1:2379", "neither http nor https"),
            ("http://[::1", "closing ]"),
            ("http://127.0.0.1", "port is missing"),
            ("http://127.0.0.1:0", "not a port"),
            ("http://127.0.0.1:99999", "not a port"),
            ("http://:2379", "host is missing"),
            ("http://h:2379/v3", "no path"),
            ("http://user@h:2379", "no path, query or user"),
        ] {
            let e = check(&eps(&["http://ok:1", bad]))
                .expect_err(bad)
                .to_string();
            assert!(
                e.contains(KEY) && e.contains(bad) && e.contains(why),
                "{bad}: {e}"
            );
        }
    }
}
