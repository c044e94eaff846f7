//! Events as the application sends them, and as the host keeps them once accepted.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// An event as sent to `POST /v1/events` (or read by `wasmhook plugin run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IncomingEvent {
    /// The sender's id for the event; repeats are deduplicated. Generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The event type, e.g. `TODO_CREATED`.
    pub event: String,
    pub company_id: String,
    pub project_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub current_value: Option<Value>,
    #[serde(default)]
    pub previous_value: Option<Value>,
    /// When it happened; the time it was accepted when absent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub occurred_at: Option<OffsetDateTime>,
}

/// An accepted event: it has an id and a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    pub event: String,
    pub company_id: String,
    pub project_id: String,
    pub user_id: Option<String>,
    pub current_value: Option<Value>,
    pub previous_value: Option<Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

impl IncomingEvent {
    /// Accepts the event at `now`, giving it an id if the sender did not.
    pub fn accept(self, now: OffsetDateTime) -> Event {
        Event {
            id: self.id.unwrap_or_else(new_event_id),
            event: self.event,
            company_id: self.company_id,
            project_id: self.project_id,
            user_id: self.user_id,
            current_value: self.current_value,
            previous_value: self.previous_value,
            occurred_at: self.occurred_at.unwrap_or(now),
        }
    }
}

/// A new event id: time-ordered, so ids sort roughly by arrival.
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn accept_fills_in_id_and_time() {
        let incoming: IncomingEvent =
            serde_json::from_str(r#"{"event":"TODO_CREATED","companyId":"c1","projectId":"p1"}"#).unwrap();
        let now = datetime!(2026-01-02 03:04:05 UTC);
        let event = incoming.accept(now);
        assert!(event.id.starts_with("evt_"));
        assert_eq!(event.occurred_at, now);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<IncomingEvent>(
            r#"{"event":"TODO_CREATED","companyId":"c1","projectId":"p1","bogus":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("bogus"));
    }
}
