//! Webhooks: subscriptions to events, and their health.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A webhook as plugins and API clients see it. The secret is never part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    pub name: String,
    pub url: String,
    pub status: WebhookStatus,
    pub enabled: bool,
    pub metadata: Subscription,
    pub created_by_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Which events reach a webhook: empty lists mean all events, all projects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub project_ids: Vec<String>,
}

/// A webhook's health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WebhookStatus {
    /// The latest attempt succeeded (or none was made yet).
    #[default]
    Healthy,
    /// The latest attempt failed and retries are pending.
    Unhealthy,
    /// Disabled after a message used all its attempts, a 410, or by its owner.
    Disabled,
}
