//! Webhooks: subscriptions to events, their connector, and their health.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::access::Companies;

/// A stored webhook. Its secret is kept sealed and never serialised into any view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    pub name: String,
    pub url: String,
    pub status: WebhookStatus,
    pub enabled: bool,
    pub metadata: Subscription,
    /// The filter as the user wrote it (validated when saved).
    pub filter: Option<Value>,
    pub connector: ConnectorRef,
    /// Messages per second at most; `None` for no limit.
    pub rate_limit: Option<u32>,
    /// Deliver one message at a time, in ingest order.
    pub ordered: bool,
    pub created_by_id: String,
    /// The companies of the token that saved it: it matches only their events.
    pub companies: Companies,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The signing secret, sealed (base64 of nonce + ciphertext).
    pub sealed_secret: String,
    /// Secrets replaced by a rotation that still sign until their grace period ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_secrets: Vec<RetiredSecret>,
    /// How it was made: Zapier's REST-hook subscriptions go away on a 410.
    #[serde(default)]
    pub origin: Origin,
}

/// Who made a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Origin {
    /// `POST /v1/webhooks` (the API, the CLI, the web app).
    #[default]
    Api,
    /// A Zapier REST-hook subscription (`POST /hooks/zapier`).
    Zapier,
}

/// A rotated-out secret, still signing until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetiredSecret {
    pub sealed: String,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// The connector a webhook's deliveries go through, and its config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConnectorRef {
    pub name: String,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
}

impl Default for ConnectorRef {
    fn default() -> Self {
        ConnectorRef { name: "json".into(), config: empty_object() }
    }
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Which events reach a webhook: empty lists mean all events, all projects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subscription {
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub project_ids: Vec<String>,
}

/// A webhook's health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// The webhook as the standard payload shows it: nothing secret, nothing internal.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSummary<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub url: &'a str,
    pub status: WebhookStatus,
    pub enabled: bool,
    pub metadata: &'a Subscription,
    pub created_by_id: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Webhook {
    pub fn summary(&self) -> WebhookSummary<'_> {
        WebhookSummary {
            id: &self.id,
            name: &self.name,
            url: &self.url,
            status: self.status,
            enabled: self.enabled,
            metadata: &self.metadata,
            created_by_id: &self.created_by_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A new webhook id.
pub fn new_webhook_id() -> String {
    format!("wh_{}", uuid::Uuid::now_v7().simple())
}
