//! Prometheus metrics (`GET /metrics`), all named `wasmhook_*`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

/// A connector at one version (its `describe` version).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Plugin {
    pub connector: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginFailure {
    pub connector: String,
    pub version: String,
    /// The error's kind (`trap`, `timeout`, `invalid_config`…).
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Source {
    /// `http`, or a broker source's name.
    pub source: String,
}

/// The host's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Deliveries that reached a final state, by outcome.
    pub deliveries: Family<Outcome, Counter>,
    /// Seconds from sending an attempt to the receiver's answer (or failure).
    pub attempt_seconds: Histogram,
    pub plugin_invocations: Family<Plugin, Counter>,
    pub plugin_errors: Family<PluginFailure, Counter>,
    /// Seconds per invocation, instantiation included.
    pub plugin_seconds: Family<Plugin, Histogram>,
    /// The most guest memory one invocation has held.
    pub plugin_peak_memory: Family<Plugin, Gauge>,
    pub queue_depth: Gauge,
    pub disabled_webhooks: Gauge,
    /// Events stored, by where they came from.
    pub events_ingested: Family<Source, Counter>,
    /// Events sent again (an id or key seen before): answered, not stored twice.
    pub duplicate_events: Family<Source, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wasmhook");
        let deliveries = Family::<Outcome, Counter>::default();
        registry.register(
            "deliveries",
            "Deliveries that reached a final state, by outcome",
            deliveries.clone(),
        );
        let buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let attempt_seconds = Histogram::new(buckets);
        registry.register(
            "attempt_duration_seconds",
            "Time of each delivery attempt",
            attempt_seconds.clone(),
        );
        let plugin_invocations = Family::<Plugin, Counter>::default();
        registry.register(
            "plugin_invocations",
            "Plugin invocations (transform and on-response), by connector and version",
            plugin_invocations.clone(),
        );
        let plugin_errors = Family::<PluginFailure, Counter>::default();
        registry.register(
            "plugin_errors",
            "Failed plugin invocations, by connector, version and kind of error",
            plugin_errors.clone(),
        );
        let plugin_seconds = Family::<Plugin, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ])
        });
        registry.register(
            "plugin_duration_seconds",
            "Time of each plugin invocation, by connector and version",
            plugin_seconds.clone(),
        );
        let plugin_peak_memory = Family::<Plugin, Gauge>::default();
        registry.register(
            "plugin_peak_memory_bytes",
            "The most guest memory an invocation held, by connector and version",
            plugin_peak_memory.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Deliveries waiting in the queue", queue_depth.clone());
        let events_ingested = Family::<Source, Counter>::default();
        registry.register(
            "events_ingested",
            "Events stored, by source (http or a broker source)",
            events_ingested.clone(),
        );
        let duplicate_events = Family::<Source, Counter>::default();
        registry.register(
            "duplicate_events",
            "Events sent again (an id or key seen before), by source",
            duplicate_events.clone(),
        );
        let disabled_webhooks = Gauge::default();
        registry.register("disabled_webhooks", "Webhooks currently disabled", disabled_webhooks.clone());
        Metrics {
            registry: Arc::new(registry),
            deliveries,
            attempt_seconds,
            plugin_invocations,
            plugin_errors,
            plugin_seconds,
            plugin_peak_memory,
            queue_depth,
            disabled_webhooks,
            events_ingested,
            duplicate_events,
        }
    }
}

impl Metrics {
    /// Counts one invocation of `connector` at `version`: its time, guest memory and error
    /// kind, if it failed.
    pub fn plugin_invoked(&self, plugin: Plugin, seconds: f64, memory_bytes: usize, error: Option<&str>) {
        self.plugin_invocations.get_or_create(&plugin).inc();
        self.plugin_seconds.get_or_create(&plugin).observe(seconds);
        let peak = self.plugin_peak_memory.get_or_create(&plugin);
        let memory = i64::try_from(memory_bytes).unwrap_or(i64::MAX);
        // Racing invocations may each read the old peak; the larger write can lose, rarely.
        if memory > peak.get() {
            peak.set(memory);
        }
        if let Some(code) = error {
            let Plugin { connector, version } = plugin;
            self.plugin_errors
                .get_or_create(&PluginFailure { connector, version, code: code.to_owned() })
                .inc();
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
