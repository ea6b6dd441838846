//! Encodings: the leader-election record (fabric8's JSON, as Flink writes it), leader
//! information and counters in Flink's Kubernetes forms, base64 values, and tenure's own
//! annotations (per-key versions and owners, fencing claims). Decoders never panic; they
//! return a reason.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenure_core::codec::{decode_leader_info, encode_leader_info};
use tenure_core::ids::LeaderSessionId;
use tenure_core::leader_info::LeaderInformation;

/// The leader-election record (fabric8 `LeaderElectionRecord`, client-go
/// `LeaderElectionRecord`) kept in the `control-plane.alpha.kubernetes.io/leader` annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderRecord {
    /// The holder; empty when released.
    pub holder_identity: String,
    /// How long the holder's lease lasts after each renewal.
    pub lease_duration: Duration,
    /// When the holder acquired the lease (ms since the epoch, holder's clock).
    pub acquire_time_ms: u64,
    /// When the holder last renewed (ms since the epoch, holder's clock).
    pub renew_time_ms: u64,
    /// How often the holder changed.
    pub leader_transitions: i64,
}

/// Formats ms since the epoch as RFC 3339 with microseconds in UTC
/// (`2020-10-20T04:06:31.431000Z`), fabric8's format.
pub fn format_time(ms: u64) -> String {
    match Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string(),
        Err(_) => "1970-01-01T00:00:00.000000Z".to_owned(),
    }
}

/// Parses an RFC 3339 time into ms since the epoch (times before the epoch are 0).
pub fn parse_time(s: &str) -> Result<u64, String> {
    let ts: Timestamp = s
        .parse()
        .map_err(|e| format!("invalid RFC 3339 time {s:?}: {e}"))?;
    Ok(u64::try_from(ts.as_millisecond()).unwrap_or(0))
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

impl LeaderRecord {
    /// The record as fabric8 writes it: `leaseDuration` in seconds with nine decimals, times in
    /// RFC 3339 with microseconds.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"holderIdentity\":{},\"leaseDuration\":{}.{:09},\"acquireTime\":{},\"renewTime\":{},\"leaderTransitions\":{}}}",
            json_string(&self.holder_identity),
            self.lease_duration.as_secs(),
            self.lease_duration.subsec_nanos(),
            json_string(&format_time(self.acquire_time_ms)),
            json_string(&format_time(self.renew_time_ms)),
            self.leader_transitions
        )
    }

    /// Parses the annotation as JSON: fabric8's form (`leaseDuration` in seconds, fractions
    /// allowed) and client-go's (`leaseDurationSeconds`). A missing or null holder is a released
    /// record; a missing time is the epoch.
    pub fn parse(s: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v.as_object().ok_or("not a JSON object")?;
        let holder_identity = match obj.get("holderIdentity") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("holderIdentity is not a string".into()),
        };
        let secs = obj
            .get("leaseDuration")
            .or_else(|| obj.get("leaseDurationSeconds"))
            .map(|d| d.as_f64().ok_or("leaseDuration is not a number"))
            .transpose()?
            .unwrap_or(0.0);
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(format!("leaseDuration {secs} is out of range"));
        }
        let time = |field: &str| -> Result<u64, String> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(0),
                Some(Value::String(s)) => parse_time(s).map_err(|e| format!("{field}: {e}")),
                Some(_) => Err(format!("{field} is not a string")),
            }
        };
        let leader_transitions = match obj.get("leaderTransitions") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_i64().ok_or("leaderTransitions is not an integer")?,
        };
        Ok(Self {
            holder_identity,
            lease_duration: Duration::from_secs_f64(secs),
            acquire_time_ms: time("acquireTime")?,
            renew_time_ms: time("renewTime")?,
            leader_transitions,
        })
    }
}

/// The core's leader-information bytes as Flink's Kubernetes value `"<uuid>,<address>"`
/// (empty bytes: an empty string).
pub fn leader_to_flink(bytes: &[u8]) -> Result<String, String> {
    match decode_leader_info(bytes).map_err(|e| e.to_string())? {
        None => Ok(String::new()),
        Some(info) => Ok(format!("{},{}", info.session_id, info.address)),
    }
}

