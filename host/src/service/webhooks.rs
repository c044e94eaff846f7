//! Webhook transitions: created, updated, removed, health recorded, a user's companies
//! changed — each made durable in storage, then reflected in the match index.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::access::User;
use crate::domain::webhook::{Origin, Webhook, WebhookStatus};
use crate::matching::MatchIndex;
use crate::store::{Store, StoreError};

/// What a delivery's turn says about its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Succeeded,
    Failing,
    /// A message used all its attempts.
    Exhausted,
    /// The receiver answered 410 Gone.
    Gone,
    /// The connector judged that the receiver will never take the webhook's messages.
    Refused,
}

/// Webhook transitions. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    index: Arc<RwLock<MatchIndex>>,
}

impl Webhooks {
    pub fn new(store: Store, index: Arc<RwLock<MatchIndex>>) -> Self {
        Webhooks { store, index }
    }

    /// The match index, to read.
    pub fn index(&self) -> RwLockReadGuard<'_, MatchIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A webhook as this host last stored or heard of it (another host's change arrives
    /// within a second), without a read from storage.
    pub fn get(&self, id: &str) -> Option<Webhook> {
        self.index().webhook(id).cloned()
    }

    /// The versions of `connector` that webhooks pin.
    pub fn pinned_versions(&self, connector: &str) -> std::collections::BTreeSet<u32> {
        let index = self.index();
        index
            .webhooks()
            .filter(|w| w.connector.name == connector)
            .filter_map(|w| w.connector.version)
            .collect()
    }

    fn index_mut(&self) -> RwLockWriteGuard<'_, MatchIndex> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A webhook that was stored (and made durable) counts for matching from now on.
    fn saved(&self, webhook: &Webhook) {
        self.index_mut().upsert(webhook);
    }

    /// Stores a new webhook: durable, then matching.
    pub async fn create(&self, webhook: &Webhook) -> Result<(), StoreError> {
        self.store.insert_webhook(webhook).await?;
        self.saved(webhook);
        Ok(())
    }

    /// Changes a webhook by compare-and-swap (see [`Store::update_webhook`]): durable, then
    /// matching. The stored webhook when `change` changed it.
    pub async fn update<E: From<StoreError>>(
        &self,
        id: &str,
        change: impl FnMut(&mut Webhook) -> Result<bool, E>,
    ) -> Result<Option<Webhook>, E> {
        let updated = self.store.update_webhook(id, change).await?;
        if let Some(webhook) = &updated {
            self.saved(webhook);
        }
        Ok(updated)
    }

    /// A webhook as another host stored it counts for matching here too.
    pub fn reloaded(&self, webhook: &Webhook) {
        self.saved(webhook);
    }

    /// A webhook another host deleted no longer matches here.
    pub fn forget(&self, id: &str) {
        self.index_mut().remove(id);
    }

    /// Deletes a webhook for good: durable, then gone from matching. `false` when there was
    /// none.
    pub async fn remove(&self, id: &str) -> Result<bool, StoreError> {
        let removed = self.store.delete_webhook(id).await?;
        self.index_mut().remove(id);
        Ok(removed)
    }

    /// A user's companies (stored and durable) now bound every webhook of theirs.
    pub fn companies_changed(&self, user: &User) {
        self.index_mut().set_companies(&user.id, user.companies.clone());
    }

    /// Records what the latest turn said about `webhook`'s receiver: its status, and disabling
    /// it when a message used all its attempts or it answered 410 — except that a Zapier
    /// REST-hook subscription is removed on a 410 (Zapier's convention: the Zap is off).
    /// A webhook disabled meanwhile stays as it is (compare-and-swap). Says when the webhook
    /// was disabled or recovered by it.
    pub async fn record_health(&self, webhook: &Webhook, health: Health) -> Option<Transition> {
        let webhook_id = webhook.id.as_str();
        if health == Health::Gone && webhook.origin == Origin::Zapier {
            match self.remove(webhook_id).await {
                Ok(_) => tracing::info!(webhook_id, "Zapier answered 410 Gone: subscription removed"),
                Err(error) => tracing::error!(webhook_id, "cannot remove the Zapier subscription: {error}"),
            }
            return None;
        }
        let mut before = None;
        let updated = self.update(webhook_id, |webhook| {
            if !webhook.enabled {
                return Ok(false);
            }
            before = Some(webhook.status);
            let status = match health {
                Health::Succeeded => WebhookStatus::Healthy,
                Health::Failing => WebhookStatus::Unhealthy,
                Health::Exhausted | Health::Gone | Health::Refused => {
                    webhook.enabled = false;
                    WebhookStatus::Disabled
                }
            };
            let changed = webhook.status != status;
            webhook.status = status;
            Ok::<_, StoreError>(changed)
        });
        match updated.await {
            Ok(Some(webhook)) if !webhook.enabled => {
                tracing::warn!(webhook_id, "webhook disabled: {health:?}");
                Some(Transition::Disabled(webhook))
            }
            // Enabled again after a disable, and its receiver answers.
            Ok(Some(webhook))
                if before == Some(WebhookStatus::Pending) && webhook.status == WebhookStatus::Healthy =>
            {
                Some(Transition::Recovered(webhook))
            }
            Ok(_) => None,
            Err(error) => {
                tracing::error!(webhook_id, "cannot update webhook health: {error}");
                None
            }
        }
    }
}

/// What a turn's outcome did to its webhook, for the host's reports.
#[derive(Debug)]
pub enum Transition {
    Disabled(Webhook),
    Recovered(Webhook),
}
