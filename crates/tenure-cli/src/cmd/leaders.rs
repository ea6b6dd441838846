//! `tenure leaders [--watch]`: every component's published leader and the latch contenders.

use std::collections::BTreeMap;

use clap::Args;
use futures::FutureExt as _;
use serde::Serialize;
use tenure::connection::ConnectionState;
use tenure::kv::{KvEvent, VersionedKv};
use tenure::layout::{LEADER_DIR, Layout};

use crate::conn::{ConnArgs, Connection, Storage, connect_client, connect_reading};
use crate::exit::CliError;
use crate::inspect::{ComponentLeader, Contender, LeaderSnapshot};
use crate::metrics::metrics;
use crate::output::{
    OutputFormat, Table, or_dash, print_json, print_json_line, print_line, unix_ms,
};
use crate::signals::StopSignals;

/// Examples shown by `tenure leaders --help`.
pub const EXAMPLES: &str = "Examples:
  tenure leaders --config conf/config.yaml
  tenure leaders --ha-type zookeeper --zookeeper-quorum zk1:2181 --storage-dir /tmp/ha --cluster-id /peer1
  tenure leaders --output json | jq '.components[] | select(.state == \"leader\")'
  tenure leaders --watch --output json          one JSON object per change, until Ctrl-C
  tenure leaders --watch --metrics-addr 127.0.0.1:9249";

/// Options of `tenure leaders`.
#[derive(Debug, Clone, Args)]
pub struct LeadersArgs {
    /// Keep running and print one line (one JSON object) per change.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: stop after this many changes.
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
    /// With --watch: the metrics endpoint.
    #[command(flatten)]
    pub metrics: crate::metrics_args::MetricsArgs,
}

/// The JSON document of `tenure leaders`.
#[derive(Debug, Serialize)]
pub struct LeadersReport<'a> {
    /// The cluster id.
    pub cluster_id: &'a str,
    /// The backend (`zookeeper`, `embedded`, ...).
    pub backend: &'a str,
    /// Every component.
    pub components: &'a [ComponentLeader],
    /// Every latch participant.
    pub contenders: &'a [Contender],
}

/// Runs `tenure leaders`.
pub async fn run(args: LeadersArgs, conn: &ConnArgs, format: OutputFormat) -> Result<u8, CliError> {
    if args.metrics.given() && !args.watch {
        return Err(CliError::Usage(
            "the metrics options (--metrics-addr, ...) need --watch".into(),
        ));
    }
    let endpoint = args.metrics.endpoint()?;
    // A watch may wait for a cluster still to come; a snapshot of nothing is an error. Both
    // only read: a client-only session, which writes nothing to the backend.
    let conn = if args.watch {
        connect_client(conn, Storage::Optional).await?
    } else {
        connect_reading(conn).await?
    };
    let result = if args.watch {
        if let Some(endpoint) = endpoint {
            crate::metrics::serve(endpoint).await?;
        }
        watch(&conn, format, args.count).await
    } else {
        let snap = LeaderSnapshot::read(
            conn.services.backend().kv().as_ref(),
            conn.services.layout(),
        )
        .await?;
        print_snapshot(&conn, &snap, format)
    };
    conn.close().await;
    result.map(|()| crate::exit::OK)
}

fn print_snapshot(
    conn: &Connection,
    snap: &LeaderSnapshot,
    format: OutputFormat,
) -> Result<(), CliError> {
    let backend = conn.backend();
    let report = LeadersReport {
        cluster_id: &conn.config.cluster_id,
        backend: &backend,
        components: &snap.components,
        contenders: &snap.contenders,
    };
    match format {
        OutputFormat::Json => print_json(&report),
        OutputFormat::Table => print_tables(snap),
    }
}

fn state_text(c: &ComponentLeader) -> &'static str {
    match c.state {
        "leader" => "leader",
        "no_leader" => "no leader",
        _ => "unreadable",
    }
}

