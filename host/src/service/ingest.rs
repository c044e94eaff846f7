//! Taking events in, for the HTTP API and broker sources alike: an event is checked, matched
//! and stored with its deliveries, durably, in one group commit — or refused, changing
//! nothing.

use std::sync::Arc;

use time::OffsetDateTime;

use super::Webhooks;
use crate::access::Companies;
use crate::domain::catalog::Catalog;
use crate::domain::delivery::Delivery;
use crate::domain::event::{Event, IncomingEvent};
use crate::matching::{Explanation, Matches, Probe};
use crate::metrics::Metrics;
use crate::store::{Accept, IdempotencyKey, Store, StoreError, Stored};

/// Why events were not taken.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The delivery queue is over its bound: nothing was stored; try again shortly.
    #[error("the delivery queue is full; nothing was stored, try again shortly")]
    QueueFull,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The ingest path. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    store: Store,
    webhooks: Webhooks,
    catalog: Arc<Catalog>,
    /// Deliveries waiting in the queue at most.
    queue_bound: u64,
    metrics: Metrics,
}

/// What an event answers: its id, how many webhooks it matched, their delivery ids.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestResult {
    /// The event's id (the sender's, or generated).
    pub id: String,
    /// How many webhooks it matched.
    pub matched: usize,
    pub deliveries: Vec<String>,
    /// True when this event was accepted before: this is the first answer again.
    pub duplicate: bool,
}

impl Ingest {
    pub fn new(
        store: Store,
        webhooks: Webhooks,
        catalog: Arc<Catalog>,
        queue_bound: u64,
        metrics: Metrics,
    ) -> Self {
        Ingest { store, webhooks, catalog, queue_bound, metrics }
    }

    /// Checks what an event says (its type, ids and nesting), wherever it comes from; the
    /// message names the field.
    pub fn check(&self, event: &IncomingEvent) -> Result<(), String> {
        if crate::domain::catalog::is_operational(&event.event) {
            return Err(format!(
                "event: {} is the host's own report on itself: wasmhook emits it, applications do not",
                event.event
            ));
        }
        if !self.catalog.contains(&event.event) {
            return Err(format!(
                "event: unknown event type {:?}; valid: {}",
                event.event,
                self.catalog.names()
            ));
        }
        for (field, value) in [
            ("companyId", Some(&event.company_id)),
            ("projectId", Some(&event.project_id)),
            ("id", event.id.as_ref()),
        ] {
            if let Some(value) = value
                && let Err(e) = crate::domain::event::check_id(value)
            {
                return Err(format!("{field}: {e}"));
            }
        }
        crate::domain::event::check_nesting(event).map_err(|(field, e)| format!("{field}: {e}"))
    }

    /// Matches a checked event and makes its deliveries; with `explain_to`, also explains the
    /// match over the webhooks whose owners share a company with those companies.
    pub fn prepare(
        &self,
        incoming: IncomingEvent,
        explain_to: Option<&Companies>,
    ) -> (Accept, Option<Explanation>) {
        let now = OffsetDateTime::now_utc();
        let event: Event = incoming.accept(now);
        let probe = Probe::of(&event);
        let (Matches { routes, cut_off }, unordered, explanation) = {
            let index = self.webhooks.index();
            let explanation =
                explain_to.map(|companies| index.explain(&probe, |owners| owners.overlaps(companies)));
            let matches = index.matches(&probe);
            let unordered: Vec<String> = matches
                .routes
                .iter()
                .filter(|route| !index.is_ordered(&route.webhook_id))
                .map(|route| route.webhook_id.clone())
                .collect();
            (matches, unordered, explanation)
        };
        if !cut_off.is_empty() {
            tracing::warn!(
                event_id = event.id,
                ?cut_off,
                "filter work budget ran out: these webhooks were left out"
            );
        }
        let deliveries: Vec<Delivery> =
            routes.iter().map(|route| Delivery::new(&event, &route.webhook_id, route.enabled, now)).collect();
        let result = IngestResult {
            id: event.id.clone(),
            matched: deliveries.len(),
            deliveries: deliveries.iter().map(|d| d.id.clone()).collect(),
            duplicate: false,
        };
        let response = serde_json::to_value(&result).expect("plain data");
        (Accept { event: Arc::new(event), deliveries, response, unordered }, explanation)
    }

    /// Refuses `more` deliveries that would take the queue past its bound.
    pub fn check_room(&self, more: u64) -> Result<(), IngestError> {
        match self.store.queue_depth() + more <= self.queue_bound {
            true => Ok(()),
            false => Err(IngestError::QueueFull),
        }
    }

    /// Stores and makes durable what `prepare` made, counted as ingest from `source` (`http`,
    /// or a source's name).
    pub async fn commit(
        &self,
        accepts: Vec<Accept>,
        key: Option<&IdempotencyKey>,
        source: &str,
    ) -> Result<Stored, IngestError> {
        self.check_room(accepts.iter().map(|a| a.deliveries.len() as u64).sum())?;
        let events = accepts.len() as u64;
        let stored = self.store.accept(&accepts, key, crate::store::now_ms()).await?;
        let fresh = match &stored {
            Stored::Accepted(outcomes) => outcomes.iter().filter(|o| !o.duplicate).count() as u64,
            Stored::Replay(_) | Stored::KeyConflict(_) => 0,
        };
        let label = crate::metrics::Source { source: source.to_owned() };
        self.metrics.events_ingested.get_or_create(&label).inc_by(fresh);
        if !matches!(stored, Stored::KeyConflict(_)) {
            self.metrics.duplicate_events.get_or_create(&label).inc_by(events - fresh);
        }
        Ok(stored)
    }
}
