//! Read-only views of the leader data below `leader/`: every component's published leader
//! (decoded from Flink's bytes), the latch contenders, and whether a live leader would race a
//! write.

use std::collections::BTreeMap;

use serde::Serialize;
use tenure::codec::decode_leader_info;
use tenure::ids::ComponentId;
use tenure::kv::{Entry, VersionedKv};
use tenure::layout::{HaKey, LEADER_DIR, Layout};

use crate::exit::CliError;
use crate::output::sanitize;

/// The components every cluster has, listed even when nothing is published for them.
const FIXED: [ComponentId; 3] = [
    ComponentId::ResourceManager,
    ComponentId::Dispatcher,
    ComponentId::RestServer,
];

/// What is published for one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentLeader {
    /// The component's name as stored (`dispatcher`, `job-<id>`, or a bare job id in Flink 1.x;
    /// a service elected by name is its name, e.g. `my-cron`).
    pub component: String,
    /// What the component is ([`kind`]): `resource_manager`, `dispatcher`, `rest_server`,
    /// `job_master`, or `named` for a service elected by name.
    pub kind: &'static str,
    /// The job id, for a job master.
    pub job_id: Option<String>,
    /// `leader`, `no_leader` or `unreadable`.
    pub state: &'static str,
    /// The leader's address.
    pub address: Option<String>,
    /// The leader's session id.
    pub session_id: Option<String>,
    /// The key read.
    pub key: String,
    /// Why the bytes could not be decoded (`unreadable` only).
    pub error: Option<String>,
}

/// One participant of a leader latch (a Curator latch node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contender {
    /// The latch directory (`leader/latch`, or `leader/<component>/latch`).
    pub latch: String,
    /// The component of a per-component latch; `null` for the process-wide latch.
    pub component: Option<String>,
    /// What that component is ([`kind`]); `null` for the process-wide latch.
    pub kind: Option<&'static str>,
    /// The latch node's name (`_c_<uuid>-latch-<seq>`; on etcd the lease id in hex).
    pub node: String,
    /// Its place in line: the sequence number (on etcd the key's create revision); `null` for
    /// a foreign node.
    pub sequence: Option<i64>,
    /// Whether the node is not a participant by the backend's latch rule (ZooKeeper and the
    /// embedded backend: `*latch-<at least 10 digits>`, see [`tenure::latch`]; etcd: named by
    /// the lease it is attached to): the election ignores it, so it never leads.
    pub foreign: bool,
    /// Whether it is first in line (the latch's leader): the participant with the lowest
    /// place.
    pub leader: bool,
    /// The backend session owning the node, in hex (ephemeral nodes).
    pub owner_session: Option<String>,
}

/// Everything below `leader/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LeaderSnapshot {
    /// Every component, the fixed ones first, then job masters by name, then services elected
    /// by name, by name.
    pub components: Vec<ComponentLeader>,
    /// Every latch node, by latch, then the participants in line order, then foreign nodes by
    /// name.
    pub contenders: Vec<Contender>,
}

impl LeaderSnapshot {
    /// Reads the snapshot from `kv`.
    pub async fn read(kv: &dyn VersionedKv, layout: Layout) -> Result<Self, CliError> {
        let entries = kv
            .list(LEADER_DIR)
            .await
            .map_err(|e| CliError::kv("listing the leader data", e))?;
        Ok(Self::from_entries_placed(&entries, layout, &|node, e| {
            kv.latch_place(node, e)
        }))
    }

    /// Builds the snapshot from the entries below `leader/`, reading latch lines by the
    /// Curator-style rule ([`latch::sequence`]).
    #[cfg(test)]
    pub fn from_entries(entries: &[Entry], layout: Layout) -> Self {
        Self::from_entries_placed(entries, layout, &|node, _| tenure::latch::sequence(node))
    }