/// Prints the snapshot's tables; every cell is escaped by [`Table::row`].
fn print_tables(snap: &LeaderSnapshot) -> Result<(), CliError> {
    let mut t = Table::new(&["COMPONENT", "KIND", "STATE", "SESSION", "ADDRESS"]);
    for c in &snap.components {
        t.row(vec![
            c.component.clone(),
            c.kind.into(),
            state_text(c).into(),
            or_dash(c.session_id.as_ref()),
            match &c.error {
                Some(e) => e.clone(),
                None => or_dash(c.address.as_ref()),
            },
        ]);
    }
    t.print()?;
    print_line("")?;
    if snap.contenders.is_empty() {
        return print_line("no latch contenders");
    }
    let mut t = Table::new(&["LATCH", "CONTENDER", "SEQUENCE", "LEADS", "SESSION"]);
    for c in &snap.contenders {
        t.row(vec![
            c.latch.clone(),
            c.node.clone(),
            if c.foreign {
                "foreign".into()
            } else {
                or_dash(c.sequence)
            },
            if c.leader { "yes" } else { "no" }.into(),
            or_dash(c.owner_session.as_ref()),
        ]);
    }
    t.print()
}

/// One change seen by `leaders --watch`.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Change {
    /// The state of a component's leader changed (or a job master appeared).
    Component {
        /// When it was seen, ms since the Unix epoch.
        unix_ms: u64,
        /// The component's new state.
        #[serde(flatten)]
        leader: ComponentLeader,
    },
    /// A job master's leader data disappeared.
    ComponentRemoved {
        /// When it was seen.
        unix_ms: u64,
        /// The component.
        component: String,
    },
    /// A latch's leader changed: another node is first in line (a standby took over, or the
    /// first contender joined an empty latch), or no node is in line any more.
    LeaderChanged {
        /// When it was seen.
        unix_ms: u64,
        /// The latch directory.
        latch: String,
        /// The component of a per-component latch; `null` for the process-wide latch.
        component: Option<String>,
        /// The node that leads now; `null` when no node is in line.
        node: Option<String>,
        /// Its sequence number.
        sequence: Option<i64>,
        /// The backend session owning it.
        owner_session: Option<String>,
        /// The node that led before; `null` when none did.
        previous: Option<String>,
    },
    /// A latch node appeared.
    ContenderJoined {
        /// When it was seen.
        unix_ms: u64,
        /// The contender.
        #[serde(flatten)]
        contender: Contender,
    },
    /// A latch node disappeared.
    ContenderLeft {
        /// When it was seen.
        unix_ms: u64,
        /// The contender.
        #[serde(flatten)]
        contender: Contender,
    },
    /// The backend session's connection state changed.
    Connection {
        /// When it was seen.
        unix_ms: u64,
        /// `connected`, `suspended` or `lost`.
        state: ConnectionState,
    },
}

/// The changes from `old` to `new`, components first.
pub fn diff(old: &LeaderSnapshot, new: &LeaderSnapshot) -> Vec<Change> {
    let now = unix_ms();
    let mut out = Vec::new();
    let before: BTreeMap<&str, &ComponentLeader> = old
        .components
        .iter()
        .map(|c| (c.component.as_str(), c))
        .collect();
    let after: BTreeMap<&str, &ComponentLeader> = new
        .components
        .iter()
        .map(|c| (c.component.as_str(), c))
        .collect();
    for c in &new.components {
        if before.get(c.component.as_str()) != Some(&c) {
            out.push(Change::Component {
                unix_ms: now,
                leader: c.clone(),
            });
        }
    }
    for c in &old.components {
        if !after.contains_key(c.component.as_str()) {
            out.push(Change::ComponentRemoved {
                unix_ms: now,
                component: c.component.clone(),
            });
        }
    }
    let key = |c: &Contender| (c.latch.clone(), c.node.clone());
    let before: BTreeMap<_, &Contender> = old.contenders.iter().map(|c| (key(c), c)).collect();
    let after: BTreeMap<_, &Contender> = new.contenders.iter().map(|c| (key(c), c)).collect();
    for c in &old.contenders {
        if !after.contains_key(&key(c)) {
            out.push(Change::ContenderLeft {
                unix_ms: now,
                contender: c.clone(),
            });
        }
    }
    for c in &new.contenders {
        // A node already seen that now leads is not a new contender: its latch's leader
        // changed, reported below.
        if !before.contains_key(&key(c)) {
            out.push(Change::ContenderJoined {
                unix_ms: now,
                contender: c.clone(),
            });
        }
    }
    out.extend(leader_changes(old, new, now));
    out
}

