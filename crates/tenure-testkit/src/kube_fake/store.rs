//! The fake API server's object store: objects by resource, namespace and name, one global
//! resource version counter (as etcd's revision), a bounded event history for watches, and the
//! validation the real API server applies to ConfigMaps.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// The largest ConfigMap payload (`data` plus `binaryData`, keys and values): 1 MiB.
pub const MAX_CONFIG_MAP_BYTES: usize = 1024 * 1024;
/// The largest total size of an object's annotations: 256 KiB.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
/// Events kept for watches that resume from a resource version, by default.
pub const DEFAULT_HISTORY: usize = 1000;

/// A resource the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// `v1` ConfigMaps.
    ConfigMaps,
    /// `coordination.k8s.io/v1` Leases.
    Leases,
}

impl Resource {
    /// The kind of one object.
    pub fn kind(self) -> &'static str {
        match self {
            Resource::ConfigMaps => "ConfigMap",
            Resource::Leases => "Lease",
        }
    }

    /// The `apiVersion` of its objects.
    pub fn api_version(self) -> &'static str {
        match self {
            Resource::ConfigMaps => "v1",
            Resource::Leases => "coordination.k8s.io/v1",
        }
    }

    /// The plural resource name in URLs.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::ConfigMaps => "configmaps",
            Resource::Leases => "leases",
        }
    }

    /// The API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Resource::ConfigMaps => "",
            Resource::Leases => "coordination.k8s.io",
        }
    }

    /// The group-qualified resource as error messages spell it (`configmaps`,
    /// `leases.coordination.k8s.io`).
    pub fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            g => format!("{}.{g}", self.plural()),
        }
    }
}

/// An API error, answered as a `Status` object.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// The `reason` (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// The message.
    pub message: String,
    /// The `details` object, if any.
    pub details: Option<Value>,
}

impl ApiError {
    /// The `Status` object of this error.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s["code"] = json!(self.code);
        s
    }

    fn details(res: Resource, name: &str) -> Value {
        let mut d = json!({"name": name});
        if !res.group().is_empty() {
            d["group"] = json!(res.group());
        }
        d["kind"] = json!(res.plural());
        d
    }

    /// 404 for a missing object.
    pub fn not_found(res: Resource, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", res.qualified()),
            details: Some(Self::details(res, name)),
        }
    }

    /// 409 AlreadyExists on create.
    pub fn already_exists(res: Resource, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", res.qualified()),
            details: Some(Self::details(res, name)),
        }
    }

    /// 409 Conflict on a stale `resourceVersion`.
    pub fn conflict(res: Resource, name: &str, why: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                res.qualified()
            ),
            details: Some(Self::details(res, name)),
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    /// 422 Invalid with causes `(reason, field, message)`.
    pub fn invalid(res: Resource, name: &str, causes: Vec<(&'static str, String, String)>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|(_, field, msg)| format!("{field}: {msg}"))
            .collect();
        let summary = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        let mut details = json!({"name": name});
        if !res.group().is_empty() {
            details["group"] = json!(res.group());
        }
        details["kind"] = json!(res.kind());
        details["causes"] = Value::Array(
            causes
                .into_iter()
                .map(|(reason, field, message)| {
                    json!({"reason": reason, "message": message, "field": field})
                })
                .collect(),
        );
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {summary}", res.kind()),
            details: Some(details),
        }
    }

    /// 410 Expired: a watch from a resource version that is no longer kept.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self {
            code: 410,
            reason: "Expired",
            message: format!("too old resource version: {requested} ({oldest})"),
            details: None,
        }
    }

    /// 500 InternalError.
    pub fn internal(message: &str) -> Self {
        Self {
            code: 500,
            reason: "InternalError",
            message: format!("Internal error occurred: {message}"),
            details: Some(json!({"causes": [{"message": message}]})),
        }
    }
}

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `ADDED`.
    Added,
    /// `MODIFIED`.
    Modified,
    /// `DELETED`.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of one object.
#[derive(Clone, Debug)]
pub struct Event {
    /// The resource version of the change.
    pub rv: u64,
    /// The resource.
    pub resource: Resource,
    /// The namespace.
    pub namespace: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for a delete: as it was, with the delete's version).
    pub object: Value,
    /// The object before the change, if it existed.
    pub old: Option<Value>,
}

