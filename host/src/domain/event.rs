//! Events as the application sends them, and as the host keeps them once accepted.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// An event as sent to `POST /v1/events` (or read by `wasmhook plugin run`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"id": "evt-1042", "event": "TODO_CREATED", "companyId": "c1", "projectId": "p1",
    "userId": "u7", "currentValue": {"id": "t1", "title": "Write the report"}}))]
pub struct IncomingEvent {
    /// The sender's id for the event; repeats (in the same company) are deduplicated.
    /// Generated when absent.
    #[serde(default)]
    #[schema(value_type = Option<crate::api::openapi::Id>)]
    pub id: Option<String>,
    /// The event type, e.g. `TODO_CREATED`.
    #[schema(value_type = crate::api::openapi::EventName)]
    pub event: String,
    /// A company the token may send events for.
    #[schema(value_type = crate::api::openapi::Id)]
    pub company_id: String,
    #[schema(value_type = crate::api::openapi::Id)]
    pub project_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    /// The record after the change: any JSON, nested at most 64 levels.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub current_value: Option<Value>,
    /// The record before the change: any JSON, nested at most 64 levels.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub previous_value: Option<Value>,
    /// When it happened (RFC 3339); the time it was accepted when absent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
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

/// How deep `currentValue` and `previousValue` may nest: an event must stay readable once
/// wrapped in the stored record and the standard payload (JSON parsers stop at 128).
pub const MAX_NESTING: usize = 64;

/// Checks an id the sender chose (event, company, project); the error says what is wrong.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() || id.chars().count() > 255 {
        return Err("must be 1 to 255 characters, not all spaces".into());
    }
    if id.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Refuses values nested deeper than [`MAX_NESTING`]: `(field, why)`.
pub fn check_nesting(event: &IncomingEvent) -> Result<(), (&'static str, String)> {
    for (field, value) in [("currentValue", &event.current_value), ("previousValue", &event.previous_value)] {
        if let Some(value) = value
            && depth(value) > MAX_NESTING
        {
            return Err((field, format!("nests deeper than {MAX_NESTING} levels of objects and arrays")));
        }
    }
    Ok(())
}

/// Levels of objects and arrays, without recursion (a deep value cannot overflow the stack).
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1)];
    while let Some((value, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(members) => Box::new(members.values()),
            _ => continue,
        };
        deepest = deepest.max(level);
        stack.extend(children.map(|child| (child, level + 1)));
    }
    deepest
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
    fn deep_values_and_control_characters_are_refused() {
        let mut deep = serde_json::json!(1);
        for _ in 0..MAX_NESTING {
            deep = serde_json::json!([deep]);
        }
        let mut event: IncomingEvent =
            serde_json::from_str(r#"{"event":"TODO_CREATED","companyId":"c1","projectId":"p1"}"#).unwrap();
        event.current_value = Some(deep.clone());
        assert!(check_nesting(&event).is_ok(), "exactly the limit is fine");
        event.previous_value = Some(serde_json::json!({ "a": deep }));
        assert_eq!(check_nesting(&event).unwrap_err().0, "previousValue");
        assert!(check_id("a\u{0}b").is_err() && check_id(" ").is_err() && check_id(&"é".repeat(255)).is_ok());
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
