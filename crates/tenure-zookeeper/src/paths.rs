//! Every znode path of the backend is built here: the cluster namespace, keys ↔ znode paths, and
//! the Curator-compatible names of leader latch nodes.

/// Flink's `ZooKeeperUtils.generateZookeeperPath`: trims leading and trailing `/` of every
/// segment, drops empty segments, joins them with `/` and prefixes `/`.
///
/// `("/flink", "default/")` ⇒ `/flink/default`; all segments empty ⇒ `/`.
pub fn generate_zookeeper_path(segments: &[&str]) -> String {
    let mut out = String::new();
    for seg in segments {
        let seg = seg.trim_matches('/');
        if !seg.is_empty() {
            out.push('/');
            out.push_str(seg);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The lock name of Curator's `LeaderLatch` (`LeaderLatch.LOCK_NAME`); which latch nodes take
/// part in the election is [`tenure_core::latch`]'s rule, shared with the tools.
pub use tenure_core::latch::LOCK_NAME as LATCH_LOCK_NAME;

/// Maps the keys of one cluster namespace to znode paths and back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// The namespace path without a trailing `/` (`/flink/default`), or `""` for the root.
    base: String,
}

impl Paths {
    /// Paths inside `namespace` (an absolute znode path such as `/flink/default`).
    pub fn new(namespace: &str) -> Self {
        let base = generate_zookeeper_path(&[namespace]);
        let base = if base == "/" { String::new() } else { base };
        Self { base }
    }

    /// The namespace's znode path (`/` for the root).
    pub fn namespace(&self) -> &str {
        if self.base.is_empty() {
            "/"
        } else {
            &self.base
        }
    }

    /// The znode path of a (validated) key.
    pub fn path(&self, key: &str) -> String {
        format!("{}/{key}", self.base)
    }

    /// The znode path of a list/watch prefix (`""` is the namespace itself).
    pub fn prefix_path(&self, prefix: &str) -> String {
        if prefix.is_empty() {
            self.namespace().to_owned()
        } else {
            self.path(prefix)
        }
    }

    /// The key of a znode path strictly inside the namespace, if it is one.
    pub fn key<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.base.as_str())?.strip_prefix('/')?;
        (!rest.is_empty()).then_some(rest)
    }
}

/// Joins a parent znode path and a child name.
pub fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// The parent of a znode path (`None` for `/` and top-level nodes' parent is `/`).
pub fn parent_path(path: &str) -> Option<&str> {
    match path.rfind('/') {
        None => None,
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) => None,
        Some(i) => Some(&path[..i]),
    }
}

/// The path prefix of a new latch node in Curator's protected mode:
/// `<latch dir>/_c_<uuid>-latch-`; the server appends the 10-digit sequence.
pub fn latch_node_prefix(latch_dir: &str, protection_id: &uuid::Uuid) -> String {
    child_path(
        latch_dir,
        &format!("{}{LATCH_LOCK_NAME}", protected_prefix(protection_id)),
    )
}

/// Curator's protected-mode name prefix `_c_<uuid>-`, identifying the nodes of one create call.
pub fn protected_prefix(protection_id: &uuid::Uuid) -> String {
    format!("_c_{}-", protection_id.hyphenated())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn namespace_follows_flinks_generate_zookeeper_path() {
        assert_eq!(
            generate_zookeeper_path(&["/flink", "/default"]),
            "/flink/default"
        );
        assert_eq!(
            generate_zookeeper_path(&["/flink/", "default/"]),
            "/flink/default"
        );
        assert_eq!(generate_zookeeper_path(&["flink", "", "/x/"]), "/flink/x");
        assert_eq!(generate_zookeeper_path(&["/", "/"]), "/");
        assert_eq!(
            generate_zookeeper_path(&["/a/b/", "/c"]),
            "/a/b/c",
            "inner slashes stay"
        );
    }

    #[test]
    fn keys_map_to_paths_and_back() {
        let p = Paths::new("/flink/peer1");
        assert_eq!(p.namespace(), "/flink/peer1");
        assert_eq!(
            p.path("leader/latch"),
            "/flink/peer1/leader/latch".to_owned()
        );
        assert_eq!(p.prefix_path(""), "/flink/peer1");
        assert_eq!(p.key("/flink/peer1/leader/x"), Some("leader/x"));
        assert_eq!(p.key("/flink/peer1"), None);
        assert_eq!(p.key("/flink/peer10/x"), None);
        let root = Paths::new("/");
        assert_eq!(root.path("a"), "/a");
        assert_eq!(root.prefix_path(""), "/");
        assert_eq!(root.key("/a/b"), Some("a/b"));
    }

    #[test]
    fn parents() {
        assert_eq!(parent_path("/a/b"), Some("/a"));
        assert_eq!(parent_path("/a"), Some("/"));
        assert_eq!(parent_path("/"), None);
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
    }

    #[test]
    fn latch_names_are_curators() {
        let id = uuid::Uuid::nil();
        assert_eq!(
            latch_node_prefix("/flink/c/leader/latch", &id),
            "/flink/c/leader/latch/_c_00000000-0000-0000-0000-000000000000-latch-"
        );
        let name = format!(
            "{}0000000012",
            latch_node_prefix("/l", &id).trim_start_matches("/l/")
        );
        assert_eq!(tenure_core::latch::sequence(&name), Some(12));
    }
}
