//! The `slack` connector: an incoming-webhook message (`text` plus blocks) from a template.
//!
//! The incoming-webhook URL is a credential (anyone holding it can post to the channel), so
//! it goes in the config's write-only `url` — never shown or logged — and the webhook's own
//! URL is used only when that is absent. Inserted values are escaped for Slack's mrkdwn
//! (`&`, `<`, `>`), so an event cannot smuggle in mentions or links.
//!
//! Slack takes one message a second per incoming webhook (a channel), which the connector
//! declares as its policy, and says in its answers what went wrong (`on-response`): a message
//! it will never take (`invalid_payload`, `no_text`) fails without retrying, a hook that is
//! gone (`no_service`, `channel_is_archived`, …) disables the webhook, and 429 waits for its
//! `Retry-After`.

use serde::Deserialize;
use wasmhook_plugin_sdk::template::Template;
use wasmhook_plugin_sdk::{
    Config, Error, Event, Info, Judgement, OnResponse, Plugin, Policy, Request, Response, Value,
    export_plugin, json,
};

struct Slack;

const DEFAULT_TEXT: &str = "*{{event}}* {{currentValue.title}}";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Settings {
    url: Option<String>,
    #[serde(default = "default_text")]
    text: String,
    #[serde(default)]
    fields: Vec<Field>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Field {
    label: String,
    value: String,
}

fn default_text() -> String {
    DEFAULT_TEXT.into()
}

impl Plugin for Slack {
    fn describe() -> Info {
        Info::new("slack", env!("CARGO_PKG_VERSION"), "Posts a message to a Slack incoming webhook.")
            .policy(Policy::new().rate(1, 1))
            .config_schema(
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "url": {"type": "string", "pattern": "^https?://", "writeOnly": true, "title": "Slack incoming-webhook URL",
                        "description": "The incoming-webhook URL (https://hooks.slack.com/services/…); the webhook's URL when absent."},
                    "text": {"type": "string", "minLength": 1, "default": DEFAULT_TEXT, "title": "Message",
                        "description": "The message, in Slack mrkdwn, with {{paths}} into the event."},
                    "fields": {"type": "array", "maxItems": 10, "title": "Fields",
                        "description": "Label/value pairs shown under the message; values are templates.",
                        "items": {"type": "object", "additionalProperties": false, "required": ["label", "value"],
                            "properties": {"label": {"type": "string", "minLength": 1, "title": "Label"},
                                "value": {"type": "string", "title": "Value"}}}}
                }
            }),
        )
    }

    fn transform(event: Event, config: Config) -> Result<Vec<Request>, Error> {
        let settings: Settings = config.parse()?;
        let text = Template::parse("text", &settings.text)?.render_with(&event, escape);
        let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})];
        if !settings.fields.is_empty() {
            let mut fields = Vec::new();
            for (i, field) in settings.fields.iter().enumerate() {
                let value =
                    Template::parse(&format!("fields[{i}].value"), &field.value)?.render_with(&event, escape);
                fields
                    .push(json!({"type": "mrkdwn", "text": format!("*{}*\n{value}", escape(&field.label))}));
            }
            blocks.push(json!({"type": "section", "fields": fields}));
        }
        let context = format!("{} · project {}", event.event_type(), event.str("project.id").unwrap_or("-"));
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(&context)}]}));
        let body: Value = json!({"text": text, "blocks": blocks});
        let mut request = Request::json(&body);
        if let Some(url) = settings.url {
            request = request.url(url);
        }
        Ok(vec![request])
    }
}

/// Slack's answers about a message it will never take.
const BAD_MESSAGE: &[&str] = &["invalid_payload", "no_text", "too_many_attachments", "user_not_found"];

/// Slack's answers about an incoming webhook that no longer works: retrying is no use.
const DEAD_HOOK: &[&str] = &[
    "no_service",
    "no_service_id",
    "no_team",
    "invalid_team",
    "invalid_token",
    "team_disabled",
    "channel_not_found",
    "channel_is_archived",
    "action_prohibited",
    "posting_to_general_channel_denied",
    "no_active_hooks",
];

impl OnResponse for Slack {
    fn on_response(_request: Request, response: Response) -> Result<Judgement, Error> {
        let said = response.body().trim();
        Ok(match response.status() {
            200..=299 => Judgement::success(),
            429 => match response.retry_after() {
                Some(wait) => Judgement::retry_after(wait),
                None => Judgement::retry(),
            },
            _ if DEAD_HOOK.contains(&said) => Judgement::disable(format!(
                "Slack answered {} {said}: the incoming webhook no longer works",
                response.status()
            )),
            _ if BAD_MESSAGE.contains(&said) => Judgement::fail(format!(
                "Slack refused the message ({} {said}); check the connector's text",
                response.status()
            )),
            400 => {
                Judgement::fail(format!("Slack answered 400 {}", said.chars().take(200).collect::<String>()))
            }
            // Anything else may pass (a proxy's hiccup): the schedule and health decide.
            _ => Judgement::retry(),
        })
    }
}

/// Slack's mrkdwn control characters, escaped as its docs ask.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

export_plugin!(Slack, on_response);
