//! The {{name}} connector: sends each event's type, id, project and record title as JSON, with
//! the webhook's optional `label`; an event without a current value (a deletion) sends nothing.
//! Change `transform` to shape the requests your target expects.

use serde::Deserialize;
use wasmhook_plugin_sdk::{Config, Error, Event, Info, Plugin, Request, export_plugin, json, log};

struct Connector;

/// The webhook's connector config, as the schema in `describe` allows it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    label: Option<String>,
}

impl Plugin for Connector {
    fn describe() -> Info {
        Info::new("{{name}}", "0.1.0", "Sends each event's type, id, project and title as JSON.").config_schema(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "label": {"type": "string", "title": "Label", "description": "Added to every message as `label`."}
            }
        }))
    }

    fn transform(event: Event, config: Config) -> Result<Vec<Request>, Error> {
        let settings: Settings = config.parse()?;
        if event.get("currentValue").is_none_or(|value| value.is_null()) {
            log::info("no current value (a deletion): nothing to send");
            return Ok(vec![]);
        }
        // Keys in alphabetical order, compact: the same bytes as the JavaScript and Python
        // templates send.
        Ok(vec![Request::json(&json!({
            "event": event.event_type(),
            "id": event.id(),
            "label": settings.label,
            "project": event.str("project.id"),
            "title": event.str("currentValue.title"),
        }))])
    }
}

export_plugin!(Connector);
