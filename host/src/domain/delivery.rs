//! Deliveries: one (event, webhook) pair that matched, its messages (the requests its plugin
//! returned, sent the same on every retry) and their attempts.

use crate::connector_config::Scrubber;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::event::Event;
use super::plugin_output::{LogLine, Request};
use crate::secret::SecretBox;

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    /// The event's type, e.g. `TODO_CREATED` (empty in records from before it was kept).
    #[serde(default)]
    pub event_type: String,
    /// The event's company: event ids are unique per company.
    #[serde(default)]
    pub company_id: String,
    pub webhook_id: String,
    pub status: DeliveryStatus,
    /// What the plugin asked to send (empty until it has run).
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The plugin's log from its run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub plugin_log: Vec<LogLine>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Queued: waiting for its first attempt or a retry.
    Pending,
    /// Its webhook is disabled: kept until the webhook is recovered.
    Paused,
    /// Every message reached the receiver.
    Succeeded,
    /// The plugin returned no requests.
    Filtered,
    /// A message used all its attempts, or the receiver answered 410.
    Failed,
    /// The plugin failed; the receiver was not contacted.
    PluginError,
}

impl DeliveryStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Filtered | Self::Failed | Self::PluginError)
    }
}

/// One HTTP request a delivery sends; every attempt sends the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Also the `webhook-id` header: stable across retries, for receivers to dedupe on.
    pub id: String,
    #[schema(value_type = Object)]
    pub request: Request,
    pub status: MessageStatus,
    pub attempts: u32,
    /// When the next attempt is due (while pending).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The request as it is sent, sealed, when it carries write-only config values;
    /// `request` is then the scrubbed form the delivery log shows. Never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub sealed_request: Option<String>,
    /// The receiver's id for it, as the connector read it from an answer (contract 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
}

impl Message {
    /// A message for a plugin's request. A request that carries a write-only value (a plugin
    /// put an API key in a header) is kept sealed; only its scrubbed form is in the clear.
    pub fn new(request: Request, scrubber: &Scrubber, secrets: &SecretBox, now: OffsetDateTime) -> Self {
        // Most webhooks have no write-only config: no copy to scrub, nothing to seal.
        let (shown, sealed_request) = if scrubber.is_empty() {
            (request, None)
        } else {
            let mut shown = request.clone();
            scrub_request(&mut shown, scrubber);
            let sealed = (shown != request)
                .then(|| secrets.seal_bytes(&serde_json::to_vec(&request).expect("plain data")));
            (shown, sealed)
        };
        Message {
            id: new_message_id(),
            request: shown,
            status: MessageStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(now),
            sealed_request,
            remote_id: None,
        }
    }

    /// The request to send: the sealed one opened, when there is one.
    pub fn request_to_send(&self, secrets: &SecretBox) -> Option<std::borrow::Cow<'_, Request>> {
        match &self.sealed_request {
            None => Some(std::borrow::Cow::Borrowed(&self.request)),
            Some(sealed) => {
                serde_json::from_slice(&secrets.open_bytes(sealed)?).ok().map(std::borrow::Cow::Owned)
            }
        }
    }
}

fn scrub_request(request: &mut Request, scrubber: &Scrubber) {
    scrubber.scrub_option(&mut request.url);
    for (_, value) in &mut request.headers {
        scrubber.scrub(value);
    }
    scrubber.scrub(&mut request.body);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Pending,
    Succeeded,
    Failed,
}

/// One try of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub message_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The receiver's HTTP status code, when it answered (brokers have none).
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The start of the receiver's answer (a broker's: what acknowledged the message, where).
    pub response: Option<String>,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// The receiver's id for what was sent, as the connector read it from the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
}

impl Attempt {
    /// A 2xx answer, or a broker's acknowledgement (no status, no error).
    pub fn succeeded(&self) -> bool {
        match self.status_code {
            Some(code) => (200..300).contains(&code),
            None => self.error.is_none(),
        }
    }

    /// Removes the webhook's write-only config values, for showing it.
    pub fn scrub(&mut self, scrubber: &Scrubber) {
        scrubber.scrub_option(&mut self.response);
        scrubber.scrub_option(&mut self.error);
    }
}

impl Delivery {
    /// A new delivery of `event` to `webhook_id`: pending, or paused when the webhook is
    /// disabled.
    pub fn new(event: &Event, webhook_id: &str, enabled: bool, now: OffsetDateTime) -> Self {
        Delivery {
            id: new_delivery_id(),
            event_id: event.id.clone(),
            event_type: event.event.clone(),
            company_id: event.company_id.clone(),
            webhook_id: webhook_id.to_owned(),
            status: if enabled { DeliveryStatus::Pending } else { DeliveryStatus::Paused },
            messages: Vec::new(),
            error: None,
            plugin_log: Vec::new(),
            created_at: now,
        }
    }

    /// When its next attempt is due: its earliest pending message's; `None` when no message
    /// waits for one (none is pending, or its plugin has not run yet).
    pub fn next_attempt_at(&self) -> Option<OffsetDateTime> {
        let pending = self.messages.iter().filter(|m| m.status == MessageStatus::Pending);
        pending.filter_map(|m| m.next_attempt_at).min()
    }

    /// Removes the webhook's write-only config values (a plugin may have put its API key in
    /// a header or a Slack URL in `url`), for showing it.
    pub fn scrub(&mut self, scrubber: &Scrubber) {
        for message in &mut self.messages {
            scrub_request(&mut message.request, scrubber);
        }
        scrubber.scrub_option(&mut self.error);
        for line in &mut self.plugin_log {
            scrubber.scrub(&mut line.message);
        }
    }
}

#[cfg(test)]
impl Delivery {
    /// This delivery with a message sent and due again at `at`, as a turn that failed leaves it.
    pub fn due_again_at(mut self, at: OffsetDateTime) -> Self {
        let request = Request {
            url: None,
            method: "POST".into(),
            headers: Vec::new(),
            body: "{}".into(),
            ordering_key: None,
        };
        self.messages.push(Message {
            id: new_message_id(),
            request,
            status: MessageStatus::Pending,
            attempts: 1,
            next_attempt_at: Some(at),
            sealed_request: None,
            remote_id: None,
        });
        self
    }
}

/// A new delivery id.
pub fn new_delivery_id() -> String {
    format!("dlv_{}", uuid::Uuid::now_v7().simple())
}

/// A new message id (`webhook-id`).
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}
