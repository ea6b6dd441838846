//! Where each key of the core's layout lives in Kubernetes: every ConfigMap name, label,
//! annotation and data key is built here and nowhere else.
//!
//! The core's keys are Flink's ZooKeeper paths; this module maps them onto Flink's Kubernetes
//! layout (Flink 1.15+, `KubernetesLeaderElectionHaServices`):
//!
//! | KV key | ConfigMap | data key | value |
//! |---|---|---|---|
//! | `leader/<component>/connection_info` | `<cluster-id>-cluster-config-map` | `org.apache.flink.k8s.leader.<k8s component>` | `"<session uuid>,<address>"` |
//! | `execution-plans/<job>` | cluster | `executionPlan-<job>` | base64 |
//! | `jobgraphs/<job>` (Flink 1.x naming) | cluster | `jobGraph-<job>` | base64 |
//! | `running_job_registry/<job>` | cluster | `runningJobsRegistry-<job>` (Flink ≤ 1.14) | `PENDING` / `RUNNING` / `DONE` |
//! | `jobs/<job>/checkpoints/<%019d>` | `<cluster-id>-<job>-config-map` | `checkpointID-<%019d>` | base64 |
//! | `jobs/<job>/checkpoint_id_counter` | per-job | `counter` | decimal string |
//! | `jobs/<job>/<anything else>` | per-job | `tenure.<escaped key>` | `binaryData` |
//! | any other key | cluster | `tenure.<escaped key>` | `binaryData` |
//!
//! Kubernetes component names are `resourcemanager`, `dispatcher`, `restserver` and
//! `job-<job id>` (Flink 2.x) or the bare job id (Flink 1.x); the core's `resource_manager` /
//! `rest_server` segments are translated both ways. A service elected by name
//! (`ComponentId::Named`, a DNS label) is its name: `leader/my-cron/connection_info` is the data
//! key `org.apache.flink.k8s.leader.my-cron` of the cluster ConfigMap, as for Flink's components.
//!
//! Keys with no Flink equivalent (job graph locks `execution-plans/<job>/locks[/<owner>]`, job
//! results `job-results/<job>[_DIRTY]`, anything a caller invents) are stored under the data key
//! `tenure.` + the key with `/` written as `.` and every byte other than ASCII letters, digits
//! and `-` written as `_XX` (upper-case hex), in `binaryData`, so Flink's tools, which look for
//! `jobGraph-`, `executionPlan-`, `checkpointID-` and `counter`, never mistake them for Flink's.
//! Example: `execution-plans/<job>/locks/<owner>` is `tenure.execution-plans.<job>.locks.<owner>`.
//!
//! Latches are not KV keys: `leader/latch` is the leader-election annotation of the cluster
//! ConfigMap; a per-component latch `leader/<component>/latch` is the same annotation on a
//! ConfigMap of its own, named as Flink 1.12–1.14 named its per-component leader ConfigMaps:
//! `<cluster-id>-<k8s component>-leader`, job masters `<cluster-id>-<job>-jobmanager-leader`,
//! a named service `<cluster-id>-<name>-leader` (service names that would collide with these
//! are refused by `ServiceName`).
//! Each process's session is a ConfigMap `<cluster-id>-tenure-session-<16 hex digits>`.
//! Every ConfigMap carries Flink's HA labels, so Flink's own cleanup (and tenure's) removes all.

use std::collections::BTreeMap;

use tenure_core::ids::{CheckpointId, ComponentId, JobId};
use tenure_core::kv::KvError;
use tenure_core::layout::{HaKey, Layout, NamingEra, job_dir_of};

