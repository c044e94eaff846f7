//! The title-filter example, in Rust: only records whose title contains the config's
//! `pattern` (ignoring case) go out, reshaped to a small JSON object. The same connector is
//! written in JavaScript (`../js`) and Python (`../python`); all three send the same bytes.

use serde::Deserialize;
use wasmhook_plugin_sdk::{Config, Error, Event, Info, Plugin, Request, export_plugin, json, log};

struct TitleFilter;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    pattern: String,
}

impl Plugin for TitleFilter {
    fn describe() -> Info {
        Info::new("title-filter", "1.0.0", "Sends records whose title contains a pattern, as {event, id, matched, project, title}.")
            .config_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["pattern"],
                "properties": {"pattern": {"type": "string", "minLength": 1, "description": "Text the title must contain (any case)."}}
            }))
    }

    fn transform(event: Event, config: Config) -> Result<Vec<Request>, Error> {
        let settings: Settings = config.parse()?;
        let Some(title) = event.str("currentValue.title") else {
            return Ok(vec![]); // no title: nothing to match
        };
        if !title.to_lowercase().contains(&settings.pattern.to_lowercase()) {
            log::debug(&format!("{title:?} does not contain {:?}", settings.pattern));
            return Ok(vec![]);
        }
        // Keys in alphabetical order, compact: the same bytes as the JS and Python versions.
        let body = json!({
            "event": event.event_type(),
            "id": event.id(),
            "matched": settings.pattern,
            "project": event.str("project.id"),
            "title": title,
        });
        Ok(vec![Request::json(&body)])
    }
}

export_plugin!(TitleFilter);