type Key = (Resource, String, String);

/// The objects and their history.
#[derive(Debug)]
pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Event>>,
    compacted: u64,
    history_limit: usize,
    events: broadcast::Sender<Arc<Event>>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: 0,
            history_limit: DEFAULT_HISTORY,
            events: broadcast::channel(4096).0,
        }
    }
}

/// An RFC 3339 timestamp in whole seconds (`2024-01-02T03:04:05Z`), as `creationTimestamp`.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && key != ".."
}

/// The labels of an object (non-string values ignored).
pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks an object as the API server's validation does for these resources.
fn validate(res: Resource, name: &str, object: &Value) -> Result<(), ApiError> {
    let mut causes: Vec<(&'static str, String, String)> = Vec::new();
    if !is_dns_subdomain(name) {
        causes.push((
            "FieldValueInvalid",
            "metadata.name".into(),
            format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case \
                 alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
                 character (e.g. 'example.com', regex used for validation is \
                 '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        ));
    }
    if let Some(labels) = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            let value = v.as_str().unwrap_or("");
            if !super::selector::valid_label_value(value) {
                causes.push((
                    "FieldValueInvalid",
                    "metadata.labels".to_owned(),
                    format!(
                        "Invalid value: \"{value}\": a valid label must be an empty string or \
                         consist of alphanumeric characters, '-', '_' or '.', and must start and \
                         end with an alphanumeric character (label {k})"
                    ),
                ));
            }
        }
    }
    if let Some(ann) = object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let total: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if total > MAX_ANNOTATIONS_BYTES {
            causes.push((
                "FieldValueTooLong",
                "metadata.annotations".into(),
                format!("Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"),
            ));
        }
    }
    if res == Resource::ConfigMaps {
        let mut total = 0usize;
        let data = object.get("data").and_then(Value::as_object);
        let binary = object.get("binaryData").and_then(Value::as_object);
        for (field, map) in [("data", data), ("binaryData", binary)] {
            for (k, v) in map.into_iter().flatten() {
                if !is_config_key(k) {
                    causes.push((
                        "FieldValueInvalid",
                        format!("{field}[{k}]"),
                        format!(
                            "Invalid value: \"{k}\": a valid config key must consist of \
                             alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or \
                             'KEY_NAME',  or 'key-name', regex used for validation is \
                             '[-._a-zA-Z0-9]+')"
                        ),
                    ));
                }
                let len = match (field, v.as_str()) {
                    // binaryData values travel base64-encoded; their size is the decoded size.
                    ("binaryData", Some(s)) => s.len() / 4 * 3,
                    (_, Some(s)) => s.len(),
                    _ => 0,
                };
                total += k.len() + len;
            }
        }
        if let (Some(d), Some(b)) = (data, binary) {
            for k in d.keys().filter(|k| b.contains_key(*k)) {
                causes.push((
                    "FieldValueInvalid",
                    format!("data[{k}]"),
                    format!("Invalid value: \"{k}\": duplicate of key present in binaryData"),
                ));
            }
        }
        if total > MAX_CONFIG_MAP_BYTES {
            causes.push((
                "FieldValueTooLong",
                "[]".into(),
                format!("Too long: must have at most {MAX_CONFIG_MAP_BYTES} bytes"),
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(res, name, causes))
    }
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn body_object(res: Resource, body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(mut m) => {
            if let Some(kind) = m.get("kind").and_then(Value::as_str)
                && kind != res.kind()
            {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({}) does not match the expected API version ({})",
                    m.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                    res.api_version()
                )));
            }
            m.insert("kind".into(), json!(res.kind()));
            m.insert("apiVersion".into(), json!(res.api_version()));
            if !m.get("metadata").is_some_and(Value::is_object) {
                m.insert("metadata".into(), json!({}));
            }
            Ok(m)
        }
        _ => Err(ApiError::bad_request(format!(
            "the body of the request is not a {} object",
            res.kind()
        ))),
    }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Whether two versions of an object differ in anything but server-set metadata.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "managedFields",
                "generation",
            ] {
                m.remove(f);
            }
            m.retain(|_, v| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()));
        }
        if let Some(o) = v.as_object_mut() {
            o.retain(|_, v| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()));
        }
        v
    };
    strip(a) == strip(b)
}