/// Flink's `"<uuid>,<address>"` (split at the first comma) as the core's bytes.
pub fn leader_from_flink(s: &str) -> Result<Vec<u8>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let (session, address) = s
        .split_once(',')
        .ok_or("expected \"<session uuid>,<address>\"")?;
    let session: LeaderSessionId = session
        .parse()
        .map_err(|_| format!("{session:?} is not a session UUID"))?;
    Ok(encode_leader_info(&LeaderInformation::new(
        session, address,
    )))
}

/// The core's counter bytes (4 bytes big-endian, or a decimal string) as Flink's decimal.
pub fn counter_to_flink(bytes: &[u8]) -> Result<String, String> {
    if let Ok(four) = <[u8; 4]>::try_from(bytes) {
        let v = i32::from_be_bytes(four);
        return if v < 0 {
            Err(format!("negative counter value {v}"))
        } else {
            Ok(v.to_string())
        };
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(s.to_owned())
        }
        _ => Err("a counter is 4 bytes big-endian or a decimal number".into()),
    }
}

/// Flink's decimal counter as the core's bytes: 4 bytes big-endian when it fits an `i32`, the
/// decimal string otherwise (the core reads both).
pub fn counter_from_flink(s: &str) -> Result<Vec<u8>, String> {
    let t = s.trim();
    if t.is_empty() || t.len() > 19 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("counter {s:?} is not a decimal number"));
    }
    let v: u64 = t.parse().map_err(|e| format!("counter {s:?}: {e}"))?;
    Ok(match i32::try_from(v) {
        Ok(small) => small.to_be_bytes().to_vec(),
        Err(_) => t.as_bytes().to_vec(),
    })
}

/// Standard base64 with padding (Java's `Base64.getEncoder()`).
pub fn to_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn from_base64(s: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(s.trim())
        .map_err(|e| format!("invalid base64: {e}"))
}

/// tenure's metadata of one data key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// The key's version.
    pub v: i64,
    /// The owning session of an ephemeral key (decimal string in JSON).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "owner_string"
    )]
    pub o: Option<u64>,
}

mod owner_string {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The `tenure/kv` annotation: versions and owners by data key.
pub type KvMeta = BTreeMap<String, KeyMeta>;

/// Parses the `tenure/kv` annotation.
pub fn parse_kv_meta(s: &str) -> Result<KvMeta, String> {
    serde_json::from_str(s).map_err(|e| format!("not tenure key metadata: {e}"))
}

/// Formats the `tenure/kv` annotation.
pub fn format_kv_meta(meta: &KvMeta) -> String {
    serde_json::to_string(meta).unwrap_or_else(|_| "{}".into())
}

/// A fencing claim on a per-job ConfigMap: the term that last wrote there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    /// The ConfigMap holding the claiming term's lock.
    pub lock: String,
    /// The claiming holder identity.
    pub holder_identity: String,
    /// The term (the lock's `leaderTransitions` when the term began).
    pub term: i64,
}

impl Claim {
    /// Parses the `tenure/claim` annotation.
    pub fn parse(s: &str) -> Result<Self, String> {
        serde_json::from_str(s).map_err(|e| format!("not a tenure claim: {e}"))
    }

    /// Formats the annotation.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The example record from the javadoc of Flink's `KubernetesLeaderElector`.
    const FLINK_EXAMPLE: &str = r#"{"holderIdentity":"623e39fb-70c3-44f1-811f-561ec4a28d75","leaseDuration":15.000000000,"acquireTime":"2020-10-20T04:06:31.431000Z","renewTime":"2020-10-22T08:51:36.843000Z","leaderTransitions":37981}"#;

    #[test]
    fn the_fabric8_record_round_trips_byte_for_byte() {
        let r = LeaderRecord::parse(FLINK_EXAMPLE).unwrap();
        assert_eq!(r.holder_identity, "623e39fb-70c3-44f1-811f-561ec4a28d75");
        assert_eq!(r.lease_duration, Duration::from_secs(15));
        assert_eq!(r.acquire_time_ms, 1_603_166_791_431);
        assert_eq!(r.renew_time_ms, 1_603_356_696_843);
        assert_eq!(r.leader_transitions, 37981);
        assert_eq!(r.to_json(), FLINK_EXAMPLE);
    }

