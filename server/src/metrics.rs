//! This node's Prometheus metrics, served at `GET /metrics` in the text exposition format (for
//! a scraper holding the configured `metrics_token`). Counters and histograms are kept as things
//! happen (group commits, deliveries handed to device sockets, escalation steps); the gauges are
//! read at each scrape (orders by state from the database, connected devices and consoles).
//! Every name is listed in docs/operations.md, *Metrics*.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::domain::OrderState;
use crate::store::Stage;

/// The escalation step that withdraws an order nobody decided in time (after the stages of
/// [`Stage`]).
pub const EXPIRED: &str = "expired";

/// A label set of one label.
type Label = Vec<(&'static str, &'static str)>;

/// The node's metrics. Cheap to clone; every clone records into the same registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    batch_writes: Histogram,
    commit_seconds: Histogram,
    failed_batches: Counter,
    cluster_resyncs: Counter,
    delivery_seconds: Histogram,
    escalations: Family<Label, Counter>,
    orders: Family<Label, Gauge>,
    devices: Gauge,
    consoles: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// What a scrape reads at that moment.
#[derive(Debug, Default)]
pub struct Now {
    /// Orders per state, as the database has them; states missing here have none.
    pub orders: Vec<(String, i64)>,
    pub devices_connected: usize,
    pub consoles_connected: usize,
}

impl Metrics {
    /// The metrics of a node on `backend` (`sqlite` or `postgres`).
    pub fn new(backend: &'static str) -> Self {
        let mut registry = Registry::default();
        // 1, 2, 4 … 512 writes in one transaction.
        let batch_writes = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        // 0.1 ms to about 3.3 s.
        let commit_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        let delivery_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        let failed_batches = Counter::default();
        let cluster_resyncs = Counter::default();
        let escalations = Family::<Label, Counter>::default();
        // Every step from zero, so that a scraper sees the first one as an increase.
        for step in [
            Stage::NoReceipt.as_str(),
            Stage::NoAcknowledgement.as_str(),
            EXPIRED,
        ] {
            escalations.get_or_create(&vec![("stage", step)]).inc_by(0);
        }
        let orders = Family::<Label, Gauge>::default();
        let (devices, consoles) = (Gauge::default(), Gauge::default());
        registry.register(
            "dispatch_commit_batch_writes",
            "Writes committed together in one group-commit transaction",
            batch_writes.clone(),
        );
        registry.register(
            "dispatch_commit_duration_seconds",
            "Group commit from BEGIN to the end of COMMIT (its fsync included)",
            commit_seconds.clone(),
        );
        registry.register(
            "dispatch_commit_failed_batches",
            "Group-commit transactions that failed and were rolled back (every caller was refused)",
            failed_batches.clone(),
        );
        registry.register(
            "dispatch_cluster_resyncs",
            "Times this node's cluster listener connected (again) to the PostgreSQL primary and \
             read the shared state again (PostgreSQL only)",
            cluster_resyncs.clone(),
        );
        registry.register(
            "dispatch_delivery_duration_seconds",
            "An outbox entry's commit to its frame written to the connected device's socket",
            delivery_seconds.clone(),
        );
        registry.register(
            "dispatch_escalations",
            "Escalation steps this node recorded, by stage",
            escalations.clone(),
        );
        registry.register("dispatch_orders", "Orders by state", orders.clone());
        registry.register(
            "dispatch_devices_connected",
            "Tablets connected to this node's device channel",
            devices.clone(),
        );
        registry.register(
            "dispatch_consoles_connected",
            "Console live feeds connected to this node",
            consoles.clone(),
        );
        let store = Family::<Label, Gauge>::default();
        store.get_or_create(&vec![("backend", backend)]).set(1);
        registry.register(
            "dispatch_store",
            "The storage backend in use (always 1; the label names it)",
            store,
        );
        Self(Arc::new(Inner {
            registry,
            batch_writes,
            commit_seconds,
            failed_batches,
            cluster_resyncs,
            delivery_seconds,
            escalations,
            orders,
            devices,
            consoles,
        }))
    }

    /// A group commit of `writes` writes that took `took`.
    pub fn committed(&self, writes: usize, took: Duration) {
        self.0.batch_writes.observe(writes as f64);
        self.0.commit_seconds.observe(took.as_secs_f64());
    }

    /// A group commit that failed.
    pub fn commit_failed(&self) {
        self.0.failed_batches.inc();
    }

    /// The cluster listener connected (again) and the node read the shared state again.
    pub fn cluster_resynced(&self) {
        self.0.cluster_resyncs.inc();
    }

    /// An outbox entry written to a device's socket `since` its commit.
    pub fn delivered(&self, since: Duration) {
        self.0.delivery_seconds.observe(since.as_secs_f64());
    }

    /// An escalation step recorded: a [`Stage`]'s name, or [`EXPIRED`].
    pub fn escalated(&self, stage: &'static str) {
        self.0
            .escalations
            .get_or_create(&vec![("stage", stage)])
            .inc();
    }

    /// The exposition text, with the gauges set to `now`.
    pub fn render(&self, now: &Now) -> String {
        for state in OrderState::ALL {
            let n = now
                .orders
                .iter()
                .find(|(s, _)| s == state.as_str())
                .map_or(0, |(_, n)| *n);
            self.0
                .orders
                .get_or_create(&vec![("state", state.as_str())])
                .set(n);
        }
        self.0.devices.set(gauge(now.devices_connected));
        self.0.consoles.set(gauge(now.consoles_connected));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.0.registry);
        text
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name` (with its labels as written) in `text`.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn the_exposition_counts_what_happened_and_sets_every_order_state() {
        let metrics = Metrics::new("sqlite");
        metrics.committed(3, Duration::from_millis(2));
        metrics.committed(1, Duration::from_millis(1));
        metrics.commit_failed();
        metrics.delivered(Duration::from_micros(300));
        metrics.escalated("no_receipt");
        metrics.escalated("no_receipt");
        let text = metrics.render(&Now {
            orders: vec![("queued".into(), 4), ("accepted".into(), 2)],
            devices_connected: 7,
            consoles_connected: 2,
        });
        assert_eq!(
            sample(&text, "dispatch_commit_batch_writes_count"),
            Some(2.0)
        );
        assert_eq!(sample(&text, "dispatch_commit_batch_writes_sum"), Some(4.0));
        assert_eq!(
            sample(&text, "dispatch_commit_failed_batches_total"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "dispatch_delivery_duration_seconds_count"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "dispatch_escalations_total{stage=\"no_receipt\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "dispatch_orders{state=\"queued\"}"),
            Some(4.0)
        );
        assert_eq!(
            sample(&text, "dispatch_orders{state=\"expired\"}"),
            Some(0.0)
        );
        for state in OrderState::ALL {
            let name = format!("dispatch_orders{{state=\"{}\"}}", state.as_str());
            assert!(sample(&text, &name).is_some(), "{name} missing:\n{text}");
        }
        assert_eq!(sample(&text, "dispatch_devices_connected"), Some(7.0));
        assert_eq!(sample(&text, "dispatch_consoles_connected"), Some(2.0));
        assert_eq!(
            sample(&text, "dispatch_store{backend=\"sqlite\"}"),
            Some(1.0)
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