    /// Builds the snapshot from the entries below `leader/`; `place` is the backend's rule for
    /// a latch key's place in line ([`VersionedKv::latch_place`]).
    pub fn from_entries_placed(
        entries: &[Entry],
        layout: Layout,
        place: &dyn Fn(&str, &Entry) -> Option<i64>,
    ) -> Self {
        let mut comps: BTreeMap<(u8, String), ComponentLeader> = BTreeMap::new();
        for (i, c) in FIXED.iter().enumerate() {
            let name = layout.component_name(c);
            comps.insert(
                (i as u8, name.clone()),
                no_leader(&name, kind(c), None, layout.leader_info(c)),
            );
        }
        let mut latches: BTreeMap<String, Vec<Contender>> = BTreeMap::new();
        for e in entries {
            let Some((era, parsed)) = Layout::parse_any_era(&e.key) else {
                tracing::debug!(key = ?e.key, "not a key of the leader layout; ignored");
                continue;
            };
            match parsed {
                HaKey::ClusterLatchNode(node) => {
                    let latch = era.cluster_latch();
                    latches
                        .entry(latch.clone())
                        .or_default()
                        .push(contender(e, latch, None, &node, place));
                }
                HaKey::LeaderLatchNode(c, node) => {
                    let latch = era.component_latch(&c);
                    let name = era.component_name(&c);
                    latches.entry(latch.clone()).or_default().push(contender(
                        e,
                        latch,
                        Some((&name, kind(&c))),
                        &node,
                        place,
                    ));
                }
                HaKey::LeaderDir(ref c) | HaKey::LeaderInfo(ref c) => {
                    let name = era.component_name(c);
                    let slot = (rank(c), name.clone());
                    let key = era.leader_info(c);
                    let job = match c {
                        ComponentId::JobMaster(job) => Some(job.to_string()),
                        _ => None,
                    };
                    let current = comps
                        .entry(slot)
                        .or_insert_with(|| no_leader(&name, kind(c), job.clone(), key.clone()));
                    if matches!(parsed, HaKey::LeaderInfo(_)) {
                        *current = decode(&name, kind(c), job, key, &e.value);
                    }
                }
                _ => {}
            }
        }
        let components = comps.into_values().collect();
        let mut contenders = Vec::new();
        for (_, mut line) in latches {
            // In line: the participants by place, then name; foreign keys after them.
            line.sort_by(|a, b| {
                (a.foreign, a.sequence, &a.node).cmp(&(b.foreign, b.sequence, &b.node))
            });
            if let Some(first) = line.first_mut().filter(|c| !c.foreign) {
                first.leader = true;
            }
            contenders.extend(line);
        }
        Self {
            components,
            contenders,
        }
    }

    /// The components with a published leader.
    pub fn leaders(&self) -> impl Iterator<Item = &ComponentLeader> {
        self.components.iter().filter(|c| c.state == "leader")
    }

    /// Whether a live process may be leading or contending: a latch node exists, or a leader is
    /// published (leader information is ephemeral: it exists only while its session lives).
    pub fn is_live(&self) -> bool {
        self.live_contenders().next().is_some() || self.leaders().next().is_some()
    }

    /// Latch nodes that may belong to a live process: every well-formed one, and any node a
    /// session owns. A persistent node that is not a latch node (junk left in a latch
    /// directory) proves no process is there.
    fn live_contenders(&self) -> impl Iterator<Item = &Contender> {
        self.contenders
            .iter()
            .filter(|c| !c.foreign || c.owner_session.is_some())
    }

    /// Why the cluster looks live, in one sentence fragment.
    pub fn liveness(&self) -> String {
        let mut parts = Vec::new();
        let leaders: Vec<String> = self
            .leaders()
            .map(|c| {
                format!(
                    "{} led by session {} at {}",
                    sanitize(&c.component),
                    sanitize(c.session_id.as_deref().unwrap_or("?")),
                    sanitize(c.address.as_deref().unwrap_or("?"))
                )
            })
            .collect();
        if !leaders.is_empty() {
            parts.push(format!("published leaders: {}", leaders.join(", ")));
        }
        if self.live_contenders().next().is_some() {
            let mut by_latch: BTreeMap<&str, usize> = BTreeMap::new();
            for c in self.live_contenders() {
                *by_latch.entry(c.latch.as_str()).or_default() += 1;
            }
            let latches: Vec<String> = by_latch
                .iter()
                .map(|(l, n)| format!("{n} on {}", sanitize(l)))
                .collect();
            parts.push(format!("latch contenders: {}", latches.join(", ")));
        }
        parts.join("; ")
    }

    /// Refuses (exit 5) a write that a live leader would race, unless `force`; `what` names the
    /// write (`removing job graph …`).
    pub fn guard(&self, what: &str, force: bool) -> Result<(), CliError> {
        if !self.is_live() {
            return Ok(());
        }
        if force {
            eprintln!(
                "tenure: warning: {what} although the cluster looks live ({}): --force given",
                self.liveness()
            );
            return Ok(());
        }
        Err(CliError::Refused(format!(
            "{what} refused: the cluster looks live and its leader could race this write ({}); \
             stop the cluster's processes first, or pass --force",
            self.liveness()
        )))
    }
}