/// Label `type` of every HA ConfigMap.
pub const LABEL_TYPE: (&str, &str) = ("type", "flink-native-kubernetes");
/// Label `configmap-type` of every HA ConfigMap.
pub const LABEL_CONFIGMAP_TYPE: (&str, &str) = ("configmap-type", "high-availability");
/// Label whose value is the cluster id.
pub const LABEL_APP: &str = "app";
/// Extra label of tenure's session ConfigMaps (value `session`).
pub const LABEL_TENURE_ROLE: &str = "tenure/role";
/// The leader-election annotation (fabric8 / client-go `ConfigMapLock`).
pub const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// tenure's per-key metadata annotation: JSON `{"<data key>": {"v": version, "o": "owner"}}`.
pub const KV_ANNOTATION: &str = "tenure/kv";
/// tenure's fencing claim on a per-job ConfigMap: JSON `{"lock", "holderIdentity", "term"}`.
pub const CLAIM_ANNOTATION: &str = "tenure/claim";
/// The lease record of a tenure session ConfigMap (same JSON as the leader annotation).
pub const SESSION_ANNOTATION: &str = "tenure/session";
/// Prefix of Flink 1.15+ leader-information data keys.
pub const LEADER_KEY_PREFIX: &str = "org.apache.flink.k8s.leader.";
/// Prefix of tenure's own data keys.
pub const TENURE_KEY_PREFIX: &str = "tenure.";
/// The largest data key Kubernetes accepts.
pub const MAX_DATA_KEY: usize = 253;
/// The longest cluster id Flink accepts (`Constants.MAXIMUM_CHARACTERS_OF_CLUSTER_ID`).
pub const MAX_CLUSTER_ID: usize = 45;

/// How a value is stored in its data key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Flink leader information `"<uuid>,<address>"` (the core writes Java-serialized bytes).
    LeaderInfo,
    /// A decimal counter (the core writes 4 bytes big-endian).
    Counter,
    /// Standard base64 with padding, in `data` (Flink's state handles).
    Base64,
    /// UTF-8 text, in `data`.
    Text,
    /// Raw bytes in `binaryData`.
    Binary,
}

/// What a ConfigMap is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmKind {
    /// `<cluster-id>-cluster-config-map`.
    Cluster,
    /// `<cluster-id>-<job>-config-map`.
    Job(JobId),
    /// `<cluster-id>-<...>-leader`: a per-component latch.
    Lock,
    /// `<cluster-id>-tenure-session-<hex>`.
    Session(u64),
    /// Anything else carrying the labels.
    Other,
}

/// Where one key lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The ConfigMap name.
    pub cm: String,
    /// The data (or binaryData) key.
    pub data_key: String,
    /// The value encoding.
    pub encoding: Encoding,
}

/// Which ConfigMaps a prefix spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One ConfigMap.
    One(String),
    /// Every ConfigMap of the cluster.
    All,
}

/// The names of one cluster's ConfigMaps and keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    cluster_id: String,
}

/// Whether `s` is a cluster id Kubernetes names can be built from: 1–45 lower-case letters,
/// digits, `-` and `.`, starting and ending with a letter or digit.
pub fn valid_cluster_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CLUSTER_ID
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A job id segment in canonical (lower-case hex) form.
fn canonical_job(seg: &str) -> Option<JobId> {
    let job = JobId::parse(seg).ok()?;
    (job.to_string() == seg).then_some(job)
}

/// Flink's Kubernetes name of `component` in `layout`'s era (`resourcemanager`, `restserver`,
/// `job-<job>` or, in Flink 1.x, the bare job id).
fn k8s_component(layout: Layout, component: &ComponentId) -> String {
    match component {
        ComponentId::ResourceManager => "resourcemanager".into(),
        ComponentId::Dispatcher => "dispatcher".into(),
        ComponentId::RestServer => "restserver".into(),
        ComponentId::JobMaster(_) | ComponentId::Named(_) => layout.component_name(component),
    }
}

/// The component (and the era whose names it uses) of Flink's Kubernetes component name.
fn core_component(k8s: &str) -> Option<(Layout, ComponentId)> {
    let component = ComponentId::parse(k8s).ok()?;
    [NamingEra::Flink2, NamingEra::Flink1]
        .into_iter()
        .map(Layout::new)
        .find(|l| k8s_component(*l, &component) == k8s)
        .map(|l| (l, component))
}

/// The data key of checkpoint `id` (`checkpointID-<%019d>`).
fn checkpoint_data_key(id: CheckpointId) -> String {
    format!("checkpointID-{}", id.padded())
}

/// `tenure.` + the key escaped into the data-key alphabet.
pub fn escape_key(key: &str) -> String {
    let mut out = String::with_capacity(TENURE_KEY_PREFIX.len() + key.len());
    out.push_str(TENURE_KEY_PREFIX);
    for b in key.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => out.push(b as char),
            b'/' => out.push('.'),
            _ => out.push_str(&format!("_{b:02X}")),
        }
    }
    out
}

