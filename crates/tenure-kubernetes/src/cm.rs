//! Reading and editing one ConfigMap as a set of KV entries: values in their Flink encodings,
//! per-key versions and ephemeral owners in the `tenure/kv` annotation, the leader record and
//! the fencing claim. Data keys and annotations tenure does not know are kept as they are.

use std::collections::BTreeMap;

use bytes::Bytes;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tenure_core::kv::{Entry, KvError, Version};

use crate::codec::{
    Claim, KeyMeta, KvMeta, LeaderRecord, counter_from_flink, counter_to_flink, format_kv_meta,
    from_base64, leader_from_flink, leader_to_flink, parse_kv_meta, to_base64,
};
use crate::names::{
    CLAIM_ANNOTATION, CmKind, Encoding, KV_ANNOTATION, LEADER_ANNOTATION, Location, Names,
};

/// The largest `data` + `binaryData` of a ConfigMap (keys and values), as the API server checks.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// `namespace/name` of a ConfigMap, for error messages.
pub fn object_name(cm: &ConfigMap) -> String {
    format!(
        "{}/{}",
        cm.metadata.namespace.as_deref().unwrap_or(""),
        cm.metadata.name.as_deref().unwrap_or("")
    )
}

/// The ConfigMap's resource version.
pub fn rv(cm: &ConfigMap) -> Option<&str> {
    cm.metadata.resource_version.as_deref()
}

/// The resource version as a number (etcd revisions are numbers; 0 if it is not one).
pub fn rv_num(cm: &ConfigMap) -> i64 {
    rv(cm).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn annotation<'a>(cm: &'a ConfigMap, key: &str) -> Option<&'a str> {
    cm.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn set_annotation(cm: &mut ConfigMap, key: &str, value: Option<String>) {
    let ann = cm.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match value {
        Some(v) => {
            ann.insert(key.to_owned(), v);
        }
        None => {
            ann.remove(key);
        }
    }
}

/// The `tenure/kv` annotation; absent is empty. A corrupt one is an error naming the object.
pub fn kv_meta(cm: &ConfigMap) -> Result<KvMeta, KvError> {
    match annotation(cm, KV_ANNOTATION) {
        None => Ok(KvMeta::new()),
        Some(s) => parse_kv_meta(s).map_err(|reason| KvError::Corrupt {
            key: format!("ConfigMap {} annotation {KV_ANNOTATION}", object_name(cm)),
            reason,
        }),
    }
}

/// Writes the `tenure/kv` annotation (removed when empty).
pub fn store_kv_meta(cm: &mut ConfigMap, meta: &KvMeta) {
    let v = (!meta.is_empty()).then(|| format_kv_meta(meta));
    set_annotation(cm, KV_ANNOTATION, v);
}

/// The leader record; `Ok(None)` without the annotation, `Err` (with a reason naming the
/// object) if it is not a record.
pub fn leader_record(cm: &ConfigMap) -> Result<Option<LeaderRecord>, String> {
    match annotation(cm, LEADER_ANNOTATION) {
        None => Ok(None),
        Some(s) => LeaderRecord::parse(s).map(Some).map_err(|e| {
            format!(
                "ConfigMap {} annotation {LEADER_ANNOTATION}: {e}",
                object_name(cm)
            )
        }),
    }
}

/// Writes the leader record.
pub fn set_leader_record(cm: &mut ConfigMap, record: &LeaderRecord) {
    set_annotation(cm, LEADER_ANNOTATION, Some(record.to_json()));
}

/// The fencing claim, if any (a corrupt one counts as none: it is overwritten by the next
/// fenced writer, whose term was verified).
pub fn claim(cm: &ConfigMap) -> Option<Claim> {
    annotation(cm, CLAIM_ANNOTATION).and_then(|s| Claim::parse(s).ok())
}

/// Writes the fencing claim.
pub fn set_claim(cm: &mut ConfigMap, claim: &Claim) {
    set_annotation(cm, CLAIM_ANNOTATION, Some(claim.to_json()));
}

/// A new ConfigMap `name` with the cluster's HA labels.
pub fn new_cm(names: &Names, name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(names.labels()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}

/// Whether the ConfigMap holds no data at all.
pub fn has_no_data(cm: &ConfigMap) -> bool {
    cm.data.as_ref().is_none_or(BTreeMap::is_empty)
        && cm.binary_data.as_ref().is_none_or(BTreeMap::is_empty)
}

/// The size the API server counts against [`MAX_PAYLOAD`].
pub fn payload_size(cm: &ConfigMap) -> usize {
    let data: usize = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let binary: usize = cm
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.0.len())
        .sum();
    data + binary
}

/// A value as stored in the ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Raw {
    /// In `data`.
    Text(String),
    /// In `binaryData`.
    Binary(Vec<u8>),
}

impl Raw {
    fn len(&self) -> usize {
        match self {
            Raw::Text(s) => s.len(),
            Raw::Binary(b) => b.len(),
        }
    }
}

/// The stored form of the core's `bytes` under `loc`.
pub fn encode(loc: &Location, key: &str, bytes: &[u8]) -> Result<Raw, KvError> {
    let invalid = |reason: String| KvError::InvalidKey {
        key: key.to_owned(),
        reason: format!(
            "the value cannot be stored as ConfigMap data key {}: {reason}",
            loc.data_key
        ),
    };
    Ok(match loc.encoding {
        Encoding::LeaderInfo => Raw::Text(leader_to_flink(bytes).map_err(invalid)?),
        Encoding::Counter => Raw::Text(counter_to_flink(bytes).map_err(invalid)?),
        Encoding::Base64 => Raw::Text(to_base64(bytes)),
        Encoding::Text => match std::str::from_utf8(bytes) {
            Ok(s) => Raw::Text(s.to_owned()),
            Err(_) => return Err(invalid("not UTF-8 text".into())),
        },
        Encoding::Binary => Raw::Binary(bytes.to_vec()),
    })
}