/// Reads the leader data and refuses a write a live leader would race (see
/// [`LeaderSnapshot::guard`]).
pub async fn guard(
    kv: &dyn VersionedKv,
    layout: Layout,
    what: &str,
    force: bool,
) -> Result<LeaderSnapshot, CliError> {
    let snap = LeaderSnapshot::read(kv, layout).await?;
    snap.guard(what, force)?;
    Ok(snap)
}

/// The order of components: the fixed ones, then job masters, then named services.
fn rank(c: &ComponentId) -> u8 {
    let fixed = FIXED.len() as u8;
    match FIXED.iter().position(|f| f == c) {
        Some(i) => i as u8,
        None if c.service().is_some() => fixed + 1,
        None => fixed,
    }
}

/// What `c` is, as the JSON field `kind` says it.
pub fn kind(c: &ComponentId) -> &'static str {
    match c {
        ComponentId::ResourceManager => "resource_manager",
        ComponentId::Dispatcher => "dispatcher",
        ComponentId::RestServer => "rest_server",
        ComponentId::JobMaster(_) => "job_master",
        ComponentId::Named(_) => "named",
    }
}

fn no_leader(
    name: &str,
    kind: &'static str,
    job_id: Option<String>,
    key: String,
) -> ComponentLeader {
    ComponentLeader {
        component: name.to_owned(),
        kind,
        job_id,
        state: "no_leader",
        address: None,
        session_id: None,
        key,
        error: None,
    }
}

/// Decodes one component's `connection_info` bytes (Flink's format).
pub fn decode(
    name: &str,
    kind: &'static str,
    job_id: Option<String>,
    key: String,
    bytes: &[u8],
) -> ComponentLeader {
    match decode_leader_info(bytes) {
        Ok(Some(info)) => ComponentLeader {
            component: name.to_owned(),
            kind,
            job_id,
            state: "leader",
            address: Some(info.address),
            session_id: Some(info.session_id.to_string()),
            key,
            error: None,
        },
        Ok(None) => no_leader(name, kind, job_id, key),
        Err(e) => ComponentLeader {
            state: "unreadable",
            error: Some(e.to_string()),
            ..no_leader(name, kind, job_id, key)
        },
    }
}

