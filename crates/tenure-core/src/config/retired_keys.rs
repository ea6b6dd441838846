//! Flink HA keys that tenure cannot honour, checked so that a setting which would change what a
//! Flink cluster does is an error naming the key, never silently ignored.
//!
//! - `high-availability.use-old-ha-services` (Flink 1.15–1.16): `true` brought back Flink 1.14's
//!   per-component HA services with their own znodes; tenure writes only the layout of Flink 1.15
//!   and later, so `true` is refused and `false` (the default) accepted.
//! - The znode paths Flink 1.14 removed (`high-availability.zookeeper.path.latch`, `.path.leader`,
//!   `.path.checkpoints`, `.path.checkpoint-counter`, `.path.mesos-workers`): tenure reads the
//!   old checkpoint and counter nodes at their default names only, so each key is accepted at its
//!   default and refused otherwise.
//!
//! Keys that Flink itself ignores (`high-availability.zookeeper.path.running-registry`,
//! `high-availability.job.delay`) and keys outside HA metadata (`high-availability.jobmanager.port`)
//! are accepted as Flink accepts them; the README's compatibility table lists them.

use super::{ConfigError, Configuration};

/// The removed ZooKeeper path keys and their defaults (one segment, compared without slashes).
const REMOVED_PATHS: [(&str, &str); 5] = [
    ("high-availability.zookeeper.path.latch", "leaderlatch"),
    ("high-availability.zookeeper.path.leader", "leader"),
    (
        "high-availability.zookeeper.path.checkpoints",
        "checkpoints",
    ),
    (
        "high-availability.zookeeper.path.checkpoint-counter",
        "checkpoint-counter",
    ),
    (
        "high-availability.zookeeper.path.mesos-workers",
        "mesos-workers",
    ),
];

/// Refuses a setting of the keys above that tenure cannot honour.
pub(super) fn check(c: &Configuration) -> Result<(), ConfigError> {
    let invalid = |key: &str, value: &str, expected: String| ConfigError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    };
    let old_services = "high-availability.use-old-ha-services";
    if let Some((k, v)) = c.lookup(old_services, &[]) {
        let v_trim = v.trim();
        if v_trim.eq_ignore_ascii_case("true") {
            return Err(invalid(
                k,
                v,
                "false: tenure does not run Flink 1.14's per-component HA services and their \
                 znodes (remove the key to use the Flink 1.15+ layout)"
                    .into(),
            ));
        }
        if !v_trim.eq_ignore_ascii_case("false") {
            return Err(invalid(k, v, "true or false".into()));
        }
    }
    let recovery = |key: &str| key.replacen("high-availability.", "recovery.", 1);
    for (key, default) in REMOVED_PATHS {
        let old = recovery(key);
        if let Some((k, v)) = c.lookup(key, &[old.as_str()])
            && v.trim().trim_matches('/') != default
        {
            return Err(invalid(
                k,
                v,
                format!(
                    "\"/{default}\" or no value: Flink 1.14 removed this key, and tenure reads \
                     the old layout only at its default names"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn conf(pairs: &[(&str, &str)]) -> Configuration {
        Configuration::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn defaults_and_flinks_no_op_keys_are_accepted() {
        for pairs in [
            vec![],
            vec![("high-availability.use-old-ha-services", "false")],
            vec![(
                "high-availability.zookeeper.path.checkpoints",
                "/checkpoints",
            )],
            vec![("recovery.zookeeper.path.latch", "/leaderlatch/")],
            vec![("high-availability.zookeeper.path.running-registry", "/x/")],
            vec![("high-availability.job.delay", "10 s")],
            vec![("high-availability.jobmanager.port", "50000-50025")],
        ] {
            check(&conf(&pairs)).unwrap();
        }
    }

    #[test]
    fn settings_that_cannot_be_honoured_are_refused_naming_the_key() {
        for (key, value) in [
            ("high-availability.use-old-ha-services", "true"),
            ("high-availability.use-old-ha-services", "yes"),
            ("high-availability.zookeeper.path.checkpoints", "/cps"),
            (
                "high-availability.zookeeper.path.checkpoint-counter",
                "/counters",
            ),
            ("high-availability.zookeeper.path.latch", "/latches"),
            ("recovery.zookeeper.path.leader", "/leaders"),
            ("high-availability.zookeeper.path.mesos-workers", "/w"),
        ] {
            let err = check(&conf(&[(key, value)])).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
