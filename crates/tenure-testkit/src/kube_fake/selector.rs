//! Label and field selectors as the API server parses them (`labelSelector`, `fieldSelector`).

use std::collections::BTreeMap;

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelReq {
    /// `k=v`, `k==v`, `k in (v1,v2)`.
    In(String, Vec<String>),
    /// `k!=v`, `k notin (v1,v2)`: true when the label is absent too.
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelReq>);

/// Splits at commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_label_key(k: &str) -> bool {
    let name = k.rsplit_once('/').map_or(k, |(_, n)| n);
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Whether `v` is a valid label value (empty, or at most 63 characters of alphanumerics, `-`,
/// `_`, `.` beginning and ending with an alphanumeric).
pub fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn set_values(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
    values
        .iter()
        .all(|v| valid_label_value(v))
        .then_some(values)
}

impl LabelSelector {
    /// Parses a selector; `Err` names what is wrong (the server answers 400 BadRequest).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        let bad = |part: &str| Err(format!("unable to parse requirement: {part:?}"));
        for part in split_top(s) {
            let p = part.trim();
            let req = if let Some(k) = p.strip_prefix('!') {
                LabelReq::NotExists(k.trim().to_owned())
            } else if let Some((k, v)) = p.split_once("!=") {
                LabelReq::NotIn(k.trim().to_owned(), vec![v.trim().to_owned()])
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                LabelReq::In(k.trim().to_owned(), vec![v.trim().to_owned()])
            } else if let Some((k, rest)) = p.split_once(" notin ") {
                match set_values(rest) {
                    Some(vs) => LabelReq::NotIn(k.trim().to_owned(), vs),
                    None => return bad(p),
                }
            } else if let Some((k, rest)) = p.split_once(" in ") {
                match set_values(rest) {
                    Some(vs) => LabelReq::In(k.trim().to_owned(), vs),
                    None => return bad(p),
                }
            } else {
                LabelReq::Exists(p.to_owned())
            };
            let (key, values) = match &req {
                LabelReq::In(k, v) | LabelReq::NotIn(k, v) => (k, v.as_slice()),
                LabelReq::Exists(k) | LabelReq::NotExists(k) => (k, &[][..]),
            };
            if !valid_label_key(key) || !values.iter().all(|v| valid_label_value(v)) {
                return bad(p);
            }
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether an object with these labels matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            LabelReq::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            LabelReq::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            LabelReq::Exists(k) => labels.contains_key(k),
            LabelReq::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// A parsed field selector over `metadata.name` and `metadata.namespace` (the fields the API
/// server supports for ConfigMaps and Leases).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `field=value`, `field==value`, `field!=value`, comma separated.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for part in s.split(',') {
            let p = part.trim();
            let (field, equal, value) = if let Some((f, v)) = p.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{p}'"));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace") {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(reqs))
    }

    /// Whether `object` matches.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = match field.as_str() {
                "metadata.name" => object.pointer("/metadata/name"),
                _ => object.pointer("/metadata/namespace"),
            }
            .and_then(Value::as_str)
            .unwrap_or("");
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_selectors_follow_the_api_grammar() {
        let l = labels(&[("app", "x"), ("type", "flink-native-kubernetes")]);
        for (sel, want) in [
            ("", true),
            ("app=x", true),
            ("app==x", true),
            ("app=y", false),
            ("app!=y", true),
            ("app,type", true),
            ("!app", false),
            ("!missing", true),
            ("app in (x,y)", true),
            ("app notin (x,y)", false),
            ("missing notin (x)", true),
            ("app=x,type=flink-native-kubernetes", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&l),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app=a b").is_err());
        assert!(LabelSelector::parse("app in x").is_err());
    }

    #[test]
    fn field_selectors_know_name_and_namespace() {
        let o = serde_json::json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(FieldSelector::parse("metadata.name=a").unwrap().matches(&o));
        assert!(
            !FieldSelector::parse("metadata.name!=a")
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("spec.x=a").is_err());
    }
}
