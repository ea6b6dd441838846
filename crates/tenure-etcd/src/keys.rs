//! Keys of the layout ↔ etcd keys, and the key ranges of prefixes: the one place that spells
//! an etcd key.
//!
//! The cluster's namespace is `<path.root>/<cluster-id>` built segment by segment
//! (`/flink/default`); a layout key `jobs/<id>/checkpoints/<n>` is the etcd key
//! `/flink/default/jobs/<id>/checkpoints/<n>`. etcd keys are flat: a key and the keys below it
//! are unrelated to etcd, so "below `p`" is the key range of the prefix `<namespace>/p/`.

use tenure_core::segments::PathSegments;

/// The etcd keys of one cluster namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// `/<root segments>/<cluster-id segments>`, no trailing `/`.
    namespace: String,
}

/// The name of a latch participant's key: its lease id in lowercase hex.
pub fn latch_node(lease: i64) -> String {
    format!("{lease:x}")
}

/// The lease a latch participant's key named `name` belongs to (the inverse of [`latch_node`]),
/// if `name` is such a name.
pub fn latch_lease(name: &str) -> Option<i64> {
    let lease = i64::from_str_radix(name, 16).ok()?;
    (lease != 0 && latch_node(lease) == name).then_some(lease)
}

/// Whether the latch key named `name`, attached to `lease` (0: none), is a participant of the
/// latch recipe: it is named by the lease it is attached to. Anything else in a latch
/// directory is foreign and never leads.
pub fn is_latch_participant(name: &str, lease: i64) -> bool {
    lease != 0 && name == latch_node(lease)
}

impl Keys {
    /// The keys below `<root>/<cluster>` (validated segments; an empty root is `/`).
    pub fn new(root: &PathSegments, cluster: &PathSegments) -> Self {
        let mut namespace = String::new();
        for seg in root.iter().chain(cluster.iter()) {
            namespace.push('/');
            namespace.push_str(seg);
        }
        Self { namespace }
    }

    /// The namespace, `/flink/<cluster-id>`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The etcd key of a (valid) layout key.
    pub fn etcd_key(&self, key: &str) -> String {
        format!("{}/{key}", self.namespace)
    }

    /// The layout key of an etcd key, if it lies in this namespace.
    pub fn key_of(&self, etcd_key: &[u8]) -> Option<String> {
        let s = std::str::from_utf8(etcd_key).ok()?;
        let rest = s.strip_prefix(&self.namespace)?.strip_prefix('/')?;
        (!rest.is_empty()).then(|| rest.to_owned())
    }

    /// The etcd key prefix of every key strictly below `prefix` (`""`: the whole namespace).
    pub fn below(&self, prefix: &str) -> String {
        if prefix.is_empty() {
            format!("{}/", self.namespace)
        } else {
            format!("{}/{prefix}/", self.namespace)
        }
    }

    /// The half-open etcd key range `[start, end)` of every key strictly below `prefix`.
    pub fn range_below(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let start = self.below(prefix).into_bytes();
        let end = range_end(&start);
        (start, end)
    }
}

/// The end of the key range of every key starting with `prefix`: `prefix` with its last byte
/// incremented (bytes of `0xff` dropped first). `prefix` always ends with `/` here.
pub fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Only 0xff bytes: to the end of the keyspace (etcd's "\0").
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(
            &PathSegments::parse_allow_root("/flink").expect("root"),
            &PathSegments::parse("/default").expect("cluster"),
        )
    }

    #[test]
    fn keys_map_to_the_namespace_and_back() {
        let k = keys();
        assert_eq!(k.namespace(), "/flink/default");
        assert_eq!(k.etcd_key("leader/latch"), "/flink/default/leader/latch");
        assert_eq!(
            k.key_of(b"/flink/default/leader/latch").as_deref(),
            Some("leader/latch")
        );
        assert_eq!(k.key_of(b"/flink/defaultx/a"), None);
        assert_eq!(k.key_of(b"/flink/default/"), None);
        assert_eq!(k.key_of(b"/other/a"), None);
    }

    #[test]
    fn ranges_cover_exactly_the_keys_below() {
        let k = keys();
        let (start, end) = k.range_below("jobs");
        assert_eq!(start, b"/flink/default/jobs/");
        assert_eq!(end, b"/flink/default/jobs0");
        let inside = b"/flink/default/jobs/x".as_slice();
        assert!(inside >= start.as_slice() && inside < end.as_slice());
        let sibling = b"/flink/default/jobsx".as_slice();
        assert!(sibling >= end.as_slice());
        assert_eq!(k.range_below("").0, b"/flink/default/");
        assert_eq!(range_end(&[b'a', 0xff]), b"b");
    }

    #[test]
    fn a_participants_lease_is_read_back_from_its_name_only_in_its_own_spelling() {
        for lease in [1, 0x1a, 0x694d_7f2a_11c0_3b05, i64::MAX] {
            assert_eq!(latch_lease(&latch_node(lease)), Some(lease));
        }
        for name in [
            "0",
            "01a",
            "1A",
            "-1",
            "+1a",
            "zz",
            "",
            "1a/b",
            "10000000000000000",
        ] {
            assert_eq!(latch_lease(name), None, "{name:?}");
        }
    }

    #[test]
    fn a_root_of_slash_is_no_segment() {
        let k = Keys::new(
            &PathSegments::parse_allow_root("/").expect("root"),
            &PathSegments::parse("c1").expect("cluster"),
        );
        assert_eq!(k.etcd_key("a"), "/c1/a");
    }
}