fn raw_of(cm: &ConfigMap, data_key: &str) -> Option<Raw> {
    if let Some(v) = cm.data.as_ref().and_then(|d| d.get(data_key)) {
        return Some(Raw::Text(v.clone()));
    }
    cm.binary_data
        .as_ref()
        .and_then(|d| d.get(data_key))
        .map(|b| Raw::Binary(b.0.clone()))
}

fn decode(encoding: Encoding, raw: Raw) -> Result<Vec<u8>, String> {
    match (encoding, raw) {
        (Encoding::LeaderInfo, Raw::Text(s)) => leader_from_flink(&s),
        (Encoding::Counter, Raw::Text(s)) => counter_from_flink(&s),
        (Encoding::Base64, Raw::Text(s)) => from_base64(&s),
        (Encoding::Text, Raw::Text(s)) => Ok(s.into_bytes()),
        (Encoding::Binary, Raw::Binary(b)) => Ok(b),
        (Encoding::Binary, Raw::Text(_)) => Err("expected in binaryData, found in data".into()),
        (_, Raw::Binary(_)) => Err("expected in data, found in binaryData".into()),
    }
}

/// One key's entry in `cm` (decoded), if present.
pub fn entry(
    cm: &ConfigMap,
    meta: &KvMeta,
    key: &str,
    loc: &Location,
) -> Result<Option<Entry>, KvError> {
    let Some(raw) = raw_of(cm, &loc.data_key) else {
        return Ok(None);
    };
    let value = decode(loc.encoding, raw).map_err(|reason| KvError::Corrupt {
        key: key.to_owned(),
        reason: format!(
            "ConfigMap {} data key {}: {reason}",
            object_name(cm),
            loc.data_key
        ),
    })?;
    let m = meta.get(&loc.data_key);
    Ok(Some(Entry {
        key: key.to_owned(),
        value: Bytes::from(value),
        version: Version(m.map_or_else(|| rv_num(cm), |m| m.v)),
        ephemeral_owner: m.and_then(|m| m.o),
    }))
}

/// The data keys of `cm` that are KV keys, with their key and location.
pub fn keys(names: &Names, cm: &ConfigMap) -> Vec<(String, Location)> {
    let name = cm.metadata.name.clone().unwrap_or_default();
    let kind = names.classify(&name);
    if !matches!(kind, CmKind::Cluster | CmKind::Job(_)) {
        return Vec::new();
    }
    let data = cm.data.iter().flat_map(|d| d.keys());
    let binary = cm.binary_data.iter().flat_map(|d| d.keys());
    data.chain(binary)
        .filter_map(|dk| {
            names.key_of(kind, dk).map(|(key, encoding)| {
                (
                    key,
                    Location {
                        cm: name.clone(),
                        data_key: dk.clone(),
                        encoding,
                    },
                )
            })
        })
        .collect()
}

/// Every KV entry of `cm`; the first value that cannot be decoded is an error naming the
/// object and data key.
pub fn entries(names: &Names, cm: &ConfigMap) -> Result<Vec<Entry>, KvError> {
    let meta = kv_meta(cm)?;
    let mut out = Vec::new();
    for (key, loc) in keys(names, cm) {
        if let Some(e) = entry(cm, &meta, &key, &loc)? {
            out.push(e);
        }
    }
    Ok(out)
}

/// Every decodable KV entry of `cm` by key (for watches, which cannot report errors; the
/// undecodable ones are logged).
pub fn lenient_entries(names: &Names, cm: &ConfigMap) -> BTreeMap<String, Entry> {
    let meta = match kv_meta(cm) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("{e}");
            KvMeta::new()
        }
    };
    let mut out = BTreeMap::new();
    for (key, loc) in keys(names, cm) {
        match entry(cm, &meta, &key, &loc) {
            Ok(Some(e)) => {
                out.insert(key, e);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("skipping in watch: {e}"),
        }
    }
    out
}

/// Sets `loc`'s value in `cm` and `meta`.
pub fn set(cm: &mut ConfigMap, meta: &mut KvMeta, loc: &Location, raw: Raw, km: KeyMeta) {
    remove(cm, meta, &loc.data_key);
    match raw {
        Raw::Text(s) => {
            cm.data
                .get_or_insert_with(BTreeMap::new)
                .insert(loc.data_key.clone(), s);
        }
        Raw::Binary(b) => {
            cm.binary_data
                .get_or_insert_with(BTreeMap::new)
                .insert(loc.data_key.clone(), ByteString(b));
        }
    }
    meta.insert(loc.data_key.clone(), km);
}

/// Removes a data key (from `data` and `binaryData`) and its metadata.
pub fn remove(cm: &mut ConfigMap, meta: &mut KvMeta, data_key: &str) {
    if let Some(d) = cm.data.as_mut() {
        d.remove(data_key);
    }
    if let Some(d) = cm.binary_data.as_mut() {
        d.remove(data_key);
    }
    meta.remove(data_key);
}

/// The payload size after `loc` is set to `raw`.
pub fn size_with(cm: &ConfigMap, loc: &Location, raw: &Raw) -> usize {
    let old = raw_of(cm, &loc.data_key).map_or(0, |r| loc.data_key.len() + r.len());
    payload_size(cm) - old + loc.data_key.len() + raw.len()
}
