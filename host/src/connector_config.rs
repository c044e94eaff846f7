//! A webhook's connector config against its connector's JSON Schema (from `describe`).
//!
//! The schema is compiled once, when the plugin loads (a plugin whose schema does not compile
//! is refused). A config is validated when a webhook is saved, so a plugin never sees one its
//! schema rejects. Properties the schema marks `"writeOnly": true` (API keys, Slack URLs) are
//! secrets: views leave them out, an update that omits them keeps the stored ones, and their
//! values are scrubbed from everything the delivery log shows (requests, responses, errors,
//! plugin logs). Only top-level properties can be write-only.

use serde_json::{Map, Value};

/// A compiled config schema.
pub struct ConfigSchema {
    validator: jsonschema::Validator,
    write_only: Vec<String>,
}

impl std::fmt::Debug for ConfigSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSchema").field("write_only", &self.write_only).finish_non_exhaustive()
    }
}

/// What the delivery log shows in place of a write-only value.
pub const REDACTED: &str = "[redacted]";

impl ConfigSchema {
    pub fn compile(schema: &Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
        let write_only = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| {
                properties
                    .iter()
                    .filter(|(_, p)| p.get("writeOnly").and_then(Value::as_bool) == Some(true))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default();
        Ok(ConfigSchema { validator, write_only })
    }

    /// The first problem with `config`, as `connector.config.<path>: <what is wrong>`; a
    /// write-only value is never quoted back.
    pub fn validate(&self, config: &Value) -> Result<(), String> {
        let Err(error) = self.validator.validate(config) else { return Ok(()) };
        let pointer = error.instance_path().as_str();
        let mut path: String = pointer.split('/').skip(1).map(|step| format!(".{step}")).collect();
        // A missing property is reported at its parent: name the property itself.
        if let jsonschema::error::ValidationErrorKind::Required { property } = error.kind()
            && let Some(name) = property.as_str()
        {
            path.push('.');
            path.push_str(name);
        }
        let first = pointer.split('/').nth(1).unwrap_or_default();
        let message = if self.write_only.iter().any(|name| name == first) {
            error.masked_with("the value").to_string()
        } else {
            error.to_string()
        };
        Err(format!("connector.config{path}: {message}"))
    }

    /// The names of the write-only (top-level) members.
    pub fn write_only(&self) -> &[String] {
        &self.write_only
    }

    /// `config` without its write-only members, for views.
    pub fn hide(&self, config: &Value) -> Value {
        match config {
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .filter(|(name, _)| !self.write_only.contains(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect::<Map<_, _>>(),
            ),
            other => other.clone(),
        }
    }

    /// Copies into `new` the write-only members of `old` that `new` leaves out: views never
    /// show them, so a client that edits what it was shown must not erase them.
    pub fn keep_write_only(&self, new: &mut Value, old: &Value) {
        let (Some(new), Some(old)) = (new.as_object_mut(), old.as_object()) else { return };
        for name in &self.write_only {
            if let (false, Some(value)) = (new.contains_key(name), old.get(name)) {
                new.insert(name.clone(), value.clone());
            }
        }
    }

    /// The secrets a delivery log for `config` must not show.
    pub fn scrubber(&self, config: &Value) -> Scrubber {
        let secrets = self
            .write_only
            .iter()
            .filter_map(|name| config.get(name))
            .filter_map(|value| match value {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect();
        Scrubber::new(secrets)
    }
}

/// Replaces a webhook's write-only config values in text shown to users.
#[derive(Debug, Default)]
pub struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    /// Scrubs every string in `config`'s top level (when nobody can say which are secret).
    pub fn every_value(config: &Value) -> Self {
        let members = config.as_object().into_iter().flat_map(|members| members.values());
        Scrubber::new(members.filter_map(|v| v.as_str().map(str::to_owned)).collect())
    }

    fn new(mut secrets: Vec<String>) -> Self {
        secrets.retain(|s| !s.is_empty());
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Scrubber { secrets }
    }

    pub fn scrub(&self, text: &mut String) {
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                *text = text.replace(secret.as_str(), REDACTED);
            }
        }
    }

    pub fn scrub_option(&self, text: &mut Option<String>) {
        if let Some(text) = text {
            self.scrub(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> ConfigSchema {
        ConfigSchema::compile(&json!({
            "type": "object", "additionalProperties": false, "required": ["apiKey"],
            "properties": {
                "apiKey": {"type": "string", "minLength": 8, "writeOnly": true},
                "fields": {"type": "array", "items": {"type": "object", "required": ["label"]}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn errors_name_the_field_and_never_quote_a_secret() {
        let s = schema();
        assert!(s.validate(&json!({"apiKey": "long enough"})).is_ok());
        let error = s.validate(&json!({"apiKey": "short"})).unwrap_err();
        assert!(error.starts_with("connector.config.apiKey: "), "{error}");
        assert!(!error.contains("short\""), "{error}");
        let error = s.validate(&json!({"apiKey": "long enough", "fields": [{}, {"x": 1}]})).unwrap_err();
        assert!(
            error.starts_with("connector.config.fields.0.label: "),
            "a missing property is named: {error}"
        );
        let error = s.validate(&json!({})).unwrap_err();
        assert!(error.starts_with("connector.config.apiKey: "), "{error}");
        let error = s.validate(&json!({"apiKey": "long enough", "colour": 1})).unwrap_err();
        assert!(error.contains("colour"), "{error}");
    }

    #[test]
    fn write_only_members_are_hidden_kept_and_scrubbed() {
        let s = schema();
        let stored = json!({"apiKey": "sk-12345678", "fields": []});
        assert_eq!(s.hide(&stored), json!({"fields": []}));
        let mut edited = json!({"fields": [{"label": "x"}]});
        s.keep_write_only(&mut edited, &stored);
        assert_eq!(edited["apiKey"], "sk-12345678");
        let mut text = "Bearer sk-12345678 refused".to_owned();
        s.scrubber(&stored).scrub(&mut text);
        assert_eq!(text, "Bearer [redacted] refused");
    }

    #[test]
    fn a_schema_that_does_not_compile_is_an_error() {
        assert!(ConfigSchema::compile(&json!({"type": "no such type"})).is_err());
    }
}
