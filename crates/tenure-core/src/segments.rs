//! User strings that become paths: validated once, split into segments, never re-parsed.
//!
//! A cluster id, a ZooKeeper root or an etcd root is joined into znode paths, etcd keys and
//! storage paths (`<storageDir>/<cluster-id>`, `<storageDir>/job-result-store/<cluster-id>`).
//! If such a string were joined into a larger string that is parsed again (say as a URL), a
//! `%2e%2e` would decode to `..`, a `#` or `?` would cut the path short, and a blank id would
//! name the parent directory. [`PathSegments::parse`] rejects everything that could change
//! meaning on the way, and the segments are then appended one at a time.
//!
//! ```
//! use tenure_core::segments::PathSegments;
//!
//! let id = PathSegments::parse("/teams/analytics/").unwrap();
//! assert_eq!(id.iter().collect::<Vec<_>>(), ["teams", "analytics"]);
//! assert!(PathSegments::parse("%2e%2e/%2e%2e").is_err());
//! assert!(PathSegments::parse("cluster-b#x").is_err());
//! assert!(PathSegments::parse(" ").is_err());
//! ```

use std::fmt;

/// A validated, non-empty-segment path such as a cluster id: leading and trailing `/` are
/// dropped (as Flink's `generateZookeeperPath` does); every segment is non-empty, not `.` or
/// `..`, has no control character, no `%`, `#`, `?` or `\`, and no leading or trailing
/// whitespace, and only ASCII characters that storage paths keep as they are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathSegments(Vec<String>);

/// Why a string cannot be used as path segments.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SegmentError(pub String);

impl PathSegments {
    /// Parses `raw` as at least one segment (a cluster id).
    pub fn parse(raw: &str) -> Result<Self, SegmentError> {
        let segs = Self::parse_allow_root(raw)?;
        if segs.0.is_empty() {
            return Err(SegmentError(
                "it has no path segment (it is empty or only `/`)".into(),
            ));
        }
        Ok(segs)
    }

    /// Parses `raw` as zero or more segments (a root path such as `/flink`, where `/` means the
    /// root itself).
    pub fn parse_allow_root(raw: &str) -> Result<Self, SegmentError> {
        let trimmed = raw.trim_matches('/');
        if trimmed.is_empty() {
            if raw.chars().all(|c| c == '/') {
                return Ok(Self(Vec::new()));
            }
            return Err(SegmentError("it is blank".into()));
        }
        let mut out = Vec::new();
        for seg in trimmed.split('/') {
            check_segment(seg)?;
            out.push(seg.to_owned());
        }
        Ok(Self(out))
    }

    /// The segments, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether there are no segments (a root of `/`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The segments joined with `/`, without a leading `/` (`"teams/analytics"`).
    pub fn joined(&self) -> String {
        self.0.join("/")
    }
}

impl fmt::Display for PathSegments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.joined())
    }
}

/// Checks one segment; the error says what is wrong with it.
pub fn check_segment(seg: &str) -> Result<(), SegmentError> {
    let bad = |why: &str| Err(SegmentError(format!("segment {seg:?} {why}")));
    if seg.is_empty() {
        return Err(SegmentError("it has an empty segment (`//`)".into()));
    }
    if seg.trim().is_empty() {
        return bad("is blank");
    }
    if seg == "." || seg == ".." {
        return bad("is a relative path segment");
    }
    if seg.trim() != seg {
        return bad("starts or ends with whitespace");
    }
    if let Some(c) = seg.chars().find(|c| c.is_control()) {
        return bad(&format!("contains the control character {c:?}"));
    }
    if let Some(c) = seg.chars().find(|c| matches!(c, '%' | '#' | '?' | '\\')) {
        return bad(&format!(
            "contains {c:?}, which would change the meaning of a path or URL"
        ));
    }
    // What the object store would escape in a storage path: with it, blobs would not be where
    // Flink puts them (`<storageDir>/<cluster-id>`).
    if let Some(c) = seg.chars().find(|c| {
        !c.is_ascii()
            || matches!(
                c,
                '{' | '}' | '[' | ']' | '^' | '`' | '"' | '<' | '>' | '~' | '|' | '*'
            )
    }) {
        return bad(&format!(
            "contains {c:?}, which storage paths would escape (use ASCII letters, digits and \
             characters such as - _ . :)"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_flink_style_ids() {
        for (raw, joined) in [
            ("/default", "default"),
            ("default", "default"),
            ("/a/b/", "a/b"),
            ("my cluster", "my cluster"),
            ("peer-1_x.y", "peer-1_x.y"),
        ] {
            assert_eq!(PathSegments::parse(raw).unwrap().joined(), joined, "{raw}");
        }
        assert!(PathSegments::parse_allow_root("/").unwrap().is_empty());
        assert!(PathSegments::parse_allow_root("").unwrap().is_empty());
    }

    #[test]
    fn rejects_what_would_change_meaning() {
        for raw in [
            "",
            "/",
            " ",
            "\t",
            "a//b",
            ".",
            "..",
            "a/../b",
            "%2e%2e",
            "a%2Fb",
            "b#x",
            "b?x",
            "a\\b",
            "a\nb",
            "a\u{1b}[31m",
            " a",
            "a ",
            "a/ /b",
            "snow☃",
            "a|b",
            "a~b",
            "a*b",
        ] {
            let e = PathSegments::parse(raw).unwrap_err();
            assert!(!e.to_string().is_empty(), "{raw:?}");
        }
        assert!(PathSegments::parse_allow_root(" ").is_err());
    }
}
