//! Prometheus metrics for the long-running commands (`run`, `leaders --watch`, `demo`), served
//! in the OpenMetrics text format on `GET /metrics` of `--metrics-addr`.
//!
//! Election, store and connection metrics come from the typed events of the HA services
//! ([`tenure::observer::HaEvent`]): a command subscribes its services with [`observe`] (the demo
//! subscribes every simulated job manager), so they cover every election and store operation of
//! the process. The published leaders seen by `leaders --watch` are set by that command.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tenure::HaServices;
use tenure::connection::ConnectionState;
use tenure::observer::HaEvent;

pub use crate::metrics_server::serve;

/// Labels naming a component.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    /// The component (`dispatcher`, `job-<id>`, ...).
    pub component: String,
}

/// Labels naming a store operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// The kind of key and the KV operation (`job_graph.create`,
    /// `checkpoint_counter.compare_and_set`, ...).
    pub op: String,
}

/// Labels naming a connection state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `connected`, `suspended` or `lost`.
    pub state: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The metrics of this process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    leadership: Family<ComponentLabels, Gauge>,
    granted: Family<ComponentLabels, Counter>,
    revoked: Family<ComponentLabels, Counter>,
    confirm_latency: Histogram,
    store_ops: HistogramFamily<OpLabels>,
    store_op_failures: Family<OpLabels, Counter>,
    connection: Family<StateLabels, Gauge>,
    published: Family<ComponentLabels, Gauge>,
    leader_changes: Family<ComponentLabels, Counter>,
    grants: Mutex<HashMap<String, Instant>>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("tenure");
        let leadership = Family::<ComponentLabels, Gauge>::default();
        registry.register(
            "leadership",
            "Contenders of this process currently leading the component (0 or 1 outside the demo)",
            leadership.clone(),
        );
        let granted = Family::<ComponentLabels, Counter>::default();
        registry.register(
            "terms_granted",
            "Leadership terms granted to this process, per component",
            granted.clone(),
        );
        let revoked = Family::<ComponentLabels, Counter>::default();
        registry.register(
            "terms_revoked",
            "Leadership terms of this process revoked or ended, per component",
            revoked.clone(),
        );
        let confirm_latency = latency_histogram();
        registry.register_with_unit(
            "confirm_latency",
            "Time from a grant to the component's leader information being published",
            Unit::Seconds,
            confirm_latency.clone(),
        );
        let store_ops: HistogramFamily<OpLabels> =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "store_op_duration",
            "Duration of HA store operations",
            Unit::Seconds,
            store_ops.clone(),
        );
        let store_op_failures = Family::<OpLabels, Counter>::default();
        registry.register(
            "store_op_failures",
            "HA store operations that failed",
            store_op_failures.clone(),
        );
        let connection = Family::<StateLabels, Gauge>::default();
        registry.register(
            "connection_state",
            "1 for the backend session's current connection state",
            connection.clone(),
        );
        let published = Family::<ComponentLabels, Gauge>::default();
        registry.register(
            "published_leader",
            "1 while a leader is published for the component (leaders --watch)",
            published.clone(),
        );
        let leader_changes = Family::<ComponentLabels, Counter>::default();
        registry.register(
            "leader_changes",
            "Changes of the component's published leader seen (leaders --watch)",
            leader_changes.clone(),
        );
        Self {
            registry,
            leadership,
            granted,
            revoked,
            confirm_latency,
            store_ops,
            store_op_failures,
            connection,
            published,
            leader_changes,
            grants: Mutex::new(HashMap::new()),
        }
    }

    fn labels(component: &str) -> ComponentLabels {
        ComponentLabels {
            component: component.to_owned(),
        }
    }

    /// A contender of this process registered for `component`: its leadership gauge and term
    /// counters exist from now on, at 0 until a term is granted, so a standby is scraped as
    /// `tenure_leadership{component=…} 0` rather than not at all.
    pub fn registered(&self, component: &str) {
        let l = Self::labels(component);
        let _ = self.leadership.get_or_create(&l);
        let _ = self.granted.get_or_create(&l);
        let _ = self.revoked.get_or_create(&l);
    }

    /// A term was granted to this process for `component`.
    pub fn granted(&self, component: &str) {
        let l = Self::labels(component);
        self.granted.get_or_create(&l).inc();
        self.leadership.get_or_create(&l).inc();
        if let Ok(mut g) = self.grants.lock() {
            g.insert(component.to_owned(), Instant::now());
        }
    }

    /// This process's term for `component` ended.
    pub fn revoked(&self, component: &str) {
        let l = Self::labels(component);
        self.revoked.get_or_create(&l).inc();
        let gauge = self.leadership.get_or_create(&l);
        if gauge.get() > 0 {
            gauge.dec();
        }
    }

    /// `component`'s leader information was published after its grant.
    pub fn confirmed(&self, component: &str) {
        let start = self
            .grants
            .lock()
            .ok()
            .and_then(|mut g| g.remove(component));
        if let Some(start) = start {
            self.confirm_latency.observe(start.elapsed().as_secs_f64());
        }
    }

    /// A store operation took `d`; `ok` says whether it succeeded.
    pub fn store_op(&self, op: &str, d: Duration, ok: bool) {
        let labels = OpLabels { op: op.to_owned() };
        self.store_ops
            .get_or_create(&labels)
            .observe(d.as_secs_f64());
        if !ok {
            self.store_op_failures.get_or_create(&labels).inc();
        }
    }

    /// Records one event of the HA services.
    pub fn record(&self, event: &HaEvent) {
        match event {
            HaEvent::LeadershipGranted { component, .. } => self.granted(&component.name()),
            HaEvent::LeadershipRevoked { component } => self.revoked(&component.name()),
            HaEvent::LeaderPublished { component, .. } => self.confirmed(&component.name()),
            HaEvent::StoreOp {
                op,
                key,
                duration,
                ok,
            } => self.store_op(&format!("{}.{}", key.name(), op.name()), *duration, *ok),
            HaEvent::Connection(state) => self.connection(*state),
        }
    }

    /// The backend session is now in `state`.
    pub fn connection(&self, state: ConnectionState) {
        for (s, name) in [
            (ConnectionState::Connected, "connected"),
            (ConnectionState::Suspended, "suspended"),
            (ConnectionState::Lost, "lost"),
        ] {
            self.connection
                .get_or_create(&StateLabels { state: name.into() })
                .set(i64::from(s == state));
        }
    }

    /// Whether a leader is published for `component` (seen by a watcher); `changed` counts a
    /// change of leader.
    pub fn published(&self, component: &str, leader: bool, changed: bool) {
        let l = Self::labels(component);
        self.published.get_or_create(&l).set(i64::from(leader));
        if changed {
            self.leader_changes.get_or_create(&l).inc();
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            let _ = writeln!(out, "# encoding failed");
        }
        out
    }
}

