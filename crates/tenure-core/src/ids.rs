//! Identifiers: leader session ids, job ids, checkpoint ids and the elected components.

use std::fmt;
use std::str::FromStr;

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
    /// A component name that is not known.
    #[error(
        "unknown component {0:?}: expected resource_manager, dispatcher, rest_server or job-<job id>"
    )]
    InvalidComponent(String),
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
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
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

/// A component that is elected and whose leader is retrieved.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentId {
    /// The resource manager.
    ResourceManager,
    /// The dispatcher (accepts and recovers jobs).
    Dispatcher,
    /// The REST endpoint (Flink's web monitor / cluster REST endpoint).
    RestServer,
    /// The job master of one job.
    JobMaster(JobId),
}

impl ComponentId {
    /// The name Flink 2.x uses for the component (ZooKeeper `leader/<name>`; the Flink 1.x job master
    /// name, the bare job id, is chosen by the layout).
    pub fn name(&self) -> String {
        match self {
            ComponentId::ResourceManager => "resource_manager".into(),
            ComponentId::Dispatcher => "dispatcher".into(),
            ComponentId::RestServer => "rest_server".into(),
            ComponentId::JobMaster(job) => format!("job-{job}"),
        }
    }

    /// Parses `resource_manager`, `dispatcher`, `rest_server`, `job-<job id>` or a bare job id.
    /// The Kubernetes spellings `resourcemanager` and `restserver` are accepted too.
    pub fn parse(s: &str) -> Result<Self, IdError> {
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
        ] {
            assert_eq!(ComponentId::parse(&c.name()).unwrap(), c);
        }
        assert_eq!(
            ComponentId::parse(&job.to_string()).unwrap(),
            ComponentId::JobMaster(job)
        );
        assert!(ComponentId::parse("jobmanager").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = s.parse::<JobId>();
            let _ = s.parse::<LeaderSessionId>();
            let _ = s.parse::<CheckpointId>();
            let _ = ComponentId::parse(&s);
        }
    }
}
