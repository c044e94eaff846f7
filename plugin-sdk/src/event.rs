//! The two inputs of a transform: the delivery's standard payload and the connector config.

use std::cell::OnceCell;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;

/// The standard payload of one delivery:
/// `{id, event, timestamp, webhook: {...}, currentValue, previousValue, company: {id},
/// project: {id}, user: {id}}`.
///
/// Parsed on first use, so a connector that forwards [`Event::raw`] never parses it.
#[derive(Debug)]
pub struct Event {
    raw: String,
    parsed: OnceCell<Value>,
}

impl Event {
    pub fn new(raw: String) -> Self {
        Event { raw, parsed: OnceCell::new() }
    }

    /// The payload exactly as the host sent it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The payload as JSON (`null` if the host ever sent something unparseable).
    pub fn json(&self) -> &Value {
        self.parsed.get_or_init(|| serde_json::from_str(&self.raw).unwrap_or(Value::Null))
    }

    /// The event's id, which receivers use to dedupe.
    pub fn id(&self) -> &str {
        self.str("id").unwrap_or_default()
    }

    /// The event type, e.g. `TODO_CREATED`.
    pub fn event_type(&self) -> &str {
        self.str("event").unwrap_or_default()
    }

    /// The value at a path: dot-separated keys, `[n]` for an array element, e.g.
    /// `currentValue.todoList.project.id` or `currentValue.tags[0].name`.
    pub fn get(&self, path: &str) -> Option<&Value> {
        lookup(self.json(), path)
    }

    /// The string at a path, if there is one.
    pub fn str(&self, path: &str) -> Option<&str> {
        self.get(path).and_then(Value::as_str)
    }
}

/// A webhook's connector config (`{}` when the webhook has none). The host has already
/// validated it against the connector's schema.
#[derive(Debug)]
pub struct Config {
    raw: String,
}

impl Config {
    pub fn new(raw: String) -> Self {
        Config { raw }
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The config as the plugin's own type; a mismatch is an [`Error::InvalidConfig`]
    /// naming the field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.raw).map_err(|e| Error::invalid_config(e.to_string()))
    }
}

/// Follows a dot path (`a.b[2].c`) into a JSON value.
pub(crate) fn lookup<'v>(mut value: &'v Value, path: &str) -> Option<&'v Value> {
    for segment in path.split('.') {
        let (key, mut indexes) = match segment.find('[') {
            Some(at) => segment.split_at(at),
            None => (segment, ""),
        };
        if !key.is_empty() {
            value = value.get(key)?;
        }
        while let Some(rest) = indexes.strip_prefix('[') {
            let (index, after) = rest.split_once(']')?;
            value = value.get(index.parse::<usize>().ok()?)?;
            indexes = after;
        }
        if !indexes.is_empty() {
            return None;
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lookup_follows_keys_and_indexes() {
        let v = json!({"a": {"b": [{"c": 1}, {"c": [5, 6]}]}});
        assert_eq!(lookup(&v, "a.b[0].c"), Some(&json!(1)));
        assert_eq!(lookup(&v, "a.b[1].c[1]"), Some(&json!(6)));
        assert_eq!(lookup(&v, "a.b[2]"), None);
        assert_eq!(lookup(&v, "a.x"), None);
        assert_eq!(lookup(&v, "a.b[x]"), None);
        assert_eq!(lookup(&v, "a.b[0]junk"), None);
    }

    #[test]
    fn event_reads_standard_fields() {
        let e = Event::new(r#"{"id":"e1","event":"TODO_CREATED","currentValue":{"title":"t"}}"#.into());
        assert_eq!(e.id(), "e1");
        assert_eq!(e.event_type(), "TODO_CREATED");
        assert_eq!(e.str("currentValue.title"), Some("t"));
    }

    #[test]
    fn config_mismatch_is_invalid_config() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct C {
            pattern: String,
        }
        let err = Config::new("{}".into()).parse::<C>().unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(m) if m.contains("pattern")));
    }
}