    #[test]
    fn client_go_records_and_released_records_parse() {
        let r = LeaderRecord::parse(
            r#"{"holderIdentity":"a","leaseDurationSeconds":10,"acquireTime":"2024-01-01T00:00:00Z","renewTime":"2024-01-01T00:00:05Z","leaderTransitions":2}"#,
        )
        .unwrap();
        assert_eq!(r.lease_duration, Duration::from_secs(10));
        assert_eq!(r.renew_time_ms - r.acquire_time_ms, 5000);
        let released = LeaderRecord::parse(r#"{"holderIdentity":null}"#).unwrap();
        assert!(released.holder_identity.is_empty());
        for bad in [
            "",
            "[]",
            "{\"holderIdentity\":1}",
            "{\"renewTime\":\"yesterday\"}",
            "{\"leaseDuration\":-1}",
            "{\"leaderTransitions\":\"x\"}",
            "contains 623e39fb",
        ] {
            assert!(LeaderRecord::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn leader_values_translate_both_ways() {
        let s = "8a0c5f5e-7c1d-4c47-a6b4-0f1e5d2c3b4a,pekko.tcp://flink@10.0.0.5:6123/user/rpc/dispatcher_1";
        let bytes = leader_from_flink(s).unwrap();
        assert_eq!(&bytes[..4], [0xAC, 0xED, 0x00, 0x05]);
        assert_eq!(leader_to_flink(&bytes).unwrap(), s);
        // The address may itself contain commas: split at the first.
        let s2 = "8a0c5f5e-7c1d-4c47-a6b4-0f1e5d2c3b4a,a,b";
        assert_eq!(
            leader_to_flink(&leader_from_flink(s2).unwrap()).unwrap(),
            s2
        );
        assert_eq!(leader_to_flink(&[]).unwrap(), "");
        assert!(leader_from_flink("").unwrap().is_empty());
        assert!(leader_from_flink("no-comma").is_err());
        assert!(leader_from_flink("not-a-uuid,addr").is_err());
        assert!(leader_to_flink(b"garbage").is_err());
    }

    #[test]
    fn counters_translate_both_ways() {
        assert_eq!(counter_to_flink(&[0, 0, 0, 42]).unwrap(), "42");
        assert_eq!(counter_from_flink("42").unwrap(), vec![0, 0, 0, 42]);
        assert_eq!(
            counter_from_flink("3000000000").unwrap(),
            b"3000000000".to_vec()
        );
        assert_eq!(counter_to_flink(b"3000000000").unwrap(), "3000000000");
        assert!(counter_to_flink(&[0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(counter_to_flink(b"x").is_err());
        assert!(counter_from_flink("-1").is_err());
        assert!(counter_from_flink("").is_err());
    }

    #[test]
    fn annotations_round_trip() {
        let mut m = KvMeta::new();
        m.insert("a".into(), KeyMeta { v: 7, o: None });
        m.insert(
            "b".into(),
            KeyMeta {
                v: 9,
                o: Some(u64::MAX),
            },
        );
        let s = format_kv_meta(&m);
        assert_eq!(s, r#"{"a":{"v":7},"b":{"v":9,"o":"18446744073709551615"}}"#);
        assert_eq!(parse_kv_meta(&s).unwrap(), m);
        assert!(parse_kv_meta("{\"a\":1}").is_err());
        let c = Claim {
            lock: "l".into(),
            holder_identity: "h".into(),
            term: 3,
        };
        assert_eq!(c.to_json(), r#"{"lock":"l","holderIdentity":"h","term":3}"#);
        assert_eq!(Claim::parse(&c.to_json()).unwrap(), c);
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(s in ".*", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = LeaderRecord::parse(&s);
            let _ = leader_from_flink(&s);
            let _ = leader_to_flink(&bytes);
            let _ = counter_from_flink(&s);
            let _ = counter_to_flink(&bytes);
            let _ = from_base64(&s);
            let _ = parse_kv_meta(&s);
            let _ = Claim::parse(&s);
        }
    }
}
