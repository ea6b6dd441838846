//! `high-availability.zookeeper.path.jobgraphs`: where a Flink 1.x cluster keeps its job graphs
//! on ZooKeeper.
//!
//! Flink 1.x stores job graphs under `<root>/<cluster-id><path.jobgraphs>/<job-id>`, default
//! `/jobgraphs`. The HA layout names that directory `jobgraphs` (Flink 1.x naming); when the key
//! names another directory, the ZooKeeper backend reads and writes the layout's `jobgraphs/...`
//! keys in that znode instead, so a cluster configured with its own directory is read where its
//! graphs are. Only one path segment is accepted, and not one the layout already uses for other
//! data (`leader`, `execution-plans`, `jobs`, ...): either would make two keys one znode.

use crate::layout::{FLINK1_JOB_GRAPHS_DIR, Layout};
use crate::segments::check_segment;

use super::ConfigError;

/// The job graph directory named by `value` (the key's value as set), as one segment without
/// slashes (`/my-graphs/` ⇒ `my-graphs`); an error naming `key` when it is not one segment or
/// is a directory the layout uses for other data.
pub fn job_graphs_dir(key: &str, value: &str) -> Result<String, ConfigError> {
    let invalid = |expected: String| ConfigError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    };
    let seg = value.trim().trim_matches('/');
    if seg.is_empty() {
        return Err(invalid("a znode name such as \"/jobgraphs\"".into()));
    }
    if seg.contains('/') {
        return Err(invalid(
            "a single znode name below the cluster's namespace such as \"/jobgraphs\"; tenure \
             does not read job graphs from nested paths"
                .into(),
        ));
    }
    check_segment(seg)
        .map_err(|e| invalid(format!("a znode name usable as a path segment ({e})")))?;
    if seg != FLINK1_JOB_GRAPHS_DIR && Layout::parse_any_era(seg).is_some() {
        return Err(invalid(format!(
            "a znode name the HA layout does not use for other data (\"{seg}\" already holds \
             other HA data)"
        )));
    }
    Ok(seg.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: &str = "high-availability.zookeeper.path.jobgraphs";

    #[test]
    fn slashes_around_one_segment_are_dropped() {
        assert_eq!(job_graphs_dir(KEY, "/jobgraphs").unwrap(), "jobgraphs");
        assert_eq!(job_graphs_dir(KEY, "/my-graphs/").unwrap(), "my-graphs");
        assert_eq!(job_graphs_dir(KEY, "graphs_v1").unwrap(), "graphs_v1");
    }

    #[test]
    fn nested_blank_odd_and_taken_names_are_refused_naming_the_key() {
        for bad in [
            "",
            "/",
            " ",
            "/a/b",
            "..",
            "%2e%2e",
            "a#b",
            "leader",
            "/execution-plans",
            "jobs",
            "running_job_registry",
            "job-results",
            "checkpoints",
            "checkpoint-counter",
        ] {
            let err = job_graphs_dir(KEY, bad).unwrap_err().to_string();
            assert!(err.contains(KEY), "{bad:?}: {err}");
        }
    }
}
