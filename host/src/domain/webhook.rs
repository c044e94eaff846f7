//! Webhooks: subscriptions to events, their connector, and their health.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::secret::SecretBox;

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
    /// Its owner: it matches only events of the companies its owner may see now.
    pub created_by_id: String,
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
    /// The connector config's write-only members (API keys, URLs), sealed like the secret;
    /// `connector.config` holds the rest. See [`Webhook::connector_config`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_config: Option<String>,
    /// The destination URL whole, sealed, when it carries credentials (a broker's login);
    /// `url` is then its redacted form. See [`Webhook::set_url`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_url: Option<String>,
    /// Bumped by every stored change: updates are compare-and-swap on it.
    #[serde(default)]
    pub revision: u64,
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
    #[schema(value_type = crate::api::openapi::ConnectorName)]
    pub name: String,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
    /// A version of the connector to keep using (`GET /v1/connectors/{name}/versions`; 0 is
    /// the built-in); absent, the webhook follows the live version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

impl Default for ConnectorRef {
    fn default() -> Self {
        ConnectorRef { name: "json".into(), config: empty_object(), version: None }
    }
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Which events reach a webhook: empty lists mean all events, all projects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subscription {
    /// Event types (repeats are dropped); empty means every event.
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::openapi::EventName>)]
    pub events: Vec<String>,
    /// Project ids (repeats are dropped); empty means every project of the owner's companies.
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::openapi::Id>)]
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
    /// Enabled again; the `WEBHOOK_HEALTH_CHECK` that goes first has not been answered yet.
    Pending,
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
    /// The connector config whole: the stored members with the sealed ones opened.
    pub fn connector_config(&self, secrets: &SecretBox) -> Value {
        let mut config = self.connector.config.clone();
        let Some(sealed) = &self.sealed_config else { return config };
        let opened =
            secrets.open_bytes(sealed).and_then(|plain| serde_json::from_slice::<Value>(&plain).ok());
        match (opened, config.as_object_mut()) {
            (Some(Value::Object(members)), Some(config)) => config.extend(members),
            _ => tracing::error!(webhook_id = %self.id, "the sealed connector config cannot be opened"),
        }
        config
    }

    /// Opens the sealed members into `connector.config` (to change the config whole).
    pub fn open_config(&mut self, secrets: &SecretBox) {
        self.connector.config = self.connector_config(secrets);
        self.sealed_config = None;
    }

    /// Moves the `write_only` members of `connector.config` into `sealed_config`: the form
    /// that is stored.
    pub fn seal_config(&mut self, write_only: &[String], secrets: &SecretBox) {
        let Some(config) = self.connector.config.as_object_mut() else { return };
        let secret: serde_json::Map<String, Value> =
            write_only.iter().filter_map(|name| Some((name.clone(), config.remove(name)?))).collect();
        self.sealed_config = (!secret.is_empty())
            .then(|| secrets.seal_bytes(&serde_json::to_vec(&secret).expect("plain data")));
    }

    /// Sets the destination URL: one with credentials is kept sealed, and shown redacted.
    /// Credentials given back as shown (`amqp://app:***@…`) are the ones stored, when the URL
    /// still names the same broker and user.
    pub fn set_url(&mut self, text: String, secrets: &SecretBox) {
        let Some(mut url) = url::Url::parse(&text).ok().filter(crate::destination::has_credentials) else {
            self.url = text;
            self.sealed_url = None;
            return;
        };
        let redacted = url.password() == Some("***") || (url.password().is_none() && url.username() == "***");
        let stored = self.destination(secrets).and_then(|stored| url::Url::parse(&stored).ok());
        if let Some(stored) = stored.filter(|stored| {
            redacted
                && (stored.scheme(), stored.host(), stored.port()) == (url.scheme(), url.host(), url.port())
                && (url.username() == "***" || stored.username() == url.username())
        }) {
            let _ = url.set_username(stored.username());
            let _ = url.set_password(stored.password());
        }
        self.url = crate::destination::redacted(&url);
        self.sealed_url = Some(secrets.seal_bytes(url.as_str().as_bytes()));
    }

    /// The destination URL whole, credentials included; `None` when they cannot be opened
    /// with this server's key.
    pub fn destination(&self, secrets: &SecretBox) -> Option<String> {
        match &self.sealed_url {
            None => Some(self.url.clone()),
            Some(sealed) => String::from_utf8(secrets.open_bytes(sealed)?).ok(),
        }
    }

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

