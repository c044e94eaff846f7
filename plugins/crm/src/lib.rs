//! The `crm` connector: a HubSpot-style object upsert.
//!
//! The webhook's URL is the CRM's API base (`https://api.hubapi.com`). Each event becomes one
//! request whose body is `{"properties": {...}}`, each property taken from the event by the
//! config's mapping: a path (`currentValue.title`, keeps the value's JSON type) or a template
//! (`"{{currentValue.title}} ({{project.id}})"`, always text). With `idProperty`, the record is
//! addressed by that property's value (`PATCH /crm/v3/objects/contacts/{id}?idProperty=email`);
//! without, the connector remembers each record's CRM id: the first event of a record creates
//! it (`POST /crm/v3/objects/contacts`), the id in the CRM's answer is kept in the webhook's
//! state (`on-response`), and every later event of that record updates it
//! (`PATCH /crm/v3/objects/contacts/{crm id}`). The record is the event's `currentValue.id`
//! (or `previousValue.id`; `recordId` names another path), which is also each request's
//! ordering key: one record's changes reach the CRM in order, different records' in parallel.
//! `method` and `path` override all that, as templates. The API key is write-only: wasmhook
//! never shows or logs it. The declared policy is HubSpot's: 100 requests per 10 seconds.

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmhook_plugin_sdk::template::{Template, text_of};
use wasmhook_plugin_sdk::{
    Config, Error, Event, Info, Judgement, Map, OnResponse, Plugin, Policy, Request, Response, Value,
    export_plugin, json, log, state,
};

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
    #[serde(default = "record_id")]
    record_id: String,
}

fn record_id() -> String {
    "currentValue.id".into()
}

/// Where a record's CRM id is kept in the webhook's state.
fn state_key(record: &str) -> String {
    format!("id:{record}")
}

fn contacts() -> String {
    "contacts".into()
}

impl Plugin for Crm {
    fn describe() -> Info {
        Info::new("crm", env!("CARGO_PKG_VERSION"), "Upserts a CRM object (HubSpot-style) from a field mapping.")
            .policy(Policy::new().rate(100, 10))
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
                        "description": "Sent as a bearer token (a HubSpot private-app token, say)."},
                    "recordId": {"title": "Record id", "type": "string", "minLength": 1, "default": "currentValue.id",
                        "description": "Path to the record's id in the event (previousValue's is used when absent): its CRM id is remembered, and its changes are sent in order."}
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
        let record = record_of(&event, &settings.record_id);
        // The CRM's id for the record, from an earlier create's answer.
        let known = match (&id, &record) {
            (None, Some(record)) => state::get(&state_key(record))?,
            _ => None,
        };
        let object_type = &settings.object_type;
        let path = match (&settings.path, &id, &known) {
            (Some(path), _, _) => Template::parse("path", path)?.render_with(&event, encode),
            (None, Some((property, id)), _) => {
                format!("/crm/v3/objects/{object_type}/{}?idProperty={}", encode(id), encode(property))
            }
            (None, None, Some(crm_id)) => format!("/crm/v3/objects/{object_type}/{}", encode(crm_id)),
            (None, None, None) => format!("/crm/v3/objects/{object_type}"),
        };
        let update = id.is_some() || known.is_some();
        let method = settings.method.unwrap_or_else(|| if update { "PATCH" } else { "POST" }.into());
        let Some(base) = event.str("webhook.url") else {
            return Err(Error::invalid_event("the payload has no webhook.url to send to"));
        };
        let mut request = Request::json(&json!({ "properties": properties }))
            .url(format!("{}{path}", base.trim_end_matches('/')))
            .method(method);
        if let Some(key) = settings.api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        if let Some(record) = record {
            request = request.ordering_key(record);
        }
        Ok(vec![request])
    }
}

impl OnResponse for Crm {
    fn on_response(request: Request, response: Response) -> Result<Judgement, Error> {
        let record = request.key();
        let answered: Option<Value> = response.json();
        let said = |field: &str| answered.as_ref().and_then(|a| a.get(field)).and_then(Value::as_str);
        let crm_id = answered.as_ref().and_then(|a| a.get("id")).map(|id| text_of(Some(id)));
        match response.status() {
            200..=299 => {
                let mut judgement = Judgement::success();
                if let Some(crm_id) = crm_id.filter(|id| !id.is_empty()) {
                    if let Some(record) = record.filter(|_| request.verb() == "POST") {
                        remember(record, &crm_id);
                    }
                    judgement = judgement.remote_id(crm_id);
                }
                Ok(judgement)
            }
            // Created already (outside wasmhook, or its id was lost): HubSpot names the id.
            409 => {
                let existing = said("message").and_then(existing_id);
                match (record, existing) {
                    (Some(record), Some(existing)) => {
                        remember(record, &existing);
                        Ok(Judgement::fail(format!(
                            "the CRM already has record {record} as {existing}: this event's changes were not \
                             applied; later events update it"
                        ))
                        .remote_id(existing))
                    }
                    _ => Ok(Judgement::fail(format!(
                        "the CRM refused a duplicate: {}",
                        said("message").unwrap_or("409")
                    ))),
                }
            }
            // Removed in the CRM: forget it, so the record's next event creates it again.
            404 if request.verb() == "PATCH" => {
                if let Some(record) = record {
                    let _ = state::delete(&state_key(record));
                }
                Ok(Judgement::fail("the CRM no longer has this record; its next event creates it again"))
            }
            401 | 403 => Ok(Judgement::disable(format!(
                "the CRM refused the API key ({}): {}",
                response.status(),
                said("message").unwrap_or("no reason given")
            ))),
            429 => Ok(response.retry_after().map_or_else(Judgement::retry, Judgement::retry_after)),
            400..=499 => Ok(Judgement::fail(format!(
                "the CRM refused the request ({}): {}",
                response.status(),
                said("message").unwrap_or("no reason given")
            ))),
            _ => Ok(Judgement::retry()),
        }
    }
}

/// Keeps a record's CRM id for its later events; a full state only costs the shortcut.
fn remember(record: &str, crm_id: &str) {
    if let Err(error) = state::set(&state_key(record), crm_id) {
        log::warn(&format!("cannot keep record {record}'s CRM id {crm_id}: {error}"));
    }
}

/// The id in HubSpot's conflict message: `Contact already exists. Existing ID: 12345`.
fn existing_id(message: &str) -> Option<String> {
    let (_, after) = message.split_once("Existing ID:")?;
    let id: String = after.trim().chars().take_while(char::is_ascii_alphanumeric).collect();
    (!id.is_empty()).then_some(id)
}

/// The record an event is about: the configured path, in `currentValue` or else `previousValue`.
fn record_of(event: &Event, path: &str) -> Option<String> {
    let previous = path.strip_prefix("currentValue.").map(|rest| format!("previousValue.{rest}"));
    let value = event
        .get(path)
        .filter(|v| !v.is_null())
        .or_else(|| event.get(previous.as_deref()?).filter(|v| !v.is_null()));
    let text = text_of(value);
    (!text.is_empty()).then_some(text)
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

export_plugin!(Crm, on_response);
