//! The `crm` connector: a HubSpot-style object upsert.
//!
//! The webhook's URL is the CRM's API base (`https://api.hubapi.com`). Each event becomes one
//! request whose body is `{"properties": {...}}`, each property taken from the event by the
//! config's mapping: a path (`currentValue.title`, keeps the value's JSON type) or a template
//! (`"{{currentValue.title}} ({{project.id}})"`, always text). With `idProperty`, the record is
//! addressed by that property's value (`PATCH /crm/v3/objects/contacts/{id}?idProperty=email`);
//! without, it is created (`POST /crm/v3/objects/contacts`). `method` and `path` override
//! both, as templates. The API key is write-only: wasmhook never shows or logs it.

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmhook_plugin_sdk::template::{Template, text_of};
use wasmhook_plugin_sdk::{Config, Error, Event, Info, Map, Plugin, Request, Value, export_plugin, json};

struct Crm;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Settings {
    #[serde(default = "contacts")]
    object_type: String,
    properties: BTreeMap<String, String>,
    id_property: Option<String>,
    method: Option<String>,
    path: Option<String>,
    api_key: Option<String>,
}

fn contacts() -> String {
    "contacts".into()
}

impl Plugin for Crm {
    fn describe() -> Info {
        Info::new("crm", env!("CARGO_PKG_VERSION"), "Upserts a CRM object (HubSpot-style) from a field mapping.")
            .config_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["properties"],
                "properties": {
                    "objectType": {"title": "Object type", "type": "string", "default": "contacts", "pattern": "^[A-Za-z0-9_-]+$",
                        "description": "The CRM object type (contacts, companies, deals, tickets, …)."},
                    "properties": {"type": "object", "minProperties": 1, "title": "Property mapping",
                        "additionalProperties": {"type": "string", "minLength": 1},
                        "description": "CRM property ← a path into the event (currentValue.title) or a template ({{currentValue.title}} in {{project.id}})."},
                    "idProperty": {"title": "Identifying property", "type": "string", "minLength": 1,
                        "description": "One of the mapped properties that identifies the record: update it by that value instead of creating one."},
                    "method": {"title": "Method", "type": "string", "enum": ["POST", "PUT", "PATCH"],
                        "description": "Overrides the method (PATCH with idProperty, POST without)."},
                    "path": {"type": "string", "pattern": "^/", "title": "Path",
                        "description": "Overrides the path after the webhook's URL; a template."},
                    "apiKey": {"title": "API key", "type": "string", "minLength": 1, "writeOnly": true,
                        "description": "Sent as a bearer token (a HubSpot private-app token, say)."}
                }
            }))
    }

    fn transform(event: Event, config: Config) -> Result<Vec<Request>, Error> {
        let settings: Settings = config.parse()?;
        let mut properties = Map::new();
        for (name, source) in &settings.properties {
            properties.insert(name.clone(), value_of(&event, &format!("properties.{name}"), source)?);
        }
        let id = match &settings.id_property {
            None => None,
            Some(property) => {
                let Some(value) = properties.get(property) else {
                    return Err(Error::invalid_config(format!(
                        "idProperty: {property:?} is not a mapped property"
                    )));
                };
                let id = text_of(Some(value));
                if id.is_empty() {
                    return Err(Error::invalid_event(format!(
                        "the record has no value for {property:?}, its id"
                    )));
                }
                Some((property.as_str(), id))
            }
        };
        let path = match (&settings.path, &id) {
            (Some(path), _) => Template::parse("path", path)?.render_with(&event, encode),
            (None, Some((property, id))) => {
                format!(
                    "/crm/v3/objects/{}/{}?idProperty={}",
                    settings.object_type,
                    encode(id),
                    encode(property)
                )
            }
            (None, None) => format!("/crm/v3/objects/{}", settings.object_type),
        };
        let method = settings.method.unwrap_or_else(|| if id.is_some() { "PATCH" } else { "POST" }.into());
        let Some(base) = event.str("webhook.url") else {
            return Err(Error::invalid_event("the payload has no webhook.url to send to"));
        };
        let mut request = Request::json(&json!({ "properties": properties }))
            .url(format!("{}{path}", base.trim_end_matches('/')))
            .method(method);
        if let Some(key) = settings.api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        Ok(vec![request])
    }
}

/// A mapped property's value: a template renders to text, a bare path keeps its JSON type.
fn value_of(event: &Event, field: &str, source: &str) -> Result<Value, Error> {
    let template = Template::parse(field, source)?;
    let path = if source.contains("{{") { template.single_path() } else { Some(source.trim()) };
    Ok(match path {
        Some(path) => event.get(path).cloned().unwrap_or(Value::Null),
        None => Value::String(template.render(event)),
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a path segment or
/// query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

export_plugin!(Crm);
