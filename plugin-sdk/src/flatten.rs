//! Flattening nested JSON into one level of readable keys, for no-code tools (Zapier,
//! Pabbly Connect) whose field pickers map flat key/value pairs.
//!
//! `{"currentValue": {"todoList": {"title": "Marketing"}}}` becomes
//! `current_value__todo_list__title` in [`Style::ZAPIER`] and `currentValue_todoList_title` in
//! [`Style::PABBLY`]. Arrays either keep their indexes (`users_0_email`) or become Zapier-style
//! line items, one comma-separated string per field (`users__email: "a@x.io, b@x.io"`).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::template::text_of;
use crate::{Config, Error, Event, Request};

/// Which optional members of the standard payload a flat connector sends: its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Members {
    pub include_previous_value: bool,
    pub include_webhook: bool,
}

impl Default for Members {
    fn default() -> Self {
        Members { include_previous_value: true, include_webhook: false }
    }
}

impl Members {
    /// The config schema for [`Members`].
    pub fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "includePreviousValue": {"type": "boolean", "default": true,
                    "description": "Also send the record as it was before the change."},
                "includeWebhook": {"type": "boolean", "default": false,
                    "description": "Also send the webhook's own name, URL and subscription."}
            }
        })
    }
}

/// The request a flat connector sends: the payload flattened in `style`, its members chosen
/// by the webhook's config ([`Members`]).
pub fn flat_request(event: &Event, config: &Config, style: Style) -> Result<Request, Error> {
    let members: Members = config.parse()?;
    Ok(Request::json(&flatten_payload(event, style, members)))
}

/// The standard payload flattened, without the members `members` leaves out.
pub fn flatten_payload(event: &Event, style: Style, members: Members) -> Map<String, Value> {
    let mut payload = event.json().clone();
    if let Some(fields) = payload.as_object_mut() {
        if !members.include_previous_value {
            fields.remove("previousValue");
        }
        if !members.include_webhook {
            fields.remove("webhook");
        }
    }
    flatten(&payload, style)
}

/// How keys are joined and arrays spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub separator: &'static str,
    /// `todoList` → `todo_list`.
    pub snake_case: bool,
    pub arrays: Arrays,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrays {
    /// One key per element: `tags_0_title`, `tags_1_title`.
    Indexed,
    /// One key per field, the elements' values joined with ", ": `tags__title`.
    Joined,
}

impl Style {
    /// Zapier shows `a__b` as "A B" and treats joined values as line items.
    pub const ZAPIER: Style = Style { separator: "__", snake_case: true, arrays: Arrays::Joined };
    /// Pabbly Connect's webhook trigger lists each path as it finds it.
    pub const PABBLY: Style = Style { separator: "_", snake_case: false, arrays: Arrays::Indexed };
}

/// Flattens `value` (an object) into `out`, each key prefixed with `prefix` (if not empty).
pub fn flatten_into(out: &mut Map<String, Value>, prefix: &str, value: &Value, style: Style) {
    match value {
        Value::Object(fields) => {
            for (key, inner) in fields {
                let key = join(prefix, &name(key, style), style);
                flatten_into(out, &key, inner, style);
            }
        }
        Value::Array(items) if style.arrays == Arrays::Indexed => {
            for (i, inner) in items.iter().enumerate() {
                flatten_into(out, &join(prefix, &i.to_string(), style), inner, style);
            }
        }
        Value::Array(items) => {
            let mut columns: Vec<(String, Vec<String>)> = Vec::new();
            for item in items {
                let mut row = Map::new();
                flatten_into(&mut row, "", item, style);
                if row.is_empty() && !item.is_object() {
                    row.insert(String::new(), item.clone());
                }
                for (key, cell) in row {
                    match columns.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, cells)) => cells.push(text_of(Some(&cell))),
                        None => columns.push((key, vec![text_of(Some(&cell))])),
                    }
                }
            }
            for (key, cells) in columns {
                out.insert(join(prefix, &key, style), Value::String(cells.join(", ")));
            }
        }
        scalar if !prefix.is_empty() => {
            out.insert(prefix.to_owned(), scalar.clone());
        }
        _ => {}
    }
}

/// `value` flattened into a new object.
pub fn flatten(value: &Value, style: Style) -> Map<String, Value> {
    let mut out = Map::new();
    flatten_into(&mut out, "", value, style);
    out
}

fn join(prefix: &str, key: &str, style: Style) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}{}{key}", style.separator),
    }
}

fn name(key: &str, style: Style) -> String {
    if !style.snake_case {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len() + 4);
    let mut previous_lower = false;
    for c in key.chars() {
        if c.is_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn sample() -> Value {
        json!({"currentValue": {"title": "T", "todoList": {"id": "l1"}, "done": false,
            "tags": [{"title": "a", "color": "red"}, {"title": "b"}], "labels": ["x", "y"], "none": null,
            "empty": []}})
    }

    #[test]
    fn zapier_keys_are_snake_case_with_line_items() {
        let flat = flatten(&sample(), Style::ZAPIER);
        assert_eq!(flat["current_value__title"], json!("T"));
        assert_eq!(flat["current_value__todo_list__id"], json!("l1"));
        assert_eq!(flat["current_value__done"], json!(false));
        assert_eq!(flat["current_value__tags__title"], json!("a, b"));
        assert_eq!(flat["current_value__tags__color"], json!("red"));
        assert_eq!(flat["current_value__labels"], json!("x, y"));
        assert_eq!(flat["current_value__none"], Value::Null);
        assert!(!flat.contains_key("current_value__empty"));
    }

    #[test]
    fn pabbly_keys_keep_names_and_indexes() {
        let flat = flatten(&sample(), Style::PABBLY);
        assert_eq!(flat["currentValue_todoList_id"], json!("l1"));
        assert_eq!(flat["currentValue_tags_1_title"], json!("b"));
        assert_eq!(flat["currentValue_labels_0"], json!("x"));
        assert!(flat.values().all(|v| !v.is_object() && !v.is_array()));
    }

    #[test]
    fn snake_case_handles_acronyms_and_digits() {
        assert_eq!(name("createdById", Style::ZAPIER), "created_by_id");
        assert_eq!(name("URL", Style::ZAPIER), "url");
        assert_eq!(name("step2Done", Style::ZAPIER), "step2_done");
    }
}