static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();

/// The process's metrics.
pub fn metrics() -> &'static Arc<Metrics> {
    METRICS.get_or_init(|| Arc::new(Metrics::new()))
}

/// Shows `election`'s component in the process's metrics from its registration on (see
/// [`Metrics::registered`]); its terms are then counted from `services`' events ([`observe`]).
pub fn contender(election: &tenure::election::LeaderElection) {
    metrics().registered(&election.component().name());
}

/// Feeds the process's metrics from `services`' events for as long as they live.
pub fn observe(services: &HaServices) {
    services.observe(|e| metrics().record(e)).detach();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_events_become_metrics() {
        use tenure::embedded::EmbeddedCluster;
        use tenure::ids::JobId;
        use tenure::{HaServices, HaServicesOptions};

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let cluster = EmbeddedCluster::new();
            let services =
                HaServices::new(Arc::new(cluster.connect()), HaServicesOptions::default());
            observe(&services);
            let mut e = services
                .rest_endpoint_leader_election()
                .await
                .expect("election");
            let term = e.wait_for_leadership().await.expect("leader");
            assert!(
                e.confirm(term.session_id, "http://x")
                    .await
                    .expect("confirm")
            );
            services
                .admin_stores()
                .checkpoint_recovery_factory()
                .create_checkpoint_id_counter(JobId::new_random())
                .get_and_increment()
                .await
                .expect("counter");
            e.stop().await.expect("stop");
        });
        let text = metrics().render();
        for needle in [
            "tenure_terms_granted_total{component=\"rest_server\"} 1",
            "tenure_terms_revoked_total{component=\"rest_server\"} 1",
            "tenure_leadership{component=\"rest_server\"} 0",
            "tenure_confirm_latency_seconds_count 1",
            // The counter's KV operations, whichever they are.
            "tenure_store_op_duration_seconds_count{op=\"checkpoint_counter.",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }

    #[test]
    fn rendered_metrics_carry_the_documented_names() {
        let m = Metrics::new();
        m.granted("dispatcher");
        m.confirmed("dispatcher");
        m.revoked("dispatcher");
        m.store_op("job_graph.create", Duration::from_millis(3), true);
        m.store_op("job_graph.create", Duration::from_millis(4), false);
        m.connection(ConnectionState::Suspended);
        m.published("rest_server", true, true);
        m.registered("resource_manager");
        let text = m.render();
        for needle in [
            "tenure_leadership{component=\"dispatcher\"} 0",
            "tenure_terms_granted_total{component=\"dispatcher\"} 1",
            "tenure_terms_revoked_total{component=\"dispatcher\"} 1",
            "tenure_confirm_latency_seconds_count 1",
            "tenure_store_op_duration_seconds_count{op=\"job_graph.create\"} 2",
            "tenure_store_op_failures_total{op=\"job_graph.create\"} 1",
            "tenure_connection_state{state=\"suspended\"} 1",
            "tenure_connection_state{state=\"connected\"} 0",
            "tenure_published_leader{component=\"rest_server\"} 1",
            "tenure_leader_changes_total{component=\"rest_server\"} 1",
            "tenure_leadership{component=\"resource_manager\"} 0",
            "tenure_terms_granted_total{component=\"resource_manager\"} 0",
            "tenure_terms_revoked_total{component=\"resource_manager\"} 0",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