/// The key of a `tenure.` data key; `None` if it is not one.
pub fn unescape_key(data_key: &str) -> Option<String> {
    let rest = data_key.strip_prefix(TENURE_KEY_PREFIX)?;
    let mut out = Vec::with_capacity(rest.len());
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => out.push(b'/'),
            b'_' => {
                let hex = rest.get(i + 1..i + 3)?;
                if !hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
                {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b @ (b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-') => out.push(b),
            _ => return None,
        }
        i += 1;
    }
    let key = String::from_utf8(out).ok()?;
    (escape_key(&key) == data_key).then_some(key)
}

impl Names {
    /// The names of cluster `cluster_id` (which must satisfy [`valid_cluster_id`]).
    pub fn new(cluster_id: impl Into<String>) -> Self {
        Self {
            cluster_id: cluster_id.into(),
        }
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// `<cluster-id>-cluster-config-map`.
    pub fn cluster_cm(&self) -> String {
        format!("{}-cluster-config-map", self.cluster_id)
    }

    /// `<cluster-id>-<job>-config-map`.
    pub fn job_cm(&self, job: &JobId) -> String {
        format!("{}-{job}-config-map", self.cluster_id)
    }

    /// The ConfigMap of a per-component latch (Flink 1.12–1.14 names).
    pub fn component_lock_cm(&self, component: &ComponentId) -> String {
        match component {
            ComponentId::ResourceManager => format!("{}-resourcemanager-leader", self.cluster_id),
            ComponentId::Dispatcher => format!("{}-dispatcher-leader", self.cluster_id),
            ComponentId::RestServer => format!("{}-restserver-leader", self.cluster_id),
            ComponentId::JobMaster(job) => {
                format!("{}-{job}-jobmanager-leader", self.cluster_id)
            }
            ComponentId::Named(service) => format!("{}-{service}-leader", self.cluster_id),
        }
    }

    /// The job of a job master's per-component lock ConfigMap.
    pub fn job_of_lock(&self, lock_cm: &str) -> Option<JobId> {
        let rest = lock_cm
            .strip_prefix(self.cluster_id.as_str())?
            .strip_prefix('-')?
            .strip_suffix("-jobmanager-leader")?;
        canonical_job(rest)
    }

    /// `<cluster-id>-tenure-session-<16 hex digits>`.
    pub fn session_cm(&self, session: u64) -> String {
        format!("{}-tenure-session-{session:016x}", self.cluster_id)
    }

    /// The labels of every HA ConfigMap of the cluster.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_TYPE.0.to_owned(), LABEL_TYPE.1.to_owned()),
            (LABEL_APP.to_owned(), self.cluster_id.clone()),
            (
                LABEL_CONFIGMAP_TYPE.0.to_owned(),
                LABEL_CONFIGMAP_TYPE.1.to_owned(),
            ),
        ])
    }

    /// The label selector of every HA ConfigMap of the cluster.
    pub fn label_selector(&self) -> String {
        format!(
            "{}={},{}={},{}={}",
            LABEL_APP,
            self.cluster_id,
            LABEL_CONFIGMAP_TYPE.0,
            LABEL_CONFIGMAP_TYPE.1,
            LABEL_TYPE.0,
            LABEL_TYPE.1
        )
    }

    /// What a ConfigMap of this cluster is.
    pub fn classify(&self, cm: &str) -> CmKind {
        let Some(rest) = cm
            .strip_prefix(self.cluster_id.as_str())
            .and_then(|r| r.strip_prefix('-'))
        else {
            return CmKind::Other;
        };
        if rest == "cluster-config-map" {
            return CmKind::Cluster;
        }
        if let Some(hex) = rest.strip_prefix("tenure-session-")
            && hex.len() == 16
            && let Ok(id) = u64::from_str_radix(hex, 16)
            && format!("{id:016x}") == hex
        {
            return CmKind::Session(id);
        }
        if let Some(job) = rest.strip_suffix("-config-map").and_then(canonical_job) {
            return CmKind::Job(job);
        }
        if rest.ends_with("-leader") {
            return CmKind::Lock;
        }
        CmKind::Other
    }

    /// The ConfigMap holding latch `latch` (a layout key): `leader/latch` is the cluster
    /// ConfigMap, `leader/<component>/latch` the component's own.
    pub fn latch_cm(&self, latch: &str) -> Result<String, KvError> {
        match Layout::parse_any_era(latch) {
            Some((_, HaKey::ClusterLatch)) => Ok(self.cluster_cm()),
            Some((_, HaKey::LeaderLatch(c))) => Ok(self.component_lock_cm(&c)),
            _ => Err(KvError::InvalidKey {
                key: latch.to_owned(),
                reason: "not a latch of Flink's layout (leader/latch or leader/<component>/latch)"
                    .into(),
            }),
        }
    }

    /// Where `key` (a valid key) lives.
    pub fn locate(&self, key: &str) -> Result<Location, KvError> {
        let cluster = |data_key: String, encoding| Location {
            cm: self.cluster_cm(),
            data_key,
            encoding,
        };
        let job = |job: &JobId, data_key: String, encoding| Location {
            cm: self.job_cm(job),
            data_key,
            encoding,
        };
        let loc = match Layout::parse_any_era(key) {
            Some((l, HaKey::LeaderInfo(c))) => cluster(
                format!("{LEADER_KEY_PREFIX}{}", k8s_component(l, &c)),
                Encoding::LeaderInfo,
            ),
            Some((l, HaKey::ExecutionPlan(j))) => match l.naming {
                NamingEra::Flink2 => cluster(format!("executionPlan-{j}"), Encoding::Base64),
                NamingEra::Flink1 => cluster(format!("jobGraph-{j}"), Encoding::Base64),
            },
            Some((_, HaKey::RunningJob(j))) => {
                cluster(format!("runningJobsRegistry-{j}"), Encoding::Text)
            }
            Some((_, HaKey::Checkpoint(j, id))) => {
                job(&j, checkpoint_data_key(id), Encoding::Base64)
            }
            Some((_, HaKey::CheckpointCounter(j))) => {
                job(&j, "counter".to_owned(), Encoding::Counter)
            }
            _ => match job_dir_of(key) {
                Some(j) => job(&j, escape_key(key), Encoding::Binary),
                None => cluster(escape_key(key), Encoding::Binary),
            },
        };
        if loc.data_key.len() > MAX_DATA_KEY {
            return Err(KvError::InvalidKey {
                key: key.to_owned(),
                reason: format!(
                    "its ConfigMap data key would be {} characters; Kubernetes allows {MAX_DATA_KEY}",
                    loc.data_key.len()
                ),
            });
        }
        Ok(loc)
    }

    /// The key (and encoding) of a data key found in a ConfigMap of kind `kind`; `None` for data
    /// keys that are not tenure's or Flink's (left untouched).
    pub fn key_of(&self, kind: CmKind, data_key: &str) -> Option<(String, Encoding)> {
        if let Some(key) = unescape_key(data_key) {
            // A tenure key is only valid in the ConfigMap it maps to.
            let home = self.locate(&key).ok()?;
            let here = match kind {
                CmKind::Cluster => self.cluster_cm(),
                CmKind::Job(job) => self.job_cm(&job),
                _ => return None,
            };
            return (home.cm == here && home.data_key == data_key).then_some((key, home.encoding));
        }
        match kind {
            CmKind::Cluster => {
                if let Some(comp) = data_key.strip_prefix(LEADER_KEY_PREFIX) {
                    let (layout, c) = core_component(comp)?;
                    return Some((layout.key(&HaKey::LeaderInfo(c)), Encoding::LeaderInfo));
                }
                let (layout, job, enc) = if let Some(j) = data_key.strip_prefix("executionPlan-") {
                    (Layout::new(NamingEra::Flink2), j, Encoding::Base64)
                } else if let Some(j) = data_key.strip_prefix("jobGraph-") {
                    (Layout::new(NamingEra::Flink1), j, Encoding::Base64)
                } else if let Some(j) = data_key.strip_prefix("runningJobsRegistry-") {
                    let job = canonical_job(j)?;
                    return Some((
                        Layout::default().key(&HaKey::RunningJob(job)),
                        Encoding::Text,
                    ));
                } else {
                    return None;
                };
                canonical_job(job).map(|j| (layout.key(&HaKey::ExecutionPlan(j)), enc))
            }
            CmKind::Job(job) => {
                let layout = Layout::default();
                if data_key == "counter" {
                    return Some((
                        layout.key(&HaKey::CheckpointCounter(job)),
                        Encoding::Counter,
                    ));
                }
                let id = data_key.strip_prefix("checkpointID-")?.parse().ok()?;
                (checkpoint_data_key(id) == data_key)
                    .then(|| (layout.key(&HaKey::Checkpoint(job, id)), Encoding::Base64))
            }
            _ => None,
        }
    }

    /// The ConfigMaps holding keys below `prefix` (`""`: all).
    pub fn scope(&self, prefix: &str) -> Scope {
        if prefix.is_empty() || prefix == "jobs" {
            return Scope::All;
        }
        match job_dir_of(prefix) {
            Some(job) => Scope::One(self.job_cm(&job)),
            None => Scope::One(self.cluster_cm()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const JOB: &str = "58c7b669261b7be65fa686cc039885b6";

    fn names() -> Names {
        Names::new("my-cluster")
    }

    #[test]
    fn flink_layout_keys_map_to_flink_data_keys_and_back() {
        let n = names();
        let job: JobId = JOB.parse().unwrap();
        let l2 = Layout::default();
        let l1 = Layout::new(NamingEra::Flink1);
        let cases = [
            (
                l2.leader_info(&ComponentId::ResourceManager),
                "my-cluster-cluster-config-map",
                "org.apache.flink.k8s.leader.resourcemanager",
                Encoding::LeaderInfo,
            ),
            (
                l2.leader_info(&ComponentId::RestServer),
                "my-cluster-cluster-config-map",
                "org.apache.flink.k8s.leader.restserver",
                Encoding::LeaderInfo,
            ),
            (
                l2.leader_info(&ComponentId::Dispatcher),
                "my-cluster-cluster-config-map",
                "org.apache.flink.k8s.leader.dispatcher",
                Encoding::LeaderInfo,
            ),
            (
                l2.leader_info(&ComponentId::JobMaster(job)),
                "my-cluster-cluster-config-map",
                "org.apache.flink.k8s.leader.job-58c7b669261b7be65fa686cc039885b6",
                Encoding::LeaderInfo,
            ),
            (
                l1.leader_info(&ComponentId::JobMaster(job)),
                "my-cluster-cluster-config-map",
                "org.apache.flink.k8s.leader.58c7b669261b7be65fa686cc039885b6",
                Encoding::LeaderInfo,
            ),
            (
                l2.leader_info(&ComponentId::parse("my-cron").unwrap()),
                "my-cluster-cluster-config-map",
                "org.apache.flink.k8s.leader.my-cron",
                Encoding::LeaderInfo,
            ),
            (
                l2.job_graph(&job),
                "my-cluster-cluster-config-map",
                "executionPlan-58c7b669261b7be65fa686cc039885b6",
                Encoding::Base64,
            ),
            (
                l1.job_graph(&job),
                "my-cluster-cluster-config-map",
                "jobGraph-58c7b669261b7be65fa686cc039885b6",
                Encoding::Base64,
            ),
            (
                l2.running_job(&job),
                "my-cluster-cluster-config-map",
                "runningJobsRegistry-58c7b669261b7be65fa686cc039885b6",
                Encoding::Text,
            ),
            (
                l2.checkpoint(&job, CheckpointId(42)),
                "my-cluster-58c7b669261b7be65fa686cc039885b6-config-map",
                "checkpointID-0000000000000000042",
                Encoding::Base64,
            ),
            (
                l2.checkpoint_counter(&job),
                "my-cluster-58c7b669261b7be65fa686cc039885b6-config-map",
                "counter",
                Encoding::Counter,
            ),
            (
                l2.job_graph_lock(&job, "0f0e-x"),
                "my-cluster-cluster-config-map",
                "tenure.execution-plans.58c7b669261b7be65fa686cc039885b6.locks.0f0e-x",
                Encoding::Binary,
            ),
            (
                l2.job_result(&job, true),
                "my-cluster-cluster-config-map",
                "tenure.job-results.58c7b669261b7be65fa686cc039885b6_5FDIRTY",
                Encoding::Binary,
            ),
        ];
        for (key, cm, data_key, encoding) in cases {
            let loc = n.locate(&key).unwrap();
            assert_eq!(
                loc,
                Location {
                    cm: cm.into(),
                    data_key: data_key.into(),
                    encoding
                },
                "{key}"
            );
            assert_eq!(
                n.key_of(n.classify(cm), data_key),
                Some((key.clone(), encoding)),
                "{data_key}"
            );
        }
    }

    #[test]
    fn configmaps_are_classified_by_name() {
        let n = names();
        let job: JobId = JOB.parse().unwrap();
        assert_eq!(n.classify(&n.cluster_cm()), CmKind::Cluster);
        assert_eq!(n.classify(&n.job_cm(&job)), CmKind::Job(job));
        assert_eq!(n.classify(&n.session_cm(0xabc)), CmKind::Session(0xabc));
        assert_eq!(
            n.classify(&n.component_lock_cm(&ComponentId::JobMaster(job))),
            CmKind::Lock
        );
        assert_eq!(
            n.job_of_lock(&n.component_lock_cm(&ComponentId::JobMaster(job))),
            Some(job)
        );
        assert_eq!(n.job_of_lock("my-cluster-dispatcher-leader"), None);
        assert_eq!(n.classify("other-cluster-config-map"), CmKind::Other);
        assert_eq!(n.latch_cm("leader/latch").unwrap(), n.cluster_cm());
        assert_eq!(
            n.latch_cm("leader/dispatcher/latch").unwrap(),
            "my-cluster-dispatcher-leader"
        );
        assert!(n.latch_cm("x/latch").is_err());
        assert_eq!(
            n.latch_cm("leader/my-cron/latch").unwrap(),
            "my-cluster-my-cron-leader"
        );
        assert_eq!(n.classify("my-cluster-my-cron-leader"), CmKind::Lock);
        assert_eq!(n.job_of_lock("my-cluster-my-cron-leader"), None);
        assert_eq!(
            n.label_selector(),
            "app=my-cluster,configmap-type=high-availability,type=flink-native-kubernetes"
        );
    }

    #[test]
    fn unknown_and_foreign_data_keys_are_left_alone() {
        let n = names();
        assert_eq!(n.key_of(CmKind::Cluster, "address"), None);
        assert_eq!(n.key_of(CmKind::Cluster, "jobGraph-notajob"), None);
        for foreign in ["X", "latch", "resource_manager", "my_cron", ""] {
            assert_eq!(
                n.key_of(CmKind::Cluster, &format!("{LEADER_KEY_PREFIX}{foreign}")),
                None,
                "{foreign}"
            );
        }
        // A tenure key that belongs to a per-job ConfigMap is not accepted in the cluster one.
        let in_job = escape_key(&format!("jobs/{JOB}/x"));
        assert_eq!(n.key_of(CmKind::Cluster, &in_job), None);
        // Non-canonical spellings are generic keys, round-tripped exactly.
        let upper = format!("execution-plans/{}", JOB.to_uppercase());
        let loc = n.locate(&upper).unwrap();
        assert_eq!(loc.encoding, Encoding::Binary);
        assert_eq!(
            n.key_of(CmKind::Cluster, &loc.data_key).map(|k| k.0),
            Some(upper)
        );
    }

    #[test]
    fn scopes() {
        let n = names();
        assert_eq!(n.scope(""), Scope::All);
        assert_eq!(n.scope("jobs"), Scope::All);
        assert_eq!(
            n.scope(&format!("jobs/{JOB}/checkpoints")),
            Scope::One(format!("my-cluster-{JOB}-config-map"))
        );
        assert_eq!(n.scope("leader"), Scope::One(n.cluster_cm()));
    }

    #[test]
    fn escaping_round_trips_and_rejects_garbage() {
        for key in ["a", "l/a/x", "with space/ü/_x_/.dot", "f/x"] {
            let dk = escape_key(key);
            assert!(
                dk.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
                "{dk}"
            );
            assert_eq!(unescape_key(&dk).as_deref(), Some(key));
        }
        for bad in [
            "tenure._4",
            "tenure._zz",
            "tenure.a b",
            "other",
            "tenure._61",
        ] {
            assert_eq!(unescape_key(bad), None, "{bad}");
        }
        let long = "k".repeat(300);
        assert!(matches!(
            names().locate(&long),
            Err(KvError::InvalidKey { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn every_located_key_maps_back(
            s in proptest::prop_oneof![
                ".*",
                "(leader|jobs|jobgraphs|execution-plans|running_job_registry)/(58c7b669261b7be65fa686cc039885b6|job-58c7b669261b7be65fa686cc039885b6|dispatcher|restserver|my-cron|My-Cron|latch)(/(connection_info|latch|checkpoints|checkpoint_id_counter|0000000000000000042|42))*",
            ]
        ) {
            let n = names();
            if let Ok(loc) = n.locate(&s) {
                proptest::prop_assert_eq!(
                    n.key_of(n.classify(&loc.cm), &loc.data_key),
                    Some((s.clone(), loc.encoding))
                );
            }
        }

        #[test]
        fn unescape_never_panics(s in ".*") {
            let _ = unescape_key(&s);
            let _ = unescape_key(&format!("tenure.{s}"));
        }
    }
}