/// Checks a webhook's name: 1 to 200 characters of printable text (no control characters,
/// no bidirectional overrides that would make it read differently from what it is).
pub fn check_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > 200 {
        return Err(format!("must be 1 to 200 characters, this one has {chars}"));
    }
    let bidi_control = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if let Some(bad) = name.chars().find(|&c| c.is_control() || bidi_control(c)) {
        return Err(format!("must not contain control or bidirectional-override characters ({bad:?})"));
    }
    Ok(())
}

/// A new webhook id.
pub fn new_webhook_id() -> String {
    format!("wh_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_credentials_is_kept_sealed_and_shown_redacted() {
        use base64::Engine as _;
        let secrets =
            SecretBox::from_base64(&base64::engine::general_purpose::STANDARD.encode([7u8; 32])).unwrap();
        let mut webhook: Webhook = serde_json::from_value(serde_json::json!({
            "id": "wh_1", "name": "n", "url": "", "status": "HEALTHY", "enabled": true,
            "metadata": {"events": [], "projectIds": []}, "filter": null,
            "connector": {"name": "json", "config": {}}, "rateLimit": null, "ordered": false,
            "createdById": "u", "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
            "sealedSecret": "x"
        }))
        .unwrap();
        let full = "amqp://app:s3cret@rabbit.example/prod?exchange=x";
        webhook.set_url(full.into(), &secrets);
        assert_eq!(webhook.url, "amqp://app:***@rabbit.example/prod?exchange=x");
        assert_eq!(webhook.destination(&secrets).as_deref(), Some(full));
        assert!(!serde_json::to_string(&webhook).unwrap().contains("s3cret"), "stored sealed only");

        // Given back as shown, even with another exchange, it keeps its credentials.
        webhook.set_url(webhook.url.clone(), &secrets);
        assert_eq!(webhook.destination(&secrets).as_deref(), Some(full));
        webhook.set_url("amqp://app:***@rabbit.example/prod?exchange=y".into(), &secrets);
        assert_eq!(
            webhook.destination(&secrets).as_deref(),
            Some("amqp://app:s3cret@rabbit.example/prod?exchange=y")
        );
        // Another user, another broker or a new password: the URL as given.
        webhook.set_url("amqp://bob:***@rabbit.example/prod?exchange=y".into(), &secrets);
        assert_eq!(
            webhook.destination(&secrets).as_deref(),
            Some("amqp://bob:***@rabbit.example/prod?exchange=y")
        );
        webhook.set_url(full.into(), &secrets);
        webhook.set_url("amqp://app:***@other.example/prod?exchange=x".into(), &secrets);
        assert!(webhook.destination(&secrets).unwrap().contains("app:***@other"));
        webhook.set_url("amqp://app:n3w@rabbit.example/prod?exchange=x".into(), &secrets);
        assert_eq!(webhook.url, "amqp://app:***@rabbit.example/prod?exchange=x");
        assert!(webhook.destination(&secrets).unwrap().contains("app:n3w@"));
        // Another URL replaces them.
        webhook.set_url("https://example.com/x".into(), &secrets);
        assert_eq!((webhook.url.as_str(), webhook.sealed_url.as_ref()), ("https://example.com/x", None));
    }

    #[test]
    fn names_count_characters_and_refuse_invisible_controls() {
        assert!(check_name(&"é".repeat(200)).is_ok(), "200 two-byte characters are 200 characters");
        assert!(check_name(&"é".repeat(201)).is_err());
        for bad in ["", "a\u{0}b", "pay\u{202E}lpaypal", "x\u{2066}y", "tab\there"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