fn contender(
    e: &Entry,
    latch: String,
    component: Option<(&str, &'static str)>,
    node: &str,
    place: &dyn Fn(&str, &Entry) -> Option<i64>,
) -> Contender {
    let sequence = place(node, e);
    Contender {
        latch,
        component: component.map(|(name, _)| name.to_owned()),
        kind: component.map(|(_, kind)| kind),
        node: node.to_owned(),
        sequence,
        foreign: sequence.is_none(),
        leader: false,
        owner_session: e.ephemeral_owner.map(|o| format!("{o:#x}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;
    use tenure::kv::Version;

    use super::*;

    pub(crate) fn entry(key: &str, value: &[u8], owner: Option<u64>) -> Entry {
        Entry {
            key: key.into(),
            value: Bytes::copy_from_slice(value),
            version: Version(0),
            ephemeral_owner: owner,
        }
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// Flink 2.2.0's bytes of `leader/rest_server/connection_info` (reference §9).
    pub(crate) const FLINK_REST: &str = "aced000577180016687474703a2f2f3132372e302e302e313a33383038317372000e6a6176612e7574696c2e55554944bc9903f7986d852f
0200024a000c6c65617374536967426974734a000b6d6f73745369674269747378708196a44563d07febda34a7de6e4b411d";

    #[test]
    fn decodes_flink_bytes_and_orders_latch_nodes_by_sequence() {
        let job = "58c7b669261b7be65fa686cc039885b6";
        let entries = vec![
            entry("leader/dispatcher", b"", None),
            entry("leader/job-58c7b669261b7be65fa686cc039885b6", b"", None),
            entry(
                "leader/job-58c7b669261b7be65fa686cc039885b6/connection_info",
                b"garbage",
                Some(7),
            ),
            entry("leader/latch", b"", None),
            entry("leader/latch/_c_b-latch-0000000012", b"", Some(2)),
            entry("leader/latch/_c_a-latch-0000000003", b"", Some(1)),
            entry("leader/rest_server", b"", None),
            entry(
                "leader/rest_server/connection_info",
                &hex(FLINK_REST),
                Some(1),
            ),
            entry("leader/whatever/else", b"", None),
        ];
        let snap = LeaderSnapshot::from_entries(&entries, Layout::default());
        let names: Vec<&str> = snap
            .components
            .iter()
            .map(|c| c.component.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "resource_manager",
                "dispatcher",
                "rest_server",
                &format!("job-{job}")
            ]
        );
        let rest = &snap.components[2];
        assert_eq!(rest.state, "leader");
        assert_eq!(rest.address.as_deref(), Some("http://127.0.0.1:38081"));
        assert_eq!(
            rest.session_id.as_deref(),
            Some("da34a7de-6e4b-411d-8196-a44563d07feb")
        );
        assert_eq!(snap.components[1].state, "no_leader");
        let jm = &snap.components[3];
        assert_eq!(jm.state, "unreadable");
        assert_eq!(jm.job_id.as_deref(), Some(job));
        assert!(jm.error.as_deref().unwrap_or("").contains("header"));
        assert_eq!(snap.contenders.len(), 2);
        assert_eq!(snap.contenders[0].sequence, Some(3));
        assert!(snap.contenders[0].leader && !snap.contenders[1].leader);
        assert_eq!(snap.contenders[0].owner_session.as_deref(), Some("0x1"));
        assert!(snap.is_live());
        let refused = snap.guard("removing x", false).expect_err("live");
        assert_eq!(refused.code(), crate::exit::REFUSED);
        assert!(refused.to_string().contains("rest_server led by session"));
        assert!(snap.guard("removing x", true).is_ok());
    }

    #[test]
    fn named_services_are_listed_after_flink_components_with_their_kind() {
        let job = "58c7b669261b7be65fa686cc039885b6";
        let entries = vec![
            entry("leader/my-cron", b"", None),
            entry("leader/my-cron/connection_info", &hex(FLINK_REST), Some(1)),
            entry("leader/my-cron/latch", b"", None),
            entry("leader/my-cron/latch/_c_a-latch-0000000001", b"", Some(1)),
            entry("leader/backup", b"", None),
            entry(&format!("leader/job-{job}"), b"", None),
            entry("leader/Not_A_Service/connection_info", b"", None),
        ];
        let snap = LeaderSnapshot::from_entries(&entries, Layout::default());
        let listed: Vec<(&str, &str, &str)> = snap
            .components
            .iter()
            .map(|c| (c.component.as_str(), c.kind, c.state))
            .collect();
        assert_eq!(
            listed,
            [
                ("resource_manager", "resource_manager", "no_leader"),
                ("dispatcher", "dispatcher", "no_leader"),
                ("rest_server", "rest_server", "no_leader"),
                (&format!("job-{job}") as &str, "job_master", "no_leader"),
                ("backup", "named", "no_leader"),
                ("my-cron", "named", "leader"),
            ]
        );
        let cron = &snap.components[5];
        assert_eq!(cron.key, "leader/my-cron/connection_info");
        assert_eq!(cron.job_id, None);
        let json = serde_json::to_value(cron).expect("json");
        assert_eq!(json["kind"], "named");
        assert_eq!(snap.contenders.len(), 1);
        let c = &snap.contenders[0];
        assert_eq!(
            (c.latch.as_str(), c.component.as_deref(), c.kind, c.leader),
            ("leader/my-cron/latch", Some("my-cron"), Some("named"), true)
        );
    }

    #[test]
    fn an_empty_cluster_is_not_live() {
        let snap = LeaderSnapshot::from_entries(&[], Layout::default());
        assert_eq!(snap.components.len(), 3);
        assert!(snap.components.iter().all(|c| c.state == "no_leader"));
        assert!(!snap.is_live());
        assert!(snap.guard("x", false).is_ok());
    }

    #[test]
    fn malformed_latch_nodes_are_foreign_and_never_lead() {
        let entries = vec![
            entry("leader/latch/junk☃", b"", Some(9)),
            entry("leader/latch/member-0000000001", b"", Some(8)),
            entry("leader/latch/_c_a-latch-12", b"", Some(7)),
            entry("leader/latch/_c_b-latch-0000000005", b"", Some(2)),
            entry("leader/latch/_c_c-latch-0000000004", b"", Some(3)),
            entry("leader/dispatcher/latch/☃latch-☃", b"", None),
        ];
        let snap = LeaderSnapshot::from_entries(&entries, Layout::default());
        let line: Vec<(&str, &str, Option<i64>, bool, bool)> = snap
            .contenders
            .iter()
            .map(|c| {
                (
                    c.latch.as_str(),
                    c.node.as_str(),
                    c.sequence,
                    c.foreign,
                    c.leader,
                )
            })
            .collect();
        assert_eq!(
            line,
            [
                ("leader/dispatcher/latch", "☃latch-☃", None, true, false),
                (
                    "leader/latch",
                    "_c_c-latch-0000000004",
                    Some(4),
                    false,
                    true
                ),
                (
                    "leader/latch",
                    "_c_b-latch-0000000005",
                    Some(5),
                    false,
                    false
                ),
                ("leader/latch", "_c_a-latch-12", None, true, false),
                ("leader/latch", "junk☃", None, true, false),
                ("leader/latch", "member-0000000001", None, true, false),
            ]
        );
        let json = serde_json::to_value(&snap.contenders[4]).expect("json");
        assert_eq!(json["foreign"], true);
        assert_eq!(json["sequence"], serde_json::Value::Null);
        assert_eq!(json["node"], "junk☃");
        let only_foreign = LeaderSnapshot::from_entries(&entries[..1], Layout::default());
        assert!(only_foreign.contenders.iter().all(|c| !c.leader));
        assert!(
            only_foreign.is_live(),
            "a foreign node still counts as live"
        );
    }

    #[test]
    fn backend_strings_in_liveness_are_escaped() {
        let entries = vec![entry("leader/latch/\x1b[2Jx\n", b"", Some(1))];
        let snap = LeaderSnapshot::from_entries(&entries, Layout::default());
        let text = snap.liveness();
        assert!(!text.contains('\x1b') && !text.contains('\n'), "{text}");
    }

    /// Keys below `leader/` built from arbitrary segments, and the shapes the views recognise.
    fn arbitrary_key() -> impl Strategy<Value = String> {
        let seg = prop_oneof![
            any::<String>(),
            Just("latch".to_owned()),
            Just("connection_info".to_owned()),
            Just("dispatcher".to_owned()),
            Just("job-58c7b669261b7be65fa686cc039885b6".to_owned()),
            "[a-z☃_]{0,3}(latch-)?[0-9]{0,12}",
        ];
        (
            prop_oneof![Just("leader/"), Just("leader"), Just(""), Just("leader//")],
            proptest::collection::vec(seg, 0..4),
        )
            .prop_map(|(prefix, segs)| format!("{prefix}{}", segs.join("/")))
    }

    fn arbitrary_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            // Flink's leader bytes with a mutated tail: reaches deep into the decoder.
            (proptest::collection::vec(any::<u8>(), 0..16), 0usize..120).prop_map(|(tail, cut)| {
                let mut v = hex(FLINK_REST);
                v.truncate(cut);
                v.extend(tail);
                v
            }),
        ]
    }

    /// Entries below `leader/` (and around it) with arbitrary keys, values and owners.
    pub(crate) fn arbitrary_entries() -> impl Strategy<Value = Vec<Entry>> {
        proptest::collection::vec(
            (
                arbitrary_key(),
                arbitrary_value(),
                proptest::option::of(any::<u64>()),
            ),
            0..12,
        )
        .prop_map(|es| es.iter().map(|(k, v, o)| entry(k, v, *o)).collect())
    }

    proptest! {
        #[test]
        fn any_backend_data_builds_a_snapshot_without_panic(entries in arbitrary_entries()) {
            for layout in [Layout::default(), Layout::new(tenure::layout::NamingEra::Flink1)] {
                let snap = LeaderSnapshot::from_entries(&entries, layout);
                let _ = snap.liveness();
                let _ = snap.guard("x", false);
                let mut leaders: BTreeMap<&str, usize> = BTreeMap::new();
                for c in &snap.contenders {
                    prop_assert_eq!(c.foreign, tenure::latch::sequence(&c.node).is_none());
                    if c.leader {
                        prop_assert!(!c.foreign);
                        *leaders.entry(c.latch.as_str()).or_default() += 1;
                        let lowest = snap
                            .contenders
                            .iter()
                            .filter(|o| o.latch == c.latch)
                            .filter_map(|o| o.sequence)
                            .min();
                        prop_assert_eq!(c.sequence, lowest);
                    }
                }
                prop_assert!(leaders.values().all(|n| *n == 1));
                for c in snap.contenders.iter().filter(|c| !c.foreign) {
                    prop_assert_eq!(leaders.get(c.latch.as_str()), Some(&1), "{} has no leader", c.latch);
                }
                let text = serde_json::to_string(&snap).expect("json");
                let back: serde_json::Value = serde_json::from_str(&text).expect("parse");
                prop_assert!(back.is_object());
            }
        }
    }
}
