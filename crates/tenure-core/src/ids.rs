//! Identifiers: leader session ids, job ids, checkpoint ids and the elected components.
//!
//! An elected component is one of Flink's ([`ComponentId::ResourceManager`],
//! [`ComponentId::Dispatcher`], [`ComponentId::RestServer`], [`ComponentId::JobMaster`]) or any
//! other service by name ([`ComponentId::Named`] with a validated [`ServiceName`]). All of them
//! go through the same elections, retrievers and layout (`leader/<name>/...`);
//! [`ComponentId::parse`] is the one parser of every component's name:
//!
//! ```
//! use tenure_core::ids::{ComponentId, ServiceName};
//!
//! let cron = ComponentId::parse("my-cron").unwrap();
//! assert_eq!(cron, ComponentId::Named(ServiceName::new("my-cron").unwrap()));
//! assert_eq!(cron.to_string(), "my-cron");
//! assert_eq!(ComponentId::parse("dispatcher").unwrap(), ComponentId::Dispatcher);
//! // Names that would collide with the layout or with Flink's components are refused.
//! assert!(ServiceName::new("latch").is_err());
//! assert!(ServiceName::new("dispatcher").is_err());
//! assert!(ServiceName::new("My Cron").is_err());
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The id of one leadership term (Flink's *leader session id*, a `java.util.UUID`).
///
/// A fresh random (version 4) id is issued every time leadership is granted, so a term can never
/// be confused with an earlier one; it is the fencing token that RPCs and confirmations carry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaderSessionId(Uuid);

impl LeaderSessionId {
    /// A new random (UUID v4) session id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps an existing UUID, e.g. one read from a backend.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// Builds the id from Java's `UUID(mostSigBits, leastSigBits)` halves.
    pub fn from_java_bits(most: i64, least: i64) -> Self {
        Self(Uuid::from_u64_pair(most as u64, least as u64))
    }

    /// Java's `(mostSigBits, leastSigBits)` halves of this id.
    pub fn java_bits(&self) -> (i64, i64) {
        let (most, least) = self.0.as_u64_pair();
        (most as i64, least as i64)
    }

    /// The UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for LeaderSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for LeaderSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaderSessionId({})", self.0.hyphenated())
    }
}

impl FromStr for LeaderSessionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| IdError::InvalidSessionId(s.to_owned()))
    }
}

/// Errors from parsing identifiers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A job id that is not 32 hexadecimal characters.
    #[error("invalid job id {0:?}: expected 32 hexadecimal characters")]
    InvalidJobId(String),
    /// A leader session id that is not a UUID.
    #[error("invalid leader session id {0:?}: expected a UUID")]
    InvalidSessionId(String),
    /// A checkpoint id that is not a non-negative decimal number.
    #[error("invalid checkpoint id {0:?}: expected a non-negative decimal number")]
    InvalidCheckpointId(String),
    /// A component name that is not one of Flink's components.
    #[error(
        "unknown component {0:?}: expected resource_manager, dispatcher, rest_server or job-<job id>"
    )]
    InvalidComponent(String),
    /// A service name that breaks a rule of [`ServiceName`].
    #[error("invalid service name {name:?}: {reason}")]
    InvalidServiceName {
        /// The name as given.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
}

/// A job's id: 16 bytes, shown as 32 lowercase hexadecimal characters (Flink's `JobID`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId([u8; 16]);

impl JobId {
    /// The job id with these 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// A new random job id.
    pub fn new_random() -> Self {
        Self(*Uuid::new_v4().as_bytes())
    }

    /// The 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses 32 hex characters (either case).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        s.parse()
    }

    /// Writes the 32 lowercase hex characters into `buf` and returns them: the one encoder of
    /// `Display` and of the component names, without a formatter call per byte (a job's name
    /// is built on every per-job election's way).
    fn encode<'b>(&self, buf: &'b mut [u8; 32]) -> &'b str {
        Uuid::from_bytes(self.0).simple().encode_lower(buf)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode(&mut [0; 32]))
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

