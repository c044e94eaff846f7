//! The standard payload: what every plugin receives, and what the `json` connector sends.
//!
//! `{id, event, timestamp, webhook: {...}, currentValue, previousValue, company: {id},
//! project: {id}, user: {id}}` — the reference product's webhook shape, with nothing secret.

use serde::Serialize;
use serde_json::Value;

use crate::domain::event::Event;
use crate::domain::webhook::{Webhook, WebhookSummary};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StandardPayload<'a> {
    id: &'a str,
    event: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: time::OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook: Option<WebhookSummary<'a>>,
    current_value: &'a Option<Value>,
    previous_value: &'a Option<Value>,
    company: Ref<'a>,
    project: Ref<'a>,
    user: Option<Ref<'a>>,
}

#[derive(Serialize)]
struct Ref<'a> {
    id: &'a str,
}

/// The payload of `event` for `webhook`, as JSON text.
pub fn standard_payload(event: &Event, webhook: &Webhook) -> String {
    serde_json::to_string(&shape(event, Some(webhook))).expect("the payload is plain data")
}

/// The payload without its `webhook` member, for filters: built at most once per event,
/// whatever webhooks it reaches.
pub fn payload_without_webhook(event: &Event) -> Value {
    serde_json::to_value(shape(event, None)).expect("the payload is plain data")
}

fn shape<'a>(event: &'a Event, webhook: Option<&'a Webhook>) -> StandardPayload<'a> {
    StandardPayload {
        id: &event.id,
        event: &event.event,
        timestamp: event.occurred_at,
        webhook: webhook.map(Webhook::summary),
        current_value: &event.current_value,
        previous_value: &event.previous_value,
        company: Ref { id: &event.company_id },
        project: Ref { id: &event.project_id },
        user: event.user_id.as_deref().map(|id| Ref { id }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::domain::webhook::{Origin, Subscription, WebhookStatus};

    #[test]
    fn payload_has_the_reference_shape_and_no_secret() {
        let event = Event {
            id: "evt_1".into(),
            event: "TODO_CREATED".into(),
            company_id: "c1".into(),
            project_id: "p1".into(),
            user_id: Some("u1".into()),
            current_value: Some(json!({"title": "Write tests"})),
            previous_value: None,
            occurred_at: datetime!(2026-03-04 05:06:07 UTC),
        };
        let webhook = Webhook {
            id: "wh_1".into(),
            name: "CRM".into(),
            url: "https://example.com/hook".into(),
            status: WebhookStatus::Healthy,
            enabled: true,
            metadata: Subscription { events: vec!["TODO_CREATED".into()], project_ids: vec![] },
            filter: None,
            connector: Default::default(),
            rate_limit: None,
            ordered: false,
            created_by_id: "u9".into(),
            created_at: datetime!(2026-01-01 00:00:00 UTC),
            updated_at: datetime!(2026-01-02 00:00:00 UTC),
            sealed_secret: "sealed".into(),
            previous_secrets: Vec::new(),
            sealed_config: None,
            sealed_url: None,
            revision: 0,
            origin: Origin::default(),
        };
        let payload: Value = serde_json::from_str(&standard_payload(&event, &webhook)).unwrap();
        assert_eq!(
            payload,
            json!({
                "id": "evt_1",
                "event": "TODO_CREATED",
                "timestamp": "2026-03-04T05:06:07Z",
                "webhook": {
                    "id": "wh_1", "name": "CRM", "url": "https://example.com/hook",
                    "status": "HEALTHY", "enabled": true,
                    "metadata": {"events": ["TODO_CREATED"], "projectIds": []},
                    "createdById": "u9",
                    "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-02T00:00:00Z"
                },
                "currentValue": {"title": "Write tests"},
                "previousValue": null,
                "company": {"id": "c1"},
                "project": {"id": "p1"},
                "user": {"id": "u1"}
            })
        );
    }
}
