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

use std::borrow::Cow;

use tenure_core::layout::FLINK1_JOB_GRAPHS_DIR;

/// Maps the keys of one cluster namespace to znode paths and back.
///
/// Keys map to paths one to one, except for the layout's Flink 1.x job graph directory
/// `jobgraphs`, which `high-availability.zookeeper.path.jobgraphs` may place in another znode
/// ([`Paths::with_job_graphs_dir`]). Then `jobgraphs/<job>` is `<namespace>/<dir>/<job>`, and a
/// znode named `jobgraphs` in the namespace is not a key (it is not where this configuration
/// keeps job graphs, and reporting it too would make two znodes one key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// The namespace path without a trailing `/` (`/flink/default`), or `""` for the root.
    base: String,
    /// The znode of the `jobgraphs` keys when it is not `jobgraphs`.
    job_graphs_dir: Option<String>,
}

impl Paths {
    /// Paths inside `namespace` (an absolute znode path such as `/flink/default`).
    pub fn new(namespace: &str) -> Self {
        let base = generate_zookeeper_path(&[namespace]);
        let base = if base == "/" { String::new() } else { base };
        Self {
            base,
            job_graphs_dir: None,
        }
    }

    /// Keeps the layout's `jobgraphs/...` keys in the znode `dir` (one segment, validated by
    /// [`tenure_core::config::job_graphs_dir`]) instead of `jobgraphs`.
    pub fn with_job_graphs_dir(mut self, dir: &str) -> Self {
        self.job_graphs_dir = (dir != FLINK1_JOB_GRAPHS_DIR).then(|| dir.to_owned());
        self
    }

    /// `key` with its first segment renamed as the znode tree names it.
    fn node_key<'k>(&self, key: &'k str) -> Cow<'k, str> {
        let Some(dir) = &self.job_graphs_dir else {
            return Cow::Borrowed(key);
        };
        let (first, rest) = split_first(key);
        if first == FLINK1_JOB_GRAPHS_DIR {
            Cow::Owned(format!("{dir}{rest}"))
        } else {
            Cow::Borrowed(key)
        }
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
        concat(&[&self.base, "/", &self.node_key(key)])
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
    pub fn key<'a>(&self, path: &'a str) -> Option<Cow<'a, str>> {
        let rest = path.strip_prefix(self.base.as_str())?.strip_prefix('/')?;
        if rest.is_empty() {
            return None;
        }
        let Some(dir) = &self.job_graphs_dir else {
            return Some(Cow::Borrowed(rest));
        };
        match split_first(rest) {
            (FLINK1_JOB_GRAPHS_DIR, _) => None,
            (first, tail) if first == dir => {
                Some(Cow::Owned(format!("{FLINK1_JOB_GRAPHS_DIR}{tail}")))
            }
            _ => Some(Cow::Borrowed(rest)),
        }
    }
}

/// `("a", "/b/c")` of `"a/b/c"`: the first segment and the rest with its `/`.
fn split_first(key: &str) -> (&str, &str) {
    match key.find('/') {
        Some(i) => key.split_at(i),
        None => (key, ""),
    }
}

/// Joins a parent znode path and a child name.
pub fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        concat(&["/", child])
    } else {
        concat(&[parent, "/", child])
    }
}

/// `parts` joined, in one allocation of the exact size: paths are built on every election's
/// way, and `format!` grows its string step by step.
fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
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
    let mut id = uuid::Uuid::encode_buffer();
    let id = protection_id.hyphenated().encode_lower(&mut id);
    let dir = if latch_dir == "/" { "" } else { latch_dir };
    concat(&[dir, "/", PROTECTED_MARK, id, "-", LATCH_LOCK_NAME])
}

/// Curator's protected-mode name prefix `_c_<uuid>-`, identifying the nodes of one create call.
pub fn protected_prefix(protection_id: &uuid::Uuid) -> String {
    format!("{PROTECTED_MARK}{}-", protection_id.hyphenated())
}

/// What Curator's protected mode puts before the create call's id.
const PROTECTED_MARK: &str = "_c_";

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
        assert_eq!(p.key("/flink/peer1/leader/x").as_deref(), Some("leader/x"));
        assert_eq!(p.key("/flink/peer1").as_deref(), None);
        assert_eq!(p.key("/flink/peer10/x").as_deref(), None);
        let root = Paths::new("/");
        assert_eq!(root.path("a"), "/a");
        assert_eq!(root.prefix_path(""), "/");
        assert_eq!(root.key("/a/b").as_deref(), Some("a/b"));
    }

    #[test]
    fn a_configured_job_graph_directory_holds_the_jobgraphs_keys() {
        let p = Paths::new("/flink/c1").with_job_graphs_dir("my-graphs");
        let job = "58c7b669261b7be65fa686cc039885b6";
        assert_eq!(
            p.path(&format!("jobgraphs/{job}")),
            format!("/flink/c1/my-graphs/{job}")
        );
        assert_eq!(p.prefix_path("jobgraphs"), "/flink/c1/my-graphs");
        assert_eq!(
            p.key(&format!("/flink/c1/my-graphs/{job}/locks/o"))
                .as_deref(),
            Some(format!("jobgraphs/{job}/locks/o").as_str())
        );
        assert_eq!(p.key("/flink/c1/my-graphs").as_deref(), Some("jobgraphs"));
        // Other keys are as they were; a prefix sharing the name's start is not the directory.
        assert_eq!(p.path("execution-plans/x"), "/flink/c1/execution-plans/x");
        assert_eq!(p.path("jobgraphsx/y"), "/flink/c1/jobgraphsx/y");
        assert_eq!(p.key("/flink/c1/my-graphsx").as_deref(), Some("my-graphsx"));
        // A `jobgraphs` znode is not where this configuration keeps graphs: not a key.
        assert_eq!(p.key(&format!("/flink/c1/jobgraphs/{job}")), None);
        assert_eq!(p.key("/flink/c1/jobgraphs"), None);
        // The default directory maps nothing.
        let d = Paths::new("/flink/c1").with_job_graphs_dir("jobgraphs");
        assert_eq!(d, Paths::new("/flink/c1"));
        assert_eq!(d.key("/flink/c1/jobgraphs").as_deref(), Some("jobgraphs"));
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
        let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(
            latch_node_prefix("/", &id),
            format!("/{}{LATCH_LOCK_NAME}", protected_prefix(&id)),
            "a latch at the root, and the name's id as the protected prefix writes it"
        );
        let name = format!(
            "{}0000000012",
            latch_node_prefix("/l", &id).trim_start_matches("/l/")
        );
        assert_eq!(tenure_core::latch::sequence(&name), Some(12));
    }
}