impl Store {
    /// The current resource version (of the latest change).
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The oldest resource version a watch may resume from.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Drops the whole event history: watches from an older resource version get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// How many events are kept for resuming watches.
    pub fn set_history_limit(&mut self, limit: usize) {
        self.history_limit = limit.max(1);
        self.trim();
    }

    fn trim(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted = e.rv;
            }
        }
    }

    fn record(&mut self, event: Event) {
        let event = Arc::new(event);
        self.history.push_back(event.clone());
        self.trim();
        let _ = self.events.send(event);
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// The object, if it exists.
    pub fn get(&self, res: Resource, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(res, ns.to_owned(), name.to_owned()))
    }

    /// Stores `object` as is (no validation, new resource version, event sent): for tests that
    /// need data the real server would hold but a client would not write.
    pub fn put_raw(&mut self, res: Resource, ns: &str, mut object: Value) -> Value {
        let name = meta_str(&object, "name").unwrap_or("").to_owned();
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        object["metadata"]["namespace"] = json!(ns);
        let key = (res, ns.to_owned(), name);
        let old = self.objects.insert(key, object.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Event {
            rv,
            resource: res,
            namespace: ns.to_owned(),
            kind,
            object: object.clone(),
            old,
        });
        object
    }

    /// `POST`: creates an object.
    pub fn create(&mut self, res: Resource, ns: &str, body: Value) -> Result<Value, ApiError> {
        let mut obj = body_object(res, body)?;
        let meta = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::bad_request("metadata is not an object"))?;
        if let Some(body_ns) = meta.get("namespace").and_then(Value::as_str)
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
                _ => {
                    return Err(ApiError::invalid(
                        res,
                        "",
                        vec![(
                            "FieldValueRequired",
                            "metadata.name".into(),
                            "Required value: name or generateName is required".into(),
                        )],
                    ));
                }
            },
        };
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(ns));
        let obj = Value::Object(obj);
        validate(res, &name, &obj)?;
        let key = (res, ns.to_owned(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(res, &name));
        }
        let mut obj = obj;
        let rv = self.next_rv();
        obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        self.objects.insert(key, obj.clone());
        self.record(Event {
            rv,
            resource: res,
            namespace: ns.to_owned(),
            kind: EventType::Added,
            object: obj.clone(),
            old: None,
        });
        Ok(obj)
    }

    /// `PUT`: replaces an object, conditioned on `metadata.resourceVersion` when the body has one.
    pub fn replace(
        &mut self,
        res: Resource,
        ns: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let obj = body_object(res, body)?;
        let body_name = obj
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(body_ns) = obj
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        self.update(res, ns, name, Value::Object(obj))
    }

    /// `PATCH` with a JSON merge patch (`application/merge-patch+json`; a strategic merge patch
    /// of these resources, which have no merge keys, is the same).
    pub fn patch(
        &mut self,
        res: Resource,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        if !patch.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON merge patch object",
            ));
        }
        let Some(current) = self.get(res, ns, name) else {
            return Err(ApiError::not_found(res, name));
        };
        let mut target = current.clone();
        // Without a resourceVersion in the patch the update is unconditional.
        if let Some(m) = target.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        merge_patch(&mut target, patch);
        if meta_str(&target, "name") != Some(name) {
            return Err(ApiError::bad_request(
                "metadata.name: Invalid value: the name of a patched object cannot change",
            ));
        }
        self.update(res, ns, name, target)
    }

    fn update(
        &mut self,
        res: Resource,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let key = (res, ns.to_owned(), name.to_owned());
        let Some(current) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(res, name));
        };
        let current_rv = meta_str(&current, "resourceVersion")
            .unwrap_or("")
            .to_owned();
        if let Some(rv) = meta_str(&obj, "resourceVersion")
            && !rv.is_empty()
            && rv != current_rv
        {
            return Err(ApiError::conflict(
                res,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        validate(res, name, &obj)?;
        obj["metadata"]["namespace"] = json!(ns);
        for f in ["uid", "creationTimestamp"] {
            if let Some(v) = current.pointer(&format!("/metadata/{f}")) {
                obj["metadata"][f] = v.clone();
            }
        }
        if same_content(&current, &obj) {
            // A no-op update keeps the resource version (as etcd3's GuaranteedUpdate).
            return Ok(current);
        }
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects.insert(key, obj.clone());
        self.record(Event {
            rv,
            resource: res,
            namespace: ns.to_owned(),
            kind: EventType::Modified,
            object: obj.clone(),
            old: Some(current),
        });
        Ok(obj)
    }

    /// `DELETE`, with optional preconditions on `resourceVersion` and `uid`. Returns the deleted
    /// object (with the resource version of the delete).
    pub fn delete(
        &mut self,
        res: Resource,
        ns: &str,
        name: &str,
        precondition_rv: Option<&str>,
        precondition_uid: Option<&str>,
    ) -> Result<Value, ApiError> {
        let key = (res, ns.to_owned(), name.to_owned());
        let Some(current) = self.objects.get(&key) else {
            return Err(ApiError::not_found(res, name));
        };
        if let Some(uid) = precondition_uid {
            let actual = meta_str(current, "uid").unwrap_or("");
            if uid != actual {
                return Err(ApiError::conflict(
                    res,
                    name,
                    &format!(
                        "the UID in the precondition ({uid}) does not match the UID in record ({actual}). The object might have been deleted and then recreated"
                    ),
                ));
            }
        }
        if let Some(rv) = precondition_rv {
            let actual = meta_str(current, "resourceVersion").unwrap_or("");
            if rv != actual {
                return Err(ApiError::conflict(
                    res,
                    name,
                    &format!(
                        "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({actual}). The object might have been modified"
                    ),
                ));
            }
        }
        let Some(old) = self.objects.remove(&key) else {
            return Err(ApiError::not_found(res, name));
        };
        let rv = self.next_rv();
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(Event {
            rv,
            resource: res,
            namespace: ns.to_owned(),
            kind: EventType::Deleted,
            object: gone.clone(),
            old: Some(old),
        });
        Ok(gone)
    }

    /// The objects of `res` in `ns` (every namespace for `None`) that match, sorted by namespace
    /// and name.
    pub fn list(
        &self,
        res: Resource,
        ns: Option<&str>,
        matches: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((r, n, _), o)| *r == res && ns.is_none_or(|ns| ns == n) && matches(o))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Starts a watch from resource version `from` (`None`: the current state is sent as
    /// `ADDED` events first). Returns the backlog and the receiver of later events, taken
    /// atomically so nothing is lost or repeated.
    #[allow(clippy::type_complexity)]
    pub fn watch_from(
        &self,
        res: Resource,
        ns: Option<&str>,
        from: Option<u64>,
    ) -> Result<(Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>), ApiError> {
        let rx = self.events.subscribe();
        let backlog = match from {
            None => self
                .objects
                .iter()
                .filter(|((r, n, _), _)| *r == res && ns.is_none_or(|ns| ns == n))
                .map(|((r, n, _), o)| {
                    Arc::new(Event {
                        rv: self.rv,
                        resource: *r,
                        namespace: n.clone(),
                        kind: EventType::Added,
                        object: o.clone(),
                        old: None,
                    })
                })
                .collect(),
            Some(rv) if rv < self.compacted => {
                return Err(ApiError::expired(rv, self.compacted + 1));
            }
            Some(rv) => self
                .history
                .iter()
                .filter(|e| e.rv > rv && e.resource == res && ns.is_none_or(|ns| ns == e.namespace))
                .cloned()
                .collect(),
        };
        Ok((backlog, rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // Examples from RFC 7386, appendix A.
        for (orig, patch, want) in [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ] {
            let mut t = orig.clone();
            merge_patch(&mut t, &patch);
            assert_eq!(t, want, "{orig} + {patch}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }

    #[test]
    fn versions_increase_and_history_is_bounded() {
        let mut s = Store::default();
        s.set_history_limit(2);
        let cm = |n: &str| json!({"metadata": {"name": n}});
        for n in ["a", "b", "c"] {
            s.create(Resource::ConfigMaps, "ns", cm(n)).unwrap();
        }
        assert_eq!(s.resource_version(), 3);
        assert_eq!(s.compacted(), 1);
        assert!(
            s.watch_from(Resource::ConfigMaps, Some("ns"), Some(0))
                .is_err()
        );
        let (backlog, _) = s
            .watch_from(Resource::ConfigMaps, Some("ns"), Some(1))
            .unwrap();
        assert_eq!(backlog.len(), 2);
    }
}
