//! Text templates over an event: `"{{event}} on {{currentValue.title}}"`.
//!
//! A placeholder is a path into the standard payload, as [`Event::get`] takes it
//! (`currentValue.users[0].email`). Strings are inserted as they are, numbers and booleans as
//! their JSON text, objects and arrays as compact JSON; a missing value or `null` inserts
//! nothing. Connectors parse their templates from config once, so a broken template is an
//! `invalid_config` error naming the field.

use crate::{Error, Event, Value};

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Path(String),
}

impl Template {
    /// Parses `text`; `field` names the config field in the error.
    pub fn parse(field: &str, text: &str) -> Result<Self, Error> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(Error::invalid_config(format!("{field}: a \"{{{{\" is never closed")));
            };
            let path = after[..close].trim();
            if path.is_empty() || path.contains(char::is_whitespace) {
                return Err(Error::invalid_config(format!(
                    "{field}: {{{{{path}}}}} is not a path like {{{{currentValue.title}}}}"
                )));
            }
            parts.push(Part::Path(path.to_owned()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// True when the template is a single placeholder (`"{{currentValue.done}}"`).
    pub fn single_path(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Path(path)] => Some(path),
            _ => None,
        }
    }

    /// The text, with each inserted value passed through `escape` (for Slack's mrkdwn, say).
    pub fn render_with(&self, event: &Event, escape: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Path(path) => out.push_str(&escape(&text_of(event.get(path)))),
            }
        }
        out
    }

    /// The text, values inserted as they are.
    pub fn render(&self, event: &Event) -> String {
        self.render_with(event, str::to_owned)
    }
}

/// How a value reads inside text.
pub fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn event() -> Event {
        let payload = json!({"id": "e1", "event": "TODO_CREATED",
            "currentValue": {"title": "Ship it", "done": false, "users": [{"email": "a@x.io"}]}});
        Event::new(payload.to_string())
    }

    #[test]
    fn renders_paths_and_text() {
        let t =
            Template::parse("text", "{{event}}: {{ currentValue.title }} ({{currentValue.users[0].email}})")
                .unwrap();
        assert_eq!(t.render(&event()), "TODO_CREATED: Ship it (a@x.io)");
        let t = Template::parse("text", "done={{currentValue.done}} missing=[{{nope.nothing}}]").unwrap();
        assert_eq!(t.render(&event()), "done=false missing=[]");
        assert_eq!(
            Template::parse("f", "{{currentValue.done}}").unwrap().single_path(),
            Some("currentValue.done")
        );
        assert_eq!(Template::parse("f", "x{{id}}").unwrap().single_path(), None);
    }

    #[test]
    fn escapes_inserted_values_only() {
        let t = Template::parse("text", "<b>{{currentValue.title}}</b>").unwrap();
        assert_eq!(t.render_with(&event(), |s| s.replace('S', "$")), "<b>$hip it</b>");
    }

    #[test]
    fn broken_templates_name_the_field() {
        assert_eq!(
            Template::parse("text", "hi {{event").unwrap_err(),
            Error::invalid_config("text: a \"{{\" is never closed")
        );
        let error = Template::parse("path", "{{ two words }}").unwrap_err().to_string();
        assert!(error.contains("path: {{two words}} is not a path"), "{error}");
    }
}