/// A [`Change::LeaderChanged`] for every latch whose first-in-line node differs from `old` to
/// `new`, by latch.
fn leader_changes(old: &LeaderSnapshot, new: &LeaderSnapshot, now: u64) -> Vec<Change> {
    let leaders = |s: &LeaderSnapshot| -> BTreeMap<String, Contender> {
        s.contenders
            .iter()
            .filter(|c| c.leader)
            .map(|c| (c.latch.clone(), c.clone()))
            .collect()
    };
    let (before, after) = (leaders(old), leaders(new));
    let latches: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    for latch in latches {
        let (was, is) = (before.get(latch), after.get(latch));
        if was.map(|c| &c.node) == is.map(|c| &c.node) {
            continue;
        }
        out.push(Change::LeaderChanged {
            unix_ms: now,
            latch: latch.clone(),
            component: is.or(was).and_then(|c| c.component.clone()),
            node: is.map(|c| c.node.clone()),
            sequence: is.and_then(|c| c.sequence),
            owner_session: is.and_then(|c| c.owner_session.clone()),
            previous: was.map(|c| c.node.clone()),
        });
    }
    out
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in ms.
fn clock(unix_ms: u64) -> String {
    let ms = unix_ms % 1000;
    let s = (unix_ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}.{ms:03}", s / 3600, (s / 60) % 60, s % 60)
}

fn change_line(change: &Change) -> String {
    match change {
        Change::Component { unix_ms, leader } => {
            let what = match leader.state {
                "leader" => format!(
                    "leader {} at {}",
                    or_dash(leader.session_id.as_ref()),
                    or_dash(leader.address.as_ref())
                ),
                "no_leader" => "no leader".into(),
                _ => format!("unreadable: {}", or_dash(leader.error.as_ref())),
            };
            format!("{}  {}  {what}", clock(*unix_ms), leader.component)
        }
        Change::ComponentRemoved { unix_ms, component } => {
            format!("{}  {component}  removed", clock(*unix_ms))
        }
        Change::LeaderChanged {
            unix_ms,
            latch,
            node,
            previous,
            ..
        } => format!(
            "{}  {latch}  leader changed: {} (was {})",
            clock(*unix_ms),
            node.as_deref().unwrap_or("no node in line"),
            previous.as_deref().unwrap_or("none")
        ),
        Change::ContenderJoined { unix_ms, contender } => format!(
            "{}  {}  contender {} joined{}",
            clock(*unix_ms),
            contender.latch,
            contender.node,
            if contender.leader {
                " (leads)"
            } else if contender.foreign {
                " (foreign: not in line)"
            } else {
                ""
            }
        ),
        Change::ContenderLeft { unix_ms, contender } => format!(
            "{}  {}  contender {} left",
            clock(*unix_ms),
            contender.latch,
            contender.node
        ),
        Change::Connection { unix_ms, state } => {
            format!("{}  connection  {state:?}", clock(*unix_ms)).to_lowercase()
        }
    }
}

/// Prints the changes from `snap` to `new` and keeps `new`; `true` once `done` says the watch
/// has printed enough.
fn print_changes(
    snap: &mut LeaderSnapshot,
    new: LeaderSnapshot,
    format: OutputFormat,
    printed: &mut u64,
    done: &impl Fn(u64) -> bool,
) -> Result<bool, CliError> {
    for change in diff(snap, &new) {
        emit(&change, format)?;
        *printed += 1;
        if done(*printed) {
            return Ok(true);
        }
    }
    *snap = new;
    Ok(false)
}

fn emit(change: &Change, format: OutputFormat) -> Result<(), CliError> {
    if let Change::Component { leader, .. } = change {
        metrics().published(&leader.component, leader.state == "leader", true);
    }
    match format {
        OutputFormat::Json => print_json_line(change),
        OutputFormat::Table => print_line(&change_line(change)),
    }
}

/// Re-reads the leader data; a failure (the connection is down) is logged and skipped.
async fn reread(kv: &dyn VersionedKv, layout: Layout) -> Option<LeaderSnapshot> {
    match LeaderSnapshot::read(kv, layout).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(error = ?e, "re-reading the leader data failed; waiting for the next event");
            None
        }
    }
}

