//! Delivery transitions: one delivery retried, a webhook's failed and paused deliveries
//! recovered — reset and put back in the queue (durable), where the engine claims them.

use time::OffsetDateTime;

use crate::domain::delivery::{Delivery, DeliveryStatus, MessageStatus};
use crate::store::{DeliveryQuery, Store, StoreError, now_ms};

/// Delivery transitions. Cheap to clone.
#[derive(Clone)]
pub struct Deliveries {
    store: Store,
}

impl Deliveries {
    pub fn new(store: Store) -> Self {
        Deliveries { store }
    }

    /// Queues a finished or paused delivery again, reset; `None` when it is queued already.
    pub async fn retry(&self, delivery: Delivery) -> Result<Option<Delivery>, StoreError> {
        let delivery = reset(delivery);
        Ok(self.store.requeue(&delivery, now_ms()).await?.then_some(delivery))
    }

    /// A webhook's failed and paused deliveries created at or after `since`, newest first.
    pub async fn stuck(&self, webhook_id: &str, since: OffsetDateTime) -> Result<Vec<Delivery>, StoreError> {
        let stuck = [DeliveryStatus::Failed, DeliveryStatus::Paused];
        let mut found = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query =
                DeliveryQuery { before: cursor.as_deref(), statuses: &stuck, since: Some(since), limit: 500 };
            let page = self.store.deliveries_of(webhook_id, &query).await?;
            let Some(last) = page.last() else { break };
            cursor = Some(last.id.clone());
            found.extend(page);
        }
        Ok(found)
    }

    /// Queues `stuck` deliveries again, oldest first — so that what happened first is sent
    /// first; returns how many were queued (any queued meanwhile are skipped).
    pub async fn recover(&self, stuck: Vec<Delivery>) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut requeued = 0;
        for delivery in stuck.into_iter().rev() {
            if self.store.requeue(&reset(delivery), now).await? {
                requeued += 1;
            }
        }
        Ok(requeued)
    }
}

/// Makes a delivery sendable again: failed messages get fresh attempts, a delivery whose
/// plugin failed runs it again.
fn reset(mut delivery: Delivery) -> Delivery {
    if delivery.status == DeliveryStatus::PluginError {
        delivery.messages.clear();
        delivery.plugin_log.clear();
    }
    for message in &mut delivery.messages {
        if message.status != MessageStatus::Succeeded || delivery.status == DeliveryStatus::Succeeded {
            message.status = MessageStatus::Pending;
            message.attempts = 0;
            message.next_attempt_at = None;
        }
    }
    delivery.status = DeliveryStatus::Pending;
    delivery.error = None;
    delivery
}
