//! The ZooKeeper connect string (`high-availability.zookeeper.quorum`):
//! `host:port,host:port[/chroot]`.
//!
//! Flink hands the string (whitespace removed) to Curator, that is to ZooKeeper's Java client,
//! whose `ConnectStringParser` takes everything from the first `/` as the chroot (validated as a
//! znode path, `/` alone meaning none), splits the rest at `,`, reads `[v6]:port` or `host:port`
//! with the port after the last `:`, and uses port 2181 when there is none. tenure checks the
//! same shape strictly, so a typo fails at start-up naming the key instead of as an unreachable
//! server later: a port, when given, is plain digits in 1..=65535 (`h:`, `h:+1`, `h:0` are
//! refused, although Java's `Integer.parseInt` would take `+1` and an empty port means 2181
//! there); a host is a hostname, an IPv4 address or a bracketed IPv6 address; a chroot may only
//! follow the last server.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The port ZooKeeper's clients use for a server given without one.
pub const DEFAULT_ZOOKEEPER_PORT: u16 = 2181;

/// Checks a ZooKeeper connect string (whitespace already removed): comma-separated servers
/// `host[:port]` (a hostname, an IPv4 address or `[IPv6]`; the port plain digits in 1..=65535,
/// 2181 when left out), optionally followed by a chroot path such as `/flink-ha` (absolute; no
/// empty, `.` or `..` segments; no control characters). Returns what is wrong, naming the
/// offending part. Never panics.
pub fn validate_zookeeper_quorum(quorum: &str) -> Result<(), String> {
    if quorum.is_empty() {
        return Err("the connect string is empty".into());
    }
    if let Some(ch) = quorum.chars().find(|c| c.is_whitespace()) {
        return Err(format!("it contains whitespace ({ch:?})"));
    }
    let (servers, chroot) = match quorum.find('/') {
        Some(i) => quorum.split_at(i),
        None => (quorum, ""),
    };
    if !chroot.is_empty() {
        validate_chroot(chroot)?;
    }
    if servers.is_empty() {
        return Err("no server before the chroot".into());
    }
    for server in servers.split(',') {
        validate_server(server)?;
    }
    Ok(())
}

fn validate_chroot(chroot: &str) -> Result<(), String> {
    if chroot.contains(',') {
        return Err(format!(
            "the chroot {chroot:?} contains ','; a chroot may only follow the last server"
        ));
    }
    if chroot == "/" {
        return Ok(());
    }
    if let Some(ch) = chroot.chars().find(|c| !valid_znode_char(*c)) {
        return Err(format!(
            "the chroot {chroot:?} contains the character {ch:?}, which ZooKeeper does not \
             allow in a path"
        ));
    }
    let rest = &chroot[1..];
    if rest
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "the chroot {chroot:?} is not a valid ZooKeeper path (empty, \".\" or \"..\" \
             segment, or a trailing '/')"
        ));
    }
    Ok(())
}

/// ZooKeeper's `PathUtils.validatePath` refuses these code points.
fn valid_znode_char(c: char) -> bool {
    !matches!(c as u32, 0x0000..=0x001f | 0x007f..=0x009f | 0xd800..=0xf8ff | 0xfff0..=0xffff)
}

fn validate_server(server: &str) -> Result<(), String> {
    if server.is_empty() {
        return Err("an empty server entry (a doubled, leading or trailing ',')".into());
    }
    let (host, port) = if let Some(rest) = server.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(format!("server {server:?}: '[' without a closing ']'"));
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(format!(
                "server {server:?}: {v6:?} in brackets is not an IPv6 address"
            ));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => {
                    return Err(format!(
                        "server {server:?}: expected ':port' after the bracketed address"
                    ));
                }
            },
        };
        (None, port)
    } else {
        match server.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(server), None),
        }
    };
    if let Some(host) = host {
        validate_host(server, host)?;
    }
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !ok {
            return Err(format!(
                "server {server:?}: the port {port:?} is not a number from 1 to 65535"
            ));
        }
    }
    Ok(())
}

fn validate_host(server: &str, host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(format!("server {server:?} has no host"));
    }
    if host.contains(':') {
        let hint = if host.parse::<Ipv6Addr>().is_ok() || server.parse::<Ipv6Addr>().is_ok() {
            "an IPv6 address goes in brackets, as in [::1]:2181"
        } else {
            "one ':' separates host and port"
        };
        return Err(format!("server {server:?}: {host:?} is not a host; {hint}"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = name.split('.').collect();
    let valid_label = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !labels.iter().all(valid_label) {
        return Err(format!(
            "server {server:?}: {host:?} is not a hostname, an IPv4 address or a bracketed \
             IPv6 address"
        ));
    }
    let numeric = labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if numeric && name.parse::<Ipv4Addr>().is_err() {
        return Err(format!(
            "server {server:?}: {host:?} is not a valid IPv4 address"
        ));
    }
    Ok(())
}