/// Follows `leader/` and prints every change until interrupted, the session ends, or `count`
/// changes were printed.
async fn watch(
    conn: &Connection,
    format: OutputFormat,
    count: Option<u64>,
) -> Result<(), CliError> {
    let mut signals = StopSignals::new();
    let backend = conn.services.backend();
    let kv = backend.kv();
    let layout = conn.services.layout();
    let mut conn_state = backend.connection_state();
    metrics().connection(*conn_state.borrow_and_update());
    // Watch first, then read, so nothing between the two is missed.
    let mut watch = kv
        .watch(LEADER_DIR)
        .await
        .map_err(|e| CliError::kv("watching the leader data", e))?;
    let mut snap = LeaderSnapshot::read(kv.as_ref(), layout).await?;
    for c in &snap.components {
        metrics().published(&c.component, c.state == "leader", false);
    }
    match format {
        OutputFormat::Json => {
            let backend = conn.backend();
            #[derive(Serialize)]
            struct Snapshot<'a> {
                event: &'static str,
                unix_ms: u64,
                #[serde(flatten)]
                report: LeadersReport<'a>,
            }
            print_json_line(&Snapshot {
                event: "snapshot",
                unix_ms: unix_ms(),
                report: LeadersReport {
                    cluster_id: &conn.config.cluster_id,
                    backend: &backend,
                    components: &snap.components,
                    contenders: &snap.contenders,
                },
            })?;
        }
        OutputFormat::Table => {
            print_tables(&snap)?;
            print_line("")?;
            print_line("watching for changes (Ctrl-C to stop)")?;
        }
    }
    let mut printed = 0u64;
    let done = |printed: u64| count.is_some_and(|n| printed >= n);
    if done(printed) {
        return Ok(());
    }
    loop {
        tokio::select! {
            ev = watch.next() => {
                if ev.is_none() {
                    return Err(CliError::Unreachable(
                        "the backend session ended while watching the leader data".into(),
                    ));
                }
                let mut reset = matches!(ev, Some(KvEvent::Reset));
                // Coalesce a burst of events into one re-read.
                while let Some(more) = watch.next().now_or_never() {
                    match more {
                        None => break,
                        Some(e) => reset |= matches!(e, KvEvent::Reset),
                    }
                }
                if reset {
                    tracing::debug!("watch reset; re-reading the leader data");
                }
                // While disconnected the read fails; the reconnect re-reads.
                let Some(new) = reread(kv.as_ref(), layout).await else { continue };
                if print_changes(&mut snap, new, format, &mut printed, &done)? {
                    return Ok(());
                }
            }
            changed = conn_state.changed() => {
                if changed.is_err() {
                    return Err(CliError::Unreachable(
                        "the backend session ended while watching the leader data".into(),
                    ));
                }
                let state = *conn_state.borrow_and_update();
                metrics().connection(state);
                emit(&Change::Connection { unix_ms: unix_ms(), state }, format)?;
                printed += 1;
                if done(printed) {
                    return Ok(());
                }
                if state == ConnectionState::Connected {
                    let Some(new) = reread(kv.as_ref(), layout).await else { continue };
                    if print_changes(&mut snap, new, format, &mut printed, &done)? {
                        return Ok(());
                    }
                }
            }
            stop = signals.recv() => {
                tracing::debug!(?stop, "stopping the watch");
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::inspect::LeaderSnapshot;
    use crate::inspect::tests::arbitrary_entries;

    proptest! {
        #[test]
        fn any_backend_data_diffs_into_one_safe_line_per_change(
            old in arbitrary_entries(),
            new in arbitrary_entries(),
        ) {
            let old = LeaderSnapshot::from_entries(&old, Layout::default());
            let new = LeaderSnapshot::from_entries(&new, Layout::default());
            for change in diff(&old, &new) {
                let line = crate::output::sanitize(&change_line(&change)).into_owned();
                prop_assert!(!line.contains('\n') && !line.contains('\x1b'));
                let json = serde_json::to_string(&change).expect("json");
                prop_assert!(!json.contains('\n'));
            }
            prop_assert!(diff(&new, &new).is_empty());
        }
    }

    #[test]
    fn diff_reports_leader_changes_and_contenders() {
        let old = LeaderSnapshot::from_entries(&[], Layout::default());
        let mut new = old.clone();
        new.components[1].state = "leader";
        new.components[1].address = Some("a".into());
        new.contenders.push(Contender {
            latch: "leader/latch".into(),
            component: None,
            kind: None,
            node: "_c_x-latch-0000000001".into(),
            sequence: Some(1),
            foreign: false,
            leader: true,
            owner_session: None,
        });
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 3);
        let json = serde_json::to_value(&changes[0]).expect("json");
        assert_eq!(json["event"], "component");
        assert_eq!(json["component"], "dispatcher");
        assert_eq!(json["state"], "leader");
        let json = serde_json::to_value(&changes[1]).expect("json");
        assert_eq!(json["event"], "contender_joined");
        assert_eq!(json["node"], "_c_x-latch-0000000001");
        let json = serde_json::to_value(&changes[2]).expect("json");
        assert_eq!(json["event"], "leader_changed");
        assert_eq!(json["node"], "_c_x-latch-0000000001");
        assert_eq!(json["previous"], serde_json::Value::Null);
        assert!(diff(&new, &new).is_empty());
        let back = diff(&new, &old);
        let events: Vec<_> = back
            .iter()
            .map(|c| serde_json::to_value(c).expect("json")["event"].clone())
            .collect();
        assert_eq!(events, ["component", "contender_left", "leader_changed"]);
        let json = serde_json::to_value(&back[2]).expect("json");
        assert_eq!(json["node"], serde_json::Value::Null);
        assert_eq!(json["previous"], "_c_x-latch-0000000001");
        assert_eq!(clock(3_600_000 + 61_001), "01:01:01.001");
    }

    fn contender(node: &str, sequence: i64, leader: bool) -> Contender {
        Contender {
            latch: "leader/dispatcher/latch".into(),
            component: Some("dispatcher".into()),
            kind: None,
            node: node.into(),
            sequence: Some(sequence),
            foreign: false,
            leader,
            owner_session: Some(format!("{sequence:x}")),
        }
    }

    #[test]
    fn a_standby_taking_over_is_a_leader_change_not_a_new_contender() {
        let mut old = LeaderSnapshot::from_entries(&[], Layout::default());
        old.contenders = vec![
            contender("_c_a-latch-0000000001", 1, true),
            contender("_c_b-latch-0000000002", 2, false),
        ];
        let mut new = old.clone();
        new.contenders = vec![contender("_c_b-latch-0000000002", 2, true)];
        let changes: Vec<serde_json::Value> = diff(&old, &new)
            .iter()
            .map(|c| serde_json::to_value(c).expect("json"))
            .collect();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0]["event"], "contender_left");
        assert_eq!(changes[0]["node"], "_c_a-latch-0000000001");
        assert_eq!(changes[1]["event"], "leader_changed");
        assert_eq!(changes[1]["latch"], "leader/dispatcher/latch");
        assert_eq!(changes[1]["component"], "dispatcher");
        assert_eq!(changes[1]["node"], "_c_b-latch-0000000002");
        assert_eq!(changes[1]["sequence"], 2);
        assert_eq!(changes[1]["owner_session"], "2");
        assert_eq!(changes[1]["previous"], "_c_a-latch-0000000001");
        let line = change_line(&diff(&old, &new)[1]);
        assert!(
            line.ends_with(
                "leader/dispatcher/latch  leader changed: _c_b-latch-0000000002 \
                 (was _c_a-latch-0000000001)"
            ),
            "{line}"
        );
    }
}
