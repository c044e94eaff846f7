//! `wasmhook webhook list|show|create|update|enable|disable|delete|test`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::Failure;
use super::output::{cell, items, print_json, print_table};
use super::remote::{Body, ServerArgs};

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// List the webhooks the token may see (an operator's: everyone's).
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one webhook (never its secret).
    Show {
        /// The webhook's id (`wh_…`).
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Subscribe a URL to events; prints the webhook and, this once, its signing secret.
    Create {
        #[command(flatten)]
        fields: Fields,
        /// The signing secret (`whsec_` and base64 of 24 to 64 random bytes); generated when absent.
        #[arg(long, env = "WASMHOOK_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Start disabled.
        #[arg(long)]
        disabled: bool,
        /// Print only the new webhook's id, for `WEBHOOK=$(wasmhook webhook create … -q)`.
        #[arg(long, short, conflicts_with = "json")]
        quiet: bool,
        /// Print the API's JSON (with the secret) instead of two lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Change a webhook: only the fields given change.
    Update {
        /// The webhook's id (`wh_…`).
        id: String,
        #[command(flatten)]
        fields: Fields,
        /// Remove the filter.
        #[arg(long, conflicts_with = "filter")]
        no_filter: bool,
        /// Remove the rate limit.
        #[arg(long, conflicts_with = "rate_limit")]
        no_rate_limit: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Enable a webhook (a disabled one gets a `WEBHOOK_HEALTH_CHECK` event first).
    Enable {
        /// The webhook's id (`wh_…`).
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Disable a webhook: its new deliveries wait, paused, until it is enabled and recovered.
    Disable {
        /// The webhook's id (`wh_…`).
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete a webhook for good.
    Delete {
        /// The webhook's id (`wh_…`).
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Send a sample event to one webhook, bypassing matching.
    Test {
        /// The webhook's id (`wh_…`).
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// A webhook's settings as flags (all optional: `update` changes only those given).
#[derive(Args)]
pub struct Fields {
    /// A name for people (required to create).
    #[arg(long)]
    name: Option<String>,
    /// Where deliveries go (required to create). Loopback and private addresses need the
    /// server's `--allow-private-destinations`.
    #[arg(long)]
    url: Option<String>,
    /// Event types to receive, comma-separated (none given: every type); see `GET /v1/event-types`.
    #[arg(long, value_delimiter = ',')]
    events: Option<Vec<String>>,
    /// Projects to receive events of, comma-separated (none given: every project of the
    /// owner's companies).
    #[arg(long, value_delimiter = ',')]
    projects: Option<Vec<String>>,
    /// The connector that shapes each message (default `json`); see `wasmhook connector list`.
    #[arg(long)]
    connector: Option<String>,
    /// The connector's config, as JSON (its schema: `wasmhook connector list --json`).
    #[arg(long, value_name = "JSON")]
    config: Option<String>,
    /// A filter on the payload, as JSON, e.g. '{"path": "currentValue.done", "op": "eq", "value": false}'.
    #[arg(long, value_name = "JSON")]
    filter: Option<String>,
    /// Messages per second at most.
    #[arg(long, value_name = "PER_SECOND")]
    rate_limit: Option<u32>,
    /// Deliver one message at a time, in the order events arrived (`--ordered false` to stop).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    ordered: Option<bool>,
}

impl Fields {
    /// The API's JSON for the fields given; `current` is the webhook as it stands (for an
    /// update that sets only one of `--events` and `--projects`).
    fn body(&self, current: Option<&Value>) -> Result<Map<String, Value>, Failure> {
        let parse = |flag: &str, text: &str| {
            serde_json::from_str::<Value>(text).map_err(|e| Failure(format!("--{flag} is not JSON: {e}")))
        };
        let mut body = Map::new();
        if let Some(name) = &self.name {
            body.insert("name".into(), json!(name));
        }
        if let Some(url) = &self.url {
            body.insert("url".into(), json!(url));
        }
        if self.events.is_some() || self.projects.is_some() || current.is_none() {
            let stored = |key: &str| current.map_or(json!([]), |w| w["metadata"][key].clone());
            let events = self.events.as_ref().map_or_else(|| stored("events"), |events| json!(events));
            let projects =
                self.projects.as_ref().map_or_else(|| stored("projectIds"), |projects| json!(projects));
            body.insert("metadata".into(), json!({"events": events, "projectIds": projects}));
        }
        if self.connector.is_some() || self.config.is_some() {
            let name = self.connector.clone().map_or_else(
                || current.map_or(json!("json"), |w| w["connector"]["name"].clone()),
                Value::String,
            );
            let config = self.config.as_deref().map(|c| parse("config", c)).transpose()?.unwrap_or(json!({}));
            body.insert("connector".into(), json!({"name": name, "config": config}));
        }
        if let Some(filter) = &self.filter {
            body.insert("filter".into(), parse("filter", filter)?);
        }
        if let Some(rate) = self.rate_limit {
            body.insert("rateLimit".into(), json!(rate));
        }
        if let Some(ordered) = self.ordered {
            body.insert("ordered".into(), json!(ordered));
        }
        Ok(body)
    }
}

pub async fn run(command: WebhookCommand) -> Result<(), Failure> {
    match command {
        WebhookCommand::List { json, server } => {
            let webhooks = server.get_all("/v1/webhooks").await?;
            if json {
                print_json(&Value::from(webhooks));
            } else if webhooks.is_empty() {
                println!("no webhooks yet: `wasmhook webhook create --name … --url …` adds one");
            } else {
                let rows: Vec<Vec<String>> = webhooks.iter().map(row).collect();
                print_table(&["ID", "NAME", "STATUS", "CONNECTOR", "EVENTS", "LAST DELIVERY", "URL"], &rows);
            }
        }
        WebhookCommand::Show { id, server } => print_json(&server.get(&path(&id)).await?),
        WebhookCommand::Create { fields, secret, disabled, quiet, json, server } => {
            for (flag, given) in [("--name", fields.name.is_some()), ("--url", fields.url.is_some())] {
                if !given {
                    return Err(Failure(format!("{flag} is required to create a webhook")));
                }
            }
            let mut body = fields.body(None)?;
            if disabled {
                body.insert("enabled".into(), json!(false));
            }
            if let Some(secret) = secret {
                body.insert("secret".into(), json!(secret));
            }
            let created = server
                .call(Method::POST, "/v1/webhooks", Some(Body::Json(Value::Object(body))))
                .await?
                .unwrap_or_default();
            let text = |key: &str| created[key].as_str().unwrap_or_default().to_owned();
            if quiet {
                println!("{}", text("id"));
            } else if json {
                print_json(&created);
            } else {
                println!("created {} ({:?} → {})", text("id"), text("name"), text("url"));
                println!("signing secret (shown this once): {}", text("secret"));
            }
        }
        WebhookCommand::Update { id, fields, no_filter, no_rate_limit, server } => {
            let current = server.get(&path(&id)).await?;
            let mut body = fields.body(Some(&current))?;
            if no_filter {
                body.insert("filter".into(), Value::Null);
            }
            if no_rate_limit {
                body.insert("rateLimit".into(), Value::Null);
            }
            if body.is_empty() {
                return Err(Failure("nothing to change: give at least one field (see --help)".into()));
            }
            let updated = patch(&server, &id, Value::Object(body)).await?;
            println!("updated {id}");
            print_json(&updated);
        }
        WebhookCommand::Enable { id, server } => {
            let before = server.get(&path(&id)).await?;
            if before["enabled"] == json!(true) {
                println!("{id} is enabled already ({})", before["status"].as_str().unwrap_or_default());
                return Ok(());
            }
            patch(&server, &id, json!({"enabled": true})).await?;
            println!(
                "enabled {id}: a WEBHOOK_HEALTH_CHECK event goes first. Deliveries paused while it \
                 was disabled wait for `wasmhook recover {id} --since …`"
            );
        }
        WebhookCommand::Disable { id, server } => {
            patch(&server, &id, json!({"enabled": false})).await?;
            println!("disabled {id}: its new deliveries wait, paused, until it is enabled and recovered");
        }
        WebhookCommand::Delete { id, server } => {
            server.call(Method::DELETE, &path(&id), None).await?;
            println!("deleted {id}");
        }
        WebhookCommand::Test { id, server } => {
            let queued =
                server.call(Method::POST, &format!("{}/test", path(&id)), None).await?.unwrap_or_default();
            println!(
                "queued a test event for {id} as delivery {}; see `wasmhook deliveries {id}`",
                queued["deliveryId"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn path(id: &str) -> String {
    format!("/v1/webhooks/{id}")
}

async fn patch(server: &ServerArgs, id: &str, body: Value) -> Result<Value, Failure> {
    Ok(server.call(Method::PATCH, &path(id), Some(Body::Json(body))).await?.unwrap_or_default())
}

/// A webhook as one line of `webhook list`.
fn row(webhook: &Value) -> Vec<String> {
    let events = items(&webhook["metadata"]["events"]).len();
    vec![
        cell(webhook, "id"),
        cell(webhook, "name"),
        cell(webhook, "status"),
        cell(&webhook["connector"], "name"),
        if events == 0 { "all".to_owned() } else { events.to_string() },
        match &webhook["lastDelivery"] {
            Value::Null => "-".to_owned(),
            last => format!("{} {}", cell(last, "status"), cell(last, "createdAt")),
        },
        cell(webhook, "url"),
    ]
}