impl FromStr for JobId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdError::InvalidJobId(s.to_owned());
        let raw = s.as_bytes();
        if raw.len() != 32 {
            return Err(err());
        }
        let mut out = [0u8; 16];
        for (i, pair) in raw.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]).ok_or_else(err)?;
            let lo = hex_digit(pair[1]).ok_or_else(err)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Self(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A checkpoint's id. Ids start at 1 and strictly increase within a job.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct CheckpointId(pub u64);

impl CheckpointId {
    /// The first id a checkpoint id counter hands out.
    pub const INITIAL: CheckpointId = CheckpointId(1);

    /// The id as Flink names checkpoint nodes: 19 zero-padded decimal digits (`%019d`).
    pub fn padded(&self) -> String {
        format!("{:019}", self.0)
    }
}

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for CheckpointId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::InvalidCheckpointId(s.to_owned()));
        }
        s.parse::<u64>()
            .map(CheckpointId)
            .map_err(|_| IdError::InvalidCheckpointId(s.to_owned()))
    }
}

/// The longest [`ServiceName`]: 63 bytes, as a DNS label.
pub const MAX_SERVICE_NAME: usize = 63;

/// The rule every [`ServiceName`] follows, as error messages state it.
const SERVICE_NAME_RULE: &str = "a service name is 1 to 63 lower-case ASCII letters, digits and \
     `-`, starting and ending with a letter or digit (a DNS label)";

/// The name of a service elected by name ([`ComponentId::Named`]), such as `my-cron`.
///
/// A name is a DNS label: 1 to [`MAX_SERVICE_NAME`] lower-case ASCII letters, digits and `-`,
/// starting and ending with a letter or digit. So it is one key segment on every backend
/// (the ZooKeeper znode `leader/<name>`, nothing a storage path or URL would escape) and a
/// valid part of a Kubernetes ConfigMap name (`<cluster-id>-<name>-leader`) and data key
/// (`org.apache.flink.k8s.leader.<name>`).
///
/// Names the layout already gives a meaning are refused rather than mapped: `latch` (the
/// process-wide latch `leader/latch`), Flink's component names in either spelling
/// (`dispatcher`, `resourcemanager`, `restserver`; `resource_manager` and `rest_server` break
/// the alphabet), job masters (`job-<job id>`, a bare job id) and `<job id>-jobmanager` (a job
/// master's Kubernetes lock ConfigMap). Flink's components are the other variants of
/// [`ComponentId`], which [`ComponentId::parse`] returns for their names.
///
/// The name is shared (`Arc<str>`), so a [`ComponentId`] is 24 bytes and a clone of it costs a
/// reference count, not a copy of the name: every election keeps its component in the caller's
/// handle, the session driver and the election's state machine.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(Arc<str>);

