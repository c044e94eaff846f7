//! The host's reports on itself (`WEBHOOK_DISABLED`, `WEBHOOK_RECOVERED`,
//! `DELIVERY_EXHAUSTED`, `CONNECTOR_FAILING`): events it emits through its own pipeline, for
//! operators' webhooks that name them (a Slack alert is a webhook with the `slack` connector).
//!
//! They are ingested like any event (company `wasmhook`, project `operations`, the details in
//! `currentValue`) but reach only webhooks of operators that list their type: a webhook for
//! every event never gets them. Nothing is reported about deliveries of these events
//! themselves, so a failing alert webhook cannot feed on its own failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Ingest;
use crate::access::OPERATOR_ID;
use crate::domain::catalog::{
    CONNECTOR_FAILING, DELIVERY_EXHAUSTED, WEBHOOK_DISABLED, WEBHOOK_RECOVERED, is_operational,
};
use crate::domain::delivery::Delivery;
use crate::domain::event::IncomingEvent;
use crate::domain::webhook::Webhook;

/// The company and project the host's own events carry.
pub const COMPANY: &str = "wasmhook";
pub const PROJECT: &str = "operations";

/// A connector is failing when, within one window, at least this many of its invocations
/// failed and they were at least half of them.
const FAILING_WINDOW: Duration = Duration::from_secs(300);
const FAILING_AT_LEAST: u64 = 10;

/// Emits the host's reports. Cheap to clone.
#[derive(Clone)]
pub struct Operations {
    ingest: Ingest,
    webhooks: super::Webhooks,
    connectors: Arc<Mutex<HashMap<String, Window>>>,
}

/// One connector's invocations in the current window.
struct Window {
    started: Instant,
    invocations: u64,
    errors: u64,
    reported: bool,
}

impl Operations {
    pub fn new(ingest: Ingest, webhooks: super::Webhooks) -> Self {
        Operations { ingest, webhooks, connectors: Arc::default() }
    }

    /// `webhook` was disabled by the host, for `reason`, at `about`'s turn, whose last failed
    /// attempt said `last_error`.
    pub fn webhook_disabled(&self, webhook: &Webhook, reason: &str, last_error: &str, about: &About) {
        if is_operational(&about.event_type) {
            return;
        }
        let details = json!({
            "webhook": summary(webhook), "reason": reason, "lastError": last_error, "deliveryId": about.delivery_id,
        });
        self.emit(WEBHOOK_DISABLED, details);
    }

    /// `webhook`, disabled before, is enabled and its receiver answers again.
    pub fn webhook_recovered(&self, webhook: &Webhook) {
        self.emit(WEBHOOK_RECOVERED, json!({"webhook": summary(webhook)}));
    }

    /// A message of `about` used all its `attempts`; the last one failed for `reason`.
    pub fn delivery_exhausted(&self, webhook: &Webhook, about: &About, attempts: u32, reason: &str) {
        if is_operational(&about.event_type) {
            return;
        }
        let details = json!({
            "webhook": summary(webhook), "deliveryId": about.delivery_id, "eventId": about.event_id,
            "eventType": about.event_type, "attempts": attempts, "lastError": reason,
        });
        self.emit(DELIVERY_EXHAUSTED, details);
    }

    /// One invocation of `connector` ended: failed with `error`, or not. Reports the connector
    /// once per window in which it keeps failing.
    pub fn connector_invoked(&self, connector: &str, error: Option<&str>) {
        let now = Instant::now();
        let report = {
            let mut connectors = self.connectors.lock().unwrap_or_else(|p| p.into_inner());
            if !connectors.contains_key(connector) {
                connectors.insert(connector.to_owned(), Window::new(now));
            }
            let window = connectors.get_mut(connector).expect("just inserted");
            if now.duration_since(window.started) >= FAILING_WINDOW {
                *window = Window::new(now);
            }
            window.invocations += 1;
            window.errors += u64::from(error.is_some());
            let failing = window.errors >= FAILING_AT_LEAST && window.errors * 2 >= window.invocations;
            let report = failing && !window.reported;
            window.reported |= report;
            report.then_some((window.errors, window.invocations))
        };
        if let (Some((errors, invocations)), Some(error)) = (report, error) {
            let details = json!({
                "connector": connector, "errors": errors, "invocations": invocations,
                "windowSeconds": FAILING_WINDOW.as_secs(), "lastError": error,
            });
            self.emit(CONNECTOR_FAILING, details);
        }
    }

    /// Ingests one report for the operators' webhooks that name its type, in the background.
    fn emit(&self, kind: &'static str, details: Value) {
        let incoming =
            json!({"event": kind, "companyId": COMPANY, "projectId": PROJECT, "currentValue": details});
        let incoming: IncomingEvent = serde_json::from_value(incoming).expect("a well-formed event");
        let (mut accept, _) = self.ingest.prepare(incoming, None);
        accept.deliveries.retain(|delivery| {
            self.webhooks.get(&delivery.webhook_id).is_some_and(|webhook| {
                webhook.created_by_id == OPERATOR_ID && webhook.metadata.events.iter().any(|e| e == kind)
            })
        });
        let result = super::ingest::IngestResult {
            id: accept.event.id.clone(),
            matched: accept.deliveries.len(),
            deliveries: accept.deliveries.iter().map(|d| d.id.clone()).collect(),
            duplicate: false,
        };
        accept.response = serde_json::to_value(&result).expect("plain data");
        tracing::info!(event = kind, webhooks = result.matched, "operational event");
        if accept.deliveries.is_empty() {
            return;
        }
        let ingest = self.ingest.clone();
        tokio::spawn(async move {
            if let Err(error) = ingest.commit(vec![accept], None, "wasmhook").await {
                tracing::error!(event = kind, "cannot store an operational event: {error}");
            }
        });
    }
}

/// The delivery a report is about.
#[derive(Debug, Clone)]
pub struct About {
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
}

impl About {
    pub fn of(delivery: &Delivery) -> Self {
        About {
            delivery_id: delivery.id.clone(),
            event_id: delivery.event_id.clone(),
            event_type: delivery.event_type.clone(),
        }
    }
}

impl Window {
    fn new(started: Instant) -> Self {
        Window { started, invocations: 0, errors: 0, reported: false }
    }
}

/// A webhook as a report names it: nothing secret (the URL without credentials).
fn summary(webhook: &Webhook) -> Value {
    json!({
        "id": webhook.id, "name": webhook.name, "url": webhook.url,
        "connector": webhook.connector.name, "createdById": webhook.created_by_id,
    })
}