impl ServiceName {
    /// Validates `name`; the error names it and the rule it breaks.
    pub fn new(name: &str) -> Result<Self, IdError> {
        let err = |reason: String| IdError::InvalidServiceName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() || name.len() > MAX_SERVICE_NAME {
            return Err(err(format!(
                "it is {} bytes long; {SERVICE_NAME_RULE}",
                name.len()
            )));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(err(format!("it contains {c:?}; {SERVICE_NAME_RULE}")));
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(err(format!(
                "it starts or ends with `-`; {SERVICE_NAME_RULE}"
            )));
        }
        if let Some(why) = reserved(name) {
            return Err(err(format!("it is reserved: {why}")));
        }
        Ok(Self(name.into()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `name` (in the service name alphabet) is reserved, if it is.
fn reserved(name: &str) -> Option<&'static str> {
    let is_job = |s: &str| s.len() == 32 && JobId::parse(s).is_ok();
    match name {
        "latch" => Some("`leader/latch` is the process-wide election's latch"),
        "dispatcher" | "resourcemanager" | "restserver" => Some(
            "it is a Flink component's name; elect Flink's components as ComponentId::Dispatcher, \
             ComponentId::ResourceManager or ComponentId::RestServer",
        ),
        _ if is_job(name) || name.strip_prefix("job-").is_some_and(is_job) => {
            Some("it names a job master; elect it as ComponentId::JobMaster")
        }
        _ if name.strip_suffix("-jobmanager").is_some_and(is_job) => {
            Some("it is the Kubernetes name of a job master's lock")
        }
        _ => None,
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceName({:?})", self.as_str())
    }
}

impl FromStr for ServiceName {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for ServiceName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl TryFrom<&str> for ServiceName {
    type Error = IdError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

/// A component that is elected and whose leader is retrieved: one of Flink's, or any service
/// by name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentId {
    /// The resource manager.
    ResourceManager,
    /// The dispatcher (accepts and recovers jobs).
    Dispatcher,
    /// The REST endpoint (Flink's web monitor / cluster REST endpoint).
    RestServer,
    /// The job master of one job.
    JobMaster(JobId),
    /// Any other service, elected by its name (`leader/<name>/...`).
    Named(ServiceName),
}

impl ComponentId {
    /// The name Flink 2.x uses for the component (ZooKeeper `leader/<name>`; the Flink 1.x job master
    /// name, the bare job id, is chosen by the layout).
    pub fn name(&self) -> String {
        match self {
            ComponentId::ResourceManager => "resource_manager".into(),
            ComponentId::Dispatcher => "dispatcher".into(),
            ComponentId::RestServer => "rest_server".into(),
            ComponentId::JobMaster(job) => {
                let mut name = String::with_capacity(4 + 32);
                name.push_str("job-");
                name.push_str(job.encode(&mut [0; 32]));
                name
            }
            ComponentId::Named(service) => service.as_str().to_owned(),
        }
    }

    /// Parses one of Flink's components (as [`ComponentId::parse_flink`]) or else a service
    /// name ([`ServiceName::new`]): `name()` and `Display` read back to the same component.
    /// The error of a name that is neither says which rule of a service name it breaks.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Self::parse_flink(s).or_else(|_| ServiceName::new(s).map(ComponentId::Named))
    }

    /// Parses only Flink's components: `resource_manager`, `dispatcher`, `rest_server`,
    /// `job-<job id>` or a bare job id. The Kubernetes spellings `resourcemanager` and
    /// `restserver` are accepted too.
    pub fn parse_flink(s: &str) -> Result<Self, IdError> {
        match s {
            "resource_manager" | "resourcemanager" => Ok(ComponentId::ResourceManager),
            "dispatcher" => Ok(ComponentId::Dispatcher),
            "rest_server" | "restserver" => Ok(ComponentId::RestServer),
            other => {
                let job = other.strip_prefix("job-").unwrap_or(other);
                JobId::parse(job)
                    .map(ComponentId::JobMaster)
                    .map_err(|_| IdError::InvalidComponent(s.to_owned()))
            }
        }
    }

    /// The service of a [`ComponentId::Named`] component; `None` for Flink's components.
    pub fn service(&self) -> Option<&ServiceName> {
        match self {
            ComponentId::Named(service) => Some(service),
            _ => None,
        }
    }
}

impl From<ServiceName> for ComponentId {
    fn from(service: ServiceName) -> Self {
        ComponentId::Named(service)
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ComponentId({self})")
    }
}

impl FromStr for ComponentId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn job_id_round_trips_as_lowercase_hex() {
        let id: JobId = "58C7B669261B7BE65FA686CC039885B6".parse().unwrap();
        assert_eq!(id.to_string(), "58c7b669261b7be65fa686cc039885b6");
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        let small = JobId::from_bytes([0x0a; 16]);
        assert_eq!(
            small.to_string(),
            "0a".repeat(16),
            "each byte is two digits"
        );
        assert_eq!(
            ComponentId::JobMaster(small).name(),
            format!("job-{}", "0a".repeat(16))
        );
    }

    #[test]
    fn job_id_rejects_wrong_length_and_digits() {
        assert!("abc".parse::<JobId>().is_err());
        assert!("zz".repeat(16).parse::<JobId>().is_err());
    }

    #[test]
    fn session_id_java_bits_round_trip() {
        let s: LeaderSessionId = "da34a7de-6e4b-411d-8196-a44563d07feb".parse().unwrap();
        let (m, l) = s.java_bits();
        assert_eq!(LeaderSessionId::from_java_bits(m, l), s);
        assert_eq!(m as u64, 0xda34a7de6e4b411d);
        assert_eq!(l as u64, 0x8196a44563d07feb);
    }

    #[test]
    fn checkpoint_id_is_padded_to_19_digits() {
        assert_eq!(CheckpointId(42).padded(), "0000000000000000042");
        assert_eq!(
            "0000000000000000042".parse::<CheckpointId>().unwrap(),
            CheckpointId(42)
        );
        assert!("-1".parse::<CheckpointId>().is_err());
    }

    #[test]
    fn component_names_round_trip() {
        let job = JobId::new_random();
        for c in [
            ComponentId::ResourceManager,
            ComponentId::Dispatcher,
            ComponentId::RestServer,
            ComponentId::JobMaster(job),
            ServiceName::new("my-cron").unwrap().into(),
        ] {
            assert_eq!(ComponentId::parse(&c.name()).unwrap(), c);
            assert_eq!(c.to_string().parse::<ComponentId>().unwrap(), c);
        }
        assert_eq!(
            ComponentId::parse(&job.to_string()).unwrap(),
            ComponentId::JobMaster(job)
        );
        assert!(ComponentId::parse_flink("jobmanager").is_err());
        assert!(ComponentId::parse_flink("my-cron").is_err());
        assert_eq!(
            ComponentId::parse("jobmanager")
                .unwrap()
                .service()
                .map(|s| s.as_str()),
            Some("jobmanager")
        );
        assert_eq!(ComponentId::Dispatcher.service(), None);
    }

    #[test]
    fn service_names_are_dns_labels() {
        for ok in ["a", "my-cron", "0", "a-b-c", "x9", &"a".repeat(63)] {
            let name = ServiceName::new(ok).unwrap();
            assert_eq!(name.as_str(), ok);
            assert_eq!(name.to_string(), ok);
        }
        for (bad, rule) in [
            ("", "0 bytes long"),
            (&"a".repeat(64) as &str, "64 bytes long"),
            ("My-Cron", "contains 'M'"),
            ("my_cron", "contains '_'"),
            ("my.cron", "contains '.'"),
            ("my cron", "contains ' '"),
            ("a/b", "contains '/'"),
            ("..", "contains '.'"),
            ("-cron", "starts or ends with `-`"),
            ("cron-", "starts or ends with `-`"),
            ("crön", "contains 'ö'"),
        ] {
            let err = ServiceName::new(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(err.contains(rule), "{err}");
            assert!(err.contains("DNS label"), "{err}");
        }
    }

    #[test]
    fn names_the_layout_uses_are_reserved() {
        let job = JobId::new_random();
        for bad in [
            "latch".to_owned(),
            "dispatcher".to_owned(),
            "resourcemanager".to_owned(),
            "restserver".to_owned(),
            job.to_string(),
            format!("job-{job}"),
            format!("{job}-jobmanager"),
        ] {
            let err = ServiceName::new(&bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("reserved"),
                "{err}"
            );
        }
        // Near misses are ordinary names.
        for ok in [
            "latches",
            "job-x",
            "dispatcher-2",
            "jobmanager",
            "abc-jobmanager",
        ] {
            ServiceName::new(ok).unwrap();
        }
    }

    #[test]
    fn service_names_order_as_their_strings() {
        let mut names: Vec<ServiceName> = ["b", "ab", "a", "a-b", "aa"]
            .into_iter()
            .map(|s| ServiceName::new(s).unwrap())
            .collect();
        names.sort();
        let sorted: Vec<&str> = names.iter().map(ServiceName::as_str).collect();
        assert_eq!(sorted, ["a", "a-b", "aa", "ab", "b"]);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = s.parse::<JobId>();
            let _ = s.parse::<LeaderSessionId>();
            let _ = s.parse::<CheckpointId>();
            let _ = ComponentId::parse(&s);
            let _ = ServiceName::new(&s);
        }

        #[test]
        fn valid_service_names_round_trip(s in "[a-z0-9][a-z0-9-]{0,61}[a-z0-9]") {
            if let Ok(name) = ServiceName::new(&s) {
                prop_assert_eq!(name.as_str(), s.as_str());
                prop_assert!(crate::segments::check_segment(&s).is_ok());
                prop_assert_eq!(ComponentId::parse(&s).unwrap(), ComponentId::Named(name));
            }
        }
    }
}
